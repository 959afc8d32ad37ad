"""Verification 1:1 for an organisation: the policy first, then both photos' largest faces are
compared at the operating point the decision requires. Under a human-review obligation a match
is ``pending_review``: a candidate for a person to confirm, never a conclusion. Every request is
audited with its outcome (never the templates)."""

from __future__ import annotations

from dataclasses import dataclass

from faceaccord.biometrics.images import ImageSource
from faceaccord.errors import FaceAccordError, PolicyDeniedError
from faceaccord.governance.decisions import Decision
from faceaccord.governance.enforcement import operating_point_for
from faceaccord.governance.entities import PolicyRequest, RequestContext
from faceaccord.governance.obligations import HumanReview
from faceaccord.governance.vocabulary import Operation, Purpose
from faceaccord.matching.verification import VerificationResult, compare_templates
from faceaccord.platform.deployment import Platform

__all__ = ["MATCH", "NO_MATCH", "PENDING_REVIEW", "Verification", "verify"]

MATCH, NO_MATCH, PENDING_REVIEW = "match", "no_match", "pending_review"


@dataclass(frozen=True, slots=True)
class Verification:
    result: VerificationResult
    decision: Decision
    status: str
    """``match``, ``no_match``, or ``pending_review`` (a match that a person must confirm)."""
    required_reviewers: int


def verify(
    platform: Platform,
    *,
    probe: ImageSource,
    reference: ImageSource,
    purpose: Purpose,
    actor: str,
    context: RequestContext | None = None,
) -> Verification:
    decision = platform.policy.decide(
        PolicyRequest(
            organisation=platform.organisation,
            operation=Operation.VERIFY,
            purpose=purpose,
            context=context or RequestContext(),
            on=platform.clock().date(),
        )
    )
    if not decision.allowed:
        _record(platform, actor, purpose, decision, outcome="denied")
        raise PolicyDeniedError(decision)
    engine = platform.engine
    try:
        point = operating_point_for(decision, card=engine.card, current=engine.operating_point)
        normaliser = platform.normaliser
        first = engine.largest_template(probe, which="first")
        second = engine.largest_template(reference, which="second")
    except PolicyDeniedError as refusal:  # an obligation no operating point meets
        _record(platform, actor, purpose, refusal.decision, outcome="denied")
        raise
    except FaceAccordError as error:  # not an image, no face, too large
        _record(platform, actor, purpose, decision, outcome=error.code)
        raise
    result = compare_templates(
        first, second, card=engine.card, operating_point=point, normaliser=normaliser
    )
    reviewers = max(
        (o.reviewers for o in decision.obligations if isinstance(o, HumanReview)), default=0
    )
    status = NO_MATCH if not result.match else PENDING_REVIEW if reviewers else MATCH
    _record(platform, actor, purpose, decision, outcome=status, result=result)
    return Verification(
        result=result, decision=decision, status=status, required_reviewers=reviewers
    )


def _record(
    platform: Platform,
    actor: str,
    purpose: Purpose,
    decision: Decision,
    *,
    outcome: str,
    result: VerificationResult | None = None,
) -> None:
    if result is None:
        platform.record_decision(
            actor=actor, operation="verify", purpose=purpose, decision=decision, outcome=outcome,
            score_normaliser=platform.normaliser_label,
        )  # fmt: skip
        return
    platform.record_decision(
        actor=actor, operation="verify", purpose=purpose, decision=decision, outcome=outcome,
        threshold=result.threshold, operating_point=result.operating_point.name,
        model=result.model_id, score_normaliser=result.score_normaliser,
    )  # fmt: skip
