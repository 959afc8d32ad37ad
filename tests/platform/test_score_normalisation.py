"""Label-free score normalisation in the deployment (FACEACCORD_FAIRNESS__SCORE_NORMALISER):
verification and identification decide on ``distance + (offset_a + offset_b) / 2`` under the
calibration in force, every comparison's audit entry names it, a calibration made for another
model is refused, the fairness gate can require one and reads which one an audit measured, and
the accountability report shows it. On the fake engine, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from test_platform import ACCESS, START, Clock, _enrol, _with_staff, photo, settings_for

from faceaccord.audit.reports import render_html
from faceaccord.biometrics.fakes import fake_card, fake_engine
from faceaccord.documents import verification_json
from faceaccord.errors import PolicyDeniedError
from faceaccord.fairness.mitigation import calibrate
from faceaccord.governance.vocabulary import Purpose
from faceaccord.matching.normalisation import (
    ClusterNormaliser,
    NormalisedIndex,
    NormaliserError,
    Provenance,
    load_normaliser,
    save_normaliser,
)
from faceaccord.platform.deployment import Platform
from faceaccord.platform.fairness import fairness_gate, record_audit, start_audit
from faceaccord.platform.identification import identify
from faceaccord.platform.verification import verify
from faceaccord.settings import FairnessSettings, Settings
from faceaccord.store.models import AuditEntryRow

CARD = fake_card()  # the fake engine's card: fake-v1, sha256 0 * 64, 128 dimensions, 0.5
THRESHOLD = CARD.operating_points[0].threshold
ID = re.compile(r"(fsn|cohort):[0-9a-f]{12}")


# --- helpers -------------------------------------------------------------------------------------


def embedding(seed: int) -> np.ndarray[Any, Any]:
    """The fake engine's template of ``photo(seed)``."""
    return fake_engine().largest_template(photo(seed), which="probe").embedding


def provenance(model_id: str = CARD.id, model_sha256: str = CARD.sha256) -> Provenance:
    return Provenance(
        model_id=model_id,
        model_sha256=model_sha256,
        data_sha256="ef" * 32,
        images=40,
        subjects=10,
        created_at=START.isoformat(),
        target_fmr=0.01,
        selection={"parameter": "k", "chosen": 1, "criterion": "given"},
    )


def hand_made(
    path: Path,
    offsets: tuple[float, ...],
    centroids: list[np.ndarray[Any, Any]] | None = None,
    **model: str,
) -> str:
    """A saved fsn calibration whose clusters sit at ``centroids`` (default: one, at the origin,
    so every template gets ``offsets[0]``); returns its id."""
    if centroids is None:
        centroids = [np.zeros(CARD.embedding_dim)]
    normaliser = ClusterNormaliser(
        centroids=np.asarray(centroids, dtype=np.float64),
        cluster_offsets=np.asarray(offsets, dtype=np.float64),
        provenance=provenance(**model),
    )
    return save_normaliser(normaliser, path)


def calibrated(path: Path, method: str = "fsn", parameter: int = 3) -> str:
    """A calibration of the fake model on synthetic embeddings (15 people, 6 images each)."""
    rng = np.random.default_rng(8)
    people, images = 15, 6
    centres = rng.normal(0, 1, (people, CARD.embedding_dim)).repeat(images, axis=0)
    x = centres + 0.6 * rng.normal(0, 1, centres.shape)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    normaliser = calibrate(
        method, x, np.arange(people).repeat(images), model_id=CARD.id,
        model_sha256=CARD.sha256, data_sha256="ab" * 32, now=START, parameter=parameter,
    )  # fmt: skip
    return save_normaliser(normaliser, path)


def loaded(path: Path) -> ClusterNormaliser | Any:
    return load_normaliser(
        path, model_id=CARD.id, model_sha256=CARD.sha256, dimension=CARD.embedding_dim
    )


def offset(path: Path, *seeds: int) -> np.ndarray[Any, Any]:
    """The offsets of the photos' templates under the calibration at ``path``."""
    return loaded(path).offsets(np.stack([embedding(s) for s in seeds]))


