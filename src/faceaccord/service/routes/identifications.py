"""Identification results and their human review."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from faceaccord.platform.keys import Role
from faceaccord.platform.review import ReviewOutcome, identification_record, review_candidate
from faceaccord.service.auth import Caller, requires

router = APIRouter(prefix="/v1/identifications", tags=["review"])
ReaderDep = Annotated[
    Caller, Depends(requires(Role.OPERATOR, Role.REVIEWER, Role.AUDITOR, Role.ADMIN))
]
ReviewerDep = Annotated[Caller, Depends(requires(Role.REVIEWER))]


class Review(BaseModel):
    outcome: ReviewOutcome
    note: str | None = Field(default=None, max_length=2000)


@router.get("/{identification_id}")
def record(identification_id: str, who: ReaderDep) -> dict[str, Any]:
    return identification_record(who.platform, identification_id)


@router.post("/{identification_id}/candidates/{candidate_id}/reviews")
def review(
    identification_id: str, candidate_id: str, body: Review, who: ReviewerDep
) -> dict[str, Any]:
    """Confirm or reject a candidate. It is confirmed only when the required number of distinct
    reviewers have confirmed it; ``not_this_person`` is kept and shown on later searches."""
    return review_candidate(
        who.platform,
        identification_id=identification_id,
        candidate_id=candidate_id,
        reviewer=who.identity.name,
        outcome=body.outcome,
        note=body.note,
    )
