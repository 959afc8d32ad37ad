"""Face detection: the ``Detector`` port and dlib's HOG and MMOD detectors.

Detectors run on a *working copy* of the image scaled down so its longer side is at most
``DetectionSettings.max_side``: finding a face does not need 20 megapixels, and HOG's cost grows
with the pixel count. Boxes are mapped back to source pixels, where landmarks and chips are taken.
"""

from __future__ import annotations

from typing import Any, Protocol

import dlib
import numpy as np
from numpy.typing import NDArray
from PIL import Image

from faceaccord.biometrics.faces import BoundingBox, Detection
from faceaccord.biometrics.models.weights import DlibWeights, weights_path
from faceaccord.settings import DetectionSettings, DetectorKind

__all__ = ["Detector", "HogDetector", "MmodDetector", "detect_scaled", "make_detector"]


class Detector(Protocol):
    """Finds faces in an RGB image; boxes are in that image's pixels."""

    kind: DetectorKind

    def detect(self, pixels: NDArray[np.uint8]) -> list[Detection]: ...


class HogDetector:
    """dlib's frontal face detector (HOG features, linear SVM). ``upsample`` doubles the image
    that many times first, finding faces down to about 80 / 2**upsample pixels."""

    kind = DetectorKind.HOG

    def __init__(self, *, upsample: int = 1) -> None:
        self.upsample = upsample
        self._detector: Any = dlib.get_frontal_face_detector()

    def detect(self, pixels: NDArray[np.uint8]) -> list[Detection]:
        rects, scores, _ = self._detector.run(pixels, self.upsample, 0.0)
        return [Detection(box=_box(r), score=float(s)) for r, s in zip(rects, scores, strict=True)]


class MmodDetector:
    """dlib's MMOD CNN face detector: more poses and smaller faces than HOG, slower on a CPU."""

    kind = DetectorKind.MMOD

    def __init__(self, *, upsample: int = 1) -> None:
        self.upsample = upsample
        self._detector: Any = dlib.cnn_face_detection_model_v1(
            str(weights_path(DlibWeights.MMOD_DETECTOR))
        )

    def detect(self, pixels: NDArray[np.uint8]) -> list[Detection]:
        found = self._detector(pixels, self.upsample)
        return [Detection(box=_box(d.rect), score=float(d.confidence)) for d in found]


def make_detector(settings: DetectionSettings) -> Detector:
    """The one factory for detectors."""
    match settings.kind:
        case DetectorKind.HOG:
            return HogDetector(upsample=settings.upsample)
        case DetectorKind.MMOD:
            return MmodDetector(upsample=settings.upsample)


def detect_scaled(
    detector: Detector, pixels: NDArray[np.uint8], *, max_side: int
) -> list[Detection]:
    """Run ``detector`` on a copy of ``pixels`` no larger than ``max_side``; boxes come back in
    the source image's pixels."""
    height, width = pixels.shape[:2]
    scale = min(1.0, max_side / max(width, height))
    if scale >= 1.0:
        return detector.detect(pixels)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    working = np.asarray(
        Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    )
    back_x, back_y = width / size[0], height / size[1]
    return [
        Detection(box=d.box.scaled(back_x, back_y), score=d.score) for d in detector.detect(working)
    ]


def _box(rect: Any) -> BoundingBox:
    # dlib rectangles are inclusive on the right and bottom; ours are exclusive.
    return BoundingBox(
        left=int(rect.left()),
        top=int(rect.top()),
        right=int(rect.right()) + 1,
        bottom=int(rect.bottom()) + 1,
    )
