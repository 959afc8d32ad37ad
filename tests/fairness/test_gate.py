"""The identification gate (FACEACCORD_FAIRNESS__GATE): with it on, identification is refused
by the core pack's FAIRNESS-GATE rule unless the model and threshold in use have a recorded
fairness audit whose FMR and FNMR ratios are within the configured bounds; the refusal names the
audit and the figure. Verification and enrolment are not gated. Audits are in the audit log.
On the fake engine (no model weights), on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from faceaccord.biometrics.fakes import (
    FakeAligner,
    FakeDetector,
    FakeEmbedder,
    FakeLandmarker,
    fake_card,
    fake_engine,
)
from faceaccord.biometrics.pipeline import Engine
from faceaccord.errors import PolicyDeniedError
from faceaccord.governance.enforcement import GovernedEngine
from faceaccord.governance.engine import PolicyEngine
from faceaccord.governance.entities import PolicyRequest, RequestContext
from faceaccord.governance.vocabulary import Operation, Purpose
from faceaccord.platform.deployment import Platform
from faceaccord.platform.enrolment import enroll
from faceaccord.platform.fairness import fairness_gate, record_audit, start_audit
from faceaccord.platform.galleries import create_gallery
from faceaccord.platform.identification import identify
from faceaccord.settings import FairnessSettings, OrganisationSettings, PolicySettings, Settings
from faceaccord.store.models import AuditEntryRow, FairnessAuditRow

START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
ACCESS = Purpose.ACCESS_CONTROL
CARD = fake_card()  # the fake engine's card: fake-v1, sha256 0 * 64, default threshold 0.5


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def photo(seed: int) -> bytes:
    """A textured picture; the fake engine finds one face in it, distinct per seed."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, size=(120, 160, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).resize((320, 240)).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def settings_for(
    home: Path,
    database_url: str,
    fairness: FairnessSettings,
    organisation: OrganisationSettings | None = None,
    packs: tuple[str, ...] = ("bipa", "gdpr", "texas-cubi", "vendor-2020"),
) -> Settings:
    acme = OrganisationSettings(
        id="acme",
        name="Acme",
        sector="employer",
        jurisdiction="US-NY",
        retention_policy="https://acme.example/biometric-retention",
    )
    return Settings(
        home=home,
        database_url=database_url,
        organisation=organisation or acme,
        policy=PolicySettings(packs=list(packs)),
        fairness=fairness,
        audit_checkpoint_every=5,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


def open_platform(
    tmp_path: Path, database_url: str, clock: Clock, fairness: FairnessSettings
) -> Platform:
    return Platform.open(
        settings_for(tmp_path / "home", database_url, fairness), engine=fake_engine(), clock=clock
    )


@pytest.fixture
def gated(tmp_path: Path, database_url: str, clock: Clock) -> Iterator[Platform]:
    """A deployment with the gate on (bounds 10 and 10), a "staff" gallery and alice in it."""
    with open_platform(tmp_path, database_url, clock, FairnessSettings(gate=True)) as platform:
        with_alice(platform)
        yield platform


def with_alice(platform: Platform) -> None:
    create_gallery(platform, name="staff", purpose=ACCESS, actor="admin@acme")
    enroll(
        platform, gallery="staff", subject="alice", images=[photo(1)], purpose=ACCESS,
        actor="hr@acme",
    )  # fmt: skip


def search(platform: Platform) -> Any:
    return identify(platform, gallery="staff", image=photo(1), purpose=ACCESS, actor="door-3")


def report(
    *,
    threshold: float = 0.5,
    model_id: str = CARD.id,
    sha256: str = CARD.sha256,
    **ratios: tuple[float | None, float | None],
) -> dict[str, Any]:
    """The least of a report the recorder and the gate read: model, threshold, and per attribute
    the summary's FMR and FNMR ratios."""
    return {
        "model": {"id": model_id, "sha256": sha256},
        "threshold": {"value": threshold},
        "attributes": {
            name: {
                "summary": {"fmr_ratio": fmr, "fnmr_ratio": fnmr},
                "summary_groups": ["group 1", "group 2"],
            }
            for name, (fmr, fnmr) in ratios.items()
        },
    }


def audited(platform: Platform, clock: Clock, document: dict[str, Any] | None, **kw: Any) -> str:
    clock.advance(minutes=1)
    audit_id = start_audit(platform, dataset="synthetic", actor="auditor", organisation_id=None)
    clock.advance(minutes=1)
    record_audit(
        platform, audit_id=audit_id, report=document, actor="auditor", organisation_id=None, **kw
    )
    return audit_id


def refusal(platform: Platform) -> str:
    """The FAIRNESS-GATE reason of a refused identification."""
    with pytest.raises(PolicyDeniedError) as denied:
        search(platform)
    reasons = {r.rule: r.summary for r in denied.value.decision.reasons}
    assert "FAIRNESS-GATE" in reasons, reasons
    assert "FAIRNESS-GATE (core)" in denied.value.message
    return reasons["FAIRNESS-GATE"]


# Refusals


def test_with_no_audit_on_record_identification_is_refused(gated: Platform) -> None:
    summary = refusal(gated)
    assert "no fairness audit of fake-v1 is on record" in summary
    assert summary.startswith("Where the deployment requires it")  # the rule's own summary
    status = fairness_gate(gated)
    assert (status.required, status.passed, status.audit_id) == (True, False, None)
    with Session(gated.db) as session:
        denial = session.scalars(
            select(AuditEntryRow).where(AuditEntryRow.operation == "identify")
        ).one()
    assert denial.decision == "deny"
    assert "FAIRNESS-GATE" in denial.rule_ids


def test_an_audit_within_the_bounds_lets_identification_run(gated: Platform, clock: Clock) -> None:
    audit_id = audited(gated, clock, report(sex=(2.0, 3.0), ethnicity=(9.9, 1.5)))
    status = fairness_gate(gated)
    assert (status.passed, status.audit_id) == (True, audit_id)
    assert status.message == f"audit {audit_id} is within bounds"
    found = search(gated)
    assert [c.subject for c in found.candidates] == ["alice"]
    assert "FAIRNESS-GATE" not in found.decision.rule_ids()


def test_an_fmr_ratio_over_the_bound_is_refused_naming_the_audit_and_figure(
    gated: Platform, clock: Clock
) -> None:
    audit_id = audited(gated, clock, report(sex=(2.0, 3.0), ethnicity=(20.0, 1.5)))
    summary = refusal(gated)
    assert f"audit {audit_id}: the fmr ratio for ethnicity is 20, over the bound of 10" in summary
    assert fairness_gate(gated).audit_id == audit_id


def test_an_fnmr_ratio_over_the_bound_is_refused(gated: Platform, clock: Clock) -> None:
    audit_id = audited(gated, clock, report(sex=(1.2, 12.5)))
    assert f"audit {audit_id}: the fnmr ratio for sex is 12.5, over the bound of 10" in refusal(
        gated
    )


def test_the_bounds_are_configurable(tmp_path: Path, database_url: str, clock: Clock) -> None:
    fairness = FairnessSettings(gate=True, max_fmr_ratio=25.0, max_fnmr_ratio=2.0)
    with open_platform(tmp_path, database_url, clock, fairness) as platform:
        with_alice(platform)
        audited(platform, clock, report(sex=(20.0, 1.9)))
        assert search(platform).candidates
        audit_id = audited(platform, clock, report(sex=(20.0, 2.5)))
        assert f"audit {audit_id}: the fnmr ratio for sex is 2.5, over the bound of 2" in refusal(
            platform
        )


def test_an_audit_at_another_threshold_is_refused_saying_so(gated: Platform, clock: Clock) -> None:
    audit_id = audited(gated, clock, report(threshold=0.6, sex=(1.0, 1.0)))
    summary = refusal(gated)
    assert (
        f"the latest audit of fake-v1 ({audit_id}) measured threshold 0.6, "
        "not the 0.5 this search would use" in summary
    )


def test_an_undefined_ratio_is_refused(gated: Platform, clock: Clock) -> None:
    audit_id = audited(gated, clock, report(sex=(1.5, 1.5), ethnicity=(2.0, None)))
    summary = refusal(gated)
    assert f"audit {audit_id}: the fnmr ratio for ethnicity is undefined" in summary
    assert "cannot be shown within 10" in summary


def test_an_audit_of_another_model_does_not_count(gated: Platform, clock: Clock) -> None:
    audited(gated, clock, report(model_id="dlib-resnet-v1", sex=(1.0, 1.0)))
    audited(gated, clock, report(sha256="f" * 64, sex=(1.0, 1.0)))  # same id, other weights
    assert "no fairness audit of fake-v1 is on record" in refusal(gated)


def test_a_failed_or_unfinished_audit_does_not_count(gated: Platform, clock: Clock) -> None:
    audited(gated, clock, None, error="the dataset vanished")
    start_audit(gated, dataset="still running", actor="auditor", organisation_id=None)
    assert "no fairness audit of fake-v1 is on record" in refusal(gated)


def test_the_latest_audit_decides(gated: Platform, clock: Clock) -> None:
    audited(gated, clock, report(sex=(2.0, 2.0)))
    assert search(gated).candidates
    failing = audited(gated, clock, report(sex=(30.0, 2.0)))
    assert f"audit {failing}: the fmr ratio for sex is 30" in refusal(gated)
    passing = audited(gated, clock, report(sex=(3.0, 2.0)))
    assert fairness_gate(gated).audit_id == passing
    assert search(gated).candidates


def test_the_gate_can_read_one_attribute(tmp_path: Path, database_url: str, clock: Clock) -> None:
    fairness = FairnessSettings(gate=True, attribute="sex")
    with open_platform(tmp_path, database_url, clock, fairness) as platform:
        with_alice(platform)
        audited(platform, clock, report(sex=(2.0, 2.0), age_band=(None, 50.0)))
        assert search(platform).candidates  # age_band is not read
        audit_id = audited(platform, clock, report(ethnicity=(2.0, 2.0)))
        assert f"audit {audit_id}: the fmr ratio for sex is undefined" in refusal(platform)


def test_an_audit_that_measured_no_attribute_does_not_pass(gated: Platform, clock: Clock) -> None:
    audited(gated, clock, report())
    assert not fairness_gate(gated).passed


# With the gate off, and operations the gate does not touch


def test_with_the_gate_off_no_audit_is_needed(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    with open_platform(tmp_path, database_url, clock, FairnessSettings()) as platform:
        with_alice(platform)
        assert fairness_gate(platform).required is False
        assert search(platform).candidates


def test_verification_and_enrolment_are_not_gated(gated: Platform) -> None:
    assert not fairness_gate(gated).passed
    enroll(
        gated, gallery="staff", subject="bob", images=[photo(2)], purpose=ACCESS, actor="hr@acme"
    )
    governed = GovernedEngine(engine=gated.engine, policy=gated.policy)
    verified = governed.verify(photo(1), photo(1), organisation=gated.organisation, purpose=ACCESS)
    assert verified.result.match
    # the rule itself is scoped to identification: a failed gate does not deny the others
    policy: PolicyEngine = gated.policy
    for operation in (Operation.VERIFY, Operation.ENROLL, Operation.DETECT):
        decision = policy.decide(
            PolicyRequest(
                organisation=gated.organisation,
                operation=operation,
                purpose=ACCESS,
                context=RequestContext(fairness_gate_failed=True),
                on=START.date(),
            )
        )
        assert "FAIRNESS-GATE" not in decision.rule_ids(), operation
    decision = policy.decide(
        PolicyRequest(
            organisation=gated.organisation,
            operation=Operation.IDENTIFY,
            purpose=ACCESS,
            context=RequestContext(fairness_gate_failed=True),
            on=START.date(),
        )
    )
    assert not decision.allowed
    assert "FAIRNESS-GATE" in decision.rule_ids()


# Recording audits


def test_audit_runs_are_in_the_audit_log_and_the_store(gated: Platform, clock: Clock) -> None:
    done = audited(gated, clock, report(sex=(2.0, 20.0)))
    failed = audited(gated, clock, None, error="no face in any image")
    with Session(gated.db) as session:
        entries = session.scalars(
            select(AuditEntryRow)
            .where(AuditEntryRow.operation == "fairness_audit")
            .order_by(AuditEntryRow.seq)
        ).all()
        rows = {r.id: r for r in session.scalars(select(FairnessAuditRow))}
    assert [(e.decision, e.details["audit"]) for e in entries] == [
        ("started", done), ("done", done), ("started", failed), ("failed", failed),
    ]  # fmt: skip
    assert all(e.actor == "auditor" for e in entries)
    assert all(e.details["dataset"] == "synthetic" for e in entries)
    assert entries[1].details["figures"] == {
        "sex": {"fmr_ratio": 2.0, "fnmr_ratio": 20.0, "groups": ["group 1", "group 2"]}
    }
    assert entries[3].details["error"] == "no face in any image"
    assert rows[done].status == "done"
    assert (rows[done].model_id, rows[done].model_sha256) == (CARD.id, CARD.sha256)
    assert rows[done].threshold == 0.5
    finished = rows[done].finished_at
    assert finished is not None
    assert rows[done].started_at < finished
    assert rows[failed].status == "failed"
    assert rows[failed].threshold is None
    assert rows[failed].error == "no face in any image"
    with Session(gated.db) as session:
        assert gated.audit.verify(session).ok


def test_recording_an_unknown_audit_is_an_error(gated: Platform) -> None:
    with pytest.raises(ValueError, match="no fairness audit"):
        record_audit(gated, audit_id="nope", report=report(), actor="auditor", organisation_id=None)


def test_a_report_with_an_undefined_rate_can_be_recorded(
    gated: Platform, clock: Clock, database_url: str, request: pytest.FixtureRequest
) -> None:
    # A real report has NaN wherever a group has no pairs (e.g. a one-person group has no
    # impostor pair, so its FMR is NaN): faces-demographic's "east_asian/white" group does.
    document = report(sex=(2.0, 3.0))
    document["attributes"]["sex"]["groups"] = {"one person": {"fmr": {"value": math.nan}}}
    audit_id = audited(gated, clock, document)
    assert fairness_gate(gated).audit_id == audit_id


# The threshold in use for a search that needs a stricter operating point


def missing_persons(tmp_path: Path, database_url: str, clock: Clock, gate: bool) -> Platform:
    """An NGO searching for missing persons under vendor-2020, which puts a similarity floor
    (FMR 1e-4) on such searches: they run at the card's "strict" point (threshold 0.4), not the
    deployment's default (0.5). The child is enrolled in the "missing" gallery."""
    default = CARD.operating_points[0]
    strict = default.model_copy(update={"name": "strict", "threshold": 0.4, "target_fmr": 1e-4})
    card = CARD.model_copy(update={"operating_points": (default, strict)})
    ngo = OrganisationSettings(
        id="findthem",
        name="Find Them",
        sector="ngo_missing_persons",
        jurisdiction="US-NY",
        approved_purposes=["missing_persons"],
    )
    settings = settings_for(
        tmp_path / "home", database_url, FairnessSettings(gate=gate), ngo, packs=("vendor-2020",)
    )
    engine = Engine(
        detector=FakeDetector(), landmarker=FakeLandmarker(), aligner=FakeAligner(),
        embedder=FakeEmbedder(card), settings=settings,
    )  # fmt: skip
    platform = Platform.open(settings, engine=engine, clock=clock)
    create_gallery(platform, name="missing", purpose=Purpose.MISSING_PERSONS, actor="admin")
    enroll(
        platform, gallery="missing", subject="child", images=[photo(1)],
        purpose=Purpose.MISSING_PERSONS, actor="caseworker",
    )  # fmt: skip
    return platform


def search_missing(platform: Platform) -> Any:
    return identify(
        platform, gallery="missing", image=photo(1), purpose=Purpose.MISSING_PERSONS,
        actor="caseworker", context=RequestContext(reviewers=1),
    )  # fmt: skip


def test_a_search_under_a_similarity_floor_runs_at_the_strict_point(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    with missing_persons(tmp_path, database_url, clock, gate=False) as platform:
        found = search_missing(platform)
        assert [c.subject for c in found.candidates] == ["child"]
        assert (found.operating_point.name, found.operating_point.threshold) == ("strict", 0.4)
        assert platform.engine.operating_point.threshold == 0.5


def test_a_search_at_a_stricter_point_needs_an_audit_at_that_threshold(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    with missing_persons(tmp_path, database_url, clock, gate=True) as platform:
        audited(platform, clock, report(threshold=0.5, sex=(2.0, 2.0)))  # the default point only
        with pytest.raises(PolicyDeniedError) as denied:
            search_missing(platform)
        reasons = {r.rule: r.summary for r in denied.value.decision.reasons}
        assert "FAIRNESS-GATE" in reasons
        assert "0.4" in reasons["FAIRNESS-GATE"]
