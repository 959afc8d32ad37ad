"""What the policy engine answers: allow or deny, the obligations, and the rules behind it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from faceaccord.governance.obligations import Obligation, obligation_json

__all__ = ["Decision", "Effect", "RuleReference"]


class Effect(StrEnum):
    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class RuleReference:
    rule: str
    pack: str
    summary: str
    source: str

    def as_dict(self) -> dict[str, str]:
        return {
            "rule": self.rule,
            "pack": self.pack,
            "summary": self.summary,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    effect: Effect
    obligations: tuple[Obligation, ...]
    """What an allowed request must still do (empty when denied)."""
    reasons: tuple[RuleReference, ...]
    """The rules that denied it, or the rules that allowed it and set its obligations."""
    packs: tuple[str, ...]
    """The packs that applied to this request (in force, in date, in jurisdiction)."""

    @property
    def allowed(self) -> bool:
        return self.effect is Effect.ALLOW

    @property
    def outcome(self) -> str:
        """``allow``, ``allow_with_obligations`` or ``deny``."""
        if self.effect is Effect.ALLOW and self.obligations:
            return "allow_with_obligations"
        return str(self.effect)

    def rule_ids(self) -> list[str]:
        return [r.rule for r in self.reasons]

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": str(self.effect),
            "outcome": self.outcome,
            "obligations": [obligation_json(o) for o in self.obligations],
            "reasons": [r.as_dict() for r in self.reasons],
            "packs": list(self.packs),
        }
