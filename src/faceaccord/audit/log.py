"""The tamper-evident audit log: a hash chain of entries with signed checkpoints.

Each entry is chained to the one before it::

    hash = sha256hex(prev_hash + canonical_json({seq, at, actor, organisation_id, operation,
                                                 purpose, decision, rule_ids, gallery_id,
                                                 subject_id, threshold, candidates,
                                                 review_outcome, details}))

and every ``checkpoint_every`` entries (and whenever ``AuditLog.checkpoint`` is called) the head
of the chain, ``{"seq", "hash"}``, is signed with the Ed25519 signing key. An entry is written
inside the caller's transaction, so it commits or rolls back with the change it records;
appenders are serialised by locking the single ``audit_head`` row.

What ``AuditLog.verify`` catches, and what it cannot:

* an edited, deleted or reordered entry breaks a hash or a link and is located by its seq;
* rewriting the chain from some entry on, with every later hash recomputed, is caught by the
  first checkpoint after that entry (its signed hash no longer matches). Deleting that
  checkpoint is caught too: a checkpoint must exist at every multiple of ``checkpoint_every``;
* deleting the newest entries, those after the last checkpoint, and moving the head back leaves
  a shorter but consistent chain: the database alone cannot tell. ``checkpoint`` narrows that
  window; only a copy of the newest checkpoint kept elsewhere (an export, a witness) closes it;
* whoever holds the signing key can re-sign a rewritten log; and unless ``verify`` is given the
  trusted key ids, so can anyone with a key of their own.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO, cast

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import CursorResult, delete, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from faceaccord.errors import ConfigurationError, FaceAccordError
from faceaccord.protection.keys import SigningKey
from faceaccord.protection.signing import canonical_json, sign, verify_signature
from faceaccord.store.models import AuditCheckpointRow, AuditEntryRow, AuditHeadRow

__all__ = [
    "GENESIS",
    "HASHED_FIELDS",
    "AuditEvent",
    "AuditIntegrityError",
    "AuditLog",
    "AuditVerification",
    "entry_hash",
    "entry_record",
]

GENESIS = "0" * 64
"""The hash the first entry links to."""

HASHED_FIELDS = (
    "seq",
    "at",
    "actor",
    "organisation_id",
    "operation",
    "purpose",
    "decision",
    "rule_ids",
    "gallery_id",
    "subject_id",
    "threshold",
    "candidates",
    "review_outcome",
    "details",
)
"""The fields of an entry its hash covers (with its ``prev_hash``)."""

_HEAD_ID = 1
_BATCH = 1000
_NOT_BIOMETRIC = "templates and images never go into the audit log"


class AuditIntegrityError(FaceAccordError):
    """The audit log does not verify, so it may not be pruned."""

    code = "audit_integrity"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One thing to record: who did what, for which organisation and purpose, and the outcome.

    ``decision`` is the policy's answer (``allow``, ``deny``, ``allow_with_obligations``) or the
    operation's outcome (``enrolled``, ``erased``). ``details`` holds plain JSON values only
    (strings, finite numbers, booleans, None, lists and string-keyed mappings of them): bytes
    and arrays are refused with ValueError, so that no template or image ends up in the log. The
    values are checked and normalised (a copy of ``details``, a float ``threshold``, a tuple of
    ``rule_ids``) when the event is made.
    """

    actor: str
    organisation_id: str
    operation: str
    decision: str
    purpose: str | None = None
    rule_ids: tuple[str, ...] = ()
    gallery_id: str | None = None
    subject_id: str | None = None
    threshold: float | None = None
    candidates: int | None = None
    review_outcome: str | None = None
    details: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("actor", "organisation_id", "operation", "decision"):
            _check_text(name, getattr(self, name), required=True)
        for name in ("purpose", "gallery_id", "subject_id", "review_outcome"):
            _check_text(name, getattr(self, name), required=False)
        object.__setattr__(self, "rule_ids", _rule_ids(self.rule_ids))
        object.__setattr__(self, "threshold", _threshold(self.threshold))
        object.__setattr__(self, "candidates", _candidates(self.candidates))
        if not isinstance(self.details, Mapping):
            raise ValueError(f"details must be a mapping, not a {type(self.details).__name__}")
        object.__setattr__(self, "details", _plain_json(self.details, "details"))


