"""Identification 1:N: the policy first; then the probe's largest face is searched in the
gallery's index at the operating point the decision requires. Results are candidates, never
conclusions: where the decision carries a human-review obligation their status is
``pending_review``. Every search is audited (never the templates)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from faceaccord.audit.log import AuditEvent
from faceaccord.biometrics.images import ImageSource
from faceaccord.biometrics.models.cards import OperatingPoint
from faceaccord.errors import FaceAccordError, InputError, PolicyDeniedError
from faceaccord.governance.decisions import Decision
from faceaccord.governance.enforcement import operating_point_for
from faceaccord.governance.entities import PolicyRequest, RequestContext, ScaleTier
from faceaccord.governance.obligations import HumanReview
from faceaccord.governance.vocabulary import Operation, Purpose
from faceaccord.platform.deployment import Platform
from faceaccord.platform.fairness import GateStatus, fairness_gate
from faceaccord.store.models import (
    AuditEntryRow,
    CandidateRow,
    IdentificationRow,
    ReviewRow,
    SubjectRow,
)

__all__ = ["Identification", "IdentifiedCandidate", "identify"]

NO_MATCH = "no_match"
PENDING_REVIEW = "pending_review"
CANDIDATES = "candidates"


@dataclass(frozen=True, slots=True)
class IdentifiedCandidate:
    id: str
    subject: str
    subject_id: str
    distance: float
    similarity: float
    not_this_person: int
    """How many times reviewers have marked this subject "not this person" before."""
    status: str

    def as_dict(self) -> dict[str, object]:
        return {
            "candidate_id": self.id,
            "subject": self.subject,
            "subject_id": self.subject_id,
            "similarity": round(self.similarity, 6),
            "distance": round(self.distance, 6),
            "status": self.status,
            "not_this_person": self.not_this_person,
        }


@dataclass(frozen=True, slots=True)
class Identification:
    id: str
    candidates: tuple[IdentifiedCandidate, ...]
    """Best first; empty means no match."""
    status: str
    """``no_match``, ``pending_review`` (human review required before a match counts) or
    ``candidates``."""
    decision: Decision
    operating_point: OperatingPoint
    gallery: str
    required_reviewers: int
    score_normaliser: str = "none"
    """Candidates' distances are normalised by this (``none``: plain distances)."""

    def as_dict(self) -> dict[str, object]:
        return {
            "identification_id": self.id,
            "candidates": [c.as_dict() for c in self.candidates],
            "status": self.status,
            "required_reviewers": self.required_reviewers,
            "decision": self.decision.outcome,
            "obligations": self.decision.as_dict()["obligations"],
            "reasons": self.decision.as_dict()["reasons"],
            "gallery": self.gallery,
            "threshold": self.operating_point.threshold,
            "operating_point": self.operating_point.name,
            "score_normaliser": self.score_normaliser,
        }


