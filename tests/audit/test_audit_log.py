"""The audit log is a hash chain with signed checkpoints: every entry is atomic with the change it
records, and any tampering with the stored log is detected and located.

Each database test runs on SQLite and on PostgreSQL. Tampering is done the way an intruder with
database access would do it: with SQL statements on a connection of its own, around the log.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, Engine, delete, func, select, text, update
from sqlalchemy.orm import Session

from faceaccord.audit.log import (
    GENESIS,
    AuditEvent,
    AuditIntegrityError,
    AuditLog,
    AuditVerification,
    entry_hash,
    entry_record,
)
from faceaccord.protection.keys import SigningKey
from faceaccord.protection.signing import sign, verify_signature
from faceaccord.store.database import create_database_engine, upgrade
from faceaccord.store.models import (
    AuditCheckpointRow,
    AuditEntryRow,
    AuditHeadRow,
    OrganisationRow,
)

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
KEY = SigningKey(Ed25519PrivateKey.generate())
INTRUDER_KEY = SigningKey(Ed25519PrivateKey.generate())


class Clock:
    """A fixed time that a test moves on by hand."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def db(database_url: str) -> Iterator[Engine]:
    engine = create_database_engine(database_url)
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()


def make_log(*, every: int = 4, clock: Callable[[], datetime] | None = None) -> AuditLog:
    return AuditLog(signing_key=KEY, clock=clock or Clock(), checkpoint_every=every)


def event(number: int, **changes: Any) -> AuditEvent:
    values: dict[str, Any] = {
        "actor": f"officer-{number}",
        "organisation_id": "org-1",
        "operation": "identify",
        "decision": "deny" if number % 3 == 0 else "allow",
        "purpose": "access_control",
        "rule_ids": (f"RULE-{number}", "SCALE-REVIEW"),
        "gallery_id": "gallery-1",
        "subject_id": f"subject-{number}",
        "threshold": 0.6,
        "candidates": number,
        "review_outcome": None,
        "details": {"number": number, "note": "séance", "scores": [0.1, 0.25]},
    }
    values.update(changes)
    return AuditEvent(**values)


def append(db: Engine, log: AuditLog, count: int, *, first: int = 1) -> list[int]:
    """``count`` entries, each committed in a transaction of its own."""
    seqs = []
    for number in range(first, first + count):
        with Session(db) as session, session.begin():
            seqs.append(log.append(session, event(number)))
    return seqs


def verify(db: Engine, log: AuditLog, **options: Any) -> AuditVerification:
    with Session(db) as session:
        return log.verify(session, **options)


def rows(db: Engine) -> list[AuditEntryRow]:
    with Session(db) as session:
        return list(session.scalars(select(AuditEntryRow).order_by(AuditEntryRow.seq)))


def head(db: Engine) -> AuditHeadRow | None:
    with Session(db) as session:
        return session.get(AuditHeadRow, 1)


def checkpoints(db: Engine) -> list[AuditCheckpointRow]:
    with Session(db) as session:
        return list(session.scalars(select(AuditCheckpointRow).order_by(AuditCheckpointRow.seq)))


# The intruder's toolbox: plain SQL on a connection of its own.


def entry_hash_of(connection: Connection, seq: int) -> str:
    found = connection.scalar(select(AuditEntryRow.hash).where(AuditEntryRow.seq == seq))
    return found or GENESIS


def rechain(connection: Connection, start: int) -> None:
    """Recompute prev_hash and hash of every entry from ``start`` on, and move the head to the
    last one: what an intruder who knows the (public) algorithm does to hide a change."""
    previous = entry_hash_of(connection, start - 1)
    found = connection.execute(
        select(AuditEntryRow.__table__)
        .where(AuditEntryRow.seq >= start)
        .order_by(AuditEntryRow.seq)
    ).mappings()
    last = start - 1
    for values in list(found):
        record = entry_record(AuditEntryRow(**{**values, "prev_hash": previous}))
        new_hash = entry_hash(record)
        connection.execute(
            update(AuditEntryRow)
            .where(AuditEntryRow.seq == values["seq"])
            .values(prev_hash=previous, hash=new_hash)
        )
        previous, last = new_hash, values["seq"]
    connection.execute(update(AuditHeadRow).values(seq=last, hash=previous))


