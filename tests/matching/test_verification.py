"""1:1 comparison: distance, similarity, an inclusive threshold, and no cross-model answers."""

from __future__ import annotations

import numpy as np
import pytest

from faceaccord.biometrics.faces import BoundingBox, Face, FaceTemplate, Landmarks, Point
from faceaccord.biometrics.fakes import fake_card
from faceaccord.biometrics.quality import QualityAssessment
from faceaccord.errors import TemplateMismatchError
from faceaccord.matching.verification import compare_templates

CARD = fake_card(threshold=0.5)
POINT = CARD.operating_point("default")
FACE = Face(
    box=BoundingBox(0, 0, 10, 10),
    score=1.0,
    landmarks=Landmarks(points=(Point(0, 0),) * 5),  # type: ignore[arg-type]
    quality=QualityAssessment(10, 4.0, 100.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0),
)


def _template(*values: float, model_id: str = "fake-v1") -> FaceTemplate:
    return FaceTemplate(
        face=FACE, embedding=np.asarray(values, dtype=np.float32), model_id=model_id
    )


def test_distance_is_euclidean_and_similarity_is_cosine() -> None:
    result = compare_templates(_template(1, 0), _template(0, 1), card=CARD, operating_point=POINT)
    assert result.distance == pytest.approx(2**0.5)
    assert result.similarity == pytest.approx(0.0)
    assert not result.match


def test_a_distance_equal_to_the_threshold_is_a_match() -> None:
    result = compare_templates(_template(0, 0), _template(0.5, 0), card=CARD, operating_point=POINT)
    assert result.distance == pytest.approx(0.5)
    assert result.match


def test_just_over_the_threshold_is_no_match_and_reports_the_threshold() -> None:
    result = compare_templates(
        _template(0, 0), _template(0.5001, 0), card=CARD, operating_point=POINT
    )
    assert not result.match
    assert result.threshold == 0.5
    assert result.operating_point is POINT
    assert result.model_id == "fake-v1"


def test_templates_of_another_model_are_refused() -> None:
    with pytest.raises(TemplateMismatchError, match="dlib-resnet-v1"):
        compare_templates(
            _template(1, 0),
            _template(1, 0, model_id="dlib-resnet-v1"),
            card=CARD,
            operating_point=POINT,
        )


def test_embeddings_of_different_lengths_are_refused() -> None:
    with pytest.raises(TemplateMismatchError, match="shapes"):
        compare_templates(_template(1, 0), _template(1, 0, 0), card=CARD, operating_point=POINT)
