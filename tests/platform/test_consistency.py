"""One deployment, many processes and threads, and things that go wrong around it: a database
never runs against a key vault it was not used with; a missing key is not an erasure; one
process's enrolments and erasures are seen by another's next search; a takedown is never undone
by an enrolment in flight; an erasure also removes the names kept on past searches; consent runs
out with the last consent in force; two reviewers cannot both decide one scale request; and a
fairness audit the service was running when it stopped is marked as interrupted."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from numpy.typing import NDArray
from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from test_platform import ACCESS, START, Clock, _enrol, _with_staff, photo, settings_for

from faceaccord.biometrics.fakes import fake_engine
from faceaccord.consent.records import ConsentInput
from faceaccord.errors import InputError, PolicyDeniedError, ReviewError
from faceaccord.governance.entities import OrganisationStatus, ScaleTier
from faceaccord.governance.vocabulary import ConsentKind, Jurisdiction, Purpose, Sector
from faceaccord.platform.deployment import GalleryNotFoundError, Platform, WrongKeyVaultError
from faceaccord.platform.erasure import erase_subject, run_retention, withdraw_gallery
from faceaccord.platform.fairness import start_audit
from faceaccord.platform.identification import identify
from faceaccord.platform.organisations import (
    approve_organisation,
    decide_scale_request,
    register_organisation,
    request_scale,
    required_log_retention_days,
)
from faceaccord.platform.review import ReviewOutcome, identification_record, review_candidate
from faceaccord.platform.verification import verify
from faceaccord.service.app import create_app
from faceaccord.settings import PolicySettings
from faceaccord.store.models import (
    AuditEntryRow,
    CandidateRow,
    DeploymentFactRow,
    FairnessAuditRow,
    SubjectRow,
)


@pytest.fixture
def opened(tmp_path: Path, database_url: str, clock: Clock) -> Iterator[Platform]:
    with Platform.open(
        settings_for(tmp_path / "home", database_url), engine=fake_engine(), clock=clock
    ) as platform:
        yield platform


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _names(platform: Platform, seed: int) -> list[str]:
    found = identify(platform, gallery="staff", image=photo(seed), purpose=ACCESS, actor="door")
    return [c.subject for c in found.candidates]


# --- the key vault ---------------------------------------------------------------------------


def test_a_database_refuses_a_key_vault_it_was_not_used_with(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    settings = settings_for(tmp_path / "home", database_url)
    with Platform.open(settings, engine=fake_engine(), clock=clock) as platform:
        _with_staff(platform)
        _enrol(platform, "alice", 1)
    empty = settings.model_copy(update={"keyvault_url": f"sqlite:///{tmp_path / 'new.db'}"})
    other = settings_for(tmp_path / "other", f"sqlite:///{tmp_path / 'other.db'}")
    with Platform.open(other, engine=fake_engine(), clock=clock) as another_deployment:
        _with_staff(another_deployment)
        _enrol(another_deployment, "bob", 2)  # a vault with keys of its own
    wrong = settings.model_copy(update={"keyvault_url": other.resolved_keyvault_url()})
    for vault in (empty, wrong):
        with pytest.raises(WrongKeyVaultError, match="is not the one this database was used"):
            Platform.open(vault, engine=fake_engine(), clock=clock)

    with (
        Platform.open(settings, engine=fake_engine(), clock=clock) as platform,
        platform.transaction() as session,
    ):
        session.execute(delete(DeploymentFactRow))  # as a database from before vault ids
    for vault in (empty, wrong):
        with pytest.raises(WrongKeyVaultError, match="holds none of the keys of the database's 1"):
            Platform.open(vault, engine=fake_engine(), clock=clock)

    with Platform.open(settings, engine=fake_engine(), clock=clock) as platform:
        assert _names(platform, 1) == ["alice"]  # nothing was lost on the way


def test_a_missing_key_without_an_erasure_mark_is_reported_never_erased(
    opened: Platform,
) -> None:
    _with_staff(opened)
    _enrol(opened, "alice", 1)
    with Session(opened.db) as session:
        alice_id = session.scalars(select(SubjectRow.id)).one()
    opened.vault.destroy([alice_id])  # e.g. the vault restored from a backup older than her
    report = run_retention(opened)
    assert report.keys_missing == (alice_id,)
    assert report.erased == ()
    with Session(opened.db) as session:
        assert session.get(SubjectRow, alice_id) is not None


# --- two processes ---------------------------------------------------------------------------


def test_an_enrolment_or_erasure_by_another_process_is_seen_by_the_next_search(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    settings = settings_for(tmp_path / "home", database_url)
    with (
        Platform.open(settings, engine=fake_engine(), clock=clock) as service,
        Platform.open(settings, engine=fake_engine(), clock=clock) as command_line,
    ):
        _with_staff(service)
        _enrol(service, "alice", 1)
        assert _names(service, 1) == ["alice"]  # the service's index is now loaded
        _enrol(command_line, "bob", 2)
        assert _names(service, 2) == ["bob"]
        erase_subject(command_line, subject="alice", actor="dpo")
        assert _names(service, 1) == []
        _enrol(service, "carol", 3)  # applied to the service's own index, which is current
        assert _names(command_line, 3) == ["carol"]
        assert len(service.index_for(service.gallery_id("staff"))) == 2


class _Paused:
    """A fake embedder that waits, inside an enrolment, until the test lets it go on."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.card = inner.card
        self.inside = threading.Event()
        self.go_on = threading.Event()

    def embed(self, chips: Any) -> NDArray[np.float32]:
        self.inside.set()
        assert self.go_on.wait(timeout=30)
        result: NDArray[np.float32] = self.inner.embed(chips)
        return result


