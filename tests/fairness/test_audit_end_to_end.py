"""``faceaccord fairness audit`` end to end on dlib's real models: on the sample photos with a
labels file written here (schema of report.json, failure-to-acquire, the self-contained
report.html agreeing with report.json, recording), and on ../shared/data/faces-demographic when
it is beside this checkout (known group sizes, rates recomputed from the report's own counts,
``fairness summarize`` reproducing the report's summary measures)."""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from faceaccord.cli.app import app
from faceaccord.fairness.audit import SCHEMA
from faceaccord.fairness.metrics import rule_of_three, summarize
from faceaccord.platform.deployment import Platform
from faceaccord.samples import SamplePhotos
from faceaccord.settings import Settings
from faceaccord.store.models import AuditEntryRow, FairnessAuditRow

pytestmark = pytest.mark.real_model
runner = CliRunner()

DASH = "\N{EN DASH}"  # between the ends of an interval in report.html
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
DEMOGRAPHIC = SHARED_DATA / "faces-demographic"

CELL_KEYS = {
    "subjects", "images", "fta", "genuine_pairs", "impostor_pairs", "fmr", "fnmr", "eer",
    "fnmr_at_target_fmr", "det", "scores", "flags",
}  # fmt: skip
RATE_KEYS = {"value", "errors", "trials", "ci95", "upper_bound_if_zero"}
SUMMARY_KEYS = {
    "fmr_ratio", "fnmr_ratio", "fmr_difference", "fnmr_difference", "fdr", "inequity_rate",
    "garbe", "alpha", "note",
}  # fmt: skip


def audit_cli(*args: str | Path) -> dict[str, Any]:
    result = runner.invoke(app, ["fairness", "audit", *map(str, args), "--json"])
    assert result.exit_code == 0, result.stderr or result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def flip(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image.convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(target, quality=95)


def same(a: float | str | None, b: float | str | None) -> bool:
    if not isinstance(a, float) or not isinstance(b, float):
        return a == b
    return (math.isnan(a) and math.isnan(b)) or a == b


def rate_text(value: float | None) -> str:
    """A rate as report.html shows it (3 significant digits, in per cent; n/a if undefined)."""
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value * 100:.3g} %"


def number_text(value: float | None, digits: int = 3) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:.{digits}g}"


def check_rates_from_counts(report: dict[str, Any]) -> None:
    """Every rate in the report agrees with the report's own counts."""
    for data in report["attributes"].values():
        for cell in data["groups"].values():
            assert set(cell) == CELL_KEYS
            assert cell["fmr"]["trials"] == cell["impostor_pairs"]
            assert cell["fnmr"]["trials"] == cell["genuine_pairs"]
            for rate in ("fmr", "fnmr"):
                entry = cell[rate]
                assert set(entry) == RATE_KEYS
                assert 0 <= entry["errors"] <= entry["trials"]
                if entry["trials"]:
                    assert entry["value"] == entry["errors"] / entry["trials"]
                else:
                    assert entry["value"] is None  # undefined: null in strict JSON
                if entry["errors"] == 0 and entry["trials"]:
                    assert entry["upper_bound_if_zero"] == rule_of_three(entry["trials"])
                else:
                    assert entry["upper_bound_if_zero"] is None
        if data["summary"] is not None:
            recomputed = summarize(
                [data["groups"][g]["fmr"]["value"] for g in data["summary_groups"]],
                [data["groups"][g]["fnmr"]["value"] for g in data["summary_groups"]],
                alpha=report["alpha"],
            ).as_dict()
            assert set(data["summary"]) == SUMMARY_KEYS
            for key, value in recomputed.items():
                if key == "note":
                    assert data["summary"]["note"] == value
                else:
                    assert same(data["summary"][key], value), key


# The sample photos, with labels written here