@dataclass(frozen=True, slots=True)
class AuditVerification:
    """What ``AuditLog.verify`` found: ``first_bad`` is the seq of the first entry where something
    is wrong and ``reason`` says what; both are None when the log verifies."""

    ok: bool
    entries: int
    first_bad: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "first_bad": self.first_bad,
            "reason": self.reason,
        }


class AuditLog:
    """Appends, checkpoints, verifies, exports and prunes the audit log.

    Every method works in the session it is given and never commits: the caller owns the
    transaction. ``clock`` must return timezone-aware times; they are stored in UTC.
    """

    def __init__(
        self,
        *,
        signing_key: SigningKey,
        clock: Callable[[], datetime],
        checkpoint_every: int = 100,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be at least 1, not {checkpoint_every}")
        self.signing_key = signing_key
        self.clock = clock
        self.checkpoint_every = checkpoint_every

    def append(self, session: Session, event: AuditEvent) -> int:
        """Record ``event`` as the next entry and return its seq.

        The entry is part of the caller's transaction: it is kept only if the caller commits, so
        it is atomic with the change it records. The head row stays locked until then, which
        serialises appenders (their seqs are gapless). Every ``checkpoint_every``-th entry also
        writes a signed checkpoint.
        """
        head = _lock_head(session, self.checkpoint_every)
        seq = head.seq + 1
        row = AuditEntryRow(
            seq=seq,
            at=_utc(self.clock(), "the audit clock's time"),
            actor=event.actor,
            organisation_id=event.organisation_id,
            operation=event.operation,
            purpose=event.purpose,
            decision=event.decision,
            rule_ids=list(event.rule_ids),
            gallery_id=event.gallery_id,
            subject_id=event.subject_id,
            threshold=event.threshold,
            candidates=event.candidates,
            review_outcome=event.review_outcome,
            details=dict(event.details),
            prev_hash=head.hash,
            hash="",
        )
        row.hash = entry_hash(entry_record(row))
        session.add(row)
        head.seq, head.hash = seq, row.hash
        if seq % head.checkpoint_every == 0:
            session.add(self._signed_checkpoint(seq, row.hash))
        session.flush()
        return seq

    def checkpoint(self, session: Session) -> AuditCheckpointRow | None:
        """Sign the head of the chain now; None if the log is empty or the head is signed
        already. A checkpoint shortens the tail that could be cut off undetected."""
        head = _lock_head(session, self.checkpoint_every)
        if head.seq == 0:
            return None
        signed = session.scalar(select(exists().where(AuditCheckpointRow.seq == head.seq)))
        if signed:
            return None
        row = self._signed_checkpoint(head.seq, head.hash)
        session.add(row)
        session.flush()
        return row

    def verify(
        self, session: Session, *, trusted_keys: Collection[str] | None = None
    ) -> AuditVerification:
        """Recompute the chain from the anchor and check every checkpoint and the head.

        With ``trusted_keys`` (key ids), a checkpoint signed by any other key is a failure;
        without them a checkpoint proves only that the chain is unchanged since someone signed
        it; the trusted keys must include every key that signed a checkpoint still stored, old
        ones too. Entries appended while ``verify`` runs are left for the next run. The
        checkpoint interval is the one fixed in the head when the log started, whatever this
        ``AuditLog`` was configured with.
        """
        head = session.get(AuditHeadRow, _HEAD_ID)
        every = head.checkpoint_every if head is not None else self.checkpoint_every
        return _Verifier(session=session, checkpoint_every=every, trusted_keys=trusted_keys).run()

    def export(self, session: Session, out: TextIO) -> int:
        """Write every entry to ``out`` as JSON lines, in seq order; returns how many.

        Each line is ``entry_record`` of the entry, so anyone can re-check the chain with
        ``entry_hash``."""
        count = 0
        query = (
            select(AuditEntryRow)
            .order_by(AuditEntryRow.seq)
            .execution_options(yield_per=_BATCH, populate_existing=True)
        )
        with session.scalars(query) as rows:
            for row in rows:
                out.write(canonical_json(entry_record(row)).decode("utf-8") + "\n")
                count += 1
        return count

    def prune(self, session: Session, *, before: datetime, keep_days: int, now: datetime) -> int:
        """Delete the entries older than ``before``, up to the newest checkpoint among them, and
        move the chain's anchor there; returns how many were deleted.

        Only whole prefixes ending at a checkpoint go, so what stays still verifies. Nothing
        from the last ``keep_days`` days before ``now`` is ever deleted: a ``before`` inside that
        window is refused with ValueError. A log that does not verify is not pruned
        (AuditIntegrityError): the evidence is kept.
        """
        if keep_days < 0:
            raise ValueError(f"keep_days must not be negative, not {keep_days}")
        before = _utc(before, "before")
        window_start = _utc(now, "now") - timedelta(days=keep_days)
        if before > window_start:
            raise ValueError(
                f"pruning entries before {before.isoformat()} would cut into the retention "
                f"window: entries since {window_start.isoformat()} ({keep_days} days) are kept"
            )
        head = _lock_head(session, self.checkpoint_every)
        verification = self.verify(session)
        if not verification.ok:
            raise AuditIntegrityError(
                f"the audit log does not verify, so it is not pruned: {verification.reason}"
            )
        first_kept = session.scalar(
            select(func.min(AuditEntryRow.seq)).where(
                AuditEntryRow.seq > head.anchor_seq, AuditEntryRow.at >= before
            )
        )
        last_prunable = head.seq if first_kept is None else first_kept - 1
        anchor = session.scalars(
            select(AuditCheckpointRow)
            .where(
                AuditCheckpointRow.seq > head.anchor_seq,
                AuditCheckpointRow.seq <= last_prunable,
            )
            .order_by(AuditCheckpointRow.seq.desc())
            .limit(1)
        ).first()
        if anchor is None:
            return 0
        result = cast(
            "CursorResult[Any]",
            session.execute(delete(AuditEntryRow).where(AuditEntryRow.seq <= anchor.seq)),
        )
        head.anchor_seq, head.anchor_hash = anchor.seq, anchor.hash
        session.flush()
        return int(result.rowcount)

    def _signed_checkpoint(self, seq: int, chain_hash: str) -> AuditCheckpointRow:
        return AuditCheckpointRow(
            seq=seq,
            hash=chain_hash,
            signed_at=_utc(self.clock(), "the audit clock's time"),
            key_id=self.signing_key.id,
            public_key_pem=self.signing_key.public_pem(),
            signature=sign(self.signing_key, _checkpoint_document(seq, chain_hash)),
        )


def entry_record(row: AuditEntryRow) -> dict[str, Any]:
    """An entry as plain JSON values: every column, with ``at`` in ISO 8601 form, in UTC."""
    return {
        "seq": row.seq,
        "at": _isoformat(row.at),
        "actor": row.actor,
        "organisation_id": row.organisation_id,
        "operation": row.operation,
        "purpose": row.purpose,
        "decision": row.decision,
        "rule_ids": row.rule_ids,
        "gallery_id": row.gallery_id,
        "subject_id": row.subject_id,
        "threshold": row.threshold,
        "candidates": row.candidates,
        "review_outcome": row.review_outcome,
        "details": row.details,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


def entry_hash(record: Mapping[str, Any]) -> str:
    """The hash an entry must have, from its ``prev_hash`` and ``HASHED_FIELDS`` (as in
    ``entry_record`` or a line of ``AuditLog.export``)."""
    fields = {name: record[name] for name in HASHED_FIELDS}
    return hashlib.sha256(str(record["prev_hash"]).encode() + canonical_json(fields)).hexdigest()


@dataclass
class _Walk:
    """How far the chain checked out: the last good entry, and the recomputed hashes at the
    seqs that have checkpoints."""

    last_seq: int
    last_hash: str
    wanted: set[int]
    read: int | None = None
    """The seq of the last entry read, good or bad."""
    count: int = 0
    complete: bool = True
    hashes: dict[int, str] = field(default_factory=dict)


@dataclass
class _Verifier:
    session: Session
    checkpoint_every: int
    trusted_keys: Collection[str] | None
    problems: list[tuple[int, str]] = field(default_factory=list)

    def run(self) -> AuditVerification:
        head = self.session.scalars(
            select(AuditHeadRow)
            .where(AuditHeadRow.id == _HEAD_ID)
            .execution_options(populate_existing=True)
        ).one_or_none()
        checkpoints = list(
            self.session.scalars(
                select(AuditCheckpointRow)
                .order_by(AuditCheckpointRow.seq)
                .execution_options(populate_existing=True)
            )
        )
        anchor_seq, anchor_hash = (head.anchor_seq, head.anchor_hash) if head else (0, GENESIS)
        walk = _Walk(
            last_seq=anchor_seq, last_hash=anchor_hash, wanted={c.seq for c in checkpoints}
        )
        self._walk(walk, anchor_seq, None if head is None else head.seq)
        if head is None:
            if walk.count or checkpoints:
                self._bad(
                    walk.last_seq + 1, "the head row, which records where the log ends, is gone"
                )
        else:
            self._check_head(head, walk)
            self._check_beyond_head(head, checkpoints)
        self._check_anchor(anchor_seq, anchor_hash, checkpoints)
        self._check_checkpoints(checkpoints, walk)
        self._check_checkpoints_present(anchor_seq, walk, checkpoints)
        if not self.problems:
            return AuditVerification(ok=True, entries=walk.count)
        first_bad, reason = min(self.problems, key=lambda problem: problem[0])
        return AuditVerification(ok=False, entries=walk.count, first_bad=first_bad, reason=reason)

    def _bad(self, seq: int, reason: str) -> None:
        self.problems.append((seq, reason))

    def _walk(self, walk: _Walk, anchor_seq: int, end: int | None) -> None:
        try:
            self._read(walk, anchor_seq, end, batch=_BATCH)
        except (ValueError, TypeError):
            # A column altered into something unreadable spoils its whole batch: read the rest
            # again one entry at a time, to find the entry it belongs to.
            try:
                self._read(walk, anchor_seq, end, batch=1)
            except (ValueError, TypeError) as exc:
                if walk.complete:
                    self._bad(walk.last_seq + 1, f"entry {walk.last_seq + 1} cannot be read: {exc}")
                walk.complete = False

    def _read(self, walk: _Walk, anchor_seq: int, end: int | None, *, batch: int) -> None:
        query = (
            select(AuditEntryRow)
            .order_by(AuditEntryRow.seq)
            .execution_options(yield_per=batch, populate_existing=True)
        )
        if end is not None:
            query = query.where(AuditEntryRow.seq <= end)
        if walk.read is not None:
            query = query.where(AuditEntryRow.seq > walk.read)
        with self.session.scalars(query) as rows:
            for row in rows:
                walk.count += 1
                walk.read = row.seq
                if walk.complete:
                    self._step(walk, row, anchor_seq)

    def _step(self, walk: _Walk, row: AuditEntryRow, anchor_seq: int) -> None:
        expected = walk.last_seq + 1
        before = f"entry {walk.last_seq}" if walk.last_seq else "the start of the log"
        if row.seq < expected:
            problem = (
                f"entry {row.seq} lies at or before the anchor at {anchor_seq}: it should "
                "have been pruned with the entries before it"
            )
        elif row.seq > expected:
            missing = (
                f"entry {expected} is"
                if row.seq == expected + 1
                else (f"entries {expected}..{row.seq - 1} are")
            )
            problem = f"{missing} missing: the log jumps from {before} to entry {row.seq}"
        elif row.prev_hash != walk.last_hash:
            problem = (
                f"entry {row.seq} does not link to {before}: its prev_hash is not that entry's hash"
            )
        elif (recomputed := entry_hash(entry_record(row))) != row.hash:
            problem = f"entry {row.seq} was altered: its fields do not match its hash"
        else:
            walk.last_seq, walk.last_hash = row.seq, recomputed
            if row.seq in walk.wanted:
                walk.hashes[row.seq] = recomputed
            return
        self._bad(min(row.seq, expected), problem)
        walk.complete = False

    def _check_head(self, head: AuditHeadRow, walk: _Walk) -> None:
        if not walk.complete:
            return
        if walk.last_seq < head.seq:
            self._bad(
                walk.last_seq + 1,
                f"the head says the log ends at entry {head.seq}, but the last entry is "
                f"{walk.last_seq}: entries {walk.last_seq + 1}..{head.seq} are missing",
            )
        elif walk.last_hash != head.hash:
            self._bad(head.seq, f"the head's hash is not the hash of entry {head.seq}")

    def _check_beyond_head(self, head: AuditHeadRow, checkpoints: list[AuditCheckpointRow]) -> None:
        """Entries and checkpoints past the head are either being written right now (and the
        head has moved on when it is read again) or were put there, or left there, around the
        log: a checkpoint past the head is what remains when the tail was cut off."""
        newest = self.session.scalar(select(func.max(AuditEntryRow.seq))) or 0
        late = [c.seq for c in checkpoints if c.seq > head.seq]
        if newest <= head.seq and not late:
            return
        end = self.session.scalar(select(AuditHeadRow.seq).where(AuditHeadRow.id == _HEAD_ID)) or 0
        cut = [seq for seq in late if seq > end]
        if cut:
            self._bad(
                end + 1,
                f"checkpoint {cut[-1]} attests entries up to {cut[-1]}, but the log ends at "
                f"entry {end}: entries {end + 1}..{cut[-1]} were deleted and the head moved back",
            )
        if newest > end:
            self._bad(
                end + 1,
                f"entry {newest} lies beyond the head at entry {end}: it was written around "
                "the log, or the head was moved back",
            )

    def _check_anchor(
        self, anchor_seq: int, anchor_hash: str, checkpoints: list[AuditCheckpointRow]
    ) -> None:
        if anchor_seq == 0:
            if anchor_hash != GENESIS:
                self._bad(
                    1, "the log starts from the genesis, but the head's anchor hash is not it"
                )
            return
        attested = any(c.seq == anchor_seq and c.hash == anchor_hash for c in checkpoints)
        if not attested:
            self._bad(
                anchor_seq + 1,
                f"the log starts after entry {anchor_seq}, but no checkpoint attests that "
                "entry's hash: entries were deleted from its start outside a prune",
            )

    def _check_checkpoints(self, checkpoints: list[AuditCheckpointRow], walk: _Walk) -> None:
        previous = 0
        for checkpoint in checkpoints:
            problem = _signature_problem(checkpoint, self.trusted_keys)
            if problem is not None:
                self._bad(checkpoint.seq, f"checkpoint {checkpoint.seq} {problem}")
            elif walk.hashes.get(checkpoint.seq, checkpoint.hash) != checkpoint.hash:
                self._bad(
                    checkpoint.seq,
                    f"checkpoint {checkpoint.seq} does not match the chain: an entry in "
                    f"{previous + 1}..{checkpoint.seq} was inserted, deleted or altered and "
                    "every later hash recomputed",
                )
            previous = checkpoint.seq

    def _check_checkpoints_present(
        self, anchor_seq: int, walk: _Walk, checkpoints: list[AuditCheckpointRow]
    ) -> None:
        signed = {c.seq for c in checkpoints}
        every = self.checkpoint_every
        for seq in range((anchor_seq // every + 1) * every, walk.last_seq + 1, every):
            if seq not in signed:
                self._bad(
                    seq,
                    f"there is no checkpoint at entry {seq}, though one is written every "
                    f"{every} entries: it was deleted",
                )
                return


def _signature_problem(
    checkpoint: AuditCheckpointRow, trusted_keys: Collection[str] | None
) -> str | None:
    try:
        public = serialization.load_pem_public_key(checkpoint.public_key_pem.encode())
    except (ValueError, UnsupportedAlgorithm):
        return "carries no readable public key"
    if not isinstance(public, Ed25519PublicKey):
        return "carries a public key that is not Ed25519"
    key_id = _key_id(public)
    if key_id != checkpoint.key_id:
        return f"names key {checkpoint.key_id} but carries key {key_id}"
    if trusted_keys is not None and key_id not in trusted_keys:
        return f"is signed by key {key_id}, which is not trusted"
    document = _checkpoint_document(checkpoint.seq, checkpoint.hash)
    if not verify_signature(public, document, checkpoint.signature):
        return "has an invalid signature: it was forged or altered"
    return None


def _key_id(public: Ed25519PublicKey) -> str:
    """The id ``SigningKey.id`` gives the private half of ``public``."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _checkpoint_document(seq: int, chain_hash: str) -> dict[str, Any]:
    return {"seq": seq, "hash": chain_hash}


def _lock_head(session: Session, checkpoint_every: int) -> AuditHeadRow:
    """The head row, created at the genesis if absent, locked until the transaction ends.

    The insert comes first on purpose. On PostgreSQL it lets concurrent first appenders meet on
    the primary key instead of failing. On SQLite, which has no row locks and whose driver only
    opens a transaction at the first write, it takes the database's write lock before the head
    is read, so two appenders can never read the same head.
    """
    values = {
        "id": _HEAD_ID,
        "seq": 0,
        "hash": GENESIS,
        "anchor_seq": 0,
        "anchor_hash": GENESIS,
        "checkpoint_every": checkpoint_every,
    }
    dialect = session.get_bind(AuditHeadRow).dialect.name
    if dialect == "postgresql":
        session.execute(
            postgresql.insert(AuditHeadRow)
            .values(values)
            .on_conflict_do_nothing(index_elements=["id"])
        )
    elif dialect == "sqlite":
        session.execute(
            sqlite.insert(AuditHeadRow).values(values).on_conflict_do_nothing(index_elements=["id"])
        )
    else:
        raise ConfigurationError(f"the audit log runs on SQLite or PostgreSQL, not {dialect}")
    return session.scalars(
        select(AuditHeadRow)
        .where(AuditHeadRow.id == _HEAD_ID)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def _utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, not {value.isoformat()}")
    return value.astimezone(UTC)


def _isoformat(value: datetime) -> str:
    """SQLite hands times back without their zone; they were stored in UTC."""
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.isoformat()


def _column_length(name: str) -> int | None:
    length = getattr(AuditEntryRow.__table__.c[name].type, "length", None)
    return length if isinstance(length, int) else None


def _check_text(name: str, value: object, *, required: bool) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, not {type(value).__name__}")
    if required and not value.strip():
        raise ValueError(f"{name} must not be empty")
    limit = _column_length(name)
    if limit is not None and len(value) > limit:
        raise ValueError(f"{name} has {len(value)} characters; the audit log keeps {limit}")


def _rule_ids(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"rule_ids must be a sequence of strings, not {type(value).__name__}")
    for rule in value:
        if not isinstance(rule, str):
            raise ValueError(f"rule_ids must hold strings, not {type(rule).__name__}")
    return tuple(value)


def _threshold(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"threshold must be a number, not {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"threshold must be finite, not {value}")
    return float(value)


def _candidates(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"candidates must be an integer, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"candidates must not be negative, not {value}")
    return int(value)


def _plain_json(value: object, where: str) -> Any:
    """A copy of ``value`` in the JSON types the database hands back, or ValueError naming
    where in ``details`` the offending value is."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value}, which JSON cannot hold")
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raise ValueError(f"{where} holds bytes: {_NOT_BIOMETRIC}")
    if isinstance(value, Mapping):
        copy: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where} has a key that is not a string: {key!r}")
            copy[key] = _plain_json(item, f"{where}[{key!r}]")
        return copy
    if isinstance(value, list | tuple):
        return [_plain_json(item, f"{where}[{index}]") for index, item in enumerate(value)]
    raise ValueError(
        f"{where} is a {type(value).__name__}, not a JSON value (string, number, boolean, "
        f"null, list or object): {_NOT_BIOMETRIC}"
    )