def insert_forged_entry(connection: Connection, at_seq: int) -> None:
    """Renumber every entry from ``at_seq`` on one up, put a forged entry in the gap and rechain."""
    later = connection.scalars(
        select(AuditEntryRow.seq)
        .where(AuditEntryRow.seq >= at_seq)
        .order_by(AuditEntryRow.seq.desc())
    ).all()
    for seq in later:
        connection.execute(
            update(AuditEntryRow).where(AuditEntryRow.seq == seq).values(seq=seq + 1)
        )
    connection.execute(
        AuditEntryRow.__table__.insert().values(
            seq=at_seq,
            at=START,
            actor="mallory",
            organisation_id="org-1",
            operation="enrol",
            purpose="access_control",
            decision="allow",
            rule_ids=[],
            details={},
            prev_hash="",
            hash="",
        )
    )
    rechain(connection, at_seq)


def resign_checkpoints(connection: Connection, key: SigningKey, *, key_id: str) -> None:
    """Make every checkpoint match the (rewritten) chain, signed with ``key``."""
    for seq in connection.scalars(select(AuditCheckpointRow.seq)).all():
        chain_hash = entry_hash_of(connection, seq)
        connection.execute(
            update(AuditCheckpointRow)
            .where(AuditCheckpointRow.seq == seq)
            .values(
                hash=chain_hash,
                key_id=key_id,
                public_key_pem=key.public_pem(),
                signature=sign(key, {"seq": seq, "hash": chain_hash}),
            )
        )


def move_head_to_last_entry(connection: Connection) -> None:
    last = connection.scalar(select(func.max(AuditEntryRow.seq))) or 0
    connection.execute(update(AuditHeadRow).values(seq=last, hash=entry_hash_of(connection, last)))


# Appending


def test_appends_form_a_gapless_chain_from_the_genesis(db: Engine) -> None:
    log = make_log(every=100)

    assert append(db, log, 5) == [1, 2, 3, 4, 5]

    entries = rows(db)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS
    for earlier, later in pairwise(entries):
        assert later.prev_hash == earlier.hash
    for entry in entries:
        assert entry.hash == entry_hash(entry_record(entry))
    stored = head(db)
    assert stored is not None
    assert (stored.seq, stored.hash) == (5, entries[-1].hash)
    assert (stored.anchor_seq, stored.anchor_hash) == (0, GENESIS)


def test_an_entry_keeps_every_field_of_the_event(db: Engine) -> None:
    log = make_log(
        clock=Clock(datetime(2025, 3, 1, 14, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2))))
    )
    recorded = AuditEvent(
        actor="Zoë Ødegård",
        organisation_id="org-1",
        operation="identify",
        decision="allow_with_obligations",
        purpose="access_control",
        rule_ids=["RULE-1", "RULE-2"],  # type: ignore[arg-type]  # a list is accepted
        gallery_id="gallery-1",
        subject_id="subject-1",
        threshold=1,
        candidates=3,
        review_outcome="confirmed",
        details={"scores": (0.1 + 0.2, 1e-300), "nested": {"ok": True, "none": None}},
    )

    with Session(db) as session, session.begin():
        log.append(session, recorded)

    (entry,) = rows(db)
    assert entry_record(entry) | {"prev_hash": None, "hash": None} == {
        "seq": 1,
        "at": "2025-03-01T12:30:15.123456+00:00",
        "actor": "Zoë Ødegård",
        "organisation_id": "org-1",
        "operation": "identify",
        "purpose": "access_control",
        "decision": "allow_with_obligations",
        "rule_ids": ["RULE-1", "RULE-2"],
        "gallery_id": "gallery-1",
        "subject_id": "subject-1",
        "threshold": 1.0,
        "candidates": 3,
        "review_outcome": "confirmed",
        "details": {"scores": [0.1 + 0.2, 1e-300], "nested": {"ok": True, "none": None}},
        "prev_hash": None,
        "hash": None,
    }
    assert verify(db, log).ok, "the values read back hash exactly as the values written"