@pytest.fixture(scope="module")
def sample_audit(samples: SamplePhotos, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Four people in two groups: "a" (person A: 3 photos and the 2 with the face cut off) and
    "c" (person A again, mirrored) in group "x"; "b" (person B, and a text file that is no
    image: a failure to acquire) and "d" (person B mirrored, twice) in group "y". A second
    attribute, "camera", has a group of one person ("phone": no impostor pair, so its FMR is
    undefined)."""
    root = tmp_path_factory.mktemp("sample-audit")
    data = root / "people"
    for photo in (*samples.person_a, *samples.partial_faces):
        (data / "a").mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, data / "a" / photo.name)
    (data / "b").mkdir()
    shutil.copy(samples.person_b, data / "b" / samples.person_b.name)
    (data / "b" / "notes.txt").write_text("not an image\n", encoding="utf-8")
    flip(samples.person_a[0], data / "c" / "a0-mirrored.jpg")
    flip(samples.person_a[1], data / "c" / "a1-mirrored.jpg")
    flip(samples.person_b, data / "d" / "b-mirrored.jpg")
    with Image.open(samples.person_b) as image:
        smaller = image.convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        smaller.resize((image.width * 3 // 4, image.height * 3 // 4)).save(
            data / "d" / "b-mirrored-smaller.jpg", quality=90
        )
    labels = root / "labels.csv"
    labels.write_text(
        "identity,group,camera\na,x,phone\nb,y,studio\nc,x,studio\nd,y,studio\n",
        encoding="utf-8",
    )
    out = root / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACEACCORD_HOME", str(root / "home"))
        printed = audit_cli(
            "--dataset", data, "--labels", labels, "--target-fmr", "1e-3", "--out", out,
            "--bootstrap", "200", "--record", "--workers", "2",
        )  # fmt: skip
        text = (out / "report.json").read_text(encoding="utf-8")
        with Platform.open(Settings()) as platform, Session(platform.db) as session:
            rows = session.scalars(select(FairnessAuditRow)).all()
            entries = session.scalars(
                select(AuditEntryRow).where(AuditEntryRow.operation == "fairness_audit")
            ).all()
            stored = [(r.id, r.status, r.model_id, r.threshold, r.summary) for r in rows]
            logged = [(e.decision, e.details["audit"]) for e in entries]
    return {
        "printed": printed,
        "text": text,
        "report": json.loads(text),
        "html": (out / "report.html").read_text(encoding="utf-8"),
        "out": out,
        "stored": stored,
        "logged": logged,
    }


def test_the_report_json_has_the_versioned_schema(sample_audit: dict[str, Any]) -> None:
    report = sample_audit["report"]
    assert report["schema"] == SCHEMA == "faceaccord.fairness-audit/1"
    assert {
        "schema", "generated_at", "dataset", "model", "threshold", "overall", "bootstrap",
        "alpha", "small_cell_rules", "attributes", "limitations", "audit_id", "scoring",
    } == set(report)  # fmt: skip
    assert report["scoring"] == {"score_normaliser": {"id": "none", "method": "none"}}
    assert report["dataset"]["name"] == "people"
    assert report["dataset"]["images"] == 5 + 2 + 2 + 2
    assert report["dataset"]["subjects"] == 4
    assert report["dataset"]["attributes"] == ["group", "camera"]
    assert report["dataset"]["label_method"] == "not stated"
    assert "no MANIFEST.txt or README found" in report["dataset"]["provenance"]
    assert report["model"]["id"] == "dlib-resnet-v1"
    assert len(report["model"]["sha256"]) == 64
    assert report["model"]["metric"] == "euclidean"
    threshold = report["threshold"]
    assert {"value", "method"} <= set(threshold)
    assert threshold["target_fmr"] == 1e-3
    assert "target FMR of 0.001" in threshold["method"]
    assert threshold["comparison"] == "distance <= threshold is a match"
    assert set(report["overall"]) == {
        "genuine_pairs", "impostor_pairs", "fmr", "fnmr", "eer", "fta", "tmr_at_target_fmr",
    }  # fmt: skip
    assert report["overall"]["fmr"] <= 1e-3
    assert report["bootstrap"] == {
        "replicates": 200, "unit": "subject", "seed": 20261122, "interval": "percentile, 95 %",
    }  # fmt: skip
    assert report["alpha"] == 0.5
    assert report["limitations"]
    groups = report["attributes"]["group"]["groups"]
    assert set(groups) == {"x", "y"}
    for cell in groups.values():
        assert set(cell) == CELL_KEYS
        assert set(cell["fmr"]) == set(cell["fnmr"]) == RATE_KEYS
        assert len(cell["fmr"]["ci95"]) == 2
        assert "few_subjects: 2 < 20" in cell["flags"]
    assert {"groups", "summary", "summary_groups", "cross_group_fmr", "differences"} == set(
        report["attributes"]["group"]
    )
    printed = sample_audit["printed"]
    assert set(printed) == {"report", "html", "threshold", "summaries", "audit_id", "comparison"}
    assert printed["comparison"] is None  # no --compare
    assert printed["threshold"] == report["threshold"]
    assert printed["summaries"] == {
        "group": report["attributes"]["group"]["summary"], "camera": None,
    }  # fmt: skip
    assert printed["audit_id"] == report["audit_id"]


def test_counts_and_failure_to_acquire_per_group(sample_audit: dict[str, Any]) -> None:
    report = sample_audit["report"]
    x = report["attributes"]["group"]["groups"]["x"]
    y = report["attributes"]["group"]["groups"]["y"]
    assert (x["subjects"], x["images"], y["subjects"], y["images"]) == (2, 7, 2, 4)
    # the text file in b's folder yields no face: y's FTA is 1 of 4; the counts say which
    assert y["fta"] == pytest.approx(1 / 4)
    acquired, x_acquired = report["dataset"]["acquired_images"], round((1 - x["fta"]) * 7)
    assert acquired == x_acquired + 3
    assert report["overall"]["fta"] == pytest.approx(1 - acquired / 11)
    # y: b has 1 photo with a face, d 2: genuine pairs 0 + 1, impostor pairs 1 x 2
    assert (y["genuine_pairs"], y["impostor_pairs"]) == (1, 2)
    check_rates_from_counts(report)
    data = report["attributes"]["group"]
    assert data["summary_groups"] == ["x", "y"]
    assert data["summary"] is not None
    cross = data["cross_group_fmr"]
    assert cross["groups"] == ["x", "y"]
    assert cross["impostor_pairs"][0][1] == cross["impostor_pairs"][1][0] == x_acquired * 3
    # a group of one person has no impostor pair: its FMR is undefined, and it is not compared
    camera = report["attributes"]["camera"]
    phone = camera["groups"]["phone"]
    assert (phone["subjects"], phone["impostor_pairs"], phone["fmr"]["trials"]) == (1, 0, 0)
    assert phone["fmr"]["value"] is None  # undefined: null in strict JSON
    assert camera["summary_groups"] == ["studio"]
    assert camera["summary"] is None
    assert camera["differences"] == []


def test_the_audit_was_recorded_and_logged(sample_audit: dict[str, Any]) -> None:
    report = sample_audit["report"]
    ((audit_id, status, model, threshold, figures),) = sample_audit["stored"]
    assert audit_id == report["audit_id"]
    assert (status, model, threshold) == ("done", "dlib-resnet-v1", report["threshold"]["value"])
    summary = report["attributes"]["group"]["summary"]
    assert figures == {
        "group": {
            "fmr_ratio": summary["fmr_ratio"],
            "fnmr_ratio": summary["fnmr_ratio"],
            "groups": ["x", "y"],
        },
        # one camera group has no impostor pair: one group left to compare, so no figures
        "camera": {"fmr_ratio": None, "fnmr_ratio": None, "groups": ["studio"]},
    }
    assert sample_audit["logged"] == [("started", audit_id), ("done", audit_id)]


def test_the_html_is_self_contained_with_embedded_plots(sample_audit: dict[str, Any]) -> None:
    page = sample_audit["html"]
    assert (sample_audit["out"] / "report.html").is_file()
    assert sample_audit["printed"]["html"].endswith("report.html")
    references = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page, flags=re.I)
    assert references, "the page shows its plots"
    assert all(r.startswith("data:image/png;base64,") for r in references), [
        r[:60] for r in references
    ]
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page, flags=re.I)
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert page.count('<img alt="') == 8  # rates, DET, heat map and scores per attribute
    for reference in references:
        png = base64.b64decode(reference.removeprefix("data:image/png;base64,"), validate=True)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_the_html_shows_the_numbers_of_the_json(sample_audit: dict[str, Any]) -> None:
    report, page = sample_audit["report"], html.unescape(sample_audit["html"])
    flat = re.sub(r"\s+", " ", page)
    assert f"Threshold <strong>{number_text(report['threshold']['value'], 4)}</strong>" in flat
    overall = report["overall"]
    assert (
        f"<td>{overall['genuine_pairs']}</td><td>{overall['impostor_pairs']}</td>"
        f"<td>{rate_text(overall['fmr'])}</td> <td>{rate_text(overall['fnmr'])}</td>"
        f"<td>{rate_text(overall['eer'])}</td><td>{rate_text(overall['fta'])}</td>"
    ) in flat
    for attribute, data in report["attributes"].items():
        assert f"<h2>By {attribute}</h2>" in flat
        for group, c in data["groups"].items():
            row = (
                f"<tr><td>{group}</td><td>{c['subjects']}</td><td>{c['images']}</td>"
                f"<td>{rate_text(c['fta'])}</td> <td>{c['genuine_pairs']}</td>"
                f"<td>{c['impostor_pairs']}</td> "
                f"<td>{rate_text(c['fmr']['value'])} ({rate_text(c['fmr']['ci95'][0])}{DASH}"
                f"{rate_text(c['fmr']['ci95'][1])})"
            )
            assert row in flat, row
            fnmr = (
                f"<td>{rate_text(c['fnmr']['value'])} ({rate_text(c['fnmr']['ci95'][0])}{DASH}"
                f"{rate_text(c['fnmr']['ci95'][1])})"
            )
            assert fnmr in flat
            for rate in ("fmr", "fnmr"):
                bound = c[rate]["upper_bound_if_zero"]
                if bound:
                    assert f"0 of {c[rate]['trials']}: at most {rate_text(bound)}" in flat
            assert ", ".join(c["flags"]) in flat
    data = report["attributes"]["group"]
    summary = data["summary"]
    assert f"FMR ratio {number_text(summary['fmr_ratio'])}" in flat
    assert f"FNMR ratio {number_text(summary['fnmr_ratio'])}" in flat
    assert f"FDR {number_text(summary['fdr'], 4)}" in flat
    assert f"inequity rate {number_text(summary['inequity_rate'])}" in flat
    assert f"GARBE {number_text(summary['garbe'])}" in flat
    assert f"{report['bootstrap']['replicates']} bootstrap replicates resampling subjects" in flat


def test_the_report_json_is_strict_json(sample_audit: dict[str, Any]) -> None:
    def refuse(token: str) -> None:
        raise ValueError(f"{token} is not JSON")

    json.loads(sample_audit["text"], parse_constant=refuse)


def test_an_audit_at_the_deployed_threshold(
    sample_audit: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACEACCORD_HOME", str(tmp_path / "home"))
    people = Path(sample_audit["report"]["dataset"]["path"])
    labels = people.parent / "labels.csv"
    printed = audit_cli(
        "--dataset", people, "--labels", labels, "--out", tmp_path / "out",
        "--deployed-threshold", "--bootstrap", "50", "--workers", "2",
    )  # fmt: skip
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert printed["audit_id"] is None  # not recorded without --record
    assert report["threshold"]["value"] == 0.5251  # the dlib card's default operating point
    assert report["threshold"]["target_fmr"] is None
    assert "deployed operating point 'default' of dlib-resnet-v1" in report["threshold"]["method"]
    check_rates_from_counts(report)


# faces-demographic: 102 people x 2 photos with self-reported labels


@pytest.fixture(scope="module")
def demographic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not (DEMOGRAPHIC / "identities.csv").is_file():
        pytest.skip(f"{DEMOGRAPHIC} (with identities.csv) is not beside this checkout")
    root = tmp_path_factory.mktemp("demographic")
    out = root / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACEACCORD_HOME", str(root / "home"))
        printed = audit_cli(
            "--dataset", DEMOGRAPHIC, "--labels", DEMOGRAPHIC / "identities.csv",
            "--target-fmr", "1e-3", "--out", out, "--bootstrap", "200",
        )  # fmt: skip
    return {
        "printed": printed,
        "report": json.loads((out / "report.json").read_text(encoding="utf-8")),
        "root": root,
    }


def test_demographic_groups_and_their_sizes(demographic: dict[str, Any]) -> None:
    report = demographic["report"]
    assert report["dataset"]["images"] == 204
    assert report["dataset"]["subjects"] == 102
    assert report["dataset"]["label_method"] == "self-reported"
    assert "CC BY 4.0" in report["dataset"]["provenance"]
    # age_self_reported has more levels than a categorical attribute may have: left out
    assert report["dataset"]["attributes"] == [
        "gender_self_reported", "ethnicity_self_reported", "age_band",
    ]  # fmt: skip
    ethnicity = report["attributes"]["ethnicity_self_reported"]["groups"]
    subjects = {g: c["subjects"] for g, c in ethnicity.items()}
    assert {g: subjects[g] for g in ("black", "east_asian", "west_asian", "white")} == {
        "black": 13, "east_asian": 9, "west_asian": 10, "white": 69,
    }  # fmt: skip
    assert set(subjects) == {"black", "east_asian", "east_asian/white", "west_asian", "white"}
    assert subjects["east_asian/white"] == 1
    assert sum(subjects.values()) == 102
    gender = report["attributes"]["gender_self_reported"]["groups"]
    assert {g: c["subjects"] for g, c in gender.items()} == {"female": 49, "male": 53}
    for name, data in report["attributes"].items():
        assert sum(c["subjects"] for c in data["groups"].values()) == 102, name
        assert sum(c["images"] for c in data["groups"].values()) == 204, name
        for group, cell in data["groups"].items():
            assert ("few_subjects" in " ".join(cell["flags"])) == (cell["subjects"] < 20), group


def test_demographic_rates_agree_with_the_reports_own_counts(demographic: dict[str, Any]) -> None:
    report = demographic["report"]
    check_rates_from_counts(report)
    ethnicity = report["attributes"]["ethnicity_self_reported"]
    # two photos per person, all with a face: 1 genuine pair per person, and same-group
    # impostor pairs C(2n, 2) - n
    for cell in ethnicity["groups"].values():
        n = cell["subjects"]
        if cell["fta"] == 0:
            assert cell["genuine_pairs"] == n
            assert cell["impostor_pairs"] == (2 * n) * (2 * n - 1) // 2 - n
    # the cross-group matrix's diagonal is the groups' own FMR
    cross = ethnicity["cross_group_fmr"]
    for i, group in enumerate(cross["groups"]):
        cell = ethnicity["groups"][group]
        assert cross["impostor_pairs"][i][i] == cell["impostor_pairs"]
        if cell["impostor_pairs"]:
            assert cross["fmr"][i][i] == pytest.approx(cell["fmr"]["value"], abs=1e-15)
    # the threshold meets the target FMR on all impostor pairs
    assert report["overall"]["fmr"] <= 1e-3
    assert report["overall"]["impostor_pairs"] == 204 * 203 // 2 - 102
    # "unknown" and groups with no impostor pair are not compared
    assert ethnicity["summary_groups"] == ["black", "east_asian", "west_asian", "white"]
    assert "unknown" not in report["attributes"]["age_band"]["summary_groups"]
    for test in ethnicity["differences"]:
        assert 0.0 <= test["p_value"] <= 1.0


def test_summarize_reproduces_the_reports_summary_measures(
    demographic: dict[str, Any], tmp_path: Path
) -> None:
    report = demographic["report"]
    for name, data in report["attributes"].items():
        rates = tmp_path / f"{name}.csv"
        with rates.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["group", "fmr", "fnmr"])
            for group in data["summary_groups"]:
                cell = data["groups"][group]
                writer.writerow([group, repr(cell["fmr"]["value"]), repr(cell["fnmr"]["value"])])
        result = runner.invoke(app, ["fairness", "summarize", "--rates", str(rates), "--json"])
        assert result.exit_code == 0, result.stderr
        printed = json.loads(result.stdout)
        assert set(printed) == {"fmr_ratio", "fnmr_ratio", "fdr", "inequity_rate", "garbe", "alpha"}
        for key, value in printed.items():
            expected = data["summary"][key]
            if expected is None:
                assert value is None, (name, key)
            else:
                assert value == pytest.approx(expected, rel=1e-12, abs=1e-15), (name, key)
        assert demographic["printed"]["summaries"][name] == data["summary"]
