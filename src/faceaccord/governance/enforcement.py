"""The engine behind the policy: every biometric call says who asks, for what purpose and in
what context, and the policy decides first. A denied call raises ``PolicyDeniedError`` before
any image is read or decoded. An allowed call returns its result with the decision, whose
obligations travel with it; those the engine itself can honour it honours here (a
``similarity_floor`` makes verification use an operating point at least that strict)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from faceaccord.biometrics.faces import Face, FaceTemplate
from faceaccord.biometrics.images import ImageSource
from faceaccord.biometrics.models.cards import ModelCard, OperatingPoint
from faceaccord.biometrics.pipeline import Engine
from faceaccord.errors import PolicyDeniedError
from faceaccord.governance.decisions import Decision, Effect, RuleReference
from faceaccord.governance.engine import PolicyEngine
from faceaccord.governance.entities import Organisation, PolicyRequest, RequestContext
from faceaccord.governance.obligations import SimilarityFloor
from faceaccord.governance.vocabulary import Operation, Purpose
from faceaccord.matching.verification import VerificationResult, compare_templates

__all__ = ["Governed", "GovernedEngine", "operating_point_for"]

T = TypeVar("T")
DecisionListener = Callable[[PolicyRequest, Decision], None]


@dataclass(frozen=True, slots=True)
class Governed(Generic[T]):
    result: T
    decision: Decision


class GovernedEngine:
    def __init__(
        self, *, engine: Engine, policy: PolicyEngine, on_decision: DecisionListener | None = None
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.on_decision = on_decision

    def authorise(
        self,
        operation: Operation,
        *,
        organisation: Organisation,
        purpose: Purpose,
        context: RequestContext | None = None,
    ) -> Decision:
        """Decide, tell the listener (the audit log), and raise if denied."""
        request = PolicyRequest(
            organisation=organisation,
            operation=operation,
            purpose=purpose,
            context=context or RequestContext(),
        )
        decision = self.policy.decide(request)
        if self.on_decision is not None:
            self.on_decision(request, decision)
        if not decision.allowed:
            raise PolicyDeniedError(decision)
        return decision

    def detect(
        self,
        source: ImageSource,
        *,
        organisation: Organisation,
        purpose: Purpose,
        context: RequestContext | None = None,
    ) -> Governed[list[Face]]:
        decision = self.authorise(
            Operation.DETECT, organisation=organisation, purpose=purpose, context=context
        )
        return Governed(result=self.engine.detect(source), decision=decision)

    def enroll(
        self,
        source: ImageSource,
        *,
        organisation: Organisation,
        purpose: Purpose,
        context: RequestContext | None = None,
    ) -> Governed[FaceTemplate]:
        decision = self.authorise(
            Operation.ENROLL, organisation=organisation, purpose=purpose, context=context
        )
        return Governed(result=self.engine.enroll(source), decision=decision)

    def verify(
        self,
        probe: ImageSource | FaceTemplate,
        reference: ImageSource | FaceTemplate,
        *,
        organisation: Organisation,
        purpose: Purpose,
        context: RequestContext | None = None,
    ) -> Governed[VerificationResult]:
        decision = self.authorise(
            Operation.VERIFY, organisation=organisation, purpose=purpose, context=context
        )
        point = self._operating_point_for(decision)
        a = probe if isinstance(probe, FaceTemplate) else self._largest(probe, "first")
        b = reference if isinstance(reference, FaceTemplate) else self._largest(reference, "second")
        result = compare_templates(a, b, card=self.engine.card, operating_point=point)
        return Governed(result=result, decision=decision)

    def _largest(self, source: ImageSource, which: str) -> FaceTemplate:
        return self.engine.largest_template(source, which=which)

    def _operating_point_for(self, decision: Decision) -> OperatingPoint:
        return operating_point_for(
            decision, card=self.engine.card, current=self.engine.operating_point
        )


def operating_point_for(
    decision: Decision, *, card: ModelCard, current: OperatingPoint
) -> OperatingPoint:
    """``current``, or a stricter operating point of the card when a similarity floor requires
    it; a floor that no operating point meets refuses the request (fail closed)."""
    floors = [o.max_fmr for o in decision.obligations if isinstance(o, SimilarityFloor)]
    if not floors:
        return current
    ceiling = min(floors)
    strict_enough = [
        p for p in card.operating_points if p.target_fmr is not None and p.target_fmr <= ceiling
    ]
    if current in strict_enough:
        return current
    if not strict_enough:
        refusal = Decision(
            effect=Effect.DENY,
            obligations=(),
            reasons=(
                *decision.reasons,
                RuleReference(
                    rule="SIMILARITY-FLOOR",
                    pack="core",
                    summary=f"the model {card.id} has no operating point calibrated to a "
                    f"false-match rate of {ceiling:g} or less",
                    source="faceaccord: an obligation that cannot be met fails closed",
                ),
            ),
            packs=decision.packs,
        )
        raise PolicyDeniedError(refusal)
    return max(strict_enough, key=lambda p: p.threshold)