def record_then_fail(db: Engine, log: AuditLog) -> None:
    with Session(db) as session, session.begin():
        session.add(
            OrganisationRow(
                id="org-2",
                name="Rolled Back Ltd",
                sector="retail",
                jurisdiction="GB",
                status="active",
                approved_purposes=["access_control"],
                scale_tier=1,
                created_at=START,
            )
        )
        log.append(session, event(99, organisation_id="org-2", operation="register"))
        raise RuntimeError("the change failed after it was audited")


@pytest.mark.parametrize("earlier_entries", [0, 3], ids=["first entry", "later entry"])
def test_an_entry_is_atomic_with_the_callers_transaction(db: Engine, earlier_entries: int) -> None:
    """The caller commits; if its transaction rolls back, neither its change nor the entry that
    records it remains, and the head is where it was."""
    log = make_log()
    append(db, log, earlier_entries)
    before = head(db)

    with pytest.raises(RuntimeError, match="failed after it was audited"):
        record_then_fail(db, log)

    after = head(db)
    assert len(rows(db)) == earlier_entries
    with Session(db) as session:
        assert session.get(OrganisationRow, "org-2") is None
    if before is None:
        assert after is None
    else:
        assert after is not None
        assert (after.seq, after.hash) == (before.seq, before.hash)
    assert append(db, log, 1, first=100) == [earlier_entries + 1]
    assert verify(db, log).ok


def test_several_entries_in_one_transaction_commit_together(db: Engine) -> None:
    log = make_log()
    with Session(db) as session, session.begin():
        seqs = [log.append(session, event(number)) for number in range(1, 7)]

    assert seqs == [1, 2, 3, 4, 5, 6]
    assert [c.seq for c in checkpoints(db)] == [4]
    assert verify(db, log) == AuditVerification(ok=True, entries=6)


