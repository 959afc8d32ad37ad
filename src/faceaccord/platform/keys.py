"""API keys: ``fa_<prefix>_<secret>``, shown once, stored as the SHA-256 of the secret (256
random bits: a slow hash adds nothing), scoped to one organisation (or to the platform) and to
roles, revocable. Looking a key up by its prefix and comparing digests in constant time means
a guessed key costs a database read, never a timing leak."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import select

from faceaccord.audit.log import AuditEvent
from faceaccord.errors import InputError
from faceaccord.governance.entities import OrganisationStatus
from faceaccord.platform.deployment import Platform
from faceaccord.store.models import ApiKeyRow, OrganisationRow

__all__ = ["KeyIdentity", "Role", "authenticate", "create_key", "list_keys", "revoke_key"]


class Role(StrEnum):
    ADMIN = "admin"
    """Manages the organisation's keys, galleries and erasures."""
    OPERATOR = "operator"
    """Detects, verifies, enrols and identifies."""
    REVIEWER = "reviewer"
    """Confirms or rejects candidates."""
    AUDITOR = "auditor"
    """Reads the audit log and the reports."""
    PLATFORM_REVIEWER = "platform_reviewer"
    """The platform's own staff: approves organisations and scale (platform keys only)."""


@dataclass(frozen=True, slots=True)
class KeyIdentity:
    key_id: str
    organisation_id: str | None
    name: str
    roles: frozenset[Role]


def create_key(
    platform: Platform,
    *,
    organisation_id: str | None,
    name: str,
    roles: frozenset[Role],
    created_by: str,
) -> tuple[dict[str, Any], str]:
    """A new key; returns its record and the token, which is never shown again."""
    if not name.strip():
        raise InputError("a key needs the name of the person or system that holds it")
    if not roles:
        raise InputError("a key needs at least one role")
    platform_key = Role.PLATFORM_REVIEWER in roles
    if platform_key != (organisation_id is None) or (platform_key and len(roles) > 1):
        raise InputError(
            "platform_reviewer is the only role of a platform key, and only of a platform key"
        )
    if organisation_id is not None:
        with platform.transaction() as session:
            status = session.scalar(
                select(OrganisationRow.status).where(OrganisationRow.id == organisation_id)
            )
        if status is None:
            raise InputError(f"no organisation {organisation_id!r}")
        if status == OrganisationStatus.SUSPENDED:
            raise InputError(f"organisation {organisation_id!r} is suspended: no new keys")
    prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    row = ApiKeyRow(
        id=str(uuid.uuid4()),
        prefix=prefix,
        secret_sha256=_digest(secret),
        organisation_id=organisation_id,
        name=name.strip(),
        roles=sorted(str(r) for r in roles),
        created_at=platform.clock(),
        created_by=created_by,
        revoked_at=None,
    )
    with platform.transaction() as session:
        session.add(row)
        platform.record(
            session,
            AuditEvent(
                actor=created_by,
                organisation_id=organisation_id or "platform",
                operation="key_create",
                decision="done",
                details={"key_id": row.id, "name": row.name, "roles": row.roles},
            ),
        )
    return _json(row), f"fa_{prefix}_{secret}"


def authenticate(platform: Platform, token: str) -> KeyIdentity | None:
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != "fa":
        return None
    _, prefix, secret = parts
    with platform.transaction() as session:
        row = session.scalar(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix))
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.secret_sha256, _digest(secret)):
        return None
    return KeyIdentity(
        key_id=row.id,
        organisation_id=row.organisation_id,
        name=row.name,
        roles=frozenset(Role(r) for r in row.roles),
    )


def list_keys(platform: Platform, *, organisation_id: str) -> list[dict[str, Any]]:
    with platform.transaction() as session:
        rows = session.scalars(
            select(ApiKeyRow)
            .where(ApiKeyRow.organisation_id == organisation_id)
            .order_by(ApiKeyRow.created_at)
        ).all()
        return [_json(row) for row in rows]


def revoke_key(platform: Platform, *, organisation_id: str, key_id: str, actor: str) -> None:
    with platform.transaction() as session:
        row = session.get(ApiKeyRow, key_id)
        if row is None or row.organisation_id != organisation_id:
            raise KeyNotFoundError(f"no key {key_id}")
        row.revoked_at = row.revoked_at or platform.clock()
        platform.record(
            session,
            AuditEvent(
                actor=actor,
                organisation_id=organisation_id,
                operation="key_revoke",
                decision="done",
                details={"key_id": key_id},
            ),
        )


class KeyNotFoundError(InputError):
    code = "key_not_found"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _json(row: ApiKeyRow) -> dict[str, Any]:
    return {
        "key_id": row.id,
        "prefix": row.prefix,
        "name": row.name,
        "roles": row.roles,
        "organisation_id": row.organisation_id,
        "created_at": row.created_at.isoformat(),
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }
