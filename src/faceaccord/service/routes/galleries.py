"""Galleries, subjects (enrolment, consent, erasure), identification and retention."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, UploadFile
from pydantic import BaseModel, Field
from sqlalchemy import select

from faceaccord.consent.records import MAX_CONSENT_DAYS, ConsentInput, notice_digest
from faceaccord.governance.vocabulary import ConsentKind, Purpose
from faceaccord.platform.enrolment import enroll
from faceaccord.platform.erasure import (
    SubjectNotFoundError,
    erase_subject,
    revoke_consent,
    run_retention,
    withdraw_gallery,
)
from faceaccord.platform.galleries import create_gallery, list_galleries
from faceaccord.platform.identification import identify
from faceaccord.platform.keys import Role
from faceaccord.service.auth import Caller, requires
from faceaccord.service.routes.forms import ContextForm, read_upload
from faceaccord.store.models import ConsentRow, SubjectRow, TemplateRow

router = APIRouter(prefix="/v1/galleries", tags=["galleries"])
AdminDep = Annotated[Caller, Depends(requires(Role.ADMIN))]
OperatorDep = Annotated[Caller, Depends(requires(Role.OPERATOR, Role.ADMIN))]
ReaderDep = Annotated[Caller, Depends(requires(Role.OPERATOR, Role.ADMIN, Role.AUDITOR))]
PurposeForm = Annotated[Purpose, Form(description="Why: one of the catalogue's purposes")]


class NewGallery(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    purpose: Purpose


@router.post("", status_code=201)
def new_gallery(body: NewGallery, who: AdminDep) -> dict[str, Any]:
    gallery = create_gallery(who.platform, name=body.name, purpose=body.purpose, actor=who.actor)
    return gallery.as_dict()


@router.get("")
def galleries(who: ReaderDep) -> dict[str, Any]:
    return {"galleries": [g.as_dict() for g in list_galleries(who.platform)]}


@router.delete("/{gallery}")
def withdraw(gallery: str, who: AdminDep) -> dict[str, Any]:
    """Take the gallery down: everyone in it is erased; a signed receipt of the counts."""
    return withdraw_gallery(who.platform, gallery=gallery, actor=who.actor).as_dict()


@router.post("/{gallery}/subjects", status_code=201)
def enrol(
    gallery: str,
    who: OperatorDep,
    context: ContextForm,
    subject: Annotated[str, Form(min_length=1, max_length=300)],
    purpose: PurposeForm,
    images: list[UploadFile],
    consent_kind: Annotated[ConsentKind | None, Form()] = None,
    consent_reference: Annotated[str | None, Form()] = None,
    notice: Annotated[str | None, Form(description="The notice's text, as shown")] = None,
    notice_version: Annotated[str | None, Form()] = None,
    consent_days: Annotated[int | None, Form(gt=0, le=MAX_CONSENT_DAYS)] = None,
) -> dict[str, Any]:
    """Enrol a subject from one or more photos, with the consent record the policy requires."""
    limit = who.platform.settings.images.max_bytes
    photos = [read_upload(image, limit=limit) for image in images]
    consent = None
    if consent_kind is not None and consent_kind is not ConsentKind.NONE:
        consent = ConsentInput(
            kind=consent_kind,
            reference=consent_reference or "",
            purpose=purpose,
            collected_at=who.platform.clock(),
            notice_sha256=notice_digest(notice) if notice else None,
            notice_version=notice_version,
            duration_days=consent_days,
        )
    done = enroll(
        who.platform,
        gallery=gallery,
        subject=subject,
        images=photos,
        purpose=purpose,
        actor=who.actor,
        consent=consent,
        context=context,
    )
    return done.as_dict()


@router.get("/{gallery}/subjects/{subject}")
def subject_record(gallery: str, subject: str, who: OperatorDep) -> dict[str, Any]:
    """The subject, its templates (model, quality; never the embedding) and consents."""
    with who.platform.transaction() as session:
        gallery_row = who.platform.gallery(session, gallery)
        row = session.scalar(
            select(SubjectRow).where(
                SubjectRow.gallery_id == gallery_row.id, SubjectRow.reference == subject
            )
        )
        if row is None:
            raise SubjectNotFoundError(f"no subject {subject!r} in gallery {gallery!r}")
        templates = session.scalars(select(TemplateRow).where(TemplateRow.subject_id == row.id))
        consents = session.scalars(select(ConsentRow).where(ConsentRow.subject_id == row.id))
        return {
            "subject": row.reference,
            "subject_id": row.id,
            "gallery": gallery,
            "created_at": row.created_at.isoformat(),
            "last_interaction_at": row.last_interaction_at.isoformat(),
            "retention_limits": row.retention_limits,
            "templates": [
                {
                    "template_id": t.id,
                    "model": t.model_id,
                    "model_sha256": t.model_sha256,
                    "quality": t.quality,
                    "created_at": t.created_at.isoformat(),
                }
                for t in templates
            ],
            "consents": [
                {
                    "kind": c.kind,
                    "reference": c.reference,
                    "purpose": c.purpose,
                    "notice_sha256": c.notice_sha256,
                    "notice_version": c.notice_version,
                    "collected_at": c.collected_at.isoformat(),
                    "expires_at": c.expires_at.isoformat() if c.expires_at else None,
                }
                for c in consents
            ],
        }


@router.delete("/{gallery}/subjects/{subject}")
def erase(gallery: str, subject: str, who: AdminDep) -> dict[str, Any]:
    """Erase the subject from this gallery: key destroyed, rows deleted; a signed receipt."""
    return erase_subject(who.platform, subject=subject, gallery=gallery, actor=who.actor).as_dict()


@router.post("/{gallery}/subjects/{subject}/consent/revocation")
def revoke(gallery: str, subject: str, who: AdminDep) -> dict[str, Any]:
    """The person withdrew consent: recorded, and they are erased (an erasure, so an admin's)."""
    return revoke_consent(who.platform, subject=subject, gallery=gallery, actor=who.actor).as_dict()


@router.post("/{gallery}/identify")
def search(
    gallery: str,
    who: OperatorDep,
    context: ContextForm,
    image: UploadFile,
    purpose: PurposeForm,
    k: Annotated[int, Form(ge=1, le=100)] = 5,
) -> dict[str, Any]:
    """Search the gallery. Candidates are candidates: ``pending_review`` where the policy requires
    human review; an empty list means no match."""
    data = read_upload(image, limit=who.platform.settings.images.max_bytes)
    found = identify(
        who.platform,
        gallery=gallery,
        image=data,
        purpose=purpose,
        actor=who.actor,
        k=k,
        context=context,
    )
    return found.as_dict()


retention = APIRouter(prefix="/v1/retention", tags=["galleries"])


@retention.post("/run")
def retention_run(who: AdminDep, dry_run: bool = False) -> dict[str, Any]:
    return run_retention(who.platform, actor=who.actor, dry_run=dry_run).as_dict()
