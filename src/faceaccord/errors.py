"""The one exception tree of faceaccord.

Every error the package raises on purpose is a ``FaceAccordError``. Each class has a stable
``code`` (snake_case) that the command line prints and that the service will map to a problem
type, so callers can branch on the code rather than on message text::

    FaceAccordError
    ├── InputError                      the caller sent something unusable
    │   ├── ImageError                  an image could not be accepted
    │   │   ├── EmptyImageError              zero bytes
    │   │   ├── NotAnImageError              the bytes are not an image we can identify
    │   │   ├── UnsupportedImageFormatError  an image, but not JPEG/PNG/WebP/BMP/TIFF
    │   │   ├── TruncatedImageError          the data ends early or is corrupt
    │   │   ├── ImageTooLargeError           more bytes than the configured limit
    │   │   ├── TooManyPixelsError           more pixels than the limit (decompression bomb)
    │   │   └── ImageDimensionsError         absurd width, height or aspect ratio
    │   └── NoFaceError                 a face was required and none was found
    ├── QualityRejectedError            the face failed the enrolment quality gate (with reasons)
    ├── PolicyDeniedError               the policy refused the request (carries the decision)
    ├── ModelError                      a model is missing, altered, or incompatible
    │   └── TemplateMismatchError       templates from different models were compared
    ├── ReviewError                     a scale-tier review was asked or decided improperly
    └── ConfigurationError              settings are unsafe or inconsistent
        └── PolicyPackError             a policy pack is malformed (names the file and line)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from faceaccord.biometrics.quality import QualityReason
    from faceaccord.governance.decisions import Decision

__all__ = [
    "ConfigurationError",
    "EmptyImageError",
    "FaceAccordError",
    "ImageDimensionsError",
    "ImageError",
    "ImageTooLargeError",
    "InputError",
    "ModelError",
    "NoFaceError",
    "NotAnImageError",
    "PolicyDeniedError",
    "PolicyPackError",
    "QualityRejectedError",
    "ReviewError",
    "TemplateMismatchError",
    "TooManyPixelsError",
    "TruncatedImageError",
    "UnsupportedImageFormatError",
]


class FaceAccordError(Exception):
    """Base of every error faceaccord raises on purpose."""

    code = "faceaccord_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputError(FaceAccordError):
    """The caller sent something that cannot be used."""

    code = "invalid_input"


class ImageError(InputError):
    """An image could not be accepted."""

    code = "invalid_image"


class EmptyImageError(ImageError):
    code = "empty_image"


class NotAnImageError(ImageError):
    code = "not_an_image"


class UnsupportedImageFormatError(ImageError):
    code = "unsupported_image_format"


class TruncatedImageError(ImageError):
    code = "truncated_image"


class ImageTooLargeError(ImageError):
    code = "image_too_large"


class TooManyPixelsError(ImageError):
    code = "too_many_pixels"


class ImageDimensionsError(ImageError):
    code = "bad_image_dimensions"


class NoFaceError(InputError):
    code = "no_face"


class QualityRejectedError(FaceAccordError):
    """The face did not pass the enrolment quality gate; ``reasons`` says why."""

    code = "quality_rejected"

    def __init__(self, message: str, reasons: Sequence[QualityReason]) -> None:
        super().__init__(message)
        self.reasons = tuple(reasons)


class PolicyDeniedError(FaceAccordError):
    """The policy refused the request before any biometric processing; ``decision`` says which
    rules refused it and why."""

    code = "policy_denied"

    def __init__(self, decision: Decision) -> None:
        rules = ", ".join(f"{r.rule} ({r.pack})" for r in decision.reasons) or "no rule allowed it"
        super().__init__(f"the policy denies this request: {rules}")
        self.decision = decision


class ReviewError(FaceAccordError):
    code = "review_error"


class ModelError(FaceAccordError):
    code = "model_error"


class TemplateMismatchError(ModelError):
    code = "template_mismatch"


class ConfigurationError(FaceAccordError):
    code = "configuration_error"


class PolicyPackError(ConfigurationError):
    code = "policy_pack_error"
