"""Organisations as tenants of one deployment: they register and start *pending review*; a
platform reviewer approves them for purposes and a scale tier (the review Microsoft promised in
2020 for customers using face recognition at scale), can suspend them, and decides their
requests for a larger scale. Every decision records who made it and why."""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from faceaccord.audit.log import AuditEvent
from faceaccord.errors import InputError, ReviewError
from faceaccord.governance.entities import (
    Organisation,
    OrganisationStatus,
    PolicyRequest,
    ScaleTier,
)
from faceaccord.governance.obligations import LogRetention
from faceaccord.governance.review import ScaleRequest, check_scale_request
from faceaccord.governance.review import decide_scale_request as decide_scale
from faceaccord.governance.vocabulary import Jurisdiction, Operation, Purpose, Sector
from faceaccord.platform.deployment import Platform
from faceaccord.platform.organisation_rows import (
    OrganisationNotFoundError,
    load_organisation,
    save_organisation,
)
from faceaccord.store.models import OrganisationRow, ScaleDecisionRow, ScaleRequestRow

__all__ = [
    "OrganisationNotFoundError",
    "approve_organisation",
    "decide_scale_request",
    "load_organisation",
    "organisation_json",
    "register_organisation",
    "request_scale",
    "required_log_retention_days",
    "suspend_organisation",
]


def register_organisation(
    platform: Platform,
    *,
    name: str,
    sector: Sector,
    jurisdiction: Jurisdiction,
    actor: str,
    acts_for_sector: Sector | None = None,
    acts_for_jurisdiction: Jurisdiction | None = None,
) -> Organisation:
    if not name.strip():
        raise InputError("an organisation needs a name")
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "org"
    organisation = Organisation(
        id=f"{slug}-{uuid.uuid4().hex[:8]}",
        name=name.strip(),
        sector=sector,
        jurisdiction=jurisdiction,
        status=OrganisationStatus.PENDING_REVIEW,
        acts_for_sector=acts_for_sector,
        acts_for_jurisdiction=acts_for_jurisdiction,
    )
    with platform.transaction() as session:
        save_organisation(session, organisation, now=platform.clock())
        _audit(platform, session, actor, organisation.id, "organisation_register", "pending_review")
    return organisation


def approve_organisation(
    platform: Platform,
    *,
    organisation_id: str,
    reviewer: str,
    purposes: frozenset[Purpose],
    tier: ScaleTier,
    reason: str,
    retention_policy: str | None = None,
    accountability_report: str | None = None,
) -> Organisation:
    if not reason.strip():
        raise ReviewError("an approval needs a reason")
    if not purposes:
        raise ReviewError("an approval names at least one purpose")
    with platform.transaction() as session:
        current = load_organisation(session, organisation_id)
        approved = Organisation(
            **{
                **_fields(current),
                "status": OrganisationStatus.APPROVED,
                "approved_purposes": purposes,
                "scale_tier": tier,
                "retention_policy": retention_policy or current.retention_policy,
                "accountability_report": accountability_report or current.accountability_report,
            }
        )
        save_organisation(session, approved, now=platform.clock())
        _audit(platform, session, reviewer, organisation_id, "organisation_review", "approved",
               reason=reason, purposes=sorted(purposes), tier=tier.label)  # fmt: skip
    return approved


def suspend_organisation(
    platform: Platform, *, organisation_id: str, reviewer: str, reason: str
) -> Organisation:
    if not reason.strip():
        raise ReviewError("a suspension needs a reason")
    with platform.transaction() as session:
        current = load_organisation(session, organisation_id)
        suspended = Organisation(**{**_fields(current), "status": OrganisationStatus.SUSPENDED})
        save_organisation(session, suspended, now=platform.clock())
        _audit(platform, session, reviewer, organisation_id, "organisation_review", "suspended",
               reason=reason)  # fmt: skip
    return suspended


def request_scale(
    platform: Platform, *, tier: ScaleTier, requested_by: str, reason: str
) -> dict[str, Any]:
    organisation = platform.organisation
    check_scale_request(organisation, ScaleRequest(tier, requested_by, reason))
    row = ScaleRequestRow(
        id=str(uuid.uuid4()),
        organisation_id=organisation.id,
        tier=int(tier),
        requested_by=requested_by,
        reason=reason,
        requested_at=platform.clock(),
        decided=False,
    )
    with platform.transaction() as session:
        session.add(row)
        _audit(platform, session, requested_by, organisation.id, "scale_request", "pending_review",
               tier=tier.label, reason=reason)  # fmt: skip
    return {"request_id": row.id, "tier": tier.label, "status": "pending_review"}


def decide_scale_request(
    platform: Platform, *, request_id: str, reviewer: str, approve: bool, reason: str
) -> Organisation:
    with platform.transaction() as session:
        # Claimed with one conditional write, so that two reviewers deciding at once cannot
        # both succeed (FOR UPDATE alone does nothing on SQLite).
        claimed = session.execute(
            update(ScaleRequestRow)
            .where(ScaleRequestRow.id == request_id, ScaleRequestRow.decided.is_(False))
            .values(decided=True)
        )
        request = session.get(ScaleRequestRow, request_id)
        if request is None or not claimed.rowcount:  # type: ignore[attr-defined]
            raise ReviewError(f"no pending scale request {request_id}")
        current = load_organisation(session, request.organisation_id)
        tier = ScaleTier(request.tier)
        updated = decide_scale(
            current,
            ScaleRequest(tier, request.requested_by, request.reason),
            reviewer=reviewer,
            approve=approve,
            reason=reason,
            at=platform.clock(),
        )
        save_organisation(session, updated, now=platform.clock())
        decided = updated.scale_history[-1]
        session.add(
            ScaleDecisionRow(
                organisation_id=current.id, tier=int(decided.tier),
                requested_by=decided.requested_by, request_reason=decided.request_reason,
                reviewer=decided.reviewer, approved=decided.approved, reason=decided.reason,
                decided_at=decided.decided_at,
            )
        )  # fmt: skip
        _audit(platform, session, reviewer, current.id, "scale_review",
               "approved" if approve else "refused", tier=tier.label, reason=reason)  # fmt: skip
    return updated


def required_log_retention_days(platform: Platform) -> int:
    """The longest log retention that any rule applying to any organisation in the deployment
    can require (whatever the request), or that the deployment sets: the log is one chain for
    every tenant, so pruning it must respect the strictest of them."""
    with platform.transaction() as session:
        organisations = [platform.organisation] + [
            load_organisation(session, organisation_id)
            for organisation_id in session.scalars(select(OrganisationRow.id))
            if organisation_id != platform.organisation.id
        ]
    days = [platform.settings.policy.log_retention_days or 0]
    for organisation in organisations:
        request = PolicyRequest(
            organisation=organisation,
            operation=Operation.IDENTIFY,
            purpose=next(iter(sorted(organisation.approved_purposes)), Purpose.ACCESS_CONTROL),
            on=platform.clock().date(),
        )
        for pack in platform.policy.applicable_packs(request):
            days += [
                o.days for p in pack.policies for o in p.obligations if isinstance(o, LogRetention)
            ]
    return max(days)


def organisation_json(organisation: Organisation) -> dict[str, Any]:
    return {
        "id": organisation.id,
        "name": organisation.name,
        "sector": str(organisation.sector),
        "jurisdiction": organisation.jurisdiction.code,
        "status": str(organisation.status),
        "approved_purposes": sorted(str(p) for p in organisation.approved_purposes),
        "scale_tier": organisation.scale_tier.label,
    }


def _fields(organisation: Organisation) -> dict[str, Any]:
    return {
        "id": organisation.id,
        "name": organisation.name,
        "sector": organisation.sector,
        "jurisdiction": organisation.jurisdiction,
        "status": organisation.status,
        "approved_purposes": organisation.approved_purposes,
        "scale_tier": organisation.scale_tier,
        "acts_for_sector": organisation.acts_for_sector,
        "acts_for_jurisdiction": organisation.acts_for_jurisdiction,
        "retention_policy": organisation.retention_policy,
        "accountability_report": organisation.accountability_report,
    }


def _audit(
    platform: Platform,
    session: Session,
    actor: str,
    organisation_id: str,
    operation: str,
    decision: str,
    **details: object,
) -> None:
    platform.record(
        session,
        AuditEvent(
            actor=actor,
            organisation_id=organisation_id,
            operation=operation,
            decision=decision,
            details=details,
        ),
    )
