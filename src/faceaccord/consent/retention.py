"""When each enrolled person's data must go. The earliest of: the consent's expiry, every
retention limit the policy set at enrolment (BIPA: 3 years after the last interaction, or when
the purpose is satisfied; Texas: 1 year after the purpose ends), and the organisation's own
policy (days after the last interaction)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

__all__ = ["RetentionFacts", "retention_deadline"]


@dataclass(frozen=True, slots=True)
class RetentionFacts:
    created_at: datetime
    last_interaction_at: datetime
    limits: tuple[dict[str, Any], ...]
    """Each ``{"days": int, "after": "last_interaction"|"purpose_end"|"collection", "rule"}``."""
    consent_expires_at: datetime | None
    purpose_ends_at: datetime | None
    organisation_days: int | None


def retention_deadline(facts: RetentionFacts) -> tuple[datetime, str] | None:
    """The earliest deadline and why, or ``None`` when nothing limits retention yet."""
    deadlines: list[tuple[datetime, str]] = []
    if facts.consent_expires_at is not None:
        deadlines.append((facts.consent_expires_at, "consent_expired"))
    for limit in facts.limits:
        days, after, rule = int(limit["days"]), str(limit["after"]), str(limit.get("rule", ""))
        start = {
            "last_interaction": facts.last_interaction_at,
            "collection": facts.created_at,
            "purpose_end": facts.purpose_ends_at,
        }.get(after)
        if start is not None:
            deadlines.append((start + timedelta(days=days), f"retention_limit:{rule or after}"))
        if after == "last_interaction" and facts.purpose_ends_at is not None:
            # BIPA 15(a): also when the initial purpose has been satisfied, whichever is first.
            deadlines.append((facts.purpose_ends_at, f"purpose_satisfied:{rule or after}"))
    if facts.organisation_days is not None:
        deadlines.append(
            (
                facts.last_interaction_at + timedelta(days=facts.organisation_days),
                "organisation_policy",
            )
        )
    return min(deadlines, default=None)
