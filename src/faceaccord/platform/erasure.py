"""Erasure, consent revocation, takedown and retention.

Erasing destroys the subjects' data keys first (from that moment every copy of their templates,
backups included, is unreadable), then deletes their rows (templates and consents cascade) in one
transaction with the signed receipt and the audit entry, then drops them from the index. If the
process dies between the two steps, the next ``run_retention`` finds the subjects whose keys are
gone and completes their erasure.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from faceaccord.audit.log import AuditEvent
from faceaccord.consent.erasure import ErasureCounts, ErasureReceipt, reference_digest
from faceaccord.consent.retention import RetentionFacts, retention_deadline
from faceaccord.errors import InputError, PolicyDeniedError
from faceaccord.governance.entities import PolicyRequest
from faceaccord.governance.vocabulary import Operation, Purpose
from faceaccord.platform.deployment import Platform
from faceaccord.store.models import (
    ConsentRow,
    ErasureReceiptRow,
    GalleryRow,
    SubjectRow,
    TemplateRow,
)

__all__ = [
    "RetentionReport",
    "SubjectNotFoundError",
    "erase_subject",
    "revoke_consent",
    "run_retention",
    "withdraw_gallery",
]


class SubjectNotFoundError(InputError):
    code = "subject_not_found"


@dataclass(frozen=True, slots=True)
class RetentionReport:
    checked: int
    erased: tuple[dict[str, str], ...]
    receipts: tuple[ErasureReceipt, ...]
    orphan_keys_removed: int
    dry_run: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "checked": self.checked,
            "erased": list(self.erased),
            "receipts": [r.as_dict() for r in self.receipts],
            "orphan_keys_removed": self.orphan_keys_removed,
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
        for consent in consents:
            consent.revoked_at = now
    return erase_subject(
        platform, subject=subject, actor=actor, gallery=gallery, reason="consent_revoked"
    )


def withdraw_gallery(
    platform: Platform, *, gallery: str, actor: str, reason: str = "takedown"
) -> ErasureReceipt:
    """Take a whole gallery down: every subject in it is erased; the gallery is marked
    withdrawn and can no longer be used."""
    with platform.transaction() as session:
        row = platform.gallery(session, gallery)
        subject_ids = list(
            session.scalars(select(SubjectRow.id).where(SubjectRow.gallery_id == row.id))
        )
    _authorise_delete(platform, actor=actor, purpose=Purpose(row.purpose))
    receipt = _erase(
        platform,
        subject_ids=subject_ids,
        galleries={row.id: row.name},
        scope="gallery",
        reason=reason,
        reference=None,
        actor=actor,
        withdraw=row.id,
    )
    platform.drop_gallery_indexes(row.id)
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
    for subject_row, gallery_row in rows:
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
        item = _Due(subject_row.id, gallery_row.id, gallery_row.name, gallery_row.purpose, "", None)
        if subject_row.id not in keyed:
            due.append(replace(item, reason="erasure_completed"))
        elif deadline is not None and deadline[0] <= now:
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
    withdraw: str | None = None,
) -> ErasureReceipt:
    now = platform.clock()
    keys = platform.vault.destroy(subject_ids)
    with platform.transaction() as session:
        templates = _count(session, TemplateRow, subject_ids)
        consents = _count(session, ConsentRow, subject_ids)
        for start in range(0, len(subject_ids), 500):
            chunk = subject_ids[start : start + 500]
            session.execute(delete(TemplateRow).where(TemplateRow.subject_id.in_(chunk)))
            session.execute(delete(ConsentRow).where(ConsentRow.subject_id.in_(chunk)))
            session.execute(delete(SubjectRow).where(SubjectRow.id.in_(chunk)))
        if withdraw is not None:
            gallery_row = session.get(GalleryRow, withdraw)
            assert gallery_row is not None
            gallery_row.withdrawn_at = now
        index_entries = sum(
            platform.drop_subjects_from_indexes(gallery_id, subject_ids) for gallery_id in galleries
        )
        counts = ErasureCounts(
            subjects=len(subject_ids),
            templates=templates,
            consents=consents,
            keys_destroyed=keys,
            index_entries=index_entries,
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


def _count(session: Session, model: type[TemplateRow | ConsentRow], subject_ids: list[str]) -> int:
    total = 0
    for start in range(0, len(subject_ids), 500):
        chunk = subject_ids[start : start + 500]
        query = select(func.count()).select_from(model).where(model.subject_id.in_(chunk))
        total += int(session.scalar(query) or 0)
    return total


def _consent_expiries(session: Session, subject_ids: list[str]) -> dict[str, datetime]:
    expiries: dict[str, datetime] = {}
    for start in range(0, len(subject_ids), 500):
        chunk = subject_ids[start : start + 500]
        for subject_id, expires in session.execute(
            select(ConsentRow.subject_id, func.min(ConsentRow.expires_at))
            .where(ConsentRow.subject_id.in_(chunk), ConsentRow.expires_at.is_not(None))
            .group_by(ConsentRow.subject_id)
        ):
            if expires is not None:
                expiries[subject_id] = expires
    return expiries
