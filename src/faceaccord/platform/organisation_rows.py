"""Organisations to and from their rows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from faceaccord.errors import InputError
from faceaccord.governance.entities import Organisation, OrganisationStatus, ScaleTier
from faceaccord.governance.vocabulary import Jurisdiction, Purpose, Sector
from faceaccord.store.models import OrganisationRow

__all__ = ["OrganisationNotFoundError", "load_organisation", "save_organisation"]


class OrganisationNotFoundError(InputError):
    code = "organisation_not_found"


def load_organisation(session: Session, organisation_id: str) -> Organisation:
    row = session.get(OrganisationRow, organisation_id)
    if row is None:
        raise OrganisationNotFoundError(f"no organisation {organisation_id!r}")
    return Organisation(
        id=row.id,
        name=row.name,
        sector=Sector(row.sector),
        jurisdiction=Jurisdiction.parse(row.jurisdiction),
        status=OrganisationStatus(row.status),
        approved_purposes=frozenset(Purpose(p) for p in row.approved_purposes),
        scale_tier=ScaleTier(row.scale_tier),
        acts_for_sector=Sector(row.acts_for_sector) if row.acts_for_sector else None,
        acts_for_jurisdiction=(
            Jurisdiction.parse(row.acts_for_jurisdiction) if row.acts_for_jurisdiction else None
        ),
        retention_policy=row.retention_policy,
        accountability_report=row.accountability_report,
    )


def save_organisation(
    session: Session,
    organisation: Organisation,
    *,
    now: datetime,
    retention_days: int | None = None,
) -> None:
    """Insert or update the organisation's row."""
    row = session.get(OrganisationRow, organisation.id)
    if row is None:
        row = OrganisationRow(id=organisation.id, created_at=now)
        session.add(row)
    row.name = organisation.name
    row.sector = str(organisation.sector)
    row.jurisdiction = organisation.jurisdiction.code
    row.status = str(organisation.status)
    row.approved_purposes = sorted(str(p) for p in organisation.approved_purposes)
    row.scale_tier = int(organisation.scale_tier)
    row.acts_for_sector = (
        str(organisation.acts_for_sector) if organisation.acts_for_sector else None
    )
    row.acts_for_jurisdiction = (
        organisation.acts_for_jurisdiction.code if organisation.acts_for_jurisdiction else None
    )
    row.retention_policy = organisation.retention_policy
    row.accountability_report = organisation.accountability_report
    row.retention_days = retention_days
