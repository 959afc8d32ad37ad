"""Organisations, their review by the platform, scale requests, and API keys."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from faceaccord.errors import InputError
from faceaccord.governance.entities import ScaleTier
from faceaccord.governance.vocabulary import Jurisdiction, Purpose, Sector
from faceaccord.platform.keys import Role, create_key, list_keys, revoke_key
from faceaccord.platform.organisations import (
    approve_organisation,
    decide_scale_request,
    organisation_json,
    register_organisation,
    request_scale,
    suspend_organisation,
)
from faceaccord.service.auth import Caller, CallerDep, PlatformReviewerDep, platform_of, requires
from faceaccord.service.ratelimit import limit_address

router = APIRouter(prefix="/v1", tags=["organisations"])
AdminDep = Annotated[Caller, Depends(requires(Role.ADMIN))]


class Registration(BaseModel):
    name: str = Field(min_length=1, max_length=300)
    sector: Sector
    jurisdiction: str = Field(description="ISO 3166, e.g. US-IL, DE, US-OR/portland")
    admin_name: str = Field(min_length=1, max_length=300, description="Who holds the admin key")
    acts_for_sector: Sector | None = None
    acts_for_jurisdiction: str | None = None


class Approval(BaseModel):
    purposes: list[Purpose] = Field(min_length=1)
    scale_tier: str = "small"
    reason: str = Field(min_length=1)
    retention_policy: str | None = None
    accountability_report: str | None = None


class Suspension(BaseModel):
    reason: str = Field(min_length=1)


class ScaleAsk(BaseModel):
    tier: str
    reason: str = Field(min_length=1)


class ScaleDecision(BaseModel):
    approve: bool
    reason: str = Field(min_length=1)


class NewKey(BaseModel):
    name: str = Field(min_length=1, max_length=300)
    roles: list[Role] = Field(min_length=1)


@router.post("/organisations", status_code=201, dependencies=[Depends(limit_address)])
def register(body: Registration, request: Request) -> dict[str, Any]:
    """Register an organisation. It starts *pending review* and can do nothing but delete until a
    platform reviewer approves it; the admin key returned here is shown once."""
    platform = platform_of(request)
    organisation = register_organisation(
        platform,
        name=body.name,
        sector=body.sector,
        jurisdiction=_required_jurisdiction(body.jurisdiction),
        actor=body.admin_name,
        acts_for_sector=body.acts_for_sector,
        acts_for_jurisdiction=_jurisdiction(body.acts_for_jurisdiction),
    )
    key, token = create_key(
        platform,
        organisation_id=organisation.id,
        name=body.admin_name,
        roles=frozenset({Role.ADMIN}),
        created_by=body.admin_name,
    )
    return {"organisation": organisation_json(organisation), "admin_key": {**key, "token": token}}


@router.get("/organisations/me")
def me(who: CallerDep) -> dict[str, Any]:
    return {
        **organisation_json(who.organisation),
        "key": who.identity.name,
        "roles": sorted(who.identity.roles),
    }


@router.post("/organisations/{organisation_id}/approval")
def approve(
    organisation_id: str, body: Approval, reviewer: PlatformReviewerDep, request: Request
) -> dict[str, Any]:
    organisation = approve_organisation(
        platform_of(request),
        organisation_id=organisation_id,
        reviewer=reviewer.name,
        purposes=frozenset(body.purposes),
        tier=_tier(body.scale_tier),
        reason=body.reason,
        retention_policy=body.retention_policy,
        accountability_report=body.accountability_report,
    )
    return organisation_json(organisation)


@router.post("/organisations/{organisation_id}/suspension")
def suspend(
    organisation_id: str, body: Suspension, reviewer: PlatformReviewerDep, request: Request
) -> dict[str, Any]:
    organisation = suspend_organisation(
        platform_of(request),
        organisation_id=organisation_id,
        reviewer=reviewer.name,
        reason=body.reason,
    )
    return organisation_json(organisation)


@router.post("/scale-requests", status_code=201)
def ask_for_scale(body: ScaleAsk, who: AdminDep) -> dict[str, Any]:
    return request_scale(
        who.platform, tier=_tier(body.tier), requested_by=who.identity.name, reason=body.reason
    )


@router.post("/scale-requests/{request_id}/decision")
def decide_scale(
    request_id: str, body: ScaleDecision, reviewer: PlatformReviewerDep, request: Request
) -> dict[str, Any]:
    organisation = decide_scale_request(
        platform_of(request),
        request_id=request_id,
        reviewer=reviewer.name,
        approve=body.approve,
        reason=body.reason,
    )
    return organisation_json(organisation)


@router.post("/keys", status_code=201)
def new_key(body: NewKey, who: AdminDep) -> dict[str, Any]:
    """A new key for this organisation; the token is in this response only."""
    if Role.PLATFORM_REVIEWER in body.roles:
        raise InputError("an organisation's key cannot be a platform reviewer")
    key, token = create_key(
        who.platform,
        organisation_id=who.organisation.id,
        name=body.name,
        roles=frozenset(body.roles),
        created_by=who.actor,
    )
    return {**key, "token": token}


@router.get("/keys")
def keys(who: AdminDep) -> dict[str, Any]:
    return {"keys": list_keys(who.platform, organisation_id=who.organisation.id)}


@router.delete("/keys/{key_id}", status_code=204)
def revoke(key_id: str, who: AdminDep) -> Response:
    revoke_key(who.platform, organisation_id=who.organisation.id, key_id=key_id, actor=who.actor)
    return Response(status_code=204)


def _jurisdiction(code: str | None) -> Jurisdiction | None:
    return None if code is None else _required_jurisdiction(code)


def _required_jurisdiction(code: str) -> Jurisdiction:
    try:
        return Jurisdiction.parse(code)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _tier(text: str) -> ScaleTier:
    try:
        return ScaleTier.parse(text)
    except ValueError as exc:
        raise InputError(str(exc)) from None
