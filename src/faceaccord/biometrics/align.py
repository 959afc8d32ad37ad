"""Landmarks and alignment: the ``Landmarker`` and ``Aligner`` ports and their dlib adapters.

Alignment follows dlib exactly (``get_face_chip``: a similarity transform of the five
landmarks onto a template, 150x150 pixels, 0.25 padding), because dlib's ResNet was trained on
chips made that way and its descriptors are only meaningful for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import dlib
import numpy as np
from numpy.typing import NDArray

from faceaccord.biometrics.faces import BoundingBox, Landmarks, Point
from faceaccord.biometrics.models.weights import DlibWeights, weights_path

__all__ = ["Aligner", "DlibAligner", "DlibLandmarker", "Landmarker"]


class Landmarker(Protocol):
    def locate(self, pixels: NDArray[np.uint8], boxes: Sequence[BoundingBox]) -> list[Landmarks]:
        """Five landmarks for each box, in image pixels."""
        ...


class Aligner(Protocol):
    chip_size: int

    def align(
        self, pixels: NDArray[np.uint8], landmarks: Sequence[Landmarks]
    ) -> list[NDArray[np.uint8]]:
        """One aligned ``chip_size`` x ``chip_size`` RGB chip per face."""
        ...


class DlibLandmarker:
    """dlib's 5-point shape predictor (trained on dlib's own CC0 data set)."""

    def __init__(self) -> None:
        self._predictor: Any = dlib.shape_predictor(str(weights_path(DlibWeights.LANDMARKS_5)))

    def locate(self, pixels: NDArray[np.uint8], boxes: Sequence[BoundingBox]) -> list[Landmarks]:
        found = []
        for box in boxes:
            shape = self._predictor(pixels, to_dlib_rect(box))
            points = tuple(Point(float(p.x), float(p.y)) for p in shape.parts())
            found.append(Landmarks(points=points))  # type: ignore[arg-type]
        return found


class DlibAligner:
    def __init__(self, *, chip_size: int = 150, padding: float = 0.25) -> None:
        self.chip_size = chip_size
        self.padding = padding

    def align(
        self, pixels: NDArray[np.uint8], landmarks: Sequence[Landmarks]
    ) -> list[NDArray[np.uint8]]:
        if not landmarks:
            return []
        shapes = dlib.full_object_detections()
        for marks in landmarks:
            shapes.append(to_dlib_shape(marks))
        chips = dlib.get_face_chips(pixels, shapes, size=self.chip_size, padding=self.padding)
        return [np.ascontiguousarray(chip, dtype=np.uint8) for chip in chips]


def to_dlib_rect(box: BoundingBox) -> Any:
    return dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)


def to_dlib_shape(landmarks: Landmarks) -> Any:
    xs = [p.x for p in landmarks.points]
    ys = [p.y for p in landmarks.points]
    rect = dlib.rectangle(round(min(xs)), round(min(ys)), round(max(xs)), round(max(ys)))
    return dlib.full_object_detection(
        rect, [dlib.point(round(p.x), round(p.y)) for p in landmarks.points]
    )