def with_fairness(home: Path, database_url: str, **fairness: Any) -> Settings:
    return settings_for(home, database_url).model_copy(
        update={"fairness": FairnessSettings(**fairness)}
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def fsn(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "calibration" / "fsn.json"
    return path, calibrated(path)


def opened(settings: Settings, clock: Clock) -> Platform:
    return Platform.open(settings, engine=fake_engine(), clock=clock)


def entries(platform: Platform, operation: str) -> list[AuditEntryRow]:
    with Session(platform.db) as session:
        return list(
            session.scalars(
                select(AuditEntryRow)
                .where(AuditEntryRow.operation == operation)
                .order_by(AuditEntryRow.seq)
            )
        )


def verify_photos(platform: Platform, probe: int, reference: int, **kw: Any) -> Any:
    return verify(
        platform, probe=photo(probe), reference=photo(reference), purpose=kw.pop("purpose", ACCESS),
        actor="door-3", **kw,
    )  # fmt: skip


def search(platform: Platform, seed: int) -> Any:
    return identify(platform, gallery="staff", image=photo(seed), purpose=ACCESS, actor="door-3")


# --- no calibration: as before ------------------------------------------------------------------


def test_without_a_calibration_distances_are_plain_and_entries_say_none(
    home: Path, database_url: str, clock: Clock
) -> None:
    with opened(settings_for(home, database_url), clock) as platform:
        assert platform.normaliser.id == "none"
        assert platform.normaliser_label == "none"
        same = verify_photos(platform, 1, 1)
        different = verify_photos(platform, 1, 2)
        assert (same.status, different.status) == ("match", "no_match")
        for outcome in (same, different):
            assert outcome.result.normalised_distance == outcome.result.distance
            assert outcome.result.score_normaliser == "none"
        assert verification_json(different.result)["score_normaliser"] == "none"
        assert verification_json(different.result)["normalised_distance"] == round(
            different.result.distance, 6
        )
        _with_staff(platform)
        _enrol(platform, "alice", 1)
        found = search(platform, 1)
        assert [c.subject for c in found.candidates] == ["alice"]
        assert found.candidates[0].distance == pytest.approx(0.0, abs=1e-5)
        assert found.score_normaliser == "none"
        assert found.as_dict()["score_normaliser"] == "none"
        assert not isinstance(platform.index_for(platform.gallery_id("staff")), NormalisedIndex)
        recorded = [e.details["score_normaliser"] for e in entries(platform, "verify")]
        assert recorded == ["none", "none"]
        assert [e.details["score_normaliser"] for e in entries(platform, "identify")] == ["none"]


# --- verification ---------------------------------------------------------------------------------


def test_a_verification_decides_on_the_distance_plus_the_templates_mean_offset(
    home: Path, database_url: str, clock: Clock, fsn: tuple[Path, str]
) -> None:
    path, normaliser_id = fsn
    assert ID.fullmatch(normaliser_id)
    assert normaliser_id.startswith("fsn:")
    settings = with_fairness(home, database_url, score_normaliser=path)
    with opened(settings, clock) as platform:
        assert platform.normaliser.id == normaliser_id
        assert platform.normaliser_label == normaliser_id
        for probe, reference in ((1, 2), (1, 1), (3, 4)):
            result = verify_photos(platform, probe, reference).result
            offsets = offset(path, probe, reference)
            assert result.normalised_distance == pytest.approx(
                result.distance + offsets.mean(), abs=1e-9
            )
            assert result.match is (result.normalised_distance <= THRESHOLD)
            assert result.score_normaliser == normaliser_id
            document = verification_json(result)
            assert document["score_normaliser"] == normaliser_id
            assert document["normalised_distance"] == round(result.normalised_distance, 6)
            assert document["distance"] == round(result.distance, 6)
        recorded = [e.details["score_normaliser"] for e in entries(platform, "verify")]
        assert recorded == [normaliser_id] * 3


def test_a_large_offset_turns_an_identical_pair_into_no_match(
    home: Path, database_url: str, clock: Clock, tmp_path: Path
) -> None:
    strict = tmp_path / "strict.json"
    normaliser_id = hand_made(strict, (0.8,))
    with opened(with_fairness(home, database_url, score_normaliser=strict), clock) as platform:
        outcome = verify_photos(platform, 1, 1)
    assert outcome.result.distance == pytest.approx(0.0, abs=1e-5)  # under the threshold, raw
    assert outcome.result.distance <= THRESHOLD
    assert outcome.result.normalised_distance == pytest.approx(0.8, abs=1e-5)  # over, normalised
    assert not outcome.result.match
    assert outcome.status == "no_match"
    assert outcome.result.score_normaliser == normaliser_id


def test_a_negative_offset_can_bring_a_pair_within_the_threshold(
    home: Path, database_url: str, clock: Clock, tmp_path: Path
) -> None:
    # Two clusters, centred on each photo's template: the pair's offset is their mean.
    lax = tmp_path / "lax.json"
    hand_made(lax, (-1.0, -0.8), [embedding(1), embedding(2)])
    with opened(with_fairness(home, database_url, score_normaliser=lax), clock) as platform:
        outcome = verify_photos(platform, 1, 2)
    assert outcome.result.distance > THRESHOLD
    assert outcome.result.normalised_distance == pytest.approx(
        outcome.result.distance - 0.9, abs=1e-9
    )
    assert outcome.result.match
    assert outcome.status == "match"


def test_a_verification_refused_before_the_model_is_loaded_names_the_configured_file(
    home: Path, database_url: str, clock: Clock, fsn: tuple[Path, str]
) -> None:
    path, _ = fsn
    settings = with_fairness(home, database_url, score_normaliser=path)
    with Platform.open(settings, clock=clock) as platform:
        platform.engine_factory = fake_engine  # never the real model
        with pytest.raises(PolicyDeniedError, match="CORE-PURPOSE"):
            verify_photos(platform, 1, 2, purpose=Purpose.MISSING_PERSONS)  # not approved
        assert not platform.engine_loaded
        (denial,) = entries(platform, "verify")
    assert denial.decision == "deny"
    assert denial.details["score_normaliser"] == "configured: fsn.json"


# --- identification -------------------------------------------------------------------------------


def test_identification_answers_in_normalised_distances_and_records_the_normaliser(
    home: Path, database_url: str, clock: Clock, tmp_path: Path
) -> None:
    # Two clusters centred on alice's and the probe's templates, with offsets that bring the
    # probe (a stranger, raw 1.33 away) within the threshold of alice, and not of bob.
    path = tmp_path / "two.json"
    centroids = [embedding(1), embedding(2)]
    normaliser_id = hand_made(path, (-1.0, -0.8), centroids)
    with opened(with_fairness(home, database_url, score_normaliser=path), clock) as platform:
        _with_staff(platform)
        _enrol(platform, "alice", 1)
        _enrol(platform, "bob", 3)
        found = search(platform, 2)
        assert isinstance(platform.index_for(platform.gallery_id("staff")), NormalisedIndex)
        (entry,) = entries(platform, "identify")
    raw = float(np.linalg.norm(embedding(2) - embedding(1)))
    assert raw > THRESHOLD
    assert [c.subject for c in found.candidates] == ["alice"]
    assert found.candidates[0].distance == pytest.approx(raw - 0.9, abs=1e-5)
    assert found.candidates[0].distance <= THRESHOLD
    assert found.score_normaliser == normaliser_id
    assert found.as_dict()["score_normaliser"] == normaliser_id
    assert entry.details["score_normaliser"] == normaliser_id
    assert entry.candidates == 1


def test_identification_distances_match_verification_under_a_calibration(
    home: Path, database_url: str, clock: Clock, fsn: tuple[Path, str]
) -> None:
    path, normaliser_id = fsn
    with opened(with_fairness(home, database_url, score_normaliser=path), clock) as platform:
        _with_staff(platform)
        search(platform, 1)  # the index is loaded: later enrolments are applied to it
        _enrol(platform, "alice", 1)
        found = search(platform, 1)
        verified = verify_photos(platform, 1, 1)
        (_, entry) = entries(platform, "identify")
    assert entry.details["score_normaliser"] == normaliser_id
    expected = float(offset(path, 1, 1).mean())  # the raw distance is 0
    assert expected != 0
    assert [c.subject for c in found.candidates] == ["alice"]
    assert found.candidates[0].distance == pytest.approx(expected, abs=1e-5)
    assert found.candidates[0].distance == pytest.approx(
        verified.result.normalised_distance, abs=1e-5
    )


def test_a_large_offset_leaves_an_identical_face_unfound(
    home: Path, database_url: str, clock: Clock, tmp_path: Path
) -> None:
    strict = tmp_path / "strict.json"
    hand_made(strict, (0.8,))
    with opened(with_fairness(home, database_url, score_normaliser=strict), clock) as platform:
        _with_staff(platform)
        _enrol(platform, "alice", 1)
        found = search(platform, 1)
    assert found.candidates == ()
    assert found.status == "no_match"


def test_a_denied_identification_records_the_normaliser_label(
    home: Path, database_url: str, clock: Clock, fsn: tuple[Path, str]
) -> None:
    path, normaliser_id = fsn
    settings = with_fairness(home, database_url, score_normaliser=path, gate=True)
    with opened(settings, clock) as platform:
        _with_staff(platform)
        _enrol(platform, "alice", 1)
        with pytest.raises(PolicyDeniedError):  # no audit on record
            search(platform, 1)
        (denial,) = entries(platform, "identify")
        label = platform.normaliser_label
    assert denial.decision == "deny"
    assert denial.details["outcome"] == "denied"
    assert denial.details["score_normaliser"] == label == normaliser_id


# --- a calibration of another model ---------------------------------------------------------------


def test_a_calibration_for_another_model_is_refused_at_first_use(
    home: Path, database_url: str, clock: Clock, tmp_path: Path
) -> None:
    other = tmp_path / "other.json"
    hand_made(other, (0.1,), model_id="dlib-resnet-v1", model_sha256="cd" * 32)
    with opened(with_fairness(home, database_url, score_normaliser=other), clock) as platform:
        _with_staff(platform)  # nothing compares faces yet: the deployment opens
        _enrol(platform, "alice", 1)
        names_both = r"calibrated for dlib-resnet-v1 \(cdcdcdcdcdcd\).*fake-v1 \(000000000000\)"
        with pytest.raises(NormaliserError, match=names_both):
            verify_photos(platform, 1, 1)
        with pytest.raises(NormaliserError, match=names_both):
            search(platform, 1)
        with pytest.raises(NormaliserError, match=names_both):
            _ = platform.normaliser


# --- the fairness gate ----------------------------------------------------------------------------


def report(normaliser_id: str | None) -> dict[str, Any]:
    """An audit within every bound, measured under ``normaliser_id`` (None: a report from
    before normalisers, without "scoring")."""
    document: dict[str, Any] = {
        "model": {"id": CARD.id, "sha256": CARD.sha256},
        "threshold": {"value": THRESHOLD},
        "attributes": {
            "sex": {
                "summary": {"fmr_ratio": 2.0, "fnmr_ratio": 1.5},
                "summary_groups": ["group 1", "group 2"],
            }
        },
    }
    if normaliser_id is not None:
        document["scoring"] = {
            "score_normaliser": {"id": normaliser_id, "method": normaliser_id.split(":")[0]},
            "cross_validated": False,
        }
    return document


def audited(platform: Platform, clock: Clock, document: dict[str, Any]) -> str:
    clock.advance(minutes=1)
    audit_id = start_audit(platform, dataset="synthetic", actor="auditor", organisation_id=None)
    clock.advance(minutes=1)
    record_audit(
        platform, audit_id=audit_id, report=document, actor="auditor", organisation_id=None
    )
    return audit_id


def refusal(platform: Platform) -> str:
    with pytest.raises(PolicyDeniedError) as denied:
        search(platform, 1)
    reasons = {r.rule: r.summary for r in denied.value.decision.reasons}
    assert "FAIRNESS-GATE" in reasons, reasons
    return reasons["FAIRNESS-GATE"]


@pytest.fixture
def gated_without_normaliser(home: Path, database_url: str, clock: Clock) -> Iterator[Platform]:
    settings = with_fairness(home, database_url, gate=True, require_mitigation="fsn")
    with opened(settings, clock) as platform:
        _with_staff(platform)
        _enrol(platform, "alice", 1)
        yield platform


def test_a_gate_requiring_fsn_refuses_identification_without_one(
    gated_without_normaliser: Platform, clock: Clock
) -> None:
    platform = gated_without_normaliser
    audited(platform, clock, report("none"))  # even an audit within bounds does not help
    summary = refusal(platform)
    assert "requires the score normalisation 'fsn'" in summary
    assert "runs with 'none'" in summary
    assert "FACEACCORD_FAIRNESS__SCORE_NORMALISER" in summary
    status = fairness_gate(platform)
    assert (status.required, status.passed, status.audit_id) == (True, False, None)
    (denial,) = entries(platform, "identify")
    assert "FAIRNESS-GATE" in denial.rule_ids
    assert denial.details["score_normaliser"] == "none"
    verified = verify_photos(platform, 1, 1)  # verification is not gated
    assert verified.status == "match"


def test_a_gate_requiring_fsn_refuses_a_cohort_normaliser(
    home: Path, database_url: str, clock: Clock, tmp_path: Path
) -> None:
    path = tmp_path / "cohort.json"
    cohort_id = calibrated(path, "cohort", parameter=3)
    assert cohort_id.startswith("cohort:")
    settings = with_fairness(
        home, database_url, gate=True, require_mitigation="fsn", score_normaliser=path
    )
    with opened(settings, clock) as platform:
        _with_staff(platform)
        _enrol(platform, "alice", 1)
        summary = refusal(platform)
    assert "'fsn'" in summary
    assert repr(cohort_id) in summary


def test_a_gate_requiring_any_accepts_a_cohort_normaliser_and_its_audit(
    home: Path, database_url: str, clock: Clock, tmp_path: Path
) -> None:
    path = tmp_path / "cohort.json"
    cohort_id = calibrated(path, "cohort", parameter=3)
    settings = with_fairness(
        home, database_url, gate=True, require_mitigation="any", score_normaliser=path
    )
    with opened(settings, clock) as platform:
        _with_staff(platform)
        _enrol(platform, "alice", 1)
        status = fairness_gate(platform)
        assert not status.passed
        assert "requires" not in status.message  # the mitigation is in force...
        assert status.message == "no fairness audit of fake-v1 is on record"  # ...an audit is not
        audit_id = audited(platform, clock, report(cohort_id))
        status = fairness_gate(platform)
        assert (status.passed, status.audit_id) == (True, audit_id)
        found = search(platform, 1)
        assert "FAIRNESS-GATE" not in found.decision.rule_ids()
        assert found.score_normaliser == cohort_id


def test_a_gate_requiring_any_refuses_plain_distances(
    home: Path, database_url: str, clock: Clock
) -> None:
    settings = with_fairness(home, database_url, gate=True, require_mitigation="any")
    with opened(settings, clock) as platform:
        _with_staff(platform)
        _enrol(platform, "alice", 1)
        summary = refusal(platform)
    assert "requires a score normalisation (fsn or cohort)" in summary
    assert "'none'" in summary


@pytest.mark.parametrize("measured", ["none", None, "fsn:0123456789ab"])
def test_an_audit_of_other_scores_than_those_in_force_is_refused(
    home: Path, database_url: str, clock: Clock, fsn: tuple[Path, str], measured: str | None
) -> None:
    path, normaliser_id = fsn
    settings = with_fairness(
        home, database_url, gate=True, require_mitigation="fsn", score_normaliser=path
    )
    with opened(settings, clock) as platform:
        _with_staff(platform)
        _enrol(platform, "alice", 1)
        audit_id = audited(platform, clock, report(measured))
        summary = refusal(platform)
        status = fairness_gate(platform)
    shown = measured or "none"  # a report from before normalisers measured plain distances
    assert f"({audit_id}) measured scores normalised by {shown!r}" in summary
    assert f"not {normaliser_id!r}, which is in force" in summary
    assert (status.passed, status.audit_id) == (False, audit_id)


def test_an_audit_of_the_normaliser_in_force_lets_identification_run(
    home: Path, database_url: str, clock: Clock, fsn: tuple[Path, str]
) -> None:
    path, normaliser_id = fsn
    settings = with_fairness(
        home, database_url, gate=True, require_mitigation="fsn", score_normaliser=path
    )
    with opened(settings, clock) as platform:
        _with_staff(platform)
        _enrol(platform, "alice", 1)
        audited(platform, clock, report("none"))
        assert not fairness_gate(platform).passed
        audit_id = audited(platform, clock, report(normaliser_id))  # the latest audit counts
        status = fairness_gate(platform)
        found = search(platform, 1)
        (entry,) = entries(platform, "identify")
    assert (status.passed, status.audit_id) == (True, audit_id)
    assert "FAIRNESS-GATE" not in found.decision.rule_ids()
    assert entry.decision != "deny"
    assert entry.details["score_normaliser"] == normaliser_id


def test_with_the_gate_off_a_required_mitigation_is_not_checked(
    home: Path, database_url: str, clock: Clock
) -> None:
    settings = with_fairness(home, database_url, gate=False, require_mitigation="fsn")
    with opened(settings, clock) as platform:
        _with_staff(platform)
        _enrol(platform, "alice", 1)
        found = search(platform, 1)
    assert [c.subject for c in found.candidates] == ["alice"]
    assert found.score_normaliser == "none"


# --- the accountability report --------------------------------------------------------------------


def test_the_accountability_report_shows_the_normaliser_and_counts_comparisons_by_it(
    home: Path, database_url: str, clock: Clock, tmp_path: Path
) -> None:
    with opened(settings_for(home, database_url), clock) as before:
        _with_staff(before)
        _enrol(before, "alice", 1)
        verify_photos(before, 1, 2)
        search(before, 1)
        plain = before.accountability_report()
    assert plain.score_normaliser == {"id": "none", "method": "none"}
    assert "Score normalisation: <strong>none</strong>" in render_html(plain)

    path = tmp_path / "fsn.json"
    normaliser_id = hand_made(path, (0.1,))
    with opened(with_fairness(home, database_url, score_normaliser=path), clock) as after:
        verify_photos(after, 1, 1)
        verify_photos(after, 1, 2)
        search(after, 1)
        search(after, 2)
        search(after, 3)
        described = after.normaliser.describe()
        report_now = after.accountability_report()
    assert report_now.score_normaliser == described
    assert report_now.score_normaliser["id"] == normaliser_id
    assert report_now.comparisons == [
        {"operation": "identify", "score_normaliser": normaliser_id, "count": 3},
        {"operation": "identify", "score_normaliser": "none", "count": 1},
        {"operation": "verify", "score_normaliser": normaliser_id, "count": 2},
        {"operation": "verify", "score_normaliser": "none", "count": 1},
    ]
    page = render_html(report_now)
    assert f"Score normalisation in force: <strong>{normaliser_id}</strong> (fsn, k = 1)" in page
    assert "Calibrated for fake-v1" in page
    assert "on 40 images of 10 people" in page
    for operation, recorded, count in (
        ("identify", normaliser_id, 3), ("identify", "none", 1),
        ("verify", normaliser_id, 2), ("verify", "none", 1),
    ):  # fmt: skip
        assert f"<tr><td>{operation}</td><td>{recorded}</td><td>{count}</td></tr>" in page
    assert "<td>enroll</td><td>none" not in page  # only comparisons are counted there


# --- a bad calibration, a replaced calibration -----------------------------------------------


def test_a_policy_denial_is_audited_even_with_a_bad_calibration(
    home: Path, database_url: str, clock: Clock, tmp_path: Path
) -> None:
    other = tmp_path / "other.json"
    hand_made(other, (0.1,), model_id="dlib-resnet-v1", model_sha256="cd" * 32)
    with opened(with_fairness(home, database_url, score_normaliser=other), clock) as platform:
        with pytest.raises(PolicyDeniedError, match="CORE-PURPOSE"):
            verify_photos(platform, 1, 2, purpose=Purpose.MISSING_PERSONS)  # not approved
        (denial,) = entries(platform, "verify")
    assert denial.decision == "deny"


def test_identification_distances_come_from_the_normaliser_it_records(
    home: Path, database_url: str, clock: Clock, tmp_path: Path
) -> None:
    path = tmp_path / "fsn.json"
    hand_made(path, (0.1,))
    with opened(with_fairness(home, database_url, score_normaliser=path), clock) as platform:
        _with_staff(platform)
        _enrol(platform, "alice", 1)
        search(platform.acting_for(platform.organisation), 1)  # the index is built and cached
        hand_made(path, (0.3,))  # the operator replaces the calibration while it runs
        tenant = platform.acting_for(platform.organisation)
        found = search(tenant, 1)
        verified = verify_photos(tenant, 1, 1)
    # Either calibration may be in force, but the distances must be the recorded one's.
    assert found.score_normaliser == verified.result.score_normaliser
    assert found.candidates[0].distance == pytest.approx(
        verified.result.normalised_distance, abs=1e-5
    )
