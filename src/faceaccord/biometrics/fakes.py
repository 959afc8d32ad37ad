"""Fakes for every biometric port, for fast tests without model weights.

They are simple but honest: the fake detector reports boxes placed where the test says, the fake
aligner really crops and resizes pixels, and the fake embedder is a fixed random projection of
the chip's pixels, so the same face gives the same template and different pictures differ.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from faceaccord.biometrics.faces import BoundingBox, Detection, Landmarks, Point
from faceaccord.biometrics.models.cards import Metric, ModelCard, OperatingPoint
from faceaccord.biometrics.pipeline import Engine
from faceaccord.settings import DetectorKind, Settings

__all__ = [
    "FakeAligner",
    "FakeDetector",
    "FakeEmbedder",
    "FakeLandmarker",
    "fake_card",
    "fake_engine",
]

RelativeBox = tuple[float, float, float, float]
"""(left, top, right, bottom) as fractions of the image's width and height."""


class FakeDetector:
    """Reports a face at each configured place, in whatever image it is given."""

    kind = DetectorKind.HOG

    def __init__(
        self, faces: Sequence[tuple[RelativeBox, float]] = (((0.25, 0.2, 0.75, 0.8), 1.5),)
    ):
        self.faces = list(faces)
        self.calls: list[tuple[int, int]] = []

    def detect(self, pixels: NDArray[np.uint8]) -> list[Detection]:
        height, width = pixels.shape[:2]
        self.calls.append((width, height))
        found = []
        for (left, top, right, bottom), score in self.faces:
            box = BoundingBox(
                left=round(left * width),
                top=round(top * height),
                right=max(round(right * width), round(left * width) + 1),
                bottom=max(round(bottom * height), round(top * height) + 1),
            )
            found.append(Detection(box=box, score=score))
        return found


class FakeLandmarker:
    """Puts the five points where they sit in a frontal face filling the box."""

    def locate(self, pixels: NDArray[np.uint8], boxes: Sequence[BoundingBox]) -> list[Landmarks]:
        del pixels
        return [_frontal_points(box) for box in boxes]


class FakeAligner:
    """Crops the landmarks' bounding square (black outside the image) and resizes it."""

    def __init__(self, *, chip_size: int = 150) -> None:
        self.chip_size = chip_size

    def align(
        self, pixels: NDArray[np.uint8], landmarks: Sequence[Landmarks]
    ) -> list[NDArray[np.uint8]]:
        image = Image.fromarray(pixels)
        chips = []
        for marks in landmarks:
            xs = [p.x for p in marks.points]
            ys = [p.y for p in marks.points]
            half = max(max(xs) - min(xs), max(ys) - min(ys), 2.0)
            cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
            crop = image.crop(
                (round(cx - half), round(cy - half), round(cx + half), round(cy + half))
            )
            chips.append(np.asarray(crop.resize((self.chip_size, self.chip_size)), dtype=np.uint8))
        return chips


class FakeEmbedder:
    """A fixed random projection of the chip's 16x16 greyscale thumbnail, scaled to unit length."""

    def __init__(self, card: ModelCard | None = None, *, seed: int = 7) -> None:
        self.card = card or fake_card()
        rng = np.random.default_rng(seed)
        self._projection = rng.standard_normal((256, self.card.embedding_dim)).astype(np.float32)
        self.batches: list[int] = []

    def embed(self, chips: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        self.batches.append(len(chips))
        rows = []
        for chip in chips:
            thumb = Image.fromarray(chip).convert("L").resize((16, 16), Image.Resampling.BILINEAR)
            flat = np.asarray(thumb, dtype=np.float32).reshape(-1) / 255.0
            vector = (flat - flat.mean()) @ self._projection
            norm = float(np.linalg.norm(vector))
            rows.append(vector / norm if norm > 0 else vector)
        if not rows:
            return np.zeros((0, self.card.embedding_dim), dtype=np.float32)
        return np.stack(rows).astype(np.float32)


def fake_card(*, threshold: float = 0.5) -> ModelCard:
    return ModelCard(
        id="fake-v1",
        name="fake embedder for tests",
        source="faceaccord.biometrics.fakes",
        licence="n/a",
        sha256="0" * 64,
        embedding_dim=128,
        chip_size=150,
        chip_padding=0.25,
        metric=Metric.EUCLIDEAN,
        published_accuracy="none: a test double",
        operating_points=(
            OperatingPoint(
                name="default",
                threshold=threshold,
                target_fmr=1e-3,
                measured_fmr=0.0,
                measured_fmr_ci95=(0.0, 1.0),
                measured_fnmr=0.0,
                impostor_pairs=0,
                genuine_pairs=0,
                dataset="none",
                protocol="none: a test double",
                measured_on=datetime.date(2026, 1, 1),
                command="none",
            ),
        ),
    )


def fake_engine(
    *,
    faces: Sequence[tuple[RelativeBox, float]] = (((0.25, 0.2, 0.75, 0.8), 1.5),),
    settings: Settings | None = None,
) -> Engine:
    """An ``Engine`` wired to the fakes."""
    return Engine(
        detector=FakeDetector(faces),
        landmarker=FakeLandmarker(),
        aligner=FakeAligner(),
        embedder=FakeEmbedder(),
        settings=settings or Settings(),
    )


def _frontal_points(box: BoundingBox) -> Landmarks:
    def at(fx: float, fy: float) -> Point:
        return Point(box.left + fx * box.width, box.top + fy * box.height)

    return Landmarks(
        points=(at(0.78, 0.38), at(0.60, 0.38), at(0.22, 0.38), at(0.40, 0.38), at(0.50, 0.64))
    )
