"""Results as JSON documents, shared by the command line and the HTTP service. These shapes are
pinned by tests."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceaccord.biometrics.faces import Face, FaceTemplate
from faceaccord.biometrics.images import DecodedImage
from faceaccord.biometrics.models.cards import OperatingPoint
from faceaccord.biometrics.quality import QualityReason
from faceaccord.errors import FaceAccordError
from faceaccord.matching.verification import VerificationResult

JSON = dict[str, Any]


def face_json(face: Face, reasons: list[QualityReason]) -> JSON:
    return {
        "box": face.box.as_list(),
        "score": round(face.score, 4),
        "landmarks": [[round(x, 1), round(y, 1)] for x, y in face.landmarks.as_list()],
        "quality": {**face.quality.as_dict(), "enrolment_refusals": [str(r) for r in reasons]},
    }


def image_json(image: DecodedImage) -> JSON:
    return {
        "width": image.width,
        "height": image.height,
        "format": str(image.format),
        "mode": image.source_mode,
        "exif_orientation": image.exif_orientation,
    }


def operating_point_json(point: OperatingPoint) -> JSON:
    return {
        "name": point.name,
        "threshold": point.threshold,
        "target_fmr": point.target_fmr,
        "measured_fmr": point.measured_fmr,
        "measured_fmr_ci95": list(point.measured_fmr_ci95),
        "measured_fnmr": point.measured_fnmr,
        "impostor_pairs": point.impostor_pairs,
        "genuine_pairs": point.genuine_pairs,
        "dataset": point.dataset,
        "measured_on": point.measured_on.isoformat(),
    }


def verification_json(result: VerificationResult) -> JSON:
    return {
        "match": result.match,
        "distance": round(result.distance, 6),
        "normalised_distance": round(result.normalised_distance, 6),
        "score_normaliser": result.score_normaliser,
        "similarity": round(result.similarity, 6),
        "threshold": result.threshold,
        "model": result.model_id,
        "operating_point": operating_point_json(result.operating_point),
    }


def template_json(template: FaceTemplate) -> JSON:
    return {
        "box": template.face.box.as_list(),
        "score": round(template.face.score, 4),
        "embedding": embedding_json(template.embedding),
    }


def embedding_json(embedding: NDArray[np.float32]) -> list[float]:
    # Nine significant digits round-trip a float32 exactly, at half the length of repr().
    return [float(f"{value:.9g}") for value in embedding.tolist()]


def error_json(error: FaceAccordError) -> JSON:
    return {"error": {"code": error.code, "message": error.message}}