@pytest.mark.parametrize(
    ("details", "where"),
    [
        ({"template": np.zeros(128, dtype=np.float32)}, r"details\['template'\] is a ndarray"),
        ({"photo": b"\x89PNG\r\n"}, r"details\['photo'\] holds bytes"),
        ({"crop": bytearray(b"\xff\xd8")}, r"details\['crop'\] holds bytes"),
        (
            {"faces": [{"box": [1, 2], "pixels": memoryview(b"ab")}]},
            r"\['faces'\]\[0\]\['pixels'\]",
        ),
        ({"score": np.float32(0.5)}, r"details\['score'\] is a float32"),
        ({"score": float("nan")}, r"details\['score'\] is nan"),
        ({1: "one"}, "a key that is not a string"),
    ],
    ids=["array", "bytes", "bytearray", "nested memoryview", "numpy scalar", "nan", "int key"],
)
def test_details_refuse_anything_but_plain_json(details: dict[Any, Any], where: str) -> None:
    """Templates and images never go into the audit log; the error names the offending key."""
    with pytest.raises(ValueError, match=where):
        event(1, details=details)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"actor": " "}, "actor must not be empty"),
        ({"operation": "x" * 41}, "operation has 41 characters"),
        ({"purpose": 7}, "purpose must be a string"),
        ({"rule_ids": "RULE-1"}, "rule_ids must be a sequence"),
        ({"rule_ids": ("RULE-1", 2)}, "rule_ids must hold strings"),
        ({"threshold": float("inf")}, "threshold must be finite"),
        ({"threshold": True}, "threshold must be a number"),
        ({"candidates": -1}, "candidates must not be negative"),
        ({"candidates": 2.0}, "candidates must be an integer"),
    ],
)
def test_events_are_checked_when_made(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        event(1, **changes)


def test_the_clock_must_give_timezone_aware_times(db: Engine) -> None:
    log = make_log(clock=lambda: datetime(2025, 3, 1, 12, 0))
    with Session(db) as session, pytest.raises(ValueError, match="timezone-aware"):
        log.append(session, event(1))


# Checkpoints


def test_a_signed_checkpoint_is_written_every_n_entries(db: Engine) -> None:
    log = make_log(every=3)
    append(db, log, 10)

    signed = checkpoints(db)
    entries = {e.seq: e.hash for e in rows(db)}
    assert [c.seq for c in signed] == [3, 6, 9]
    for checkpoint in signed:
        assert checkpoint.hash == entries[checkpoint.seq]
        assert checkpoint.key_id == KEY.id
        assert checkpoint.public_key_pem == KEY.public_pem()
        assert checkpoint.signed_at == START
        document = {"seq": checkpoint.seq, "hash": checkpoint.hash}
        assert verify_signature(KEY.public, document, checkpoint.signature)


def test_checkpoint_signs_the_head_once(db: Engine) -> None:
    log = make_log(every=100)
    with Session(db) as session, session.begin():
        assert log.checkpoint(session) is None, "an empty log has nothing to sign"
    append(db, log, 2)

    with Session(db) as session, session.begin():
        signed = log.checkpoint(session)
        assert signed is not None
        assert (signed.seq, signed.hash) == (2, rows(db)[-1].hash)
    with Session(db) as session, session.begin():
        assert log.checkpoint(session) is None, "the head is signed already"
    assert [c.seq for c in checkpoints(db)] == [2]


# Verification of an intact log


def test_an_empty_log_verifies(db: Engine) -> None:
    result = verify(db, make_log())
    assert result == AuditVerification(ok=True, entries=0)
    assert result.as_dict() == {"ok": True, "entries": 0, "first_bad": None, "reason": None}


def test_a_clean_log_verifies(db: Engine) -> None:
    log = make_log()
    append(db, log, 10)
    assert verify(db, log) == AuditVerification(ok=True, entries=10)
    assert verify(db, log, trusted_keys={KEY.id}).ok


# Tampering with entries


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("actor", "mallory", "entry 5 was altered"),
        ("decision", "erased", "entry 5 was altered"),
        ("organisation_id", "org-2", "entry 5 was altered"),
        ("rule_ids", ["FORGED-RULE"], "entry 5 was altered"),
        ("details", {"note": "nothing to see"}, "entry 5 was altered"),
        ("at", START + timedelta(hours=1), "entry 5 was altered"),
        ("threshold", 0.1, "entry 5 was altered"),
        ("candidates", 0, "entry 5 was altered"),
        ("purpose", None, "entry 5 was altered"),
        ("hash", "f" * 64, "entry 5 was altered"),
        ("prev_hash", "e" * 64, "entry 5 does not link to entry 4"),
    ],
)
def test_an_edited_entry_is_detected_and_located(
    db: Engine, column: str, value: object, reason: str
) -> None:
    log = make_log()
    append(db, log, 10)

    with db.begin() as connection:
        connection.execute(
            update(AuditEntryRow).where(AuditEntryRow.seq == 5).values({column: value})
        )

    result = verify(db, log)
    assert (result.ok, result.first_bad, result.entries) == (False, 5, 10)
    assert result.reason is not None
    assert reason in result.reason


def test_a_deleted_entry_is_detected_at_the_first_missing_seq(db: Engine) -> None:
    log = make_log()
    append(db, log, 10)

    with db.begin() as connection:
        connection.execute(delete(AuditEntryRow).where(AuditEntryRow.seq.in_([5, 6])))

    result = verify(db, log)
    assert (result.ok, result.first_bad) == (False, 5)
    assert result.reason == "entries 5..6 are missing: the log jumps from entry 4 to entry 7"


