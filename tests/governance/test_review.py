"""Organisations ask for a larger scale; only a different, human reviewer can grant it, and
every decision is kept with who decided and why. Until then SCALE-REVIEW refuses the larger use."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from faceaccord.errors import ReviewError
from faceaccord.governance.engine import PolicyEngine
from faceaccord.governance.entities import (
    DeploymentSettings,
    Organisation,
    OrganisationStatus,
    PolicyRequest,
    RequestContext,
    ScaleTier,
)
from faceaccord.governance.review import (
    ScaleRequest,
    check_scale_request,
    decide_scale_request,
)
from faceaccord.governance.vocabulary import Jurisdiction, Operation, Purpose, Sector

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
BANK = Organisation(
    id="bank",
    name="a bank",
    sector=Sector.FINANCIAL_INSTITUTION,
    jurisdiction=Jurisdiction.parse("US-NY"),
    status=OrganisationStatus.APPROVED,
    approved_purposes=frozenset({Purpose.IDENTITY_VERIFICATION}),
)


def _enrol_at(organisation: Organisation, tier: ScaleTier) -> str:
    engine = PolicyEngine.load(DeploymentSettings(packs=("vendor-2020",)), validate_requests=True)
    decision = engine.decide(
        PolicyRequest(
            organisation=organisation,
            operation=Operation.ENROLL,
            purpose=Purpose.IDENTITY_VERIFICATION,
            context=RequestContext(requested_tier=tier),
            on=date(2026, 11, 22),
        )
    )
    return decision.outcome if decision.allowed else f"deny {decision.rule_ids()}"


def test_the_tier_a_use_needs_follows_gallery_size_and_search_rate() -> None:
    assert ScaleTier.needed_for(gallery_size=500) is ScaleTier.SMALL
    assert ScaleTier.needed_for(gallery_size=50_000) is ScaleTier.MEDIUM
    assert ScaleTier.needed_for(gallery_size=10, searches_per_day=50_000) is ScaleTier.LARGE
    assert ScaleTier.needed_for(gallery_size=10**9) is ScaleTier.NATIONAL


GROWTH = ScaleRequest(ScaleTier.MEDIUM, requested_by="alice@bank", reason="growth")


def _decide(request: ScaleRequest, *, reviewer: str, approve: bool, reason: str) -> Organisation:
    check_scale_request(BANK, request)
    return decide_scale_request(
        BANK, request, reviewer=reviewer, approve=approve, reason=reason, at=NOW
    )


def test_a_larger_scale_is_refused_until_a_reviewer_approves_it() -> None:
    request = ScaleRequest(
        ScaleTier.LARGE, requested_by="alice@bank", reason="onboarding 2 million customers"
    )
    check_scale_request(BANK, request)
    assert _enrol_at(BANK, ScaleTier.LARGE) == "deny ['SCALE-REVIEW']"
    approved = _decide(
        request, reviewer="rev@platform", approve=True, reason="KYC use, consent flows checked"
    )
    assert approved.scale_tier is ScaleTier.LARGE
    assert _enrol_at(approved, ScaleTier.LARGE) == "allow"


def test_the_decision_is_recorded_with_who_and_why() -> None:
    organisation = _decide(GROWTH, reviewer="rev@platform", approve=True, reason="ok")
    (record,) = organisation.scale_history
    assert (record.tier, record.requested_by, record.request_reason) == (
        ScaleTier.MEDIUM,
        "alice@bank",
        "growth",
    )
    assert (record.reviewer, record.approved, record.reason, record.decided_at) == (
        "rev@platform",
        True,
        "ok",
        NOW,
    )


def test_a_refusal_is_recorded_and_keeps_the_tier() -> None:
    request = ScaleRequest(ScaleTier.NATIONAL, requested_by="alice@bank", reason="all")
    organisation = _decide(
        request, reviewer="rev@platform", approve=False, reason="no case for national scale"
    )
    assert organisation.scale_tier is ScaleTier.SMALL
    assert organisation.scale_history[-1].approved is False
    assert _enrol_at(organisation, ScaleTier.NATIONAL) == "deny ['SCALE-REVIEW']"


def test_nobody_reviews_their_own_request() -> None:
    with pytest.raises(ReviewError, match="cannot review"):
        _decide(GROWTH, reviewer="alice@bank", approve=True, reason="self-approval")
    with pytest.raises(ReviewError, match="cannot review"):
        _decide(GROWTH, reviewer=" alice@bank ", approve=True, reason="self-approval")


@pytest.mark.parametrize(
    ("tier", "who", "why", "message"),
    [
        (ScaleTier.SMALL, "alice", "x", "needs no review"),
        (ScaleTier.MEDIUM, " ", "x", "who is asking"),
        (ScaleTier.MEDIUM, "alice", "", "why"),
    ],
)
def test_improper_requests_are_refused(tier: ScaleTier, who: str, why: str, message: str) -> None:
    with pytest.raises(ReviewError, match=message):
        check_scale_request(BANK, ScaleRequest(tier, requested_by=who, reason=why))


@pytest.mark.parametrize(("reviewer", "reason"), [("rev", "  "), ("", "fine")])
def test_a_decision_needs_a_reviewer_and_a_reason(reviewer: str, reason: str) -> None:
    with pytest.raises(ReviewError, match="must be given"):
        _decide(GROWTH, reviewer=reviewer, approve=True, reason=reason)
