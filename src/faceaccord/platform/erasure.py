"""Erasure, consent revocation, takedown and retention.

Erasing first marks the subjects as being erased (committed; they leave every index), then
destroys their data keys (from that moment every copy of their templates, backups included, is
unreadable), then deletes their rows, with the names kept on past searches and reviewers' notes
about them, in one transaction with the signed receipt and the audit entry. If the process dies
part-way, the next ``run_retention`` completes every marked erasure. A subject whose key is
missing without the mark is reported, never erased: that is a vault restored from an old backup
or a wrong vault, not an erasure.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from faceaccord.audit.log import AuditEvent
from faceaccord.consent.erasure import ErasureCounts, ErasureReceipt, reference_digest
from faceaccord.consent.retention import RetentionFacts, retention_deadline
from faceaccord.errors import InputError, PolicyDeniedError
from faceaccord.governance.entities import PolicyRequest
from faceaccord.governance.vocabulary import Operation, Purpose
from faceaccord.platform.deployment import GalleryNotFoundError, Platform
from faceaccord.store.models import (
    CandidateRow,
    ConsentRow,
    ErasureReceiptRow,
    GalleryRow,
    ReviewRow,
    SubjectRow,
    TemplateRow,
)

__all__ = [
    "NoConsentOnRecordError",
    "RetentionReport",
    "SubjectNotFoundError",
    "erase_subject",
    "revoke_consent",
    "run_retention",
    "withdraw_gallery",
]


class SubjectNotFoundError(InputError):
    code = "subject_not_found"


class NoConsentOnRecordError(InputError):
    code = "no_consent_on_record"


@dataclass(frozen=True, slots=True)
class RetentionReport:
    checked: int
    erased: tuple[dict[str, str], ...]
    receipts: tuple[ErasureReceipt, ...]
    orphan_keys_removed: int
    keys_missing: tuple[str, ...]
    """Subjects whose data key is gone although no erasure of theirs began: a sign that the key
    vault was restored from an old backup or swapped. They are left alone for an operator."""
    dry_run: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "checked": self.checked,
            "erased": list(self.erased),
            "receipts": [r.as_dict() for r in self.receipts],
            "orphan_keys_removed": self.orphan_keys_removed,
            "keys_missing": list(self.keys_missing),
            "dry_run": self.dry_run,
        }


def erase_subject(
    platform: Platform,
    *,
    subject: str,
    actor: str,
    gallery: str | None = None,
    reason: str = "erasure_request",
) -> ErasureReceipt:
    """Erase a person (by the organisation's reference) from one gallery, or from every gallery
    of the organisation; returns a signed receipt."""
    with platform.transaction() as session:
        query = (
            select(SubjectRow.id, GalleryRow.id, GalleryRow.name, GalleryRow.purpose)
            .join(GalleryRow)
            .where(
                GalleryRow.organisation_id == platform.organisation.id,
                SubjectRow.reference == subject,
            )
        )
        if gallery is not None:
            query = query.where(GalleryRow.id == platform.gallery(session, gallery).id)
        found = session.execute(query).all()
    if not found:
        where = f"gallery {gallery!r}" if gallery else "any gallery"
        raise SubjectNotFoundError(f"no subject {subject!r} in {where}")
    _authorise_delete(platform, actor=actor, purpose=Purpose(found[0][3]))
    return _erase(
        platform,
        subject_ids=[subject_id for subject_id, *_ in found],
        galleries={gallery_id: name for _, gallery_id, name, _ in found},
        scope="subject",
        reason=reason,
        reference=subject,
        actor=actor,
    )


def revoke_consent(
    platform: Platform, *, subject: str, actor: str, gallery: str | None = None
) -> ErasureReceipt:
    """Record the revocation of the person's consent; revocation triggers erasure."""
    now = platform.clock()
    with platform.transaction() as session:
        ids = (
            select(SubjectRow.id)
            .join(GalleryRow)
            .where(
                GalleryRow.organisation_id == platform.organisation.id,
                SubjectRow.reference == subject,
            )
        )
        if gallery is not None:
            ids = ids.where(GalleryRow.id == platform.gallery(session, gallery).id)
        consents = session.scalars(select(ConsentRow).where(ConsentRow.subject_id.in_(ids))).all()
        if not consents:
            where = f"gallery {gallery!r}" if gallery else "any gallery"
            raise NoConsentOnRecordError(
                f"no consent of {subject!r} is on record in {where}: nothing to revoke (to erase "
                "a person enrolled without consent, use erasure)"
            )
        for consent in consents:
            consent.revoked_at = now
    return erase_subject(
        platform, subject=subject, actor=actor, gallery=gallery, reason="consent_revoked"
    )


def withdraw_gallery(
    platform: Platform, *, gallery: str, actor: str, reason: str = "takedown"
) -> ErasureReceipt:
    """Take a whole gallery down: it is marked withdrawn first (from then on no enrolment into it
    can commit and no search can use it), then every subject in it is erased. If the process
    dies in between, the next ``run_retention`` erases the rest."""
    with platform.transaction() as session:
        row = platform.gallery(session, gallery)
    _authorise_delete(platform, actor=actor, purpose=Purpose(row.purpose))
    with platform.changing_galleries([row.id]) as change:
        locked = change.session.get(GalleryRow, row.id, populate_existing=True)
        if locked is None or locked.withdrawn_at is not None:
            raise GalleryNotFoundError(f"gallery {gallery!r} was withdrawn")
        locked.withdrawn_at = platform.clock()
        subject_ids = list(
            change.session.scalars(select(SubjectRow.id).where(SubjectRow.gallery_id == row.id))
        )
    receipt = _erase(
        platform,
        subject_ids=subject_ids,
        galleries={row.id: row.name},
        scope="gallery",
        reason=reason,
        reference=None,
        actor=actor,
    )
    platform.forget_indexes(row.id)
    return receipt


@dataclass(frozen=True, slots=True)
class _Due:
    subject_id: str
    gallery_id: str
    gallery: str
    purpose: str
    reason: str
    due_at: datetime | None

    def as_dict(self) -> dict[str, str]:
        return {
            "subject_id": self.subject_id,
            "gallery": self.gallery,
            "reason": self.reason,
            "due_at": self.due_at.isoformat() if self.due_at else "",
        }


def run_retention(
    platform: Platform, *, actor: str = "retention", dry_run: bool = False
) -> RetentionReport:
    """Erase every subject whose retention deadline has passed, and finish erasures that were
    interrupted after the key was destroyed; ``dry_run`` only reports."""
    now = platform.clock()
    with platform.transaction() as session:
        rows = session.execute(
            select(SubjectRow, GalleryRow)
            .join(GalleryRow)
            .where(GalleryRow.organisation_id == platform.organisation.id)
        ).all()
        expiry = _consent_expiries(session, [subject.id for subject, _ in rows])
    keyed = platform.vault.subject_ids()
    due: list[_Due] = []
    keys_missing: list[str] = []
    for subject_row, gallery_row in rows:
        item = _Due(subject_row.id, gallery_row.id, gallery_row.name, gallery_row.purpose, "", None)
        if subject_row.erasing_at is not None:
            due.append(replace(item, reason="erasure_completed"))
            continue
        if gallery_row.withdrawn_at is not None:
            due.append(replace(item, reason="takedown_completed"))
            continue
        if subject_row.id not in keyed:
            keys_missing.append(subject_row.id)  # never erased on that ground: see the report
            continue
        deadline = retention_deadline(
            RetentionFacts(
                created_at=subject_row.created_at,
                last_interaction_at=subject_row.last_interaction_at,
                limits=tuple(subject_row.retention_limits),
                consent_expires_at=expiry.get(subject_row.id),
                purpose_ends_at=gallery_row.purpose_ends_at,
                organisation_days=platform.settings.organisation.retention_days,
            )
        )
        if deadline is not None and deadline[0] <= now:
            due.append(replace(item, reason=deadline[1], due_at=deadline[0]))
    orphans = _orphan_keys(platform, now)
    receipts: list[ErasureReceipt] = []
    if not dry_run:
        for item in due:
            _authorise_delete(platform, actor=actor, purpose=Purpose(item.purpose))
            receipts.append(
                _erase(
                    platform,
                    subject_ids=[item.subject_id],
                    galleries={item.gallery_id: item.gallery},
                    scope="subject",
                    reason=item.reason,
                    reference=None,
                    actor=actor,
                )
            )
        platform.vault.destroy(orphans)
    return RetentionReport(
        checked=len(rows),
        erased=tuple(item.as_dict() for item in due),
        receipts=tuple(receipts),
        orphan_keys_removed=0 if dry_run else len(orphans),
        keys_missing=tuple(keys_missing),
        dry_run=dry_run,
    )


ORPHAN_GRACE = timedelta(hours=1)


def _orphan_keys(platform: Platform, now: datetime) -> list[str]:
    """Keys with no subject in any organisation (an enrolment interrupted between committing the
    key and committing the subject), older than an hour, so that an enrolment in progress in
    another request or tenant never loses its key."""
    candidates = platform.vault.subject_ids(created_before=now - ORPHAN_GRACE)
    if not candidates:
        return []
    with platform.transaction() as session:
        stored: set[str] = set()
        ids = sorted(candidates)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            stored.update(session.scalars(select(SubjectRow.id).where(SubjectRow.id.in_(chunk))))
    return sorted(candidates - stored)


def _authorise_delete(platform: Platform, *, actor: str, purpose: Purpose) -> None:
    """Deletion is decided like any operation (the core pack always allows it, even for a
    suspended organisation), so that the audit log shows who erased what under which rules."""
    decision = platform.policy.decide(
        PolicyRequest(
            organisation=platform.organisation,
            operation=Operation.DELETE,
            purpose=purpose,
            on=platform.clock().date(),
        )
    )
    if not decision.allowed:
        platform.record_decision(
            actor=actor, operation="delete", purpose=purpose, decision=decision, outcome="denied"
        )
        raise PolicyDeniedError(decision)


def _erase(
    platform: Platform,
    *,
    subject_ids: list[str],
    galleries: dict[str, str],
    scope: str,
    reason: str,
    reference: str | None,
    actor: str,
) -> ErasureReceipt:
    now = platform.clock()
    removed: list[int] = []
    # 1. The mark, committed before any key is destroyed; the subjects leave every index.
    with platform.changing_galleries(galleries) as change:
        for chunk in _chunks(subject_ids):
            change.session.execute(
                update(SubjectRow)
                .where(SubjectRow.id.in_(chunk), SubjectRow.erasing_at.is_(None))
                .values(erasing_at=now)
            )
        change.then(lambda index: removed.append(index.remove_subjects(subject_ids)))
    # 2. The keys: from here on no copy of the templates can be read.
    keys = platform.vault.destroy(subject_ids)
    # 3. The rows, the names kept on past searches, the receipt and the audit entry.
    with platform.transaction() as session:
        templates = _count(session, TemplateRow, subject_ids)
        consents = _count(session, ConsentRow, subject_ids)
        for chunk in _chunks(subject_ids):
            session.execute(delete(TemplateRow).where(TemplateRow.subject_id.in_(chunk)))
            session.execute(delete(ConsentRow).where(ConsentRow.subject_id.in_(chunk)))
            session.execute(delete(SubjectRow).where(SubjectRow.id.in_(chunk)))
            session.execute(
                update(CandidateRow)
                .where(CandidateRow.subject_id.in_(chunk))
                .values(subject_reference=None)
            )
            session.execute(
                update(ReviewRow).where(ReviewRow.subject_id.in_(chunk)).values(note=None)
            )
        counts = ErasureCounts(
            subjects=len(subject_ids),
            templates=templates,
            consents=consents,
            keys_destroyed=keys,
            index_entries=sum(removed),
        )
        receipt = ErasureReceipt.issue(
            key=platform.signing_key,
            receipt_id=str(uuid.uuid4()),
            organisation_id=platform.organisation.id,
            scope=scope,
            reason=reason,
            galleries=sorted(galleries.values()),
            reference_sha256=(
                reference_digest(platform.organisation.id, reference) if reference else None
            ),
            counts=counts,
            erased_at=now,
        )
        session.add(
            ErasureReceiptRow(
                id=receipt.document["receipt"],
                organisation_id=platform.organisation.id,
                scope=scope,
                reason=reason,
                document=receipt.document,
                erased_at=now,
                key_id=receipt.key_id,
                signature=receipt.signature,
            )
        )
        platform.record(
            session,
            AuditEvent(
                actor=actor,
                organisation_id=platform.organisation.id,
                operation="erase" if scope == "subject" else "takedown",
                decision="done",
                gallery_id=next(iter(galleries)) if len(galleries) == 1 else None,
                details={
                    "reason": reason,
                    "receipt": receipt.document["receipt"],
                    "counts": counts.as_dict(),
                    "galleries": sorted(galleries.values()),
                },
            ),
        )
    return receipt


def _chunks(ids: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _count(session: Session, model: type[TemplateRow | ConsentRow], subject_ids: list[str]) -> int:
    total = 0
    for chunk in _chunks(subject_ids):
        query = select(func.count()).select_from(model).where(model.subject_id.in_(chunk))
        total += int(session.scalar(query) or 0)
    return total


def _consent_expiries(session: Session, subject_ids: list[str]) -> dict[str, datetime]:
    """When each subject's consent runs out: the latest expiry among its consents still in
    force (a consent without an expiry: never); if every consent was revoked, the last
    revocation. Subjects enrolled without a consent record have no entry."""
    expiries: dict[str, datetime] = {}
    open_ended: set[str] = set()
    for chunk in _chunks(subject_ids):
        for subject_id, expires_at, revoked_at in session.execute(
            select(ConsentRow.subject_id, ConsentRow.expires_at, ConsentRow.revoked_at).where(
                ConsentRow.subject_id.in_(chunk)
            )
        ):
            if revoked_at is None and expires_at is None:
                open_ended.add(subject_id)
                continue
            ends = min(t for t in (expires_at, revoked_at) if t is not None)
            expiries[subject_id] = max(ends, expiries.get(subject_id, ends))
    for subject_id in open_ended:
        expiries.pop(subject_id, None)
    return expiries