def test_a_deleted_entry_is_detected_even_when_the_chain_is_recomputed(db: Engine) -> None:
    log = make_log()
    append(db, log, 10)

    with db.begin() as connection:
        connection.execute(delete(AuditEntryRow).where(AuditEntryRow.seq == 6))
        for seq in range(7, 11):
            connection.execute(
                update(AuditEntryRow).where(AuditEntryRow.seq == seq).values(seq=seq - 1)
            )
        rechain(connection, 6)

    result = verify(db, log)
    assert (result.ok, result.first_bad) == (False, 8)
    assert result.reason is not None
    assert "checkpoint 8 does not match the chain: an entry in 5..8" in result.reason


def test_a_forged_entry_inserted_with_every_later_hash_recomputed_is_caught_by_a_checkpoint(
    db: Engine,
) -> None:
    """The links and hashes all check out after such a rewrite; the first signed checkpoint
    after the forged entry does not, which locates it between two checkpoints."""
    log = make_log()
    append(db, log, 12)

    with db.begin() as connection:
        insert_forged_entry(connection, 6)

    result = verify(db, log)
    assert (result.ok, result.first_bad, result.entries) == (False, 8, 13)
    assert result.reason == (
        "checkpoint 8 does not match the chain: an entry in 5..8 was inserted, deleted or "
        "altered and every later hash recomputed"
    )


def test_deleting_the_checkpoints_that_would_expose_a_rewrite_is_detected(db: Engine) -> None:
    log = make_log()
    append(db, log, 12)

    with db.begin() as connection:
        insert_forged_entry(connection, 6)
        connection.execute(delete(AuditCheckpointRow).where(AuditCheckpointRow.seq >= 8))

    result = verify(db, log)
    assert (result.ok, result.first_bad) == (False, 8)
    assert result.reason == (
        "there is no checkpoint at entry 8, though one is written every 4 entries: it was deleted"
    )


def test_swapped_entries_are_detected_at_the_earlier_one(db: Engine) -> None:
    log = make_log()
    append(db, log, 10)
    table = AuditEntryRow.__table__

    with db.begin() as connection:
        third, ninth = (
            dict(connection.execute(select(table).where(table.c.seq == seq)).mappings().one())
            for seq in (3, 9)
        )
        for target, source in ((3, ninth), (9, third)):
            contents = {k: v for k, v in source.items() if k != "seq"}
            connection.execute(update(table).where(table.c.seq == target).values(contents))

    result = verify(db, log)
    assert (result.ok, result.first_bad) == (False, 3)
    assert result.reason == (
        "entry 3 does not link to entry 2: its prev_hash is not that entry's hash"
    )


def head_ahead(connection: Connection) -> None:
    connection.execute(update(AuditHeadRow).values(seq=12))


def head_hash_changed(connection: Connection) -> None:
    connection.execute(update(AuditHeadRow).values(hash="a" * 64))


def head_behind(connection: Connection) -> None:
    connection.execute(update(AuditHeadRow).values(seq=9, hash=entry_hash_of(connection, 9)))


def head_deleted(connection: Connection) -> None:
    connection.execute(delete(AuditHeadRow))


def anchor_moved(connection: Connection) -> None:
    connection.execute(
        update(AuditHeadRow).values(anchor_seq=4, anchor_hash=entry_hash_of(connection, 4))
    )


def front_cut(connection: Connection) -> None:
    connection.execute(
        update(AuditHeadRow).values(anchor_seq=2, anchor_hash=entry_hash_of(connection, 2))
    )
    connection.execute(delete(AuditEntryRow).where(AuditEntryRow.seq <= 2))


