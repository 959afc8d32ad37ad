"""Quality is measured from the box, the five landmarks and the chip; the gate says why not."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from PIL import Image, ImageFilter

from faceaccord.biometrics.faces import BoundingBox, Face, Landmarks, Point
from faceaccord.biometrics.quality import (
    QualityAssessment,
    QualityGate,
    QualityReason,
    assess_quality,
    estimate_pose,
)
from faceaccord.settings import QualityGateSettings

FRONTAL = Landmarks(
    points=(Point(160, 100), Point(130, 100), Point(60, 100), Point(90, 100), Point(110, 148))
)
BOX = BoundingBox(left=40, top=40, right=200, bottom=220)


def _rotated(landmarks: Landmarks, degrees: float) -> Landmarks:
    angle = math.radians(degrees)
    cx, cy = 110.0, 120.0

    def turn(p: Point) -> Point:
        dx, dy = p.x - cx, p.y - cy
        return Point(
            cx + dx * math.cos(angle) - dy * math.sin(angle),
            cy + dx * math.sin(angle) + dy * math.cos(angle),
        )

    return Landmarks(points=tuple(turn(p) for p in landmarks.points))  # type: ignore[arg-type]


def _textured_chip(seed: int = 1, level: float = 128.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    chip = rng.normal(level, 40.0, size=(150, 150, 3))
    return np.clip(chip, 0, 255).astype(np.uint8)


def _good_quality(**changes: float) -> QualityAssessment:
    base = QualityAssessment(
        face_px=160,
        interocular_px=70.0,
        sharpness=400.0,
        yaw_deg=0.0,
        pitch_deg=0.0,
        roll_deg=0.0,
        brightness=0.5,
        dark_fraction=0.0,
        bright_fraction=0.0,
        fraction_outside=0.0,
    )
    return dataclasses.replace(base, **changes)


def _face(score: float = 2.0, **quality: float) -> Face:
    return Face(box=BOX, score=score, landmarks=FRONTAL, quality=_good_quality(**quality))


def test_a_frontal_face_has_near_zero_pose() -> None:
    yaw, pitch, roll = estimate_pose(FRONTAL)
    assert abs(yaw) < 1
    assert abs(roll) < 1
    assert abs(pitch) < 10


def test_roll_is_the_angle_of_the_eye_line() -> None:
    _, _, roll = estimate_pose(_rotated(FRONTAL, 20))
    assert roll == pytest.approx(20, abs=0.01)


def test_yaw_follows_the_nose_and_does_not_change_with_roll() -> None:
    nose_right = Landmarks(points=(*FRONTAL.points[:4], Point(140, 148)))
    yaw, _, _ = estimate_pose(nose_right)
    assert yaw > 30
    yaw_rolled, _, _ = estimate_pose(_rotated(nose_right, 25))
    assert yaw_rolled == pytest.approx(yaw, abs=0.01)


def test_blur_lowers_sharpness() -> None:
    chip = _textured_chip()
    blurred = np.asarray(Image.fromarray(chip).filter(ImageFilter.GaussianBlur(3)))
    sharp_q = assess_quality(
        chip=chip, box=BOX, landmarks=FRONTAL, image_width=400, image_height=400
    )
    blur_q = assess_quality(
        chip=blurred, box=BOX, landmarks=FRONTAL, image_width=400, image_height=400
    )
    assert blur_q.sharpness < sharp_q.sharpness / 10


def test_exposure_is_measured_on_the_face_region() -> None:
    dark = assess_quality(
        chip=_textured_chip(level=15), box=BOX, landmarks=FRONTAL, image_width=400, image_height=400
    )
    bright = assess_quality(
        chip=_textured_chip(level=245),
        box=BOX,
        landmarks=FRONTAL,
        image_width=400,
        image_height=400,
    )
    assert dark.brightness < 0.15
    assert bright.brightness > 0.85
    assert dark.dark_fraction > 0.3
    assert bright.bright_fraction > 0.3


def test_a_box_reaching_outside_the_frame_is_measured() -> None:
    box = BoundingBox(left=-50, top=0, right=150, bottom=200)
    quality = assess_quality(
        chip=_textured_chip(), box=box, landmarks=FRONTAL, image_width=400, image_height=400
    )
    assert quality.fraction_outside == pytest.approx(0.25)
    assert quality.face_px == 200


def test_a_good_face_passes_the_gate() -> None:
    assert QualityGate(QualityGateSettings()).reasons(_face()) == []


@pytest.mark.parametrize(
    ("face", "reason"),
    [
        (_face(face_px=30), QualityReason.SMALL_FACE),
        (_face(sharpness=2.0), QualityReason.LOW_SHARPNESS),
        (_face(yaw_deg=60.0), QualityReason.EXTREME_POSE),
        (_face(roll_deg=-45.0), QualityReason.EXTREME_POSE),
        (_face(pitch_deg=40.0), QualityReason.EXTREME_POSE),
        (_face(brightness=0.05), QualityReason.LOW_BRIGHTNESS),
        (_face(brightness=0.97), QualityReason.OVEREXPOSED),
        (_face(score=0.1), QualityReason.LOW_CONFIDENCE),
        (_face(fraction_outside=0.3), QualityReason.FACE_CUT_OFF),
    ],
)
def test_each_failing_measure_is_named(face: Face, reason: QualityReason) -> None:
    assert QualityGate(QualityGateSettings()).reasons(face) == [reason]


def test_more_faces_than_allowed_is_a_reason() -> None:
    gate = QualityGate(QualityGateSettings(max_faces=1))
    assert gate.reasons(_face(), faces_in_image=2) == [QualityReason.EXCEEDS_MAX_FACES]


def test_every_reason_is_reported_not_just_the_first() -> None:
    reasons = QualityGate(QualityGateSettings()).reasons(_face(face_px=10, sharpness=0.0))
    assert reasons == [QualityReason.SMALL_FACE, QualityReason.LOW_SHARPNESS]


def test_cut_off_faces_can_be_allowed_by_settings() -> None:
    gate = QualityGate(QualityGateSettings(allow_cut_off=True))
    assert gate.reasons(_face(fraction_outside=0.5)) == []
