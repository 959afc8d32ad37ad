"""Per-face quality: size, sharpness, pose, exposure and framing, and the enrolment gate.

Every figure is measured on things the pipeline already has (the box, the five landmarks and
the aligned 150x150 chip), so assessing quality costs well under a millisecond a face.

- ``face_px``: the shorter side of the face box, in source-image pixels.
- ``interocular_px``: distance between the eye centres (ISO/IEC 29794-5 uses it for resolution).
- ``sharpness``: variance of the 4-neighbour Laplacian of the chip's central face region
  (greyscale, 0-255). Blur lowers it; a sharp face in good light is typically above 100.
- ``yaw_deg``/``pitch_deg``/``roll_deg``: head pose *estimated* from the five landmarks: roll
  from the eye line; yaw and pitch from where the nose base sits relative to the eyes,
  assuming the nose base lies ``NOSE_DEPTH_RATIO`` inter-ocular distances in front of the eyes
  and ``FRONTAL_NOSE_DROP`` below them. Good to about ten degrees; meant to catch profiles and
  strong tilts, not to measure them.
- ``brightness``: mean luminance (0-1) of the chip's central face region; ``dark_fraction`` and
  ``bright_fraction``: share of those pixels below 5 % or above 95 % of full scale (clipping).
- ``fraction_outside``: share of the face box outside the image (a face cut off by the frame).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from faceaccord.settings import QualityGateSettings

if TYPE_CHECKING:
    from faceaccord.biometrics.faces import BoundingBox, Face, Landmarks

__all__ = ["QualityAssessment", "QualityGate", "QualityReason", "assess_quality"]

NOSE_DEPTH_RATIO = 0.35
"""Nose base in front of the eye centres, in inter-ocular distances (adult anthropometry)."""
FRONTAL_NOSE_DROP = 0.69
"""Nose base below the eye line, in inter-ocular distances: the median over 40 frontal studio
photos of faces-demographic (quartiles 0.66 and 0.72)."""
CUT_OFF_FRACTION = 0.10
_CENTRE = slice(38, 112)  # the face region of a 150 px chip with dlib's 0.25 padding


class QualityReason(StrEnum):
    """Why a face is not enrolled (after Rekognition's "unindexed face" reasons)."""

    EXCEEDS_MAX_FACES = "exceeds_max_faces"
    SMALL_FACE = "small_face"
    LOW_SHARPNESS = "low_sharpness"
    EXTREME_POSE = "extreme_pose"
    LOW_BRIGHTNESS = "low_brightness"
    OVEREXPOSED = "overexposed"
    LOW_CONFIDENCE = "low_confidence"
    FACE_CUT_OFF = "face_cut_off"


@dataclass(frozen=True, slots=True)
class QualityAssessment:
    face_px: int
    interocular_px: float
    sharpness: float
    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    brightness: float
    dark_fraction: float
    bright_fraction: float
    fraction_outside: float

    def as_dict(self) -> dict[str, float | int]:
        return {key: round(value, 4) for key, value in asdict(self).items()}


def assess_quality(
    *,
    chip: NDArray[np.uint8],
    box: BoundingBox,
    landmarks: Landmarks,
    image_width: int,
    image_height: int,
) -> QualityAssessment:
    """Measure one face. ``chip`` is its aligned RGB chip (dlib layout, 150x150)."""
    centre = _luminance(chip)[_CENTRE, _CENTRE] if chip.shape[0] >= 150 else _luminance(chip)
    yaw, pitch, roll = estimate_pose(landmarks)
    return QualityAssessment(
        face_px=min(box.width, box.height),
        interocular_px=landmarks.interocular_distance,
        sharpness=_laplacian_variance(centre),
        yaw_deg=yaw,
        pitch_deg=pitch,
        roll_deg=roll,
        brightness=float(centre.mean() / 255.0),
        dark_fraction=float((centre < 0.05 * 255).mean()),
        bright_fraction=float((centre > 0.95 * 255).mean()),
        fraction_outside=box.fraction_outside(image_width, image_height),
    )


def estimate_pose(landmarks: Landmarks) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from five landmarks; positive yaw turns the nose towards
    the image's right, positive pitch tilts the face down."""
    left, right, nose = landmarks.left_eye, landmarks.right_eye, landmarks.nose
    dx, dy = left.x - right.x, left.y - right.y
    iod = math.hypot(dx, dy)
    if iod == 0.0:
        return 90.0, 90.0, 0.0
    ux, uy = dx / iod, dy / iod  # along the eye line, towards the image's right
    mid_x, mid_y = (left.x + right.x) / 2, (left.y + right.y) / 2
    nx = ((nose.x - mid_x) * ux + (nose.y - mid_y) * uy) / iod
    ny = (-(nose.x - mid_x) * uy + (nose.y - mid_y) * ux) / iod
    yaw = math.degrees(math.atan2(nx, NOSE_DEPTH_RATIO))
    pitch = math.degrees(math.atan2(FRONTAL_NOSE_DROP - ny, NOSE_DEPTH_RATIO))
    roll = math.degrees(math.atan2(dy, dx))
    return yaw, pitch, roll


class QualityGate:
    """Decides whether a face is good enough to enrol, and if not, why not."""

    def __init__(self, settings: QualityGateSettings) -> None:
        self.settings = settings

    def reasons(self, face: Face, *, faces_in_image: int = 1) -> list[QualityReason]:
        """Every reason the face fails the gate; empty when it passes."""
        s, q = self.settings, face.quality
        found: list[QualityReason] = []
        if faces_in_image > s.max_faces:
            found.append(QualityReason.EXCEEDS_MAX_FACES)
        if q.face_px < s.min_face_px:
            found.append(QualityReason.SMALL_FACE)
        if q.sharpness < s.min_sharpness:
            found.append(QualityReason.LOW_SHARPNESS)
        if (
            abs(q.yaw_deg) > s.max_yaw_deg
            or abs(q.pitch_deg) > s.max_pitch_deg
            or abs(q.roll_deg) > s.max_roll_deg
        ):
            found.append(QualityReason.EXTREME_POSE)
        if q.brightness < s.min_brightness:
            found.append(QualityReason.LOW_BRIGHTNESS)
        if q.brightness > s.max_brightness:
            found.append(QualityReason.OVEREXPOSED)
        if face.score < s.min_detection_score:
            found.append(QualityReason.LOW_CONFIDENCE)
        if q.fraction_outside > CUT_OFF_FRACTION and not s.allow_cut_off:
            found.append(QualityReason.FACE_CUT_OFF)
        return found


def _luminance(chip: NDArray[np.uint8]) -> NDArray[np.float32]:
    rgb = chip.astype(np.float32)
    result: NDArray[np.float32] = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return result


def _laplacian_variance(grey: NDArray[np.float32]) -> float:
    lap = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * grey[1:-1, 1:-1]
    return float(lap.var())
