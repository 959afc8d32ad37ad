"""The ONNX Runtime ``Embedder``: dlib's ResNet converted to ONNX (the default), or any ONNX face
embedding model described by a model card with an ``[onnx]`` section.

Chips arrive as aligned uint8 RGB arrays; the card says how the model wants them (layout, dtype,
channel order, mean and std). Batches run in one session with explicit thread settings.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from faceaccord.biometrics.models.cards import ModelCard, OnnxInput, load_card, load_shipped_card
from faceaccord.biometrics.models.dlib_onnx import converted_model
from faceaccord.biometrics.models.weights import DlibWeights, file_sha256, weights_path
from faceaccord.errors import ModelError

__all__ = ["OnnxEmbedder", "converted_dlib_embedder", "user_model_embedder"]


class OnnxEmbedder:
    """Embeds chips with an ONNX model in ONNX Runtime (CPU), ``batch_size`` chips per run."""

    runtime = "onnxruntime"

    def __init__(
        self, *, model_path: Path, card: ModelCard, batch_size: int = 32, threads: int = 0
    ) -> None:
        if card.onnx is None:
            raise ModelError(f"model card {card.id} has no [onnx] section")
        self.card = card
        self.model_path = model_path
        self.batch_size = batch_size
        self.threads = threads or (os.cpu_count() or 1)
        self._input: OnnxInput = card.onnx
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Idle threads sleep instead of spinning: embedding shares the cores with detection
        # (worker processes, service threads), which spinning threads would starve.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(
                str(model_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"ONNX Runtime cannot load {model_path}: {exc}") from None
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or not outputs:
            raise ModelError(
                f"{model_path} must take one input (the chips); it takes {len(inputs)}"
            )
        self._input_name, self._output_name = inputs[0].name, outputs[0].name
        self._check_signature(inputs[0].shape, inputs[0].type, outputs[0].shape)

    def embed(self, chips: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        self.card.check_chips(chips)
        rows = [
            self._run(np.stack(chips[start : start + self.batch_size]))
            for start in range(0, len(chips), self.batch_size)
        ]
        if not rows:
            return np.zeros((0, self.card.embedding_dim), dtype=np.float32)
        return np.concatenate(rows)

    def _run(self, batch: NDArray[np.uint8]) -> NDArray[np.float32]:
        tensor = self._prepare(batch)
        (output,) = self._session.run([self._output_name], {self._input_name: tensor})
        embeddings = np.asarray(output, dtype=np.float32).reshape(len(batch), -1)
        if embeddings.shape[1] != self.card.embedding_dim:
            raise ModelError(
                f"{self.model_path.name} gave {embeddings.shape[1]}-d embeddings; its card "
                f"says {self.card.embedding_dim}"
            )
        if not np.isfinite(embeddings).all():
            raise ModelError(f"{self.model_path.name} gave a NaN or infinite embedding")
        if self._input.l2_normalise:
            norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
            embeddings = embeddings / np.maximum(norms, np.float32(1e-12))
        return embeddings

    def _prepare(self, batch: NDArray[np.uint8]) -> NDArray[np.generic]:
        spec = self._input
        pixels: NDArray[np.generic] = batch
        if spec.channel_order == "bgr":
            pixels = pixels[..., ::-1]
        if spec.dtype == "float32":
            mean = np.asarray(spec.mean, dtype=np.float32)
            std = np.asarray(spec.std, dtype=np.float32)
            pixels = (pixels.astype(np.float32) - mean) / std
        if spec.layout == "nchw":
            pixels = pixels.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(pixels)

    def _check_signature(
        self, input_shape: Sequence[object], input_type: str, output_shape: Sequence[object]
    ) -> None:
        expected_type = "tensor(uint8)" if self._input.dtype == "uint8" else "tensor(float)"
        if input_type != expected_type:
            raise ModelError(
                f"{self.model_path.name} takes {input_type}; its card says {self._input.dtype}"
            )
        size = self.card.chip_size
        spatial = [size, size, 3] if self._input.layout == "nhwc" else [3, size, size]
        fixed = list(input_shape[1:])
        if len(fixed) != 3 or any(
            isinstance(d, int) and d != want for d, want in zip(fixed, spatial, strict=True)
        ):
            raise ModelError(
                f"{self.model_path.name} takes input of shape {list(input_shape)}; its card "
                f"says {self._input.layout} chips of {size}x{size}"
            )
        last = output_shape[-1] if output_shape else None
        if isinstance(last, int) and last != self.card.embedding_dim:
            raise ModelError(
                f"{self.model_path.name} gives {last}-d embeddings; its card says "
                f"{self.card.embedding_dim}"
            )


def converted_dlib_embedder(
    *, cache_dir: Path, batch_size: int = 32, threads: int = 0
) -> OnnxEmbedder:
    """dlib's ResNet in ONNX Runtime, converted on first use and cached under ``cache_dir``."""
    card = load_shipped_card("dlib-resnet-v1")
    if card.sha256 != DlibWeights.RESNET_V1.sha256:
        raise ModelError("the dlib-resnet-v1 card does not describe the pinned weights file")
    model = converted_model(weights_path(DlibWeights.RESNET_V1), cache_dir)
    return OnnxEmbedder(model_path=model, card=card, batch_size=batch_size, threads=threads)


def user_model_embedder(card_path: Path, *, batch_size: int = 32, threads: int = 0) -> OnnxEmbedder:
    """An ONNX model of the user's own, described by the card at ``card_path``; the file's
    SHA-256 must be the card's."""
    card = load_card(card_path)
    if card.onnx is None or card.onnx.file is None:
        raise ModelError(f"model card {card_path} needs an [onnx] section naming its file")
    model = (card_path.parent / card.onnx.file).resolve()
    try:
        digest = file_sha256(model)
    except OSError as exc:
        raise ModelError(f"cannot read the model {model} named by {card_path}: {exc}") from None
    if digest != card.sha256:
        raise ModelError(
            f"{model} has SHA-256 {digest}, but its card {card_path} says {card.sha256}: "
            "the file is not the model the card (and its thresholds) describe"
        )
    return OnnxEmbedder(model_path=model, card=card, batch_size=batch_size, threads=threads)
