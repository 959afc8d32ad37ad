"""Human review of identification candidates.

A candidate found under a human-review obligation is ``pending_review``: it counts as a match
only once the required number of *distinct* reviewers (two under the EU AI Act) have confirmed
it. Any reviewer can reject it; ``not_this_person`` rejects it and is kept, so that later
searches show that this subject was wrongly proposed before. The person who ran the search
cannot review it. Every review is audited.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from faceaccord.audit.log import AuditEvent
from faceaccord.errors import InputError, ReviewError
from faceaccord.platform.deployment import Platform
from faceaccord.store.models import CandidateRow, IdentificationRow, ReviewRow

__all__ = [
    "IdentificationNotFoundError",
    "ReviewOutcome",
    "identification_record",
    "review_candidate",
]

PENDING, CONFIRMED, REJECTED = "pending_review", "confirmed", "rejected"


class IdentificationNotFoundError(InputError):
    code = "identification_not_found"


class ReviewOutcome(StrEnum):
    CONFIRM = "confirm"
    REJECT = "reject"
    NOT_THIS_PERSON = "not_this_person"


def identification_record(platform: Platform, identification_id: str) -> dict[str, Any]:
    """The identification with its candidates and their reviews (this organisation's only)."""
    with platform.transaction() as session:
        return _as_dict(_load(platform, session, identification_id))


def review_candidate(
    platform: Platform,
    *,
    identification_id: str,
    candidate_id: str,
    reviewer: str,
    outcome: ReviewOutcome,
    note: str | None = None,
) -> dict[str, Any]:
    with platform.transaction() as session:
        identification = _load(platform, session, identification_id, lock=True)
        candidate = next((c for c in identification.candidates if c.id == candidate_id), None)
        if candidate is None:
            raise IdentificationNotFoundError(
                f"identification {identification_id} has no candidate {candidate_id}"
            )
        if candidate.status != PENDING:
            raise ReviewError(f"this candidate is already {candidate.status}; nothing to review")
        if reviewer == identification.actor:
            raise ReviewError("the person who ran the search cannot review its candidates")
        if any(r.reviewer == reviewer for r in candidate.reviews):
            raise ReviewError(f"{reviewer} has already reviewed this candidate")
        candidate.reviews.append(
            ReviewRow(
                id=str(uuid.uuid4()),
                subject_id=candidate.subject_id,
                reviewer=reviewer,
                outcome=str(outcome),
                note=note,
                at=platform.clock(),
            )
        )
        confirmations = sum(r.outcome == ReviewOutcome.CONFIRM for r in candidate.reviews)
        if outcome is not ReviewOutcome.CONFIRM:
            candidate.status = REJECTED
        elif confirmations >= identification.required_reviewers:
            candidate.status = CONFIRMED
        identification.status = _overall(identification)
        platform.record(
            session,
            AuditEvent(
                actor=reviewer,
                organisation_id=platform.organisation.id,
                operation="review",
                purpose=identification.purpose,
                decision=str(outcome),
                gallery_id=identification.gallery_id,
                subject_id=candidate.subject_id,
                review_outcome=candidate.status,
                details={
                    "identification": identification.id,
                    "candidate": candidate.id,
                    "confirmations": confirmations,
                    "required_reviewers": identification.required_reviewers,
                },
            ),
        )
        session.flush()
        return _as_dict(identification)


def _load(
    platform: Platform, session: Session, identification_id: str, *, lock: bool = False
) -> IdentificationRow:
    mine = (
        IdentificationRow.id == identification_id,
        IdentificationRow.organisation_id == platform.organisation.id,
    )
    if lock:
        # A write first: it takes the row's lock on PostgreSQL and the database's write lock on
        # SQLite (where FOR UPDATE does nothing), so two reviews of one search are serialised
        # and the second reads the first one's review.
        session.execute(
            update(IdentificationRow).where(*mine).values(status=IdentificationRow.status)
        )
    row = session.scalar(select(IdentificationRow).where(*mine))
    if row is None:
        raise IdentificationNotFoundError(f"no identification {identification_id}")
    return row


def _overall(identification: IdentificationRow) -> str:
    statuses = {c.status for c in identification.candidates}
    if CONFIRMED in statuses:
        return CONFIRMED
    if statuses == {REJECTED}:
        return REJECTED
    return identification.status


def _as_dict(row: IdentificationRow) -> dict[str, Any]:
    return {
        "identification_id": row.id,
        "status": row.status,
        "purpose": row.purpose,
        "required_reviewers": row.required_reviewers,
        "threshold": row.threshold,
        "operating_point": row.operating_point,
        "created_at": row.created_at.isoformat(),
        "decision": row.decision,
        "candidates": [_candidate(c) for c in row.candidates],
    }


def _candidate(candidate: CandidateRow) -> dict[str, Any]:
    return {
        "candidate_id": candidate.id,
        "rank": candidate.rank,
        "subject": candidate.subject_reference,
        "subject_id": candidate.subject_id,
        "distance": round(candidate.distance, 6),
        "similarity": round(candidate.similarity, 6),
        "status": candidate.status,
        "reviews": [
            {"reviewer": r.reviewer, "outcome": r.outcome, "note": r.note, "at": r.at.isoformat()}
            for r in sorted(candidate.reviews, key=lambda r: r.at)
        ],
    }
