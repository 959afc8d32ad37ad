"""The deployment's use cases, on fakes for the face engine and on a real database (SQLite and
PostgreSQL): galleries, enrolment under consent, identification, erasure with receipts,
revocation, retention, takedown, the index kept in step, and the audit trail of it all."""

from __future__ import annotations

import io
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from faceaccord.biometrics.fakes import fake_engine
from faceaccord.consent.erasure import reference_digest, verify_receipt
from faceaccord.consent.records import (
    ConsentInput,
    ConsentRequiredError,
    check_consent_obligations,
)
from faceaccord.errors import InputError, PolicyDeniedError
from faceaccord.governance.entities import RequestContext
from faceaccord.governance.obligations import ConsentOnFile, NoticeGiven
from faceaccord.governance.vocabulary import ConsentKind, Jurisdiction, Purpose
from faceaccord.platform.deployment import GalleryNotFoundError, Platform, local_organisation
from faceaccord.platform.enrolment import enroll
from faceaccord.platform.erasure import (
    SubjectNotFoundError,
    erase_subject,
    revoke_consent,
    run_retention,
    withdraw_gallery,
)
from faceaccord.platform.galleries import create_gallery, list_galleries
from faceaccord.platform.identification import identify
from faceaccord.protection.envelope import Sealed, open_template
from faceaccord.settings import OrganisationSettings, PolicySettings, Settings
from faceaccord.store.models import AuditEntryRow, ConsentRow, SubjectRow, TemplateRow
from faceaccord.store.vault import MissingKeyError