@pytest.mark.parametrize(
    ("tamper", "first_bad", "reason"),
    [
        (
            head_ahead,
            11,
            "the head says the log ends at entry 12, but the last entry is 10: entries 11..12 "
            "are missing",
        ),
        (head_hash_changed, 10, "the head's hash is not the hash of entry 10"),
        (
            head_behind,
            10,
            "entry 10 lies beyond the head at entry 9: it was written around the log, or the "
            "head was moved back",
        ),
        (head_deleted, 11, "the head row, which records where the log ends, is gone"),
        (
            anchor_moved,
            1,
            "entry 1 lies at or before the anchor at 4: it should have been pruned with the "
            "entries before it",
        ),
        (
            front_cut,
            3,
            "the log starts after entry 2, but no checkpoint attests that entry's hash: entries "
            "were deleted from its start outside a prune",
        ),
    ],
    ids=lambda value: value.__name__.replace("_", " ") if callable(value) else None,
)
def test_a_head_that_disagrees_with_the_entries_is_detected(
    db: Engine, tamper: Callable[[Connection], object], first_bad: int, reason: str
) -> None:
    log = make_log()
    append(db, log, 10)

    with db.begin() as connection:
        tamper(connection)

    result = verify(db, log)
    assert (result.ok, result.first_bad, result.reason) == (False, first_bad, reason)


@pytest.mark.parametrize(("column", "garbage"), [("at", "garbage"), ("details", "not json")])
def test_an_entry_altered_into_something_unreadable_is_reported_and_located(
    tmp_path: Path, column: str, garbage: str
) -> None:
    """SQLite keeps whatever is written into a column (PostgreSQL refuses such values)."""
    engine = create_database_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    try:
        upgrade(engine)
        log = make_log()
        append(engine, log, 6)
        with engine.begin() as connection:
            connection.execute(
                text(f"UPDATE audit_entries SET {column} = :garbage WHERE seq = 3"),
                {"garbage": garbage},
            )
        result = verify(engine, log)
    finally:
        engine.dispose()

    assert (result.ok, result.first_bad) == (False, 3)
    assert result.reason is not None
    assert result.reason.startswith("entry 3 cannot be read: ")


# The tail after the last checkpoint


def cut_tail(db: Engine, *, after: int) -> None:
    """Delete the entries after ``after`` and move the head back to match."""
    with db.begin() as connection:
        connection.execute(delete(AuditEntryRow).where(AuditEntryRow.seq > after))
        move_head_to_last_entry(connection)


def test_cutting_off_the_unsigned_tail_is_undetectable_from_the_database_alone(
    db: Engine,
) -> None:
    """A known limit: entries after the last checkpoint, cut off with the head moved back to
    match, leave a shorter log that is consistent in every respect. Only a checkpoint covering
    them (see the next test), or a copy of the newest checkpoint kept elsewhere, shows it."""
    log = make_log()
    append(db, log, 10)

    cut_tail(db, after=8)

    assert verify(db, log) == AuditVerification(ok=True, entries=8)


def test_a_checkpoint_after_the_tail_catches_its_deletion(db: Engine) -> None:
    """``checkpoint()`` narrows the window: once the tail is signed, cutting it off is found
    (the checkpoint outlives the entries it attests); entries after it are exposed again."""
    log = make_log()
    append(db, log, 10)
    with Session(db) as session, session.begin():
        signed = log.checkpoint(session)
        assert signed is not None
        assert signed.seq == 10

    cut_tail(db, after=8)

    result = verify(db, log)
    assert (result.ok, result.first_bad) == (False, 9)
    assert result.reason == (
        "checkpoint 10 attests entries up to 10, but the log ends at entry 8: entries 9..10 "
        "were deleted and the head moved back"
    )


def test_cutting_the_tail_without_moving_the_head_is_detected(db: Engine) -> None:
    log = make_log()
    append(db, log, 10)

    with db.begin() as connection:
        connection.execute(delete(AuditEntryRow).where(AuditEntryRow.seq > 8))

    result = verify(db, log)
    assert (result.ok, result.first_bad) == (False, 9)


