"""INT8 quantisation of an ONNX embedding model (static, per-channel weights, QDQ format),
calibrated on aligned chips of real faces.

A quantised model's embeddings differ from the float model's (``benchmarks/bench_embedding.py``
reports by how much, and what that does to verification). Its templates must therefore never
be compared with the float model's, and its thresholds must be calibrated anew: it is offered
for measurement here, not yet as a deployable model with a card of its own.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from faceaccord.biometrics.models.dlib_onnx import INPUT_NAME
from faceaccord.errors import ModelError

__all__ = ["quantize_int8"]


class _Chips(CalibrationDataReader):  # type: ignore[misc]
    def __init__(self, chips: Sequence[NDArray[np.uint8]]) -> None:
        self._feeds = iter([{INPUT_NAME: chip[np.newaxis]} for chip in chips])

    def get_next(self) -> dict[str, NDArray[np.uint8]] | None:
        return next(self._feeds, None)


def quantize_int8(model: Path, chips: Sequence[NDArray[np.uint8]], out: Path) -> Path:
    """Write an INT8 version of ``model`` (which takes uint8 chips) to ``out``, its activation
    ranges calibrated on ``chips``."""
    if len(chips) < 8:
        raise ModelError(f"calibrating INT8 needs at least 8 chips of real faces, got {len(chips)}")
    with tempfile.TemporaryDirectory() as work:
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out),
            _Chips(chips),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
    return out
