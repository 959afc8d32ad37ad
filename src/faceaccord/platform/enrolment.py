"""Enrolment: the policy first, then consent, then the quality gate, then one transaction that
stores the subject, the consent record, the encrypted templates and the audit entry together.

Order matters for crash safety: the subject's data key is committed to the key vault before
anything is encrypted with it, and the subject, consent, templates and audit entry commit in
one transaction; the index (in memory) is updated only after that commit and is rebuilt from the
database at start. A crash therefore leaves at worst an unused key, never a template without one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from faceaccord.audit.log import AuditEvent
from faceaccord.biometrics.faces import FaceTemplate
from faceaccord.biometrics.images import ImageSource
from faceaccord.consent.records import ConsentInput, check_consent_obligations
from faceaccord.errors import FaceAccordError, InputError, PolicyDeniedError
from faceaccord.governance.decisions import Decision
from faceaccord.governance.entities import PolicyRequest, RequestContext, ScaleTier
from faceaccord.governance.obligations import RetentionLimit
from faceaccord.governance.vocabulary import ConsentKind, Operation, Purpose
from faceaccord.matching.index import TemplateIndex
from faceaccord.platform.deployment import GalleryNotFoundError, Platform
from faceaccord.protection.envelope import seal_template
from faceaccord.store.models import ConsentRow, GalleryRow, SubjectRow, TemplateRow

__all__ = [
    "Enrolment",
    "EnrolmentPermit",
    "authorise_enrolment",
    "complete_enrolment",
    "enroll",
    "refuse_enrolment",
]


@dataclass(frozen=True, slots=True)
class Enrolment:
    subject_id: str
    subject: str
    gallery: str
    templates: int
    decision: Decision
    new_subject: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "subject": self.subject,
            "subject_id": self.subject_id,
            "gallery": self.gallery,
            "templates": self.templates,
            "new_subject": self.new_subject,
            "decision": self.decision.as_dict(),
        }


def enroll(
    platform: Platform,
    *,
    gallery: str,
    subject: str,
    images: Sequence[ImageSource],
    purpose: Purpose,
    actor: str,
    consent: ConsentInput | None = None,
    context: RequestContext | None = None,
) -> Enrolment:
    """Enrol ``subject`` (the organisation's reference for the person) into ``gallery`` from one
    or more photos, each of which must pass the quality gate."""
    permit = authorise_enrolment(
        platform, gallery=gallery, subject=subject, photos=len(images), purpose=purpose,
        actor=actor, consent=consent, context=context,
    )  # fmt: skip
    try:
        templates = [platform.engine.enroll(image) for image in images]
    except FaceAccordError as error:  # bad photo, no face, quality gate
        refuse_enrolment(platform, permit, error)
        raise
    return complete_enrolment(platform, permit, templates)


@dataclass(frozen=True, slots=True)
class EnrolmentPermit:
    """The policy's and consent's yes to one enrolment, before any biometric processing."""

    target: _Target
    decision: Decision
    consent: ConsentInput | None
    actor: str


def authorise_enrolment(
    platform: Platform,
    *,
    gallery: str,
    subject: str,
    photos: int,
    purpose: Purpose,
    actor: str,
    consent: ConsentInput | None = None,
    context: RequestContext | None = None,
    pending: int = 0,
) -> EnrolmentPermit:
    """Decide whether this enrolment may happen (policy, then consent obligations); a refusal
    is recorded and raised. Nothing biometric happens here. ``pending`` counts templates that
    permits already given in the same bulk run will add, so the scale tier sees them too."""
    subject = subject.strip()
    if not subject:
        raise InputError("a subject needs a reference (a name or number)")
    if photos < 1:
        raise InputError("enrolment needs at least one photo")
    with platform.transaction() as session:
        gallery_row = platform.gallery(session, gallery)
        if gallery_row.purpose != purpose:
            raise InputError(
                f"gallery {gallery!r} is for {gallery_row.purpose}; it cannot enrol for {purpose}"
            )
        in_use = platform.templates_in_use(session)
    if consent is not None and consent.purpose != purpose:
        raise InputError(f"the consent is for {consent.purpose}, not {purpose}")

    request = PolicyRequest(
        organisation=platform.organisation,
        operation=Operation.ENROLL,
        purpose=purpose,
        context=replace(
            context or RequestContext(),
            consent=consent.kind if consent else ConsentKind.NONE,
            notice_given=bool(consent and consent.notice_given),
            requested_tier=ScaleTier.needed_for(gallery_size=in_use + pending + photos),
        ),
        on=platform.clock().date(),
    )
    decision = platform.policy.decide(request)
    if not decision.allowed:
        platform.record_decision(
            actor=actor, operation="enroll", purpose=purpose, decision=decision,
            gallery_id=gallery_row.id, outcome="denied",
        )  # fmt: skip
        raise PolicyDeniedError(decision)
    subject_place = request.context.subject_jurisdiction
    permit = EnrolmentPermit(
        target=_Target(
            gallery_row.id, gallery, subject, purpose, subject_place.code if subject_place else None
        ),
        decision=decision,
        consent=consent,
        actor=actor,
    )
    try:
        check_consent_obligations(decision.obligations, consent)
    except FaceAccordError as error:
        refuse_enrolment(platform, permit, error)
        raise
    return permit


def refuse_enrolment(platform: Platform, permit: EnrolmentPermit, error: FaceAccordError) -> None:
    """Record that a permitted enrolment failed (consent missing, bad photo, quality gate)."""
    platform.record_decision(
        actor=permit.actor, operation="enroll", purpose=permit.target.purpose,
        decision=permit.decision, gallery_id=permit.target.gallery_id, outcome=error.code,
    )  # fmt: skip


def complete_enrolment(
    platform: Platform, permit: EnrolmentPermit, templates: list[FaceTemplate]
) -> Enrolment:
    """Store the templates made under ``permit``."""
    return _store(platform, permit.target, templates, permit.consent, permit.decision, permit.actor)


@dataclass(frozen=True, slots=True)
class _Target:
    gallery_id: str
    gallery: str
    reference: str
    purpose: Purpose
    jurisdiction: str | None


def _store(
    platform: Platform,
    target: _Target,
    templates: list[FaceTemplate],
    consent: ConsentInput | None,
    decision: Decision,
    actor: str,
) -> Enrolment:
    """Store, as a new subject or as more templates of an existing one. If another request
    creates the same subject at the same moment, the loser's fresh key is destroyed and its
    templates are stored once more under the winner's subject."""
    try:
        return _store_once(platform, target, templates, consent, decision, actor)
    except _SubjectCreatedMeanwhileError as race:
        platform.vault.destroy([race.subject_id])
        return _store_once(platform, target, templates, consent, decision, actor)


class _SubjectCreatedMeanwhileError(Exception):
    def __init__(self, subject_id: str) -> None:
        super().__init__(subject_id)
        self.subject_id = subject_id


def _store_once(
    platform: Platform,
    target: _Target,
    templates: list[FaceTemplate],
    consent: ConsentInput | None,
    decision: Decision,
    actor: str,
) -> Enrolment:
    gallery_id, reference = target.gallery_id, target.reference
    now = platform.clock()
    card = platform.engine.card
    limits: list[dict[str, object]] = [
        {"days": o.days, "after": o.after}
        for o in decision.obligations
        if isinstance(o, RetentionLimit)
    ]
    with platform.transaction() as session:
        existing = session.scalar(
            select(SubjectRow).where(
                SubjectRow.gallery_id == gallery_id, SubjectRow.reference == reference
            )
        )
    new_subject = existing is None
    subject_id = str(uuid.uuid4()) if existing is None else existing.id
    data_key = (
        platform.vault.create_key(subject_id, now=now)
        if new_subject
        else platform.vault.data_key(subject_id)
    )
    rows = []
    for template in templates:
        template_id = str(uuid.uuid4())
        sealed = seal_template(
            data_key, template.embedding, template_id=template_id, model_id=template.model_id
        )
        rows.append(
            TemplateRow(
                id=template_id,
                subject_id=subject_id,
                model_id=template.model_id,
                model_sha256=card.sha256,
                nonce=sealed.nonce,
                ciphertext=sealed.ciphertext,
                quality=template.face.quality.as_dict(),
                created_at=now,
            )
        )
    vectors = np.stack([t.embedding for t in templates])
    stored = _Rows(new_subject, subject_id, limits, rows, vectors)
    try:
        _commit(platform, target, stored, consent, decision, actor)
    except IntegrityError:
        if not new_subject:
            raise
        raise _SubjectCreatedMeanwhileError(subject_id) from None
    except GalleryNotFoundError:
        if new_subject:
            platform.vault.destroy([subject_id])  # never used: the subject was not stored
        raise
    return Enrolment(
        subject_id=subject_id,
        subject=reference,
        gallery=target.gallery,
        templates=len(rows),
        decision=decision,
        new_subject=new_subject,
    )


@dataclass(frozen=True, slots=True)
class _Rows:
    new_subject: bool
    subject_id: str
    limits: list[dict[str, object]]
    templates: list[TemplateRow]
    vectors: NDArray[np.float32]

    def add_to(self, index: TemplateIndex) -> None:
        model_ids = {row.model_id for row in self.templates}
        if model_ids == {index.model_id}:
            index.add(
                template_ids=[row.id for row in self.templates],
                subject_ids=[self.subject_id] * len(self.templates),
                vectors=self.vectors,
            )


def _commit(
    platform: Platform,
    target: _Target,
    rows: _Rows,
    consent: ConsentInput | None,
    decision: Decision,
    actor: str,
) -> None:
    """The subject, its consent, its templates and the audit entry, in one transaction, which
    first takes the gallery's lock and checks that it was not taken down meanwhile."""
    now = platform.clock()
    with platform.changing_galleries([target.gallery_id]) as change:
        session = change.session
        withdrawn = session.scalar(
            select(GalleryRow.withdrawn_at).where(GalleryRow.id == target.gallery_id)
        )
        if withdrawn is not None:
            raise GalleryNotFoundError(
                f"gallery {target.gallery!r} was withdrawn during the enrolment"
            )
        if rows.new_subject:
            session.add(
                SubjectRow(
                    id=rows.subject_id,
                    gallery_id=target.gallery_id,
                    reference=target.reference,
                    jurisdiction=target.jurisdiction,
                    created_at=now,
                    last_interaction_at=now,
                    retention_limits=rows.limits,
                )
            )
        else:
            row = session.get(SubjectRow, rows.subject_id)
            if row is None or row.erasing_at is not None:
                raise InputError(f"subject {target.reference!r} was erased during the enrolment")
            row.last_interaction_at = now
            row.retention_limits = _merge_limits(row.retention_limits, rows.limits)
        session.flush()
        session.add_all(rows.templates)
        if consent is not None:
            session.add(
                ConsentRow(
                    id=str(uuid.uuid4()),
                    subject_id=rows.subject_id,
                    kind=str(consent.kind),
                    reference=consent.reference,
                    notice_sha256=consent.notice_sha256,
                    notice_version=consent.notice_version,
                    purpose=str(consent.purpose),
                    duration_days=consent.duration_days,
                    collected_at=consent.collected_at,
                    expires_at=consent.expires_at,
                    revoked_at=None,
                )
            )
        platform.record(
            session,
            AuditEvent(
                actor=actor,
                organisation_id=platform.organisation.id,
                operation="enroll",
                purpose=str(target.purpose),
                decision=decision.outcome,
                rule_ids=tuple(decision.rule_ids()),
                gallery_id=target.gallery_id,
                subject_id=rows.subject_id,
                details={
                    "outcome": "enrolled",
                    "templates": len(rows.templates),
                    "model": platform.engine.card.id,
                    "consent": str(consent.kind) if consent else None,
                },
            ),
        )
        change.then(rows.add_to)


def _merge_limits(
    old: list[dict[str, object]], new: list[dict[str, object]]
) -> list[dict[str, object]]:
    merged = {(str(x["after"]), int(str(x["days"]))) for x in [*old, *new]}
    return [{"days": days, "after": after} for after, days in sorted(merged)]
