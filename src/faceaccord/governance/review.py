"""Human review of organisations that ask to work at a larger scale.

Microsoft promised in June 2020 to "strengthen review processes for any customer seeking to use
this technology at scale". In faceaccord an organisation's scale tier caps its galleries and
searches (the SCALE-REVIEW rule denies anything beyond it); a higher tier is granted only when
a human reviewer, not the person who asked, approves the request, and every decision is kept
on the organisation with who decided and why.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from faceaccord.errors import ReviewError
from faceaccord.governance.entities import Organisation, ScaleApproval, ScaleTier

__all__ = [
    "InMemoryOrganisationRegistry",
    "OrganisationRegistry",
    "ScaleRequest",
    "ScaleReviews",
]


class OrganisationRegistry(Protocol):
    def get(self, organisation_id: str) -> Organisation: ...

    def save(self, organisation: Organisation) -> None: ...


class InMemoryOrganisationRegistry:
    """Organisations held in this process (the database-backed registry comes with the store)."""

    def __init__(self, organisations: list[Organisation] | None = None) -> None:
        self._items = {o.id: o for o in organisations or []}

    def get(self, organisation_id: str) -> Organisation:
        try:
            return self._items[organisation_id]
        except KeyError:
            raise ReviewError(f"no organisation {organisation_id!r}") from None

    def save(self, organisation: Organisation) -> None:
        self._items[organisation.id] = organisation


@dataclass(frozen=True, slots=True)
class ScaleRequest:
    id: str
    organisation_id: str
    tier: ScaleTier
    requested_by: str
    reason: str
    requested_at: datetime


class ScaleReviews:
    def __init__(
        self,
        *,
        registry: OrganisationRegistry,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.registry = registry
        self.clock = clock
        self._pending: dict[str, ScaleRequest] = {}
        self._ids = itertools.count(1)

    def request(
        self, *, organisation_id: str, tier: ScaleTier, requested_by: str, reason: str
    ) -> ScaleRequest:
        organisation = self.registry.get(organisation_id)
        if tier <= organisation.scale_tier:
            raise ReviewError(
                f"{organisation.name} already has tier {organisation.scale_tier.label}; "
                f"asking for {tier.label} needs no review"
            )
        _require_text(requested_by, "who is asking")
        _require_text(reason, "why the larger scale is needed")
        request = ScaleRequest(
            id=f"scale-{next(self._ids)}",
            organisation_id=organisation_id,
            tier=tier,
            requested_by=requested_by,
            reason=reason,
            requested_at=self.clock(),
        )
        self._pending[request.id] = request
        return request

    def pending(self) -> list[ScaleRequest]:
        return list(self._pending.values())

    def decide(self, request_id: str, *, reviewer: str, approve: bool, reason: str) -> Organisation:
        """Record a reviewer's decision; an approval raises the organisation's tier."""
        request = self._pending.get(request_id)
        if request is None:
            raise ReviewError(f"no pending scale request {request_id!r}")
        _require_text(reviewer, "the reviewer")
        _require_text(reason, "the reason for the decision")
        if reviewer == request.requested_by:
            raise ReviewError("the person who asked for a larger scale cannot review the request")
        organisation = self.registry.get(request.organisation_id)
        record = ScaleApproval(
            tier=request.tier,
            requested_by=request.requested_by,
            request_reason=request.reason,
            reviewer=reviewer,
            approved=approve,
            reason=reason,
            decided_at=self.clock(),
        )
        updated = replace(
            organisation,
            scale_tier=request.tier if approve else organisation.scale_tier,
            scale_history=(*organisation.scale_history, record),
        )
        self.registry.save(updated)
        del self._pending[request_id]
        return updated


def _require_text(value: str, what: str) -> None:
    if not value or not value.strip():
        raise ReviewError(f"{what} must be given")