# Tampering with checkpoints


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"signature": sign(INTRUDER_KEY, {"seq": 8, "hash": "0" * 64})}, "invalid signature"),
        ({"signature": "not base64!"}, "invalid signature"),
        ({"hash": "b" * 64}, "invalid signature"),
        ({"key_id": INTRUDER_KEY.id}, f"names key {INTRUDER_KEY.id} but carries key {KEY.id}"),
        ({"public_key_pem": "-----BEGIN PUBLIC KEY-----\nAAAA\n"}, "no readable public key"),
        ({"public_key_pem": INTRUDER_KEY.public_pem(), "key_id": INTRUDER_KEY.id}, "invalid"),
    ],
    ids=["other signature", "garbage", "hash changed", "key id", "bad pem", "other key"],
)
def test_a_forged_checkpoint_is_detected(db: Engine, values: dict[str, str], reason: str) -> None:
    log = make_log()
    append(db, log, 10)

    with db.begin() as connection:
        connection.execute(
            update(AuditCheckpointRow).where(AuditCheckpointRow.seq == 8).values(values)
        )

    result = verify(db, log)
    assert (result.ok, result.first_bad) == (False, 8)
    assert result.reason is not None
    assert result.reason.startswith("checkpoint 8 ")
    assert reason in result.reason


def test_a_log_re_signed_with_an_intruders_key_fails_only_against_the_trusted_keys(
    db: Engine,
) -> None:
    """Without trusted keys a checkpoint only shows the chain is unchanged since someone signed
    it: an intruder who rewrites the log and re-signs every checkpoint with a key of their own
    passes. Given the trusted key ids, verification refuses that key."""
    log = make_log()
    append(db, log, 12)

    with db.begin() as connection:
        insert_forged_entry(connection, 6)
        resign_checkpoints(connection, INTRUDER_KEY, key_id=INTRUDER_KEY.id)

    assert verify(db, log).ok
    result = verify(db, log, trusted_keys=[KEY.id])
    assert (result.ok, result.first_bad) == (False, 4)
    assert result.reason == f"checkpoint 4 is signed by key {INTRUDER_KEY.id}, which is not trusted"


def test_a_checkpoint_claiming_a_trusted_key_id_is_detected(db: Engine) -> None:
    log = make_log()
    append(db, log, 12)

    with db.begin() as connection:
        insert_forged_entry(connection, 6)
        resign_checkpoints(connection, INTRUDER_KEY, key_id=KEY.id)

    result = verify(db, log, trusted_keys=[KEY.id])
    assert (result.ok, result.first_bad) == (False, 4)
    assert result.reason == f"checkpoint 4 names key {KEY.id} but carries key {INTRUDER_KEY.id}"


# Export


def test_export_writes_every_entry_as_a_json_line_that_re_verifies(db: Engine) -> None:
    log = make_log()
    append(db, log, 6)
    out = io.StringIO()

    with Session(db) as session:
        assert log.export(session, out) == 6

    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert records == [entry_record(entry) for entry in rows(db)]
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert records[0]["prev_hash"] == GENESIS
    for earlier, later in pairwise(records):
        assert later["prev_hash"] == earlier["hash"]
    assert all(entry_hash(r) == r["hash"] for r in records), "anyone can re-check an export"
    assert datetime.fromisoformat(records[0]["at"]) == START
    assert set(records[0]) == {c.name for c in AuditEntryRow.__table__.columns}


# Pruning


def dated_log(db: Engine, clock: Clock, *, days: int) -> AuditLog:
    """One entry a day for ``days`` days, a checkpoint every fifth."""
    log = make_log(every=5, clock=clock)
    for day in range(1, days + 1):
        clock.now = START + timedelta(days=day)
        append(db, log, 1, first=day)
    return log


def test_prune_deletes_a_checkpointed_prefix_and_the_log_still_verifies(db: Engine) -> None:
    clock = Clock()
    log = dated_log(db, clock, days=12)
    now = START + timedelta(days=40)

    with Session(db) as session, session.begin():
        deleted = log.prune(
            session, before=START + timedelta(days=8, hours=12), keep_days=30, now=now
        )

    assert deleted == 5, "entries 1..8 are old enough, but the newest checkpoint among them is 5"
    assert [e.seq for e in rows(db)] == [6, 7, 8, 9, 10, 11, 12]
    stored = head(db)
    assert stored is not None
    assert (stored.anchor_seq, stored.anchor_hash, stored.seq) == (5, checkpoints(db)[0].hash, 12)
    assert verify(db, log) == AuditVerification(ok=True, entries=7)
    out = io.StringIO()
    with Session(db) as session:
        assert log.export(session, out) == 7

    append(db, log, 4, first=13)
    assert verify(db, log) == AuditVerification(ok=True, entries=11)
    with Session(db) as session, session.begin():
        assert log.prune(session, before=START + timedelta(days=9), keep_days=30, now=now) == 0


