"""Galleries: named collections of enrolled people, each for one purpose."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from faceaccord.audit.log import AuditEvent
from faceaccord.errors import InputError
from faceaccord.governance.entities import OrganisationStatus
from faceaccord.governance.vocabulary import Purpose
from faceaccord.platform.deployment import Platform
from faceaccord.store.models import GalleryRow, SubjectRow

__all__ = ["Gallery", "create_gallery", "list_galleries"]


@dataclass(frozen=True, slots=True)
class Gallery:
    id: str
    name: str
    purpose: Purpose
    created_at: datetime
    subjects: int
    withdrawn_at: datetime | None

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "purpose": str(self.purpose),
            "created_at": self.created_at.isoformat(),
            "subjects": self.subjects,
            "withdrawn_at": self.withdrawn_at.isoformat() if self.withdrawn_at else None,
        }


def create_gallery(platform: Platform, *, name: str, purpose: Purpose, actor: str) -> Gallery:
    name = name.strip()
    if not name:
        raise InputError("a gallery needs a name")
    if platform.organisation.status is not OrganisationStatus.APPROVED:
        raise InputError(
            f"{platform.organisation.name} is {platform.organisation.status}: galleries can be "
            "created once the organisation is approved"
        )
    if purpose not in platform.organisation.approved_purposes:
        raise InputError(
            f"{platform.organisation.name} is not approved for {purpose}; approved: "
            + ", ".join(sorted(platform.organisation.approved_purposes))
        )
    now = platform.clock()
    with platform.transaction() as session:
        exists = session.scalar(
            select(GalleryRow.id).where(
                GalleryRow.organisation_id == platform.organisation.id, GalleryRow.name == name
            )
        )
        if exists is not None:
            raise InputError(f"a gallery named {name!r} already exists")
        row = GalleryRow(
            id=str(uuid.uuid4()),
            organisation_id=platform.organisation.id,
            name=name,
            purpose=str(purpose),
            created_at=now,
            purpose_ends_at=None,
            withdrawn_at=None,
        )
        session.add(row)
        platform.record(
            session,
            AuditEvent(
                actor=actor,
                organisation_id=platform.organisation.id,
                operation="gallery_create",
                purpose=str(purpose),
                decision="done",
                gallery_id=row.id,
                details={"name": name},
            ),
        )
    return Gallery(row.id, name, purpose, now, 0, None)


def list_galleries(platform: Platform, *, include_withdrawn: bool = False) -> list[Gallery]:
    with platform.transaction() as session:
        query = (
            select(GalleryRow, func.count(SubjectRow.id))
            .outerjoin(SubjectRow)
            .where(GalleryRow.organisation_id == platform.organisation.id)
            .group_by(GalleryRow.id)
            .order_by(GalleryRow.name)
        )
        if not include_withdrawn:
            query = query.where(GalleryRow.withdrawn_at.is_(None))
        return [
            Gallery(row.id, row.name, Purpose(row.purpose), row.created_at, count, row.withdrawn_at)
            for row, count in session.execute(query).all()
        ]
