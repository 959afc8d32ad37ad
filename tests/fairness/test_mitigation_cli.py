"""``faceaccord fairness calibrate`` and ``fairness audit --compare`` on dlib's real models: a
calibration file from photos and who they show (never a demographic label), its refusals, and,
when ../shared/data/faces-demographic is beside this checkout, the cross-validated comparison
that issue 8 is judged by."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageEnhance
from typer.testing import CliRunner

from faceaccord.cli.app import app
from faceaccord.fairness.datasets import dataset_sha256, load_dataset
from faceaccord.matching.normalisation import CohortNormaliser, load_normaliser
from faceaccord.protection.envelope import MasterKeySealer
from faceaccord.protection.keys import load_master_key
from faceaccord.samples import SamplePhotos
from faceaccord.settings import Settings

pytestmark = pytest.mark.real_model
runner = CliRunner()

DEMOGRAPHIC = Path(__file__).resolve().parents[3] / "shared" / "data" / "faces-demographic"


def cli(*args: str | Path) -> tuple[int, dict[str, Any] | str]:
    result = runner.invoke(app, ["fairness", *map(str, args), "--json"])
    if result.exit_code != 0:
        return result.exit_code, result.stderr or result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return 0, document


def deployment_sealer() -> MasterKeySealer:
    """The sealer of the deployment at FACEACCORD_HOME (what calibrate sealed with)."""
    return MasterKeySealer(load_master_key(Settings()))


def variant(source: Path, target: Path, how: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as opened:
        image = opened.convert("RGB")
    if how == "mirrored":
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    elif how == "brighter":
        image = ImageEnhance.Brightness(image).enhance(1.25)
    elif how == "smaller":
        image = image.resize((image.width * 3 // 4, image.height * 3 // 4))
    image.save(target, quality=92)


def group_labels(people: Path, path: Path) -> Path:
    """A labels CSV putting each person in the group of its first letter (a or b)."""
    names = sorted(p.name for p in people.iterdir())
    path.write_text(
        "identity,group\n" + "\n".join(f"{n},{n[0]}" for n in names) + "\n", encoding="utf-8"
    )
    return path


@pytest.fixture(scope="module")
def six_people(samples: SamplePhotos, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six "people" made from the two sample people (each photo as it is, mirrored, brighter):
    enough to exercise calibration end to end, not to say anything about accuracy."""
    root = tmp_path_factory.mktemp("six-people") / "people"
    sources = {"a": samples.person_a[:2], "b": [samples.person_b]}
    for person, photos in sources.items():
        for how in ("as-is", "mirrored", "brighter"):
            for number, photo in enumerate(photos):
                target = root / f"{person}-{how}" / f"{number}.jpg"
                if how == "as-is":
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(photo, target)
                else:
                    variant(photo, target, how)
                variant(photo, root / f"{person}-{how}" / f"{number}-small.jpg", "smaller")
    return root