def test_a_takedown_is_never_undone_by_an_enrolment_in_flight(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    settings = settings_for(tmp_path / "home", database_url)
    slow = fake_engine()
    paused = _Paused(slow.embedder)
    slow.embedder = paused  # type: ignore[assignment]
    with (
        Platform.open(settings, engine=slow, clock=clock) as enrolling,
        Platform.open(settings, engine=fake_engine(), clock=clock) as taking_down,
    ):
        _with_staff(taking_down)
        _enrol(taking_down, "alice", 1)
        errors: list[BaseException] = []

        def enrol_bob() -> None:
            try:
                _enrol(enrolling, "bob", 2)
            except BaseException as error:  # asserted below
                errors.append(error)

        thread = threading.Thread(target=enrol_bob)
        thread.start()
        assert paused.inside.wait(timeout=30)  # bob's photo is being embedded
        receipt = withdraw_gallery(taking_down, gallery="staff", actor="ceo")
        paused.go_on.set()
        thread.join(timeout=30)
        assert receipt.document["counts"]["subjects"] == 1
        assert len(errors) == 1
        assert isinstance(errors[0], GalleryNotFoundError)
        assert "withdrawn" in str(errors[0])
        with Session(taking_down.db) as session:
            assert session.scalars(select(SubjectRow.reference)).all() == []
        assert taking_down.vault.subject_ids() == set()  # bob's unused key went too


# --- erasure ---------------------------------------------------------------------------------


def test_an_erasure_also_removes_the_name_kept_on_past_searches_and_notes_about_them(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    settings = settings_for(tmp_path / "home", database_url)
    with Platform.open(settings, engine=fake_engine(), clock=clock) as platform:
        _with_staff(platform)
        _enrol(platform, "alice", 1)
        found = identify(platform, gallery="staff", image=photo(1), purpose=ACCESS, actor="door")
        assert [c.subject for c in found.candidates] == ["alice"]
        with platform.transaction() as session:  # a note a reviewer left on the candidate
            candidate = session.get(CandidateRow, found.candidates[0].id)
            assert candidate is not None
            candidate.status = "pending_review"
        review_candidate(
            platform, identification_id=found.id, candidate_id=found.candidates[0].id,
            reviewer="rita", outcome=ReviewOutcome.REJECT, note="alice's sister, not alice",
        )  # fmt: skip
        erase_subject(platform, subject="alice", actor="dpo")
        record = identification_record(platform, found.id)
        (kept,) = record["candidates"]
        assert kept["subject"] is None
        assert kept["reviews"][0]["note"] is None
        assert kept["reviews"][0]["outcome"] == "reject"  # what happened stays on record
        assert "alice" not in str(record)


def test_consent_runs_out_with_the_last_consent_still_in_force(opened: Platform) -> None:
    _with_staff(opened)
    for days in (30, 365):
        consent = ConsentInput(
            kind=ConsentKind.WRITTEN, reference=f"form-{days}", purpose=ACCESS,
            collected_at=START, duration_days=days,
        )  # fmt: skip
        _enrol(opened, "alice", 1, consent=consent)
    clock: Clock = opened.clock  # type: ignore[assignment]
    clock.advance(days=31)
    assert run_retention(opened).erased == ()
    clock.advance(days=335)
    (erased,) = run_retention(opened).erased
    assert erased["reason"] == "consent_expired"


def test_consent_without_an_end_keeps_a_person_whose_other_consent_ran_out(
    opened: Platform,
) -> None:
    _with_staff(opened)
    for days in (30, None):
        consent = ConsentInput(
            kind=ConsentKind.WRITTEN, reference=f"form-{days}", purpose=ACCESS,
            collected_at=START, duration_days=days,
        )  # fmt: skip
        _enrol(opened, "alice", 1, consent=consent)
    clock: Clock = opened.clock  # type: ignore[assignment]
    clock.advance(days=400)
    assert run_retention(opened).erased == ()


def test_a_consent_of_a_hundred_years_or_more_is_refused_by_name() -> None:
    with pytest.raises(InputError, match="between 1 and 36500 days, not 36501"):
        ConsentInput(kind=ConsentKind.WRITTEN, reference="r", purpose=ACCESS,
                     collected_at=START, duration_days=36_501)  # fmt: skip


def test_a_place_with_an_absurdly_long_locality_is_refused() -> None:
    with pytest.raises(ValueError, match="up to 60"):
        Jurisdiction.parse("US-CA/" + "x" * 61)
    assert Jurisdiction.parse("US-CA/" + "x" * 60).locality == "x" * 60


# --- reviews and verification ----------------------------------------------------------------


def test_two_reviewers_deciding_one_scale_request_at_once_cannot_both_succeed(
    opened: Platform,
) -> None:
    registered = register_organisation(
        opened, name="Bank", sector=Sector.FINANCIAL_INSTITUTION,
        jurisdiction=Jurisdiction.parse("US-NY"), actor="ops",
    )  # fmt: skip
    bank = approve_organisation(
        opened, organisation_id=registered.id, reviewer="rev", reason="ok",
        purposes=frozenset({Purpose.IDENTITY_VERIFICATION}), tier=ScaleTier.SMALL,
    )  # fmt: skip
    request = request_scale(
        opened.acting_for(bank), tier=ScaleTier.LARGE, requested_by="alice", reason="growth"
    )
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def decide(reviewer: str) -> None:
        barrier.wait()
        try:
            decide_scale_request(opened, request_id=request["request_id"], reviewer=reviewer,
                                 approve=reviewer.endswith("0"), reason="looked")  # fmt: skip
            outcomes.append("decided")
        except ReviewError as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=decide, args=(f"rev-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes)[0] == "decided"
    assert outcomes.count("decided") == 1
    assert all("no pending scale request" in o for o in outcomes if o != "decided")


def test_a_verification_under_human_review_is_pending_and_audited(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    settings = settings_for(
        tmp_path / "home", database_url, jurisdiction="GB", sector="police",
        approved_purposes=["missing_persons"],
    ).model_copy(update={"policy": PolicySettings(packs=["vendor-2020"])})  # fmt: skip
    engine = fake_engine()  # with the point calibrated to the 1e-4 false-match rate AWS asks for
    default = engine.card.operating_points[0]
    strict = default.model_copy(update={"name": "strict", "target_fmr": 1e-4,
                                        "threshold": default.threshold * 0.9})  # fmt: skip
    engine.embedder.card = engine.card.model_copy(  # type: ignore[misc]
        update={"operating_points": (default, strict)}
    )
    with Platform.open(settings, engine=engine, clock=clock) as police:
        assert police.organisation.status is OrganisationStatus.APPROVED
        same = verify(police, probe=photo(1), reference=photo(1),
                      purpose=Purpose.MISSING_PERSONS, actor="officer")  # fmt: skip
        different = verify(police, probe=photo(1), reference=photo(2),
                           purpose=Purpose.MISSING_PERSONS, actor="officer")  # fmt: skip
        with pytest.raises(InputError):
            verify(police, probe=b"not a photo", reference=photo(2),
                   purpose=Purpose.MISSING_PERSONS, actor="officer")  # fmt: skip
        assert (same.status, same.required_reviewers) == ("pending_review", 1)
        assert same.result.match
        assert different.status == "no_match"
        with Session(police.db) as session:
            outcomes = [
                entry.details["outcome"]
                for entry in session.scalars(
                    select(AuditEntryRow)
                    .where(AuditEntryRow.operation == "verify")
                    .order_by(AuditEntryRow.seq)
                )
            ]
        assert outcomes == ["pending_review", "no_match", "not_an_image"]


# --- fairness audits -------------------------------------------------------------------------


def test_an_audit_the_service_was_running_when_it_stopped_is_marked_interrupted(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    settings = settings_for(tmp_path / "home", database_url)
    with Platform.open(settings, engine=fake_engine(), clock=clock) as platform:
        tenant = start_audit(platform, dataset="d", actor="audrey", organisation_id="acme")
        operator = start_audit(platform, dataset="d", actor="ops", organisation_id=None)
    with TestClient(create_app(settings, engine=fake_engine(), clock=clock)):
        pass
    with (
        Platform.open(settings, engine=fake_engine(), clock=clock) as platform,
        Session(platform.db) as session,
    ):
        stopped = session.get(FairnessAuditRow, tenant)
        running = session.get(FairnessAuditRow, operator)
        assert stopped is not None
        assert running is not None
        assert (stopped.status, running.status) == ("failed", "running")
        assert "interrupted" in str(stopped.error)


def test_the_fairness_gate_never_reads_another_tenants_audit(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    settings = settings_for(tmp_path / "home", database_url)
    settings = settings.model_copy(
        update={"fairness": settings.fairness.model_copy(update={"gate": True})}
    )
    with Platform.open(settings, engine=fake_engine(), clock=clock) as platform:
        _with_staff(platform)
        _enrol(platform, "alice", 1)
        other = start_audit(platform, dataset="d", actor="eve", organisation_id="other-tenant")
        with platform.transaction() as session:
            row = session.get(FairnessAuditRow, other)
            assert row is not None
            card = platform.engine.card
            row.status, row.model_id, row.model_sha256 = "done", card.id, card.sha256
            row.threshold = platform.engine.operating_point.threshold
            row.finished_at = START + timedelta(minutes=1)
            row.summary = {"group": {"fmr_ratio": 1.0, "fnmr_ratio": 1.0, "groups": []}}
        with pytest.raises(PolicyDeniedError, match="FAIRNESS-GATE") as refused:
            identify(platform, gallery="staff", image=photo(1), purpose=ACCESS, actor="door")
        explained = str(refused.value.decision.as_dict())
        assert "no fairness audit of" in explained
        assert other not in explained


def test_a_suspended_organisation_cannot_create_a_gallery(
    opened: Platform,
) -> None:
    suspended = replace(opened.organisation, status=OrganisationStatus.SUSPENDED)
    with pytest.raises(InputError, match="suspended: galleries can be created once"):
        _with_staff(opened.acting_for(suspended))


def test_the_shared_audit_log_is_pruned_only_after_the_longest_retention_of_any_tenant(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    settings = settings_for(tmp_path / "home", database_url).model_copy(
        update={"policy": PolicySettings(packs=["eu-ai-act", "bipa"])}
    )
    with Platform.open(settings, engine=fake_engine(), clock=clock) as platform:
        assert required_log_retention_days(platform) == 0  # New York: no rule sets one
        register_organisation(
            platform, name="Berlin GmbH", sector=Sector.COMMERCIAL,
            jurisdiction=Jurisdiction.parse("DE"), actor="ops",
        )  # fmt: skip
        assert required_log_retention_days(platform) == 183  # EU AI Act, Art. 26(6)
