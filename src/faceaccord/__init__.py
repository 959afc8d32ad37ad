"""faceaccord: face recognition that is accountable by construction.

The public API::

    from faceaccord import Engine

    engine = Engine.load()                      # dlib's models, HOG detector
    faces = engine.detect("group.jpg")          # every face: box, score, landmarks, quality
    template = engine.enroll("alice.jpg")       # one face, quality-gated
    result = engine.verify("probe.jpg", template)
    result.match, result.distance, result.threshold
"""

from faceaccord.biometrics.faces import BoundingBox, Face, FaceTemplate, Landmarks, Point
from faceaccord.biometrics.images import DecodedImage, ImageFormat, ImageSource, decode_image
from faceaccord.biometrics.models.cards import ModelCard, OperatingPoint
from faceaccord.biometrics.pipeline import Engine, ImageResult
from faceaccord.biometrics.quality import QualityAssessment, QualityReason
from faceaccord.errors import (
    FaceAccordError,
    ImageError,
    InputError,
    ModelError,
    NoFaceError,
    QualityRejectedError,
    TemplateMismatchError,
)
from faceaccord.matching.verification import VerificationResult
from faceaccord.settings import DetectorKind, Settings

__all__ = [
    "BoundingBox",
    "DecodedImage",
    "DetectorKind",
    "Engine",
    "Face",
    "FaceAccordError",
    "FaceTemplate",
    "ImageError",
    "ImageFormat",
    "ImageResult",
    "ImageSource",
    "InputError",
    "Landmarks",
    "ModelCard",
    "ModelError",
    "NoFaceError",
    "OperatingPoint",
    "Point",
    "QualityAssessment",
    "QualityReason",
    "QualityRejectedError",
    "Settings",
    "TemplateMismatchError",
    "VerificationResult",
    "decode_image",
]