def test_prune_can_empty_the_log_up_to_its_last_checkpoint(db: Engine) -> None:
    clock = Clock()
    log = dated_log(db, clock, days=10)

    with Session(db) as session, session.begin():
        deleted = log.prune(
            session, before=START + timedelta(days=20), keep_days=0, now=START + timedelta(days=20)
        )

    assert deleted == 10
    assert rows(db) == []
    assert verify(db, log) == AuditVerification(ok=True, entries=0)
    with Session(db) as session, session.begin():
        assert log.checkpoint(session) is None
    append(db, log, 1, first=11)
    assert verify(db, log) == AuditVerification(ok=True, entries=1)


@pytest.mark.parametrize(
    ("before", "keep_days", "message"),
    [
        (START + timedelta(days=31), 10, "would cut into the retention window"),
        (START + timedelta(days=30, seconds=1), 10, "would cut into the retention window"),
        (START + timedelta(days=5), -1, "keep_days must not be negative"),
        (datetime(2025, 3, 5), 10, "before must be timezone-aware"),
    ],
)
def test_prune_refuses_to_cut_into_the_retention_window(
    db: Engine, before: datetime, keep_days: int, message: str
) -> None:
    clock = Clock()
    log = dated_log(db, clock, days=12)

    with Session(db) as session, pytest.raises(ValueError, match=message):
        log.prune(session, before=before, keep_days=keep_days, now=START + timedelta(days=40))

    assert len(rows(db)) == 12


def test_prune_keeps_the_evidence_of_a_tampered_log(db: Engine) -> None:
    clock = Clock()
    log = dated_log(db, clock, days=12)
    with db.begin() as connection:
        connection.execute(
            update(AuditEntryRow).where(AuditEntryRow.seq == 2).values(actor="mallory")
        )

    with Session(db) as session, pytest.raises(AuditIntegrityError, match="entry 2 was altered"):
        log.prune(
            session, before=START + timedelta(days=9), keep_days=30, now=START + timedelta(days=40)
        )

    assert len(rows(db)) == 12


# Concurrency


def test_concurrent_appenders_produce_a_gapless_verifiable_chain(db: Engine) -> None:
    """Two threads, each with its own connection and one transaction per entry, starting on an
    empty log (so they also race to create the head)."""
    log = make_log(every=10)
    start = threading.Barrier(2)

    def appender(name: str) -> list[int]:
        start.wait()
        seqs = []
        for number in range(50):
            with Session(db) as session, session.begin():
                seqs.append(log.append(session, event(number, actor=name)))
        return seqs

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(appender, ["thread-a", "thread-b"]))

    assert sorted(results[0] + results[1]) == list(range(1, 101))
    for seqs in results:
        assert seqs == sorted(seqs)
    entries = rows(db)
    assert [e.seq for e in entries] == list(range(1, 101))
    assert sum(e.actor == "thread-a" for e in entries) == 50
    assert [c.seq for c in checkpoints(db)] == list(range(10, 101, 10))
    assert verify(db, log, trusted_keys={KEY.id}) == AuditVerification(ok=True, entries=100)


def test_the_checkpoint_interval_is_fixed_when_the_log_starts(db: Engine) -> None:
    """Reconfiguring the interval later neither breaks verification nor changes the cadence."""
    append(db, make_log(every=4), 8)
    reconfigured = make_log(every=3)
    append(db, reconfigured, 4, first=9)
    assert [c.seq for c in checkpoints(db)] == [4, 8, 12]
    assert head(db) is not None
    assert head(db).checkpoint_every == 4  # type: ignore[union-attr]
    assert verify(db, reconfigured).ok
