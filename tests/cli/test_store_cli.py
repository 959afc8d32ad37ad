"""The JSON shapes and exit codes of the store commands (galleries, enrolment, identification,
erasure, consent, retention, receipts, the audit log and the accountability report) are part of
the command line's contract; these pin them. Each test runs in its own FACEACCORD_HOME, with the
real face engine on the sample photos."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from faceaccord.cli.app import app
from faceaccord.samples import SamplePhotos

pytestmark = pytest.mark.real_model
runner = CliRunner()

ACCESS = ("--purpose", "access_control")
DECISION_KEYS = {"decision", "outcome", "obligations", "reasons", "packs"}
COUNT_KEYS = {"subjects", "templates", "consents", "keys_destroyed", "index_entries"}
RECEIPT_KEYS = {
    "receipt",
    "organisation",
    "scope",
    "reason",
    "galleries",
    "subject_reference_sha256",
    "counts",
    "erased_at",
    "key_id",
    "signature",
    "public_key_pem",
}
RETENTION_KEYS = {"checked", "erased", "receipts", "orphan_keys_removed", "keys_missing", "dry_run"}


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def error(self) -> dict[str, Any]:
        error: dict[str, Any] = json.loads(self.err)["error"]
        return error


def faceaccord(*args: str | Path) -> Run:
    result = runner.invoke(app, [str(a) for a in args])
    return Run(result.exit_code, result.stdout, result.stderr)


def ok(*args: str | Path) -> Any:
    """Run a command that must succeed; its JSON output."""
    run = faceaccord(*args, "--json")
    assert run.code == 0, run.err
    return run.json()


def sql(home: Path, statement: str, database: str = "faceaccord.db") -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(home / database)) as db, db:
        return db.execute(statement).fetchall()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("FACEACCORD_HOME", str(home))
    return home


@pytest.fixture
def staff(home: Path) -> dict[str, Any]:
    """An access-control gallery called "staff"."""
    gallery: dict[str, Any] = ok("gallery", "create", "staff", *ACCESS)
    return gallery


@pytest.fixture
def alice(staff: dict[str, Any], samples: SamplePhotos) -> dict[str, Any]:
    """Person A enrolled in "staff" as "alice" from two photos."""
    enrolment: dict[str, Any] = ok(
        "enroll", "--gallery", "staff", "--subject", "alice", *ACCESS, *samples.person_a[:2]
    )
    return enrolment


# Galleries


def test_gallery_create_prints_the_new_gallery(home: Path) -> None:
    gallery = ok("gallery", "create", "staff", *ACCESS)
    assert set(gallery) == {"id", "name", "purpose", "created_at", "subjects", "withdrawn_at"}
    assert gallery["name"] == "staff"
    assert gallery["purpose"] == "access_control"
    assert gallery["subjects"] == 0
    assert gallery["withdrawn_at"] is None


def test_gallery_list_shows_each_gallery_with_its_subject_count(
    staff: dict[str, Any], alice: dict[str, Any]
) -> None:
    listed = ok("gallery", "list")
    assert listed == {"galleries": [{**staff, "subjects": 1}]}


def test_gallery_list_of_a_new_home_is_empty(home: Path) -> None:
    assert ok("gallery", "list") == {"galleries": []}


# Enrolment


def test_enroll_reports_the_subject_its_templates_and_the_decision(
    staff: dict[str, Any], samples: SamplePhotos
) -> None:
    enrolment = ok(
        "enroll", "--gallery", "staff", "--subject", "alice", *ACCESS, *samples.person_a[:2]
    )
    assert set(enrolment) == {
        "subject",
        "subject_id",
        "gallery",
        "templates",
        "new_subject",
        "decision",
    }
    assert enrolment["subject"] == "alice"
    assert enrolment["gallery"] == "staff"
    assert enrolment["templates"] == 2
    assert enrolment["new_subject"] is True
    decision = enrolment["decision"]
    assert set(decision) == DECISION_KEYS
    assert decision["decision"] == "allow"
    assert "core" in decision["packs"]
    assert [r["rule"] for r in decision["reasons"]] == ["CORE-BASE"]


def test_enrolling_a_known_subject_again_adds_templates_to_the_same_subject(
    alice: dict[str, Any], samples: SamplePhotos
) -> None:
    again = ok("enroll", "--gallery", "staff", "--subject", "alice", *ACCESS, samples.person_a[2])
    assert again["subject_id"] == alice["subject_id"]
    assert again["new_subject"] is False
    assert again["templates"] == 1


def test_enroll_of_a_non_image_is_unusable_input(staff: dict[str, Any], tmp_path: Path) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_text("these are not pixels", encoding="utf-8")
    run = faceaccord("enroll", "--gallery", "staff", "--subject", "x", *ACCESS, notes, "--json")
    assert run.code == 3
    assert run.out == ""
    assert run.error()["code"] == "not_an_image"


def test_enroll_of_a_photo_without_a_face_is_unusable_input(
    staff: dict[str, Any], tmp_path: Path
) -> None:
    blank = tmp_path / "blank.png"
    Image.new("RGB", (400, 300), (120, 130, 140)).save(blank)
    run = faceaccord("enroll", "--gallery", "staff", "--subject", "x", *ACCESS, blank, "--json")
    assert run.code == 3
    assert run.error()["code"] == "no_face"


@pytest.mark.parametrize("which", [0, 1])
def test_enroll_of_a_cut_off_face_is_refused_by_the_quality_gate_with_its_reasons(
    staff: dict[str, Any], samples: SamplePhotos, which: int
) -> None:
    photo = samples.partial_faces[which]
    run = faceaccord("enroll", "--gallery", "staff", "--subject", "x", *ACCESS, photo, "--json")
    assert run.code == 4
    assert run.out == ""
    error = run.error()
    assert error["code"] == "quality_rejected"
    assert "face_cut_off" in error["message"]
    assert ok("gallery", "list")["galleries"][0]["subjects"] == 0


def test_a_quality_gate_refusal_lists_its_reasons_as_data(
    staff: dict[str, Any], samples: SamplePhotos
) -> None:
    photo = samples.partial_faces[0]
    run = faceaccord("enroll", "--gallery", "staff", "--subject", "x", *ACCESS, photo, "--json")
    assert run.error().get("reasons") == ["face_cut_off"]


def test_enroll_into_an_unknown_gallery_says_gallery_not_found(
    home: Path, samples: SamplePhotos
) -> None:
    photo = samples.person_a[0]
    run = faceaccord("enroll", "--gallery", "nope", "--subject", "x", *ACCESS, photo, "--json")
    assert run.code == 3
    assert run.error() == {"code": "gallery_not_found", "message": "gallery 'nope' does not exist"}


def test_enroll_without_a_purpose_is_a_usage_error(
    staff: dict[str, Any], samples: SamplePhotos
) -> None:
    run = faceaccord("enroll", "--gallery", "staff", "--subject", "x", samples.person_a[0])
    assert run.code == 2
    assert "--purpose" in run.err


def test_enroll_for_another_purpose_than_the_gallery_s_is_unusable_input(
    staff: dict[str, Any], samples: SamplePhotos
) -> None:
    run = faceaccord(
        "enroll", "--gallery", "staff", "--subject", "x", "--purpose", "identity_verification",
        samples.person_a[0], "--json",
    )  # fmt: skip
    assert run.code == 3
    assert "access_control" in run.error()["message"]


class TestInIllinois:
    """BIPA applies: enrolment needs a published retention schedule and a written release."""

    @pytest.fixture(autouse=True)
    def illinois(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("FACEACCORD_ORGANISATION__JURISDICTION", "US-IL")
        monkeypatch.setenv(
            "FACEACCORD_ORGANISATION__RETENTION_POLICY", "https://example.org/retention"
        )

    def test_enrolling_without_consent_is_denied_with_the_decision_and_its_rules(
        self, staff: dict[str, Any], samples: SamplePhotos
    ) -> None:
        run = faceaccord(
            "enroll", "--gallery", "staff", "--subject", "alice", *ACCESS, samples.person_a[0],
            "--json",
        )  # fmt: skip
        assert run.code == 6
        assert run.out == ""
        error = run.error()
        assert set(error) == {"code", "message", "decision"}
        assert error["code"] == "policy_denied"
        assert "BIPA-15b" in error["message"]
        assert set(error["decision"]) == DECISION_KEYS
        assert error["decision"]["decision"] == "deny"
        assert [r["rule"] for r in error["decision"]["reasons"]] == ["BIPA-15b"]
        assert "bipa" in error["decision"]["packs"]
        assert ok("gallery", "list")["galleries"][0]["subjects"] == 0

    def test_enrolling_with_a_written_release_succeeds_under_obligations(
        self, staff: dict[str, Any], samples: SamplePhotos
    ) -> None:
        enrolment = ok(
            "enroll", "--gallery", "staff", "--subject", "alice", *ACCESS, samples.person_a[0],
            "--consent", "written:release-1",
        )  # fmt: skip
        decision = enrolment["decision"]
        assert decision["decision"] == "allow"
        assert decision["outcome"] == "allow_with_obligations"
        assert {"type": "consent_on_file", "kind": "written"} in decision["obligations"]
        assert {"type": "retention_limit", "days": 1095, "after": "last_interaction"} in decision[
            "obligations"
        ]
        assert (enrolment["templates"], enrolment["new_subject"]) == (1, True)

    def test_without_a_published_retention_schedule_even_consent_is_not_enough(
        self, staff: dict[str, Any], samples: SamplePhotos, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("FACEACCORD_ORGANISATION__RETENTION_POLICY")
        run = faceaccord(
            "enroll", "--gallery", "staff", "--subject", "alice", *ACCESS, samples.person_a[0],
            "--consent", "written:release-1", "--json",
        )  # fmt: skip
        assert run.code == 6
        assert [r["rule"] for r in run.error()["decision"]["reasons"]] == ["BIPA-15a"]


# Identification


def test_identify_finds_the_enrolled_person_first_from_another_photo(
    alice: dict[str, Any], samples: SamplePhotos
) -> None:
    found = ok("identify", "--gallery", "staff", *ACCESS, samples.person_a[2])
    assert {"identification_id", "candidates", "status", "decision"} <= set(found)
    assert found["status"] == "candidates"
    assert found["decision"] == "allow"
    assert found["required_reviewers"] == 0
    best = found["candidates"][0]
    assert set(best) == {
        "candidate_id", "subject", "subject_id", "similarity", "distance", "status",
        "not_this_person",
    }  # fmt: skip
    assert best["not_this_person"] == 0
    assert (best["subject"], best["subject_id"]) == ("alice", alice["subject_id"])
    assert best["distance"] <= found["threshold"]
    assert isinstance(best["similarity"], float)


def test_identify_of_a_stranger_is_an_empty_list_with_status_no_match(
    alice: dict[str, Any], samples: SamplePhotos
) -> None:
    run = faceaccord("identify", "--gallery", "staff", *ACCESS, samples.person_b, "--json")
    assert run.code == 0, run.err
    found = run.json()
    assert found["candidates"] == []
    assert found["status"] == "no_match"


def test_identify_in_an_unknown_gallery_says_gallery_not_found(
    home: Path, samples: SamplePhotos
) -> None:
    run = faceaccord("identify", "--gallery", "nope", *ACCESS, samples.person_a[0], "--json")
    assert run.code == 3
    assert run.error()["code"] == "gallery_not_found"


# Erasure and receipts


def test_erase_prints_a_signed_receipt_of_what_was_erased(alice: dict[str, Any]) -> None:
    receipt = ok("erase", "--subject", "alice")
    assert set(receipt) == RECEIPT_KEYS
    assert receipt["organisation"] == "local"
    assert (receipt["scope"], receipt["reason"]) == ("subject", "erasure_request")
    assert receipt["galleries"] == ["staff"]
    assert len(receipt["subject_reference_sha256"]) == 64
    assert "alice" not in json.dumps(receipt)
    assert set(receipt["counts"]) == COUNT_KEYS
    counts = receipt["counts"]
    assert (counts["subjects"], counts["templates"], counts["consents"]) == (1, 2, 0)
    assert counts["keys_destroyed"] == 1
    assert receipt["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")


def test_an_erased_person_is_no_longer_found(alice: dict[str, Any], samples: SamplePhotos) -> None:
    ok("erase", "--subject", "alice")
    found = ok("identify", "--gallery", "staff", *ACCESS, samples.person_a[2])
    assert (found["candidates"], found["status"]) == ([], "no_match")
    assert ok("gallery", "list")["galleries"][0]["subjects"] == 0


def test_erasing_an_unknown_subject_says_subject_not_found(staff: dict[str, Any]) -> None:
    run = faceaccord("erase", "--subject", "nobody", "--json")
    assert run.code == 3
    assert run.error()["code"] == "subject_not_found"


def test_receipt_verify_accepts_the_receipt_as_printed(
    alice: dict[str, Any], tmp_path: Path
) -> None:
    receipt = ok("erase", "--subject", "alice")
    file = tmp_path / "receipt.json"
    file.write_text(json.dumps(receipt), encoding="utf-8")
    assert ok("receipt", "verify", file) == {"valid": True, "key_id": receipt["key_id"]}


def test_receipt_verify_rejects_a_tampered_receipt_with_exit_1(
    alice: dict[str, Any], tmp_path: Path
) -> None:
    receipt = ok("erase", "--subject", "alice")
    receipt["counts"]["templates"] = 0
    file = tmp_path / "receipt.json"
    file.write_text(json.dumps(receipt), encoding="utf-8")
    run = faceaccord("receipt", "verify", file, "--json")
    assert run.code == 1
    assert run.json() == {"valid": False, "key_id": receipt["key_id"]}


def test_receipt_verify_of_a_file_that_is_not_json_is_unusable_input(tmp_path: Path) -> None:
    file = tmp_path / "receipt.json"
    file.write_text("not json", encoding="utf-8")
    run = faceaccord("receipt", "verify", file, "--json")
    assert run.code == 3
    assert run.error()["code"] == "invalid_input"


def test_consent_revoke_records_the_revocation_and_erases_the_subject(
    staff: dict[str, Any], samples: SamplePhotos
) -> None:
    ok(
        "enroll", "--gallery", "staff", "--subject", "alice", *ACCESS, samples.person_a[0],
        "--consent", "written:release-1",
    )  # fmt: skip
    receipt = ok("consent", "revoke", "--subject", "alice")
    assert set(receipt) == RECEIPT_KEYS
    assert (receipt["scope"], receipt["reason"]) == ("subject", "consent_revoked")
    counts = receipt["counts"]
    assert (counts["subjects"], counts["templates"], counts["consents"]) == (1, 1, 1)
    assert counts["keys_destroyed"] == 1


# Retention


def test_retention_run_finds_nothing_due_right_after_enrolment(alice: dict[str, Any]) -> None:
    dry = ok("retention", "run", "--dry-run")
    assert dry == {
        "checked": 1,
        "erased": [],
        "receipts": [],
        "orphan_keys_removed": 0,
        "keys_missing": [],
        "dry_run": True,
    }
    assert ok("retention", "run") == {**dry, "dry_run": False}


def test_retention_run_completes_an_erasure_interrupted_after_the_key_was_destroyed(
    home: Path, alice: dict[str, Any]
) -> None:
    # The crash: the subject was marked for erasure and its key destroyed, but its rows remain.
    sql(home, "UPDATE subjects SET erasing_at = '2026-01-01 00:00:00.000000'")
    sql(home, "DELETE FROM subject_keys", database="keyvault.db")

    dry = ok("retention", "run", "--dry-run")
    assert set(dry) == RETENTION_KEYS
    assert dry["dry_run"] is True
    (due,) = dry["erased"]
    assert due == {
        "subject_id": alice["subject_id"],
        "gallery": "staff",
        "reason": "erasure_completed",
        "due_at": "",
    }
    assert dry["receipts"] == []
    assert ok("gallery", "list")["galleries"][0]["subjects"] == 1  # a dry run changes nothing

    done = ok("retention", "run")
    assert done["dry_run"] is False
    assert done["erased"] == dry["erased"]
    (receipt,) = done["receipts"]
    assert set(receipt) == RECEIPT_KEYS
    assert receipt["reason"] == "erasure_completed"
    assert receipt["counts"]["templates"] == 2
    assert receipt["counts"]["keys_destroyed"] == 0
    assert ok("gallery", "list")["galleries"][0]["subjects"] == 0


def test_retention_run_reports_keys_missing_without_an_erasure_and_erases_nothing(
    home: Path, alice: dict[str, Any]
) -> None:
    sql(home, "DELETE FROM subject_keys", database="keyvault.db")  # lost, not erased

    done = ok("retention", "run")
    assert done["erased"] == []
    assert done["keys_missing"] == [alice["subject_id"]]
    assert ok("gallery", "list")["galleries"][0]["subjects"] == 1


# Takedown


def test_gallery_withdraw_without_yes_is_refused_and_changes_nothing(
    alice: dict[str, Any],
) -> None:
    run = faceaccord("gallery", "withdraw", "staff", "--json")
    assert run.code == 3
    assert "--yes" in run.error()["message"]
    assert ok("gallery", "list")["galleries"][0]["subjects"] == 1


def test_gallery_withdraw_erases_everyone_and_takes_the_gallery_down(
    alice: dict[str, Any], samples: SamplePhotos
) -> None:
    receipt = ok("gallery", "withdraw", "staff", "--yes")
    assert set(receipt) == RECEIPT_KEYS
    assert (receipt["scope"], receipt["reason"]) == ("gallery", "takedown")
    assert receipt["subject_reference_sha256"] is None
    assert receipt["counts"]["subjects"] == 1
    assert receipt["counts"]["templates"] == 2

    assert ok("gallery", "list") == {"galleries": []}
    (withdrawn,) = ok("gallery", "list", "--withdrawn")["galleries"]
    assert withdrawn["withdrawn_at"] is not None
    run = faceaccord("enroll", "--gallery", "staff", "--subject", "bob", *ACCESS,
                     samples.person_b, "--json")  # fmt: skip
    assert run.code == 3
    assert run.error() == {"code": "gallery_not_found", "message": "gallery 'staff' was withdrawn"}


# The audit log and the report


def test_audit_verify_of_an_untouched_log_is_ok(alice: dict[str, Any]) -> None:
    assert ok("audit", "verify") == {"ok": True, "entries": 2, "first_bad": None, "reason": None}


def test_audit_verify_finds_an_edited_entry_and_exits_1(home: Path, alice: dict[str, Any]) -> None:
    sql(home, "UPDATE audit_entries SET actor = 'mallory' WHERE seq = 2")
    run = faceaccord("audit", "verify", "--json")
    assert run.code == 1
    result = run.json()
    assert set(result) == {"ok", "entries", "first_bad", "reason"}
    assert result["ok"] is False
    assert result["first_bad"] == 2
    assert result["reason"]


def test_audit_export_writes_every_entry_as_a_json_line(
    alice: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "audit.jsonl"
    assert ok("audit", "export", "--out", out) == {"entries": 2, "out": str(out)}
    entries = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(e["seq"], e["operation"]) for e in entries] == [(1, "gallery_create"), (2, "enroll")]
    assert entries[1]["prev_hash"] == entries[0]["hash"]
    assert entries[1]["subject_id"] == alice["subject_id"]
    assert "embedding" not in json.dumps(entries)


def test_audit_export_into_a_missing_folder_is_unusable_input(
    staff: dict[str, Any], tmp_path: Path
) -> None:
    run = faceaccord("audit", "export", "--out", tmp_path / "no" / "audit.jsonl", "--json")
    assert run.code == 3


def test_audit_checkpoint_signs_the_head_once(alice: dict[str, Any]) -> None:
    first = ok("audit", "checkpoint")
    assert set(first) == {"checkpoint"}
    assert set(first["checkpoint"]) == {"seq", "hash", "key_id"}
    assert first["checkpoint"]["seq"] == 2
    assert ok("audit", "checkpoint") == {"checkpoint": None}
    assert ok("audit", "verify")["ok"] is True


def test_audit_checkpoint_of_an_empty_log_signs_nothing(home: Path) -> None:
    assert ok("audit", "checkpoint") == {"checkpoint": None}


def test_accountability_report_is_a_self_contained_page_of_model_rules_and_use(
    alice: dict[str, Any], samples: SamplePhotos, tmp_path: Path
) -> None:
    ok("identify", "--gallery", "staff", *ACCESS, samples.person_b)
    out = tmp_path / "report.html"
    assert ok("report", "accountability", "--out", out) == {"out": str(out), "audit_entries": 3}
    page = out.read_text(encoding="utf-8")
    assert "dlib face recognition ResNet v1" in page
    assert "vendor-2020" in page  # the packs in force
    assert "CORE-BASE" in page
    assert "<th>operation</th><th>purpose</th><th>decision</th><th>count</th>" in page
    for operation in ("gallery_create", "enroll", "identify"):
        assert f"<tr><td>{operation}</td><td>access_control</td>" in page
    assert "<script" not in page.lower()