def identify(
    platform: Platform,
    *,
    gallery: str,
    image: ImageSource,
    purpose: Purpose,
    actor: str,
    context: RequestContext | None = None,
    k: int = 5,
) -> Identification:
    if not 1 <= k <= 100:
        raise InputError("k must be between 1 and 100")
    with platform.transaction() as session:
        gallery_row = platform.gallery(session, gallery)
    searches_today = _searches_today(platform, platform.clock())
    if gallery_row.purpose != purpose:
        raise InputError(
            f"gallery {gallery!r} was built for {gallery_row.purpose}; it cannot be searched "
            f"for {purpose}"
        )
    request = PolicyRequest(
        organisation=platform.organisation,
        operation=Operation.IDENTIFY,
        purpose=purpose,
        context=replace(
            context or RequestContext(),
            requested_tier=ScaleTier.needed_for(searches_per_day=searches_today + 1),
        ),
        on=platform.clock().date(),
    )
    decision = platform.policy.decide(request)
    if decision.allowed:
        # The fairness gate reads the threshold this search would use (a similarity floor
        # may make it stricter than the engine's own).
        engine = platform.engine
        try:
            threshold = operating_point_for(
                decision, card=engine.card, current=engine.operating_point
            ).threshold
        except PolicyDeniedError:  # refused below, and audited there
            threshold = engine.operating_point.threshold
        gate = fairness_gate(platform, threshold=threshold)
        if not gate.passed:
            gated = replace(request, context=replace(request.context, fairness_gate_failed=True))
            decision = _explain_gate(platform.policy.decide(gated), gate)
    if not decision.allowed:
        platform.record_decision(
            actor=actor, operation="identify", purpose=purpose, decision=decision,
            gallery_id=gallery_row.id, outcome="denied", score_normaliser=platform.normaliser_label,
        )  # fmt: skip
        raise PolicyDeniedError(decision)
    engine = platform.engine
    try:
        point = operating_point_for(decision, card=engine.card, current=engine.operating_point)
        normaliser = platform.normaliser
        probe = engine.largest_template(image, which="probe")
    except FaceAccordError as error:
        platform.record_decision(
            actor=actor, operation="identify", purpose=purpose, decision=decision,
            gallery_id=gallery_row.id, outcome=error.code,
            score_normaliser=platform.normaliser_label,
        )  # fmt: skip
        raise
    found = platform.index_for(gallery_row.id).search(
        probe.embedding, k=k, threshold=point.threshold
    )
    reviewers = max(
        (o.reviewers for o in decision.obligations if isinstance(o, HumanReview)), default=0
    )
    identification_id = str(uuid.uuid4())
    with platform.transaction() as session:
        rows = session.execute(
            select(SubjectRow.id, SubjectRow.reference).where(
                SubjectRow.id.in_([c.subject_id for c in found]), SubjectRow.erasing_at.is_(None)
            )
        ).all()
        references: dict[str, str] = {row.id: row.reference for row in rows}
        found = [c for c in found if c.subject_id in references]  # erased since the search
        status = NO_MATCH if not found else PENDING_REVIEW if reviewers else CANDIDATES
        cautions = _not_this_person_counts(session, [c.subject_id for c in found])
        candidates = tuple(
            IdentifiedCandidate(
                id=str(uuid.uuid4()),
                subject=references[c.subject_id],
                subject_id=c.subject_id,
                distance=c.distance,
                similarity=c.similarity,
                not_this_person=cautions.get(c.subject_id, 0),
                status=status,
            )
            for c in found
        )
        session.add(
            IdentificationRow(
                id=identification_id,
                organisation_id=platform.organisation.id,
                gallery_id=gallery_row.id,
                purpose=str(purpose),
                actor=actor,
                created_at=platform.clock(),
                status=status,
                required_reviewers=reviewers,
                threshold=point.threshold,
                operating_point=point.name,
                decision=decision.as_dict(),
                candidates=[
                    CandidateRow(
                        id=c.id,
                        rank=rank,
                        subject_id=c.subject_id,
                        subject_reference=c.subject,
                        distance=c.distance,
                        similarity=c.similarity,
                        status=status,
                    )
                    for rank, c in enumerate(candidates, start=1)
                ],
            )
        )
        platform.record(
            session,
            AuditEvent(
                actor=actor,
                organisation_id=platform.organisation.id,
                operation="identify",
                purpose=str(purpose),
                decision=decision.outcome,
                rule_ids=tuple(decision.rule_ids()),
                gallery_id=gallery_row.id,
                threshold=point.threshold,
                candidates=len(found),
                review_outcome=status,
                details={
                    "identification": identification_id,
                    "operating_point": point.name,
                    "model": engine.model_id,
                    "k": k,
                    "score_normaliser": normaliser.id,
                },
            ),
        )
    return Identification(
        id=identification_id,
        candidates=candidates,
        status=status,
        decision=decision,
        operating_point=point,
        gallery=gallery,
        required_reviewers=reviewers,
        score_normaliser=normaliser.id,
    )


def _not_this_person_counts(session: Session, subject_ids: list[str]) -> dict[str, int]:
    if not subject_ids:
        return {}
    rows = session.execute(
        select(ReviewRow.subject_id, func.count(ReviewRow.id))
        .where(ReviewRow.subject_id.in_(subject_ids), ReviewRow.outcome == "not_this_person")
        .group_by(ReviewRow.subject_id)
    ).all()
    return {subject_id: int(count) for subject_id, count in rows}


def _explain_gate(decision: Decision, gate: GateStatus) -> Decision:
    """Name the audit and the figure that failed in the gate's reason."""
    if gate.passed:
        return decision
    reasons = tuple(
        replace(reason, summary=f"{reason.summary} Here: {gate.message}.")
        if reason.rule == "FAIRNESS-GATE"
        else reason
        for reason in decision.reasons
    )
    return replace(decision, reasons=reasons)


def _searches_today(platform: Platform, now: datetime) -> int:
    start = datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)
    with platform.transaction() as session:
        count = session.scalar(
            select(func.count(AuditEntryRow.seq)).where(
                AuditEntryRow.organisation_id == platform.organisation.id,
                AuditEntryRow.operation == "identify",
                AuditEntryRow.at >= start,
                AuditEntryRow.at < start + timedelta(days=1),
            )
        )
    return int(count or 0)
