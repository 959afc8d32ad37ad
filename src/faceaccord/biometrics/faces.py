"""Value types of the biometric pipeline: boxes, landmarks, faces and templates."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from faceaccord.biometrics.quality import QualityAssessment

__all__ = ["BoundingBox", "Detection", "Face", "FaceTemplate", "Landmarks", "Point"]


@dataclass(frozen=True, slots=True)
class BoundingBox:
    """A face box in image pixels; ``right`` and ``bottom`` are exclusive. A box may reach
    outside the image when the face is cut off by the frame."""

    left: int
    top: int
    right: int
    bottom: int

    def __post_init__(self) -> None:
        if self.right <= self.left or self.bottom <= self.top:
            raise ValueError(f"empty box {self.as_list()}")

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def area(self) -> int:
        return self.width * self.height

    def as_list(self) -> list[int]:
        return [self.left, self.top, self.right, self.bottom]

    def scaled(self, factor_x: float, factor_y: float) -> BoundingBox:
        """The same box in an image ``factor_x`` times as wide and ``factor_y`` times as tall."""
        left, top = math.floor(self.left * factor_x), math.floor(self.top * factor_y)
        return BoundingBox(
            left=left,
            top=top,
            right=max(math.ceil(self.right * factor_x), left + 1),
            bottom=max(math.ceil(self.bottom * factor_y), top + 1),
        )

    def fraction_outside(self, width: int, height: int) -> float:
        """Share of the box's area that lies outside a ``width`` x ``height`` image."""
        inside_w = max(0, min(self.right, width) - max(self.left, 0))
        inside_h = max(0, min(self.bottom, height) - max(self.top, 0))
        return 1.0 - (inside_w * inside_h) / self.area


@dataclass(frozen=True, slots=True)
class Point:
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class Landmarks:
    """dlib's five points, in image pixels: the subject's left eye outer and inner corners (on
    the image's right for a frontal face), the right eye outer and inner corners, and the base
    of the nose."""

    points: tuple[Point, Point, Point, Point, Point]

    @property
    def left_eye(self) -> Point:
        outer, inner = self.points[0], self.points[1]
        return Point((outer.x + inner.x) / 2, (outer.y + inner.y) / 2)

    @property
    def right_eye(self) -> Point:
        outer, inner = self.points[2], self.points[3]
        return Point((outer.x + inner.x) / 2, (outer.y + inner.y) / 2)

    @property
    def nose(self) -> Point:
        return self.points[4]

    @property
    def interocular_distance(self) -> float:
        left, right = self.left_eye, self.right_eye
        return math.hypot(left.x - right.x, left.y - right.y)

    def as_list(self) -> list[list[float]]:
        return [[p.x, p.y] for p in self.points]


@dataclass(frozen=True, slots=True)
class Detection:
    """What a detector reports: a box and its score (HOG: SVM margin; MMOD: confidence; both
    are detections above 0)."""

    box: BoundingBox
    score: float


@dataclass(frozen=True, slots=True)
class Face:
    """A detected face with its landmarks and quality."""

    box: BoundingBox
    score: float
    landmarks: Landmarks
    quality: QualityAssessment


@dataclass(frozen=True, slots=True, eq=False)
class FaceTemplate:
    """A face's embedding, stamped with the model that made it. Templates of different models
    are never compared."""

    face: Face
    embedding: NDArray[np.float32]
    model_id: str
