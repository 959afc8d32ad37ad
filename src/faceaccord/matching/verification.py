"""Verification 1:1: compare two templates at a calibrated operating point.

"No match" is an answer, not an error: ``match`` is false and the distance says how far apart
the faces were. Comparing templates made by different models is an error, never a number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceaccord.biometrics.faces import FaceTemplate
from faceaccord.biometrics.models.cards import ModelCard, OperatingPoint
from faceaccord.errors import TemplateMismatchError
from faceaccord.matching.normalisation import NO_NORMALISATION, ScoreNormaliser

__all__ = ["VerificationResult", "compare_templates"]


@dataclass(frozen=True, slots=True)
class VerificationResult:
    match: bool
    distance: float
    """Euclidean distance between the embeddings."""
    similarity: float
    """Cosine similarity of the embeddings (-1 to 1), for display and for comparing with other
    systems; decisions are made on ``distance``."""
    threshold: float
    operating_point: OperatingPoint
    model_id: str
    normalised_distance: float
    """The distance the decision is made on, ``normalised_distance <= threshold``: the
    Euclidean distance plus the two templates' mean offset under the score normaliser in force
    (equal to ``distance`` without one)."""
    score_normaliser: str = "none"
    """The id of the score normaliser in force (``none``, ``fsn:...``, ``cohort:...``)."""


def compare_templates(
    probe: FaceTemplate,
    reference: FaceTemplate,
    *,
    card: ModelCard,
    operating_point: OperatingPoint,
    normaliser: ScoreNormaliser = NO_NORMALISATION,
) -> VerificationResult:
    for template in (probe, reference):
        if template.model_id != card.id:
            raise TemplateMismatchError(
                f"a template made by {template.model_id!r} cannot be compared at an operating "
                f"point of {card.id!r}"
            )
    a = probe.embedding.astype(np.float64)
    b = reference.embedding.astype(np.float64)
    if a.shape != b.shape:
        raise TemplateMismatchError(f"embeddings of shapes {a.shape} and {b.shape} differ")
    distance = float(np.linalg.norm(a - b))
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    similarity = float(a @ b / norms) if norms > 0 else 0.0
    offsets = normaliser.offsets(np.stack([probe.embedding, reference.embedding]))
    normalised = distance + float(offsets.sum()) / 2
    return VerificationResult(
        match=normalised <= operating_point.threshold,
        distance=distance,
        similarity=similarity,
        threshold=operating_point.threshold,
        operating_point=operating_point,
        model_id=card.id,
        normalised_distance=normalised,
        score_normaliser=normaliser.id,
    )
