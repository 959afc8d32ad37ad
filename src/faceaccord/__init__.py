"""faceaccord: face recognition that is accountable by construction.

The public API::

    from faceaccord import Engine

    engine = Engine.load()                      # dlib's models, HOG detector
    faces = engine.detect("group.jpg")          # every face: box, score, landmarks, quality
    template = engine.enroll("alice.jpg")       # one face, quality-gated
    result = engine.verify("probe.jpg", template)
    result.match, result.distance, result.threshold

Behind the policy (``GovernedEngine``), every call names the organisation, the purpose and the
context, and the policy decides before any image is read.
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
    PolicyDeniedError,
    QualityRejectedError,
    TemplateMismatchError,
)
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
from faceaccord.matching.verification import VerificationResult
from faceaccord.settings import DetectorKind, Settings

__all__ = [
    "BoundingBox",
    "Decision",
    "DecodedImage",
    "DeploymentSettings",
    "DetectorKind",
    "Engine",
    "Face",
    "FaceAccordError",
    "FaceTemplate",
    "GovernedEngine",
    "ImageError",
    "ImageFormat",
    "ImageResult",
    "ImageSource",
    "InputError",
    "Jurisdiction",
    "Landmarks",
    "ModelCard",
    "ModelError",
    "NoFaceError",
    "OperatingPoint",
    "Operation",
    "Organisation",
    "OrganisationStatus",
    "Point",
    "PolicyDeniedError",
    "PolicyEngine",
    "PolicyRequest",
    "Purpose",
    "QualityAssessment",
    "QualityReason",
    "QualityRejectedError",
    "RequestContext",
    "Sector",
    "Settings",
    "TemplateMismatchError",
    "VerificationResult",
    "decode_image",
]
