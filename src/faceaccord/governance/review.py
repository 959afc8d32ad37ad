"""Human review of organisations that ask to work at a larger scale: the rules.

Microsoft promised in June 2020 to "strengthen review processes for any customer seeking to use
this technology at scale". In faceaccord an organisation's scale tier caps its galleries and
searches (the SCALE-REVIEW rule denies anything beyond it); a higher tier is granted only when
a human reviewer, not the person who asked, approves the request, and every decision is kept
on the organisation with who decided and why. ``platform.organisations`` stores the requests
and decisions; these functions decide what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from faceaccord.errors import ReviewError
from faceaccord.governance.entities import Organisation, ScaleApproval, ScaleTier

__all__ = ["ScaleRequest", "check_scale_request", "decide_scale_request"]


@dataclass(frozen=True, slots=True)
class ScaleRequest:
    tier: ScaleTier
    requested_by: str
    reason: str


def check_scale_request(organisation: Organisation, request: ScaleRequest) -> None:
    """Refuse a request that needs no review or does not say who asks and why."""
    if request.tier <= organisation.scale_tier:
        raise ReviewError(
            f"{organisation.name} already has tier {organisation.scale_tier.label}; "
            f"asking for {request.tier.label} needs no review"
        )
    _require_text(request.requested_by, "who is asking")
    _require_text(request.reason, "why the larger scale is needed")


def decide_scale_request(
    organisation: Organisation,
    request: ScaleRequest,
    *,
    reviewer: str,
    approve: bool,
    reason: str,
    at: datetime,
) -> Organisation:
    """The organisation after a reviewer's decision: an approval raises its tier; either way
    the decision joins its history."""
    _require_text(reviewer, "the reviewer")
    _require_text(reason, "the reason for the decision")
    if reviewer.strip() == request.requested_by.strip():
        raise ReviewError("the person who asked for a larger scale cannot review the request")
    record = ScaleApproval(
        tier=request.tier,
        requested_by=request.requested_by,
        request_reason=request.reason,
        reviewer=reviewer,
        approved=approve,
        reason=reason,
        decided_at=at,
    )
    return replace(
        organisation,
        scale_tier=request.tier if approve else organisation.scale_tier,
        scale_history=(*organisation.scale_history, record),
    )


def _require_text(value: str, what: str) -> None:
    if not value or not value.strip():
        raise ReviewError(f"{what} must be given")
