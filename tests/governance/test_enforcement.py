"""The engine behind the policy: a denied call reads no image; an allowed call carries its
decision, and a similarity floor makes verification use a strict enough operating point."""

from __future__ import annotations

import io
from datetime import date

import numpy as np
import pytest
from PIL import Image

from faceaccord.biometrics.fakes import fake_engine
from faceaccord.biometrics.models.cards import Metric, ModelCard, OperatingPoint
from faceaccord.errors import PolicyDeniedError
from faceaccord.governance.decisions import Decision
from faceaccord.governance.enforcement import GovernedEngine
from faceaccord.governance.engine import PolicyEngine
from faceaccord.governance.entities import (
    DeploymentSettings,
    Organisation,
    OrganisationStatus,
    PolicyRequest,
    RequestContext,
)
from faceaccord.governance.vocabulary import Jurisdiction, Operation, Purpose, Sector

US_POLICE = Organisation(
    id="pd",
    name="a US police department",
    sector=Sector.POLICE,
    jurisdiction=Jurisdiction.parse("US-NY"),
    status=OrganisationStatus.APPROVED,
    approved_purposes=frozenset(Purpose),
)
NGO = Organisation(
    id="ngo",
    name="a missing-children organisation",
    sector=Sector.NGO_MISSING_PERSONS,
    jurisdiction=Jurisdiction.parse("US-VA"),
    status=OrganisationStatus.APPROVED,
    approved_purposes=frozenset({Purpose.MISSING_PERSONS}),
)


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    pixels = rng.integers(0, 255, size=(120, 160, 3), dtype=np.uint8)
    Image.fromarray(pixels).resize((320, 240)).save(buffer, format="JPEG")
    return buffer.getvalue()


class _Spy:
    def __init__(self) -> None:
        self.reads = 0


def _governed(
    deployment: DeploymentSettings | None = None,
) -> tuple[GovernedEngine, _Spy, list[tuple[PolicyRequest, Decision]]]:
    engine = fake_engine()
    spy = _Spy()
    original = engine.read

    def counting_read(source: object) -> object:
        spy.reads += 1
        return original(source)  # type: ignore[arg-type]

    engine.read = counting_read  # type: ignore[method-assign]
    engine.embedder.card = _card_with_points(("default", 0.5, 1e-3), ("strict", 0.35, 1e-4))  # type: ignore[misc]
    engine.operating_point = engine.card.operating_point("default")
    heard: list[tuple[PolicyRequest, Decision]] = []
    policy = PolicyEngine.load(
        deployment or DeploymentSettings(packs=("vendor-2020",)), validate_requests=True
    )
    governed = GovernedEngine(
        engine=engine, policy=policy, on_decision=lambda r, d: heard.append((r, d))
    )
    return governed, spy, heard


def test_a_denied_verification_reads_no_image() -> None:
    governed, spy, _ = _governed()
    with pytest.raises(PolicyDeniedError) as denied:
        governed.verify(
            b"not even an image",
            b"\x00" * 10,
            organisation=US_POLICE,
            purpose=Purpose.CRIMINAL_INVESTIGATION,
        )
    assert spy.reads == 0
    assert denied.value.decision.rule_ids() == ["MS-US-POLICE", "AMZ-MORATORIUM"]
    assert "MS-US-POLICE (vendor-2020)" in denied.value.message


@pytest.mark.parametrize("operation", ["detect", "enroll"])
def test_denied_detection_and_enrolment_read_no_image(operation: str) -> None:
    governed, spy, _ = _governed()
    suspended = Organisation(
        id="x",
        name="a suspended customer",
        sector=Sector.COMMERCIAL,
        jurisdiction=Jurisdiction.parse("US-NY"),
        status=OrganisationStatus.SUSPENDED,
        approved_purposes=frozenset({Purpose.ACCESS_CONTROL}),
    )
    with pytest.raises(PolicyDeniedError, match="CORE-STATUS"):
        getattr(governed, operation)(
            _jpeg(1), organisation=suspended, purpose=Purpose.ACCESS_CONTROL
        )
    assert spy.reads == 0


