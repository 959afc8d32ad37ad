"""The command line's JSON shapes and exit codes are part of its contract; these pin them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from faceaccord.cli.app import app
from faceaccord.samples import SamplePhotos

pytestmark = pytest.mark.real_model
runner = CliRunner()

QUALITY_KEYS = {
    "face_px",
    "interocular_px",
    "sharpness",
    "yaw_deg",
    "pitch_deg",
    "roll_deg",
    "brightness",
    "dark_fraction",
    "bright_fraction",
    "fraction_outside",
    "enrolment_refusals",
}


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_detect_json_lists_every_face_with_box_score_and_quality(samples: SamplePhotos) -> None:
    code, out, err = _run("detect", str(samples.person_a[0]), "--json")
    assert code == 0, err
    document = json.loads(out)
    assert set(document) == {"image", "faces"}
    (face,) = document["faces"]
    assert set(face) == {"box", "score", "landmarks", "quality"}
    left, top, right, bottom = face["box"]
    assert all(isinstance(v, int) for v in face["box"])
    assert left < right
    assert top < bottom
    assert isinstance(face["score"], float)
    assert set(face["quality"]) == QUALITY_KEYS
    assert len(face["landmarks"]) == 5
    assert document["image"] == {
        "width": 910,
        "height": 1137,
        "format": "jpeg",
        "mode": "RGB",
        "exif_orientation": 1,
    }


def test_verify_json_of_a_genuine_pair(samples: SamplePhotos) -> None:
    code, out, _ = _run("verify", str(samples.person_a[0]), str(samples.person_a[1]), "--json")
    assert code == 0
    document = json.loads(out)
    assert {"match", "distance", "similarity", "threshold"} <= set(document)
    assert document["match"] is True
    assert document["distance"] <= document["threshold"]
    assert isinstance(document["distance"], float)
    assert isinstance(document["similarity"], float)
    assert document["operating_point"]["name"] == "default"
    assert document["model"] == "dlib-resnet-v1"


def test_verify_exits_zero_when_the_faces_do_not_match(samples: SamplePhotos) -> None:
    code, out, _ = _run("verify", str(samples.person_a[0]), str(samples.person_b), "--json")
    assert code == 0
    assert json.loads(out)["match"] is False


def test_verify_can_use_another_operating_point(samples: SamplePhotos) -> None:
    args = ("verify", str(samples.person_a[0]), str(samples.person_b), "--json")
    code, out, _ = _run(*args, "--operating-point", "dlib_0.6")
    assert code == 0
    assert json.loads(out)["threshold"] == 0.6


def test_verify_of_a_non_image_fails_with_the_error_on_stderr(
    samples: SamplePhotos, tmp_path: Path
) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("these are not pixels", encoding="utf-8")
    code, out, err = _run("verify", str(samples.person_a[0]), str(text), "--json")
    assert code == 3
    assert out == ""
    assert json.loads(err)["error"]["code"] == "not_an_image"


def test_verify_of_an_image_without_a_face_says_which(
    samples: SamplePhotos, tmp_path: Path
) -> None:
    blank = tmp_path / "blank.png"
    Image.new("RGB", (400, 300), (120, 130, 140)).save(blank)
    code, out, err = _run("verify", str(samples.person_a[0]), str(blank), "--json")
    assert code == 3
    assert out == ""
    error = json.loads(err)["error"]
    assert error == {"code": "no_face", "message": "no face was found in the second image"}


def test_human_readable_errors_are_one_line_without_a_traceback(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    code, out, err = _run("detect", str(empty))
    assert code == 3
    assert "empty_image" in err
    assert "Traceback" not in err + out


def test_an_unknown_operating_point_is_a_configuration_error(samples: SamplePhotos) -> None:
    args = ("verify", str(samples.person_a[0]), str(samples.person_b), "--json")
    code, _, err = _run(*args, "--operating-point", "lenient")
    assert code == 5
    assert "default" in json.loads(err)["error"]["message"]


def test_embed_writes_one_json_line_per_file_and_survives_bad_files(
    samples: SamplePhotos, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    (folder / "person_a").mkdir(parents=True)
    shutil.copy(samples.person_a[0], folder / "person_a" / "one.jpg")
    shutil.copy(samples.person_b, folder / "b.jpg")
    (folder / "readme.txt").write_text("not an image", encoding="utf-8")
    Image.new("RGB", (64, 64), "grey").save(folder / "blank.png")
    out = tmp_path / "faces.jsonl"

    code, stdout, err = _run("embed", str(folder), "--out", str(out), "--json", "--workers", "2")

    assert code == 0, err
    assert json.loads(stdout) == {
        "files": 4,
        "images_with_faces": 2,
        "faces": 2,
        "errors": 1,
        "out": str(out),
    }
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["path"] for line in lines] == [
        "b.jpg",
        "blank.png",
        "person_a/one.jpg",
        "readme.txt",
    ]
    assert lines[1] == {"path": "blank.png", "faces": []}
    assert set(lines[3]) == {"path", "error"}
    assert "not a recognised image" in lines[3]["error"]
    for line in (lines[0], lines[2]):
        (face,) = line["faces"]
        assert set(face) == {"box", "score", "embedding"}
        assert len(face["embedding"]) == 128
        assert all(isinstance(v, float) for v in face["embedding"])
    assert not out.with_name("faces.jsonl.partial").exists()


def test_demo_enrols_verifies_identifies_erases_and_shows_a_policy_denial() -> None:
    code, out, err = _run("demo", "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["all_correct"] is True
    assert [v["match"] for v in document["verifications"]] == [True, True, False]
    assert document["quality_gate"]["reasons"] == ["face_cut_off"]
    police, ngo = document["policy"]["police"], document["policy"]["ngo"]
    assert police["decision"] == "deny"
    assert [r["rule"] for r in police["reasons"]] == ["MS-US-POLICE", "AMZ-MORATORIUM"]
    assert ngo["outcome"] == "allow_with_obligations"
    assert ngo["verification"]["operating_point"]["name"] == "strict"
    assert ngo["verification"]["match"] is True
    gallery = document["gallery"]
    assert gallery["identified"] == "person-a"
    assert gallery["after_erasure"] == "no_match"
    assert gallery["erasure_receipt"]["counts"]["keys_destroyed"] == 1
    assert gallery["audit"] == {"ok": True, "entries": 6, "first_bad": None, "reason": None}


def test_the_installed_console_script_runs() -> None:
    script = Path(sys.executable).with_name("faceaccord")
    completed = subprocess.run(
        [str(script), "model", "--json"], capture_output=True, text=True, check=False, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    card = json.loads(completed.stdout)
    assert card["id"] == "dlib-resnet-v1"
    assert [p["name"] for p in card["operating_points"]] == ["default", "strict", "dlib_0.6"]


def test_embed_into_a_missing_folder_is_refused_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "no" / "such" / "faces.jsonl"
    code, _, err = _run("embed", str(tmp_path), "--out", str(out), "--json")
    assert code == 3
    assert "does not exist" in json.loads(err)["error"]["message"]
