"""Who is calling: an API key (``Authorization: Bearer fa_...`` or ``X-API-Key``) resolved to
its organisation and roles. Every route depends on ``caller`` or on a role check; tenant routes
act through ``Caller.platform``, which is scoped to the caller's organisation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from faceaccord.governance.entities import Organisation
from faceaccord.platform.deployment import Platform
from faceaccord.platform.keys import KeyIdentity, Role, authenticate
from faceaccord.platform.organisation_rows import load_organisation
from faceaccord.service.ratelimit import RateLimiter

__all__ = ["Caller", "CallerDep", "PlatformReviewerDep", "platform_of", "requires"]


@dataclass(frozen=True, slots=True)
class Caller:
    identity: KeyIdentity
    organisation: Organisation
    platform: Platform
    """The deployment acting for the caller's organisation."""

    @property
    def actor(self) -> str:
        """The person (or system) holding the key, as the audit log and reviews name them."""
        return self.identity.name


def platform_of(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def _token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key", "").strip()


def identity_of(request: Request) -> KeyIdentity:
    token = _token(request)
    if not token:
        raise HTTPException(
            401,
            "send an API key: 'Authorization: Bearer fa_...' or 'X-API-Key: fa_...'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    identity = authenticate(platform_of(request), token)
    if identity is None:
        raise HTTPException(
            401, "the API key is unknown or revoked", {"WWW-Authenticate": "Bearer"}
        )
    rate_limiter: RateLimiter = request.app.state.rate_limiter
    rate_limiter.hit(f"key:{identity.key_id}")
    return identity


def caller(identity: Annotated[KeyIdentity, Depends(identity_of)], request: Request) -> Caller:
    if identity.organisation_id is None:
        raise HTTPException(403, "a platform key acts on organisations, not for one")
    platform = platform_of(request)
    with platform.transaction() as session:
        organisation = load_organisation(session, identity.organisation_id)
    return Caller(identity, organisation, platform.acting_for(organisation))


CallerDep = Annotated[Caller, Depends(caller)]


def requires(*roles: Role) -> Callable[[Caller], Caller]:
    """A dependency that lets the call through only for a key with one of ``roles``."""

    def check(who: CallerDep) -> Caller:
        if not who.identity.roles & set(roles):
            needed = " or ".join(str(r) for r in roles)
            raise HTTPException(403, f"this needs a key with the role {needed}")
        return who

    return check


def platform_reviewer(identity: Annotated[KeyIdentity, Depends(identity_of)]) -> KeyIdentity:
    if Role.PLATFORM_REVIEWER not in identity.roles:
        raise HTTPException(403, "this needs a platform reviewer's key")
    return identity


PlatformReviewerDep = Annotated[KeyIdentity, Depends(platform_reviewer)]