def test_every_decision_is_heard_allowed_or_denied() -> None:
    governed, _, heard = _governed()
    with pytest.raises(PolicyDeniedError):
        governed.verify(
            _jpeg(2), _jpeg(2), organisation=US_POLICE, purpose=Purpose.CRIMINAL_INVESTIGATION
        )
    governed.detect(_jpeg(2), organisation=US_POLICE, purpose=Purpose.CRIMINAL_INVESTIGATION)
    assert [(r.operation, d.outcome) for r, d in heard] == [
        (Operation.VERIFY, "deny"),
        (Operation.DETECT, "allow"),  # detection is not recognition
    ]


def test_an_allowed_call_returns_its_result_with_the_decision() -> None:
    governed, spy, _ = _governed()
    outcome = governed.verify(
        _jpeg(3),
        _jpeg(3),
        organisation=NGO,
        purpose=Purpose.MISSING_PERSONS,
        context=RequestContext(reviewers=1),
    )
    assert spy.reads == 2
    assert outcome.result.match
    assert outcome.decision.outcome == "allow_with_obligations"
    assert {o.type for o in outcome.decision.obligations} == {
        "human_review",
        "similarity_floor",
        "not_sole_basis",
    }


def _card_with_points(*points: tuple[str, float, float | None]) -> ModelCard:
    base = fake_engine().card
    return ModelCard(
        **{
            **base.model_dump(),
            "metric": Metric.EUCLIDEAN,
            "operating_points": tuple(
                OperatingPoint(
                    **{
                        **base.operating_points[0].model_dump(),
                        "name": name,
                        "threshold": threshold,
                        "target_fmr": fmr,
                    }
                )
                for name, threshold, fmr in points
            ),
        }
    )


def test_a_similarity_floor_selects_a_strict_enough_operating_point() -> None:
    governed, _, _ = _governed()
    governed.engine.embedder.card = _card_with_points(  # type: ignore[misc]
        ("default", 0.5, 1e-3), ("strict", 0.3, 1e-4), ("stricter", 0.2, 1e-5)
    )
    governed.engine.operating_point = governed.engine.card.operating_point("default")
    outcome = governed.verify(_jpeg(4), _jpeg(4), organisation=NGO, purpose=Purpose.MISSING_PERSONS)
    assert outcome.result.operating_point.name == "strict"
    assert outcome.result.threshold == 0.3


def test_a_similarity_floor_the_model_cannot_meet_fails_closed() -> None:
    governed, _, _ = _governed()
    governed.engine.embedder.card = _card_with_points(("default", 0.5, 1e-3))  # type: ignore[misc]
    governed.engine.operating_point = governed.engine.card.operating_point("default")
    with pytest.raises(PolicyDeniedError, match="SIMILARITY-FLOOR"):
        governed.verify(_jpeg(5), _jpeg(5), organisation=NGO, purpose=Purpose.MISSING_PERSONS)


def test_without_a_floor_the_engine_keeps_its_operating_point() -> None:
    governed, _, _ = _governed(DeploymentSettings(packs=()))
    outcome = governed.verify(_jpeg(6), _jpeg(6), organisation=NGO, purpose=Purpose.MISSING_PERSONS)
    assert outcome.result.operating_point.name == "default"
    assert outcome.decision.outcome == "allow"
    assert outcome.decision.packs == ("core",)


def test_requests_are_decided_for_today_unless_a_date_is_given() -> None:
    engine = PolicyEngine.load(DeploymentSettings(packs=("eu-ai-act",)), validate_requests=True)
    eu_bank = Organisation(
        id="b",
        name="an EU bank",
        sector=Sector.FINANCIAL_INSTITUTION,
        jurisdiction=Jurisdiction.parse("FR"),
        status=OrganisationStatus.APPROVED,
        approved_purposes=frozenset({Purpose.DUPLICATE_ACCOUNT_DETECTION}),
    )
    before = PolicyRequest(
        organisation=eu_bank,
        operation=Operation.IDENTIFY,
        purpose=Purpose.DUPLICATE_ACCOUNT_DETECTION,
        on=date(2026, 1, 1),
    )
    assert engine.decide(before).rule_ids() == ["CORE-BASE"]
    after = PolicyRequest(
        organisation=eu_bank,
        operation=Operation.IDENTIFY,
        purpose=Purpose.DUPLICATE_ACCOUNT_DETECTION,
    )
    assert "EU-14-5" in engine.decide(after).rule_ids()