START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
ACCESS = Purpose.ACCESS_CONTROL


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
    home: Path, database_url: str, *, jurisdiction: str = "US-NY", **organisation: object
) -> Settings:
    acme = OrganisationSettings(
        id="acme",
        name="Acme",
        sector="employer",
        jurisdiction=jurisdiction,
        retention_policy="https://acme.example/biometric-retention",
    )
    return Settings(
        home=home,
        database_url=database_url,
        organisation=acme.model_copy(update=organisation),
        policy=PolicySettings(packs=["bipa", "gdpr", "texas-cubi", "vendor-2020"]),
        audit_checkpoint_every=5,
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def opened(tmp_path: Path, database_url: str, clock: Clock) -> Iterator[Platform]:
    with Platform.open(
        settings_for(tmp_path / "home", database_url), engine=fake_engine(), clock=clock
    ) as platform:
        yield platform


def _enrol(platform: Platform, subject: str, seed: int, **kwargs: object) -> None:
    enroll(
        platform, gallery="staff", subject=subject, images=[photo(seed)], purpose=ACCESS,
        actor="hr@acme", **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


def _with_staff(platform: Platform) -> Platform:
    create_gallery(platform, name="staff", purpose=ACCESS, actor="admin@acme")
    return platform


def test_a_gallery_is_created_for_one_approved_purpose(opened: Platform) -> None:
    gallery = create_gallery(opened, name="staff", purpose=ACCESS, actor="admin@acme")
    assert [g.name for g in list_galleries(opened)] == ["staff"]
    assert gallery.purpose is ACCESS
    with pytest.raises(InputError, match="already exists"):
        create_gallery(opened, name="staff", purpose=ACCESS, actor="admin@acme")
    with pytest.raises(InputError, match="not approved for missing_persons"):
        create_gallery(opened, name="kids", purpose=Purpose.MISSING_PERSONS, actor="a")


def test_enrolled_people_are_identified_and_strangers_are_not(opened: Platform) -> None:
    _with_staff(opened)
    _enrol(opened, "alice", 1)
    _enrol(opened, "bob", 2)
    found = identify(opened, gallery="staff", image=photo(1), purpose=ACCESS, actor="door-3")
    assert [c.subject for c in found.candidates] == ["alice"]
    assert found.candidates[0].distance == pytest.approx(0.0, abs=1e-5)
    assert found.candidates[0].similarity == pytest.approx(1.0, abs=1e-5)
    assert found.status == "candidates"
    stranger = identify(opened, gallery="staff", image=photo(9), purpose=ACCESS, actor="door-3")
    assert stranger.candidates == ()
    assert stranger.status == "no_match"


def test_templates_are_stored_encrypted_with_the_subjects_key(opened: Platform) -> None:
    _with_staff(opened)
    _enrol(opened, "alice", 1)
    with Session(opened.db) as session:
        row = session.scalars(select(TemplateRow)).one()
        subject_id = row.subject_id
    (template,) = opened.engine.embed(photo(1))
    assert template.embedding.tobytes() not in row.ciphertext
    vector = open_template(
        opened.vault.data_key(subject_id), Sealed(row.nonce, row.ciphertext),
        template_id=row.id, model_id=row.model_id,
    )  # fmt: skip
    np.testing.assert_allclose(vector, template.embedding, atol=1e-6)


def test_the_index_is_rebuilt_from_the_database_at_start(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    settings = settings_for(tmp_path / "home", database_url)
    with Platform.open(settings, engine=fake_engine(), clock=clock) as first:
        _with_staff(first)
        _enrol(first, "alice", 1)
        _enrol(first, "bob", 2)
    with Platform.open(settings, engine=fake_engine(), clock=clock) as second:
        found = identify(second, gallery="staff", image=photo(2), purpose=ACCESS, actor="x")
        assert [c.subject for c in found.candidates] == ["bob"]
        index = second.index_for(second.gallery_id("staff"))
        with Session(second.db) as session:
            assert index.template_ids() == set(session.scalars(select(TemplateRow.id)))


def test_erasure_destroys_the_key_removes_everything_and_returns_a_signed_receipt(
    opened: Platform,
) -> None:
    _with_staff(opened)
    _enrol(opened, "alice", 1)
    index = opened.index_for(opened.gallery_id("staff"))  # loaded: later changes are applied
    _enrol(opened, "alice", 3)  # a second photo of her
    _enrol(opened, "bob", 2)
    assert len(index) == 3
    with Session(opened.db) as session:
        alice_id = session.scalars(
            select(SubjectRow.id).where(SubjectRow.reference == "alice")
        ).one()

    receipt = erase_subject(opened, subject="alice", actor="dpo@acme")

    assert receipt.document["counts"] == {
        "subjects": 1, "templates": 2, "consents": 0, "keys_destroyed": 1, "index_entries": 2,
    }  # fmt: skip
    assert receipt.document["reason"] == "erasure_request"
    assert receipt.document["subject_reference_sha256"] == reference_digest("acme", "alice")
    assert verify_receipt(receipt.as_dict())
    tampered = {**receipt.as_dict(), "counts": {"subjects": 0}}
    assert not verify_receipt(tampered)
    with pytest.raises(MissingKeyError):
        opened.vault.data_key(alice_id)
    with Session(opened.db) as session:
        assert session.scalars(select(SubjectRow.reference)).all() == ["bob"]
        assert session.scalar(select(TemplateRow).where(TemplateRow.subject_id == alice_id)) is None
    found = identify(opened, gallery="staff", image=photo(1), purpose=ACCESS, actor="door-3")
    assert found.candidates == ()
    with pytest.raises(SubjectNotFoundError):
        erase_subject(opened, subject="alice", actor="dpo@acme")


def test_a_backup_taken_before_erasure_cannot_be_read_after_it(
    tmp_path: Path, clock: Clock
) -> None:
    database = tmp_path / "home" / "faceaccord.db"
    settings = settings_for(tmp_path / "home", f"sqlite:///{database}")
    with Platform.open(settings, engine=fake_engine(), clock=clock) as platform:
        _with_staff(platform)
        _enrol(platform, "alice", 1)
    backup = tmp_path / "backup.db"
    shutil.copy(database, backup)
    with Platform.open(settings, engine=fake_engine(), clock=clock) as platform:
        erase_subject(platform, subject="alice", actor="dpo@acme")
        restored = settings.model_copy(update={"database_url": f"sqlite:///{backup}"})
    with Platform.open(restored, engine=fake_engine(), clock=clock) as from_backup:
        with Session(from_backup.db) as session:
            row = session.scalars(select(TemplateRow)).one()
        with pytest.raises(MissingKeyError, match="erased"):
            from_backup.vault.data_key(row.subject_id)
        index = from_backup.index_for(from_backup.gallery_id("staff"))
        assert len(index) == 0


def test_bipa_refuses_enrolment_without_a_written_release_and_records_one_with_it(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    settings = settings_for(tmp_path / "home", database_url, jurisdiction="US-IL")
    with Platform.open(settings, engine=fake_engine(), clock=clock) as platform:
        _with_staff(platform)
        with pytest.raises(PolicyDeniedError) as denied:
            _enrol(platform, "alice", 1)
        assert "BIPA-15b" in denied.value.decision.rule_ids()
        release = ConsentInput(
            kind=ConsentKind.ELECTRONIC, reference="esign-2026-0042", purpose=ACCESS,
            collected_at=clock(), notice_sha256="ab" * 32, notice_version="v3",
            duration_days=365,
        )  # fmt: skip
        _enrol(platform, "alice", 1, consent=release)
        with Session(platform.db) as session:
            consent = session.scalars(select(ConsentRow)).one()
            subject = session.scalars(select(SubjectRow)).one()
        assert (consent.kind, consent.reference, consent.notice_version) == (
            "electronic", "esign-2026-0042", "v3",
        )  # fmt: skip
        assert consent.expires_at == clock() + timedelta(days=365)
        assert subject.retention_limits == [{"days": 1095, "after": "last_interaction"}]


def test_gdpr_requires_explicit_consent(tmp_path: Path, database_url: str, clock: Clock) -> None:
    settings = settings_for(tmp_path / "home", database_url, jurisdiction="FR")
    with Platform.open(settings, engine=fake_engine(), clock=clock) as platform:
        _with_staff(platform)
        written = ConsentInput(
            kind=ConsentKind.WRITTEN, reference="r1", purpose=ACCESS, collected_at=clock()
        )
        with pytest.raises(PolicyDeniedError, match="GDPR-9"):
            _enrol(platform, "alice", 1, consent=written)
        explicit = ConsentInput(
            kind=ConsentKind.EXPLICIT, reference="r2", purpose=ACCESS, collected_at=clock()
        )
        _enrol(platform, "alice", 1, consent=explicit)


def test_texas_requires_notice_with_the_consent(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    settings = settings_for(tmp_path / "home", database_url, jurisdiction="US-TX")
    with Platform.open(settings, engine=fake_engine(), clock=clock) as platform:
        _with_staff(platform)
        no_notice = ConsentInput(
            kind=ConsentKind.WRITTEN, reference="r1", purpose=ACCESS, collected_at=clock()
        )
        in_texas = RequestContext(subject_jurisdiction=Jurisdiction.parse("US-TX"))
        with pytest.raises(PolicyDeniedError, match="TX-b"):
            _enrol(platform, "alice", 1, consent=no_notice, context=in_texas)
        with_notice = ConsentInput(
            kind=ConsentKind.WRITTEN, reference="r1", purpose=ACCESS, collected_at=clock(),
            notice_sha256="cd" * 32, notice_version="2026-01",
        )  # fmt: skip
        _enrol(platform, "alice", 1, consent=with_notice, context=in_texas)
        with Session(platform.db) as session:
            assert session.scalars(select(SubjectRow.jurisdiction)).one() == "US-TX"


def test_a_consent_obligation_without_the_right_kind_is_refused() -> None:
    written = ConsentInput(
        kind=ConsentKind.WRITTEN, reference="r", purpose=ACCESS, collected_at=START
    )
    with pytest.raises(ConsentRequiredError, match="explicit"):
        check_consent_obligations((ConsentOnFile(ConsentKind.EXPLICIT),), written)
    with pytest.raises(ConsentRequiredError, match="notice"):
        check_consent_obligations((NoticeGiven(),), written)
    check_consent_obligations((ConsentOnFile(ConsentKind.WRITTEN),), written)


def test_revoking_consent_erases_the_person(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    settings = settings_for(tmp_path / "home", database_url, jurisdiction="US-IL")
    with Platform.open(settings, engine=fake_engine(), clock=clock) as platform:
        _with_staff(platform)
        release = ConsentInput(
            kind=ConsentKind.WRITTEN, reference="paper-7", purpose=ACCESS, collected_at=clock()
        )
        _enrol(platform, "alice", 1, consent=release)
        receipt = revoke_consent(platform, subject="alice", actor="alice-herself")
        assert receipt.document["reason"] == "consent_revoked"
        assert receipt.document["counts"]["consents"] == 1
        with Session(platform.db) as session:
            assert session.scalar(select(SubjectRow)) is None


def test_retention_purges_what_is_due_and_reports_it(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    settings = settings_for(tmp_path / "home", database_url, jurisdiction="US-IL")
    with Platform.open(settings, engine=fake_engine(), clock=clock) as platform:
        _with_staff(platform)
        release = ConsentInput(
            kind=ConsentKind.WRITTEN, reference="r", purpose=ACCESS, collected_at=clock()
        )
        short = ConsentInput(
            kind=ConsentKind.WRITTEN, reference="r2", purpose=ACCESS, collected_at=clock(),
            duration_days=30,
        )  # fmt: skip
        _enrol(platform, "alice", 1, consent=release)
        _enrol(platform, "bob", 2, consent=short)
        clock.advance(days=31)
        dry = run_retention(platform, dry_run=True)
        assert [(e["reason"]) for e in dry.erased] == ["consent_expired"]
        assert dry.receipts == ()
        report = run_retention(platform)
        assert [e["reason"] for e in report.erased] == ["consent_expired"]
        assert verify_receipt(report.receipts[0].as_dict())
        clock.advance(days=3 * 365)
        report = run_retention(platform)
        assert [e["reason"] for e in report.erased] == ["retention_limit:last_interaction"]
        with Session(platform.db) as session:
            assert session.scalar(select(SubjectRow)) is None


def test_a_new_interaction_resets_the_bipa_clock(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    settings = settings_for(tmp_path / "home", database_url, jurisdiction="US-IL")
    with Platform.open(settings, engine=fake_engine(), clock=clock) as platform:
        _with_staff(platform)
        release = ConsentInput(
            kind=ConsentKind.WRITTEN, reference="r", purpose=ACCESS, collected_at=clock()
        )
        _enrol(platform, "alice", 1, consent=release)
        clock.advance(days=700)
        _enrol(platform, "alice", 3, consent=release)  # she enrols a new photo
        clock.advance(days=700)
        assert run_retention(platform).erased == ()


def test_takedown_erases_a_whole_gallery_with_a_receipt_of_the_counts(opened: Platform) -> None:
    _with_staff(opened)
    for seed, name in enumerate(["a", "b", "c"], start=1):
        _enrol(opened, name, seed)
    receipt = withdraw_gallery(opened, gallery="staff", actor="ceo@acme")
    assert receipt.document["scope"] == "gallery"
    assert receipt.document["counts"]["subjects"] == 3
    assert receipt.document["counts"]["templates"] == 3
    assert verify_receipt(receipt.as_dict())
    assert list_galleries(opened) == []
    with pytest.raises(GalleryNotFoundError, match="withdrawn"):
        identify(opened, gallery="staff", image=photo(1), purpose=ACCESS, actor="door")


def test_an_erasure_interrupted_after_the_key_is_destroyed_is_completed(
    opened: Platform,
) -> None:
    _with_staff(opened)
    _enrol(opened, "alice", 1)
    with Session(opened.db) as session, session.begin():
        alice = session.scalars(select(SubjectRow)).one()
        alice.erasing_at = START  # the erasure's first step committed its mark ...
        alice_id = alice.id
    opened.vault.destroy([alice_id])  # ... and the process died right after the second
    report = run_retention(opened)
    assert report.erased[0]["reason"] == "erasure_completed"
    with Session(opened.db) as session:
        assert session.scalar(select(SubjectRow)) is None


def test_orphan_keys_from_an_interrupted_enrolment_are_removed_after_a_grace_period(
    opened: Platform, clock: Clock
) -> None:
    opened.vault.create_key("never-stored", now=START)
    assert run_retention(opened).orphan_keys_removed == 0  # may be an enrolment in progress
    clock.advance(hours=2)
    assert run_retention(opened).orphan_keys_removed == 1
    assert "never-stored" not in opened.vault.subject_ids()


def test_one_organisations_retention_never_touches_anothers_keys(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    settings = settings_for(tmp_path / "home", database_url)
    with Platform.open(settings, engine=fake_engine(), clock=clock) as platform:
        _with_staff(platform)
        _enrol(platform, "alice", 1)
        other = platform.acting_for(
            local_organisation(settings.model_copy(update={
                "organisation": settings.organisation.model_copy(update={"id": "other"})
            }))
        )  # fmt: skip
        clock.advance(days=1)
        assert run_retention(other).orphan_keys_removed == 0
        found = identify(platform, gallery="staff", image=photo(1), purpose=ACCESS, actor="x")
        assert [c.subject for c in found.candidates] == ["alice"]


def test_enrolment_is_refused_for_another_purpose_or_a_missing_gallery(opened: Platform) -> None:
    _with_staff(opened)
    with pytest.raises(InputError, match="for access_control"):
        enroll(
            opened, gallery="staff", subject="a", images=[photo(1)],
            purpose=Purpose.IDENTITY_VERIFICATION, actor="x",
        )  # fmt: skip
    with pytest.raises(GalleryNotFoundError, match="does not exist"):
        enroll(opened, gallery="nope", subject="a", images=[photo(1)], purpose=ACCESS, actor="x")


def test_every_step_is_in_the_audit_log_and_the_log_verifies(opened: Platform) -> None:
    _with_staff(opened)
    _enrol(opened, "alice", 1)
    identify(opened, gallery="staff", image=photo(1), purpose=ACCESS, actor="door-3")
    erase_subject(opened, subject="alice", actor="dpo@acme")
    with Session(opened.db) as session:
        entries = session.scalars(select(AuditEntryRow).order_by(AuditEntryRow.seq)).all()
        operations = [(e.operation, e.actor) for e in entries]
        verification = opened.audit.verify(session)
    assert operations == [
        ("gallery_create", "admin@acme"),
        ("enroll", "hr@acme"),
        ("identify", "door-3"),
        ("erase", "dpo@acme"),
    ]
    identify_entry = entries[2]
    assert identify_entry.candidates == 1
    assert identify_entry.threshold == opened.engine.operating_point.threshold
    assert "embedding" not in str(identify_entry.details)
    assert verification.ok
    assert verification.entries == 4


def test_a_denied_request_is_audited_with_its_rules(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    settings = settings_for(tmp_path / "home", database_url, jurisdiction="US-IL")
    with Platform.open(settings, engine=fake_engine(), clock=clock) as platform:
        _with_staff(platform)
        with pytest.raises(PolicyDeniedError):
            _enrol(platform, "alice", 1)
        with Session(platform.db) as session:
            denial = session.scalars(
                select(AuditEntryRow).where(AuditEntryRow.operation == "enroll")
            ).one()
        assert denial.decision == "deny"
        assert "BIPA-15b" in denial.rule_ids
        assert denial.details["outcome"] == "denied"


def test_templates_of_another_model_are_never_searched(
    tmp_path: Path, database_url: str, clock: Clock
) -> None:
    settings = settings_for(tmp_path / "home", database_url)
    with Platform.open(settings, engine=fake_engine(), clock=clock) as first:
        _with_staff(first)
        _enrol(first, "alice", 1)
    other = fake_engine()
    other.embedder.card = other.card.model_copy(update={"id": "fake-v2"})  # type: ignore[misc]
    with Platform.open(settings, engine=other, clock=clock) as second:
        found = identify(second, gallery="staff", image=photo(1), purpose=ACCESS, actor="x")
        assert found.candidates == ()


def test_a_subject_row_without_templates_cannot_exist_after_a_failed_enrolment(
    opened: Platform,
) -> None:
    _with_staff(opened)
    with pytest.raises(InputError, match="not a recognised image"):
        enroll(
            opened, gallery="staff", subject="alice", images=[b"not a photo"], purpose=ACCESS,
            actor="x",
        )  # fmt: skip
    with Session(opened.db) as session:
        assert session.scalar(select(SubjectRow)) is None
        failure = session.scalars(
            select(AuditEntryRow).where(AuditEntryRow.operation == "enroll")
        ).one()
    assert failure.details["outcome"] == "not_an_image"


def test_simultaneous_enrolments_of_one_person_make_one_subject(opened: Platform) -> None:
    _with_staff(opened)
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def enrol(seed: int) -> None:
        barrier.wait()
        try:
            _enrol(opened, "alice", seed)
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=enrol, args=(seed,)) for seed in range(1, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with Session(opened.db) as session:
        (subject_id,) = session.scalars(select(SubjectRow.id)).all()
        assert len(session.scalars(select(TemplateRow.id)).all()) == 6
    assert opened.vault.subject_ids() == {subject_id}
    assert len(opened.index_for(opened.gallery_id("staff"))) == 6