def test_calibrate_writes_a_normaliser_for_the_model_in_use(
    six_people: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEACCORD_HOME", str(tmp_path / "home"))
    out = tmp_path / "fsn.json"
    code, document = cli("calibrate", "--dataset", six_people, "--out", out, "--method", "fsn")
    assert code == 0, document
    assert isinstance(document, dict)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert document["method"] == "fsn"
    assert document["id"].startswith("fsn:")
    assert document["model"]["id"] == "dlib-resnet-v1"
    assert document["data"]["subjects"] == 6
    assert document["data"]["sha256"] == dataset_sha256(
        load_dataset(six_people, demographics=False)
    )
    assert document["selection"]["parameter"] == "k"
    assert document["selection"]["criterion"].endswith("no demographic labels")
    saved = json.loads(out.read_text(encoding="utf-8"))
    for array in saved["arrays"].values():  # sealed under the deployment's master key
        assert "base64" not in array
        assert array["sealed"]["key_id"] == document["sealed_with"]
    loaded = load_normaliser(
        out,
        model_id="dlib-resnet-v1",
        model_sha256=document["model"]["sha256"],
        dimension=128,
        sealer=deployment_sealer(),
    )
    assert loaded.id == document["id"]
    assert loaded.k == document["selection"]["chosen"]  # type: ignore[union-attr]


def test_calibration_reads_no_demographic_column(
    six_people: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same photos and people with the ethnicity column changed give the same calibration."""
    monkeypatch.setenv("FACEACCORD_HOME", str(tmp_path / "home"))
    photos = sorted(six_people.glob("*/*.jpg"))
    documents: list[dict[str, Any]] = []
    loaded: list[Any] = []
    for number, labels in enumerate((("x", "y"), ("y", "x"))):
        manifest = six_people.parent / f"manifest-{number}.csv"
        rows = [
            f"{photo.relative_to(six_people.parent)},{photo.parent.name},"
            f"{labels[photo.parent.name.startswith('a')]}"
            for photo in photos
        ]
        manifest.write_text(
            "path,subject_id,ethnicity\n" + "\n".join(rows) + "\n", encoding="utf-8"
        )
        out = tmp_path / f"cohort-{number}.json"
        code, printed = cli("calibrate", "--dataset", manifest, "--out", out, "--method", "cohort",
                            "--k", "3")  # fmt: skip
        assert code == 0, printed
        document = json.loads(out.read_text(encoding="utf-8"))
        documents.append(document)
        sha256 = document["model"]["sha256"]
        loaded.append(
            load_normaliser(out, model_id="dlib-resnet-v1", model_sha256=sha256, dimension=128,
                            sealer=deployment_sealer())
        )  # fmt: skip
    first, second = documents
    assert isinstance(loaded[0], CohortNormaliser)
    assert isinstance(loaded[1], CohortNormaliser)
    assert np.array_equal(loaded[0].cohort, loaded[1].cohort)
    assert first["parameters"] == second["parameters"]
    assert first["data"] == second["data"]


def test_calibrate_refuses_too_few_people(
    samples: SamplePhotos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEACCORD_HOME", str(tmp_path / "home"))
    root = tmp_path / "two"
    for person, photos in (("a", samples.person_a), ("b", [samples.person_b])):
        (root / person).mkdir(parents=True)
        for photo in photos:
            shutil.copy(photo, root / person / photo.name)
    code, message = cli("calibrate", "--dataset", root, "--out", tmp_path / "x.json")
    assert code != 0
    assert "cannot calibrate" in str(message)
    assert "three people" in str(message)
    assert not (tmp_path / "x.json").exists()


def test_calibrate_refuses_an_unknown_method(six_people: Path, tmp_path: Path) -> None:
    code, message = cli("calibrate", "--dataset", six_people, "--out", tmp_path / "x.json",
                        "--method", "race-thresholds")  # fmt: skip
    assert code != 0
    assert "unknown method 'race-thresholds'" in str(message)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--compare", "none,magic"], "unknown mitigation 'magic'"),
        (["--compare", "fsn"], "at least two methods"),
        (["--compare", "none,fsn", "--record"], "cannot take --compare"),
        (["--compare", "none,fsn"], "too few for 10-fold cross-validation"),
    ],
)
def test_compare_refuses_what_it_cannot_measure(
    six_people: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    extra: list[str],
    expected: str,
) -> None:
    monkeypatch.setenv("FACEACCORD_HOME", str(tmp_path / "home"))
    labels = group_labels(six_people, tmp_path / "labels.csv")
    code, message = cli("audit", "--dataset", six_people, "--labels", labels,
                        "--out", tmp_path / "out", "--bootstrap", "50", *extra)  # fmt: skip
    assert code != 0
    assert expected in str(message)


# faces-demographic: the measurement issue 8 is judged by


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not (DEMOGRAPHIC / "identities.csv").is_file():
        pytest.skip(f"{DEMOGRAPHIC} (with identities.csv) is not beside this checkout")
    root = tmp_path_factory.mktemp("compare")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACEACCORD_HOME", str(root / "home"))
        code, printed = cli(
            "audit", "--dataset", DEMOGRAPHIC, "--labels", DEMOGRAPHIC / "identities.csv",
            "--attributes", "ethnicity_self_reported", "--target-fmr", "0.01",
            "--out", root / "out", "--bootstrap", "100", "--compare", "none,fsn,cohort",
            "--repeats", "3",
        )  # fmt: skip
    assert code == 0, printed
    report: dict[str, Any] = json.loads((root / "out" / "report.json").read_text("utf-8"))
    return report


def test_every_method_is_measured_on_the_same_pairs(compared: dict[str, Any]) -> None:
    reports = compared["comparison"]["reports"]
    assert list(reports) == ["none", "fsn", "cohort"]
    counts = {
        method: (r["overall"]["impostor_pairs"], r["overall"]["genuine_pairs"])
        for method, r in reports.items()
    }
    assert set(counts.values()) == {(20604, 102)}
    for method in ("fsn", "cohort"):
        scoring = reports[method]["scoring"]
        assert scoring["cross_validated"] is True
        assert scoring["folds"] == 10


def test_cohort_normalisation_narrows_the_gap_without_costing_true_matches(
    compared: dict[str, Any],
) -> None:
    table = compared["comparison"]["table"]
    ratios = {
        method: data["summary"]["fmr_ratio"]
        for method, data in table["attributes"]["ethnicity_self_reported"].items()
    }
    garbe = {
        method: data["summary"]["garbe"]
        for method, data in table["attributes"]["ethnicity_self_reported"].items()
    }
    assert ratios["none"] > 50  # the model's own gap, at one global threshold for FMR 1e-2
    assert ratios["cohort"] < ratios["none"] / 4
    assert garbe["cohort"] < garbe["none"]
    overall = table["overall"]
    assert overall["cohort"]["tmr_at_target_fmr"] >= overall["none"]["tmr_at_target_fmr"] - 0.01
    splits = table["splits"]
    assert [len(splits[m]["ethnicity_self_reported"]["fmr_ratio"]["values"]) for m in ratios] == [
        1, 3, 3,
    ]  # fmt: skip
    over_splits = splits["cohort"]["ethnicity_self_reported"]["fmr_ratio"]
    assert over_splits["values"][0] == ratios["cohort"]  # the full report is the first split's
    assert over_splits["min"] <= over_splits["median"] <= over_splits["max"]
    assert over_splits["median"] < ratios["none"] / 4


def test_an_audit_measures_the_normaliser_in_force_and_says_when_it_saw_its_data(
    six_people: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEACCORD_HOME", str(tmp_path / "home"))
    calibration = tmp_path / "fsn.json"
    code, made = cli("calibrate", "--dataset", six_people, "--out", calibration, "--k", "2")
    assert code == 0, made
    assert isinstance(made, dict)
    monkeypatch.setenv("FACEACCORD_FAIRNESS__SCORE_NORMALISER", str(calibration))
    labels = group_labels(six_people, tmp_path / "labels.csv")
    code, printed = cli("audit", "--dataset", six_people, "--labels", labels,
                        "--out", tmp_path / "out", "--bootstrap", "50", "--record")  # fmt: skip
    assert code == 0, printed
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert report["scoring"]["score_normaliser"]["id"] == made["id"]
    assert report["scoring"]["calibrated_on_this_dataset"] is True
    assert any("calibrated on this very dataset" in item for item in report["limitations"])
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert made["id"] in page


def test_an_unsealed_calibration_is_possible_and_says_so(
    six_people: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEACCORD_HOME", str(tmp_path / "home"))
    out = tmp_path / "plain.json"
    code, document = cli("calibrate", "--dataset", six_people, "--out", out, "--method",
                         "cohort", "--k", "3", "--no-seal")  # fmt: skip
    assert code == 0, document
    assert isinstance(document, dict)
    assert document["sealed_with"] is None
    saved = json.loads(out.read_text(encoding="utf-8"))
    assert "base64" in saved["arrays"]["cohort"]
