"""Model cards: versioned data describing an embedding model and its calibrated operating points.

A card is a TOML file. Thresholds live here, with how and on what data they were measured,
never as literals in code. The cards shipped with faceaccord are in ``cards/``; a user's own
model (a later ONNX backend) brings its own card.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from datetime import date
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from faceaccord.errors import ModelError

__all__ = [
    "Metric",
    "ModelCard",
    "OnnxInput",
    "OperatingPoint",
    "load_card",
    "load_shipped_card",
]


class Metric(StrEnum):
    EUCLIDEAN = "euclidean"
    """Distance between raw embeddings; a pair matches when distance <= threshold."""


class OperatingPoint(BaseModel):
    """A decision threshold and the error rates measured at it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    threshold: float = Field(gt=0)
    target_fmr: float | None = Field(default=None, gt=0, lt=1)
    """The false-match rate the threshold was set for; absent for a fixed, customary threshold."""
    measured_fmr: float = Field(ge=0, le=1)
    measured_fmr_ci95: tuple[float, float]
    measured_fnmr: float = Field(ge=0, le=1)
    impostor_pairs: int = Field(ge=0)
    genuine_pairs: int = Field(ge=0)
    dataset: str
    protocol: str
    measured_on: date
    command: str
    note: str = ""


class OnnxInput(BaseModel):
    """How an ONNX embedding model wants its chips, and where its file is. faceaccord hands the
    embedder aligned ``chip_size`` x ``chip_size`` RGB uint8 chips; this says how to turn them
    into the model's input tensor."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str | None = None
    """The ONNX file, relative to the card; absent for a model faceaccord converts itself."""
    layout: Literal["nhwc", "nchw"] = "nchw"
    dtype: Literal["uint8", "float32"] = "float32"
    """uint8: the chips go in as they are (the graph normalises); float32: ``(x - mean) / std``."""
    channel_order: Literal["rgb", "bgr"] = "rgb"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    l2_normalise: bool = False
    """Scale each embedding to unit length (cosine models such as ArcFace: Euclidean distance
    between unit vectors is ``sqrt(2 - 2 cos)``, so thresholds stay Euclidean)."""

    @model_validator(mode="after")
    def _consistent(self) -> OnnxInput:
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be positive")
        if self.dtype == "uint8" and (self.mean != (0.0, 0.0, 0.0) or self.std != (1.0, 1.0, 1.0)):
            raise ValueError("a uint8 input takes the chips as they are: no mean or std")
        return self


class ModelCard(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    source: str
    licence: str
    sha256: str
    embedding_dim: int = Field(gt=0)
    chip_size: int = Field(gt=0)
    chip_padding: float = Field(ge=0)
    metric: Metric
    published_accuracy: str
    onnx: OnnxInput | None = None
    """Present for models run by ONNX Runtime."""
    operating_points: tuple[OperatingPoint, ...] = Field(min_length=1)

    def check_chips(self, chips: Sequence[NDArray[np.uint8]]) -> None:
        """Refuse chips this model cannot take: each must be ``chip_size`` square, RGB, uint8."""
        size = self.chip_size
        for chip in chips:
            if chip.shape != (size, size, 3) or chip.dtype != np.uint8:
                raise ModelError(
                    f"{self.id} takes {size}x{size}x3 uint8 chips, got {chip.shape} {chip.dtype}"
                )

    def operating_point(self, name: str) -> OperatingPoint:
        for point in self.operating_points:
            if point.name == name:
                return point
        known = ", ".join(p.name for p in self.operating_points)
        raise ModelError(f"model {self.id} has no operating point {name!r} (it has: {known})")


def load_card(path: Path) -> ModelCard:
    try:
        return _parse(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise ModelError(f"cannot read model card {path}: {exc}") from None


def load_shipped_card(model_id: str) -> ModelCard:
    resource = resources.files("faceaccord.biometrics.models") / "cards" / f"{model_id}.toml"
    if not resource.is_file():
        raise ModelError(f"no model card ships for {model_id!r}")
    return _parse(resource.read_text(encoding="utf-8"), f"cards/{model_id}.toml")


def _parse(text: str, where: str) -> ModelCard:
    try:
        return ModelCard.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"model card {where} is not valid TOML: {exc}") from None
    except ValidationError as exc:
        raise ModelError(f"model card {where} is invalid: {exc}") from None
