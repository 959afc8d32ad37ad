"""Embedding: the ``Embedder`` port and dlib's ResNet (128-d, 29 conv layers, 99.38 % on LFW)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import dlib
import numpy as np
from numpy.typing import NDArray

from faceaccord.biometrics.models.cards import ModelCard, load_shipped_card
from faceaccord.biometrics.models.weights import DlibWeights, weights_path
from faceaccord.biometrics.onnx_embed import converted_dlib_embedder, user_model_embedder
from faceaccord.errors import ModelError
from faceaccord.settings import EmbeddingRuntime, Settings

__all__ = ["DlibResNetEmbedder", "Embedder", "load_embedder"]


class Embedder(Protocol):
    """Turns aligned chips into embeddings; ``card`` says which model and how to compare."""

    card: ModelCard

    def embed(self, chips: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        """An (n, card.embedding_dim) float32 array, one row per chip, in order."""
        ...


def load_embedder(settings: Settings) -> Embedder:
    """The embedder the settings choose: a user's ONNX model when a card is given, else dlib's
    ResNet in ONNX Runtime (default) or in dlib."""
    embedding = settings.embedding
    if embedding.model_card is not None:
        return user_model_embedder(
            embedding.model_card, batch_size=settings.embed_batch_size, threads=embedding.threads
        )
    if embedding.runtime is EmbeddingRuntime.DLIB:
        return DlibResNetEmbedder(batch_size=settings.embed_batch_size)
    return converted_dlib_embedder(
        cache_dir=settings.model_cache_dir(),
        batch_size=settings.embed_batch_size,
        threads=embedding.threads,
    )


class DlibResNetEmbedder:
    """dlib's face recognition ResNet, run by dlib itself, in batches."""

    runtime = "dlib"

    def __init__(self, *, batch_size: int = 32) -> None:
        self.card = load_shipped_card("dlib-resnet-v1")
        if self.card.sha256 != DlibWeights.RESNET_V1.sha256:
            raise ModelError("the dlib-resnet-v1 card does not describe the pinned weights file")
        self.batch_size = batch_size
        self._net: Any = dlib.face_recognition_model_v1(str(weights_path(DlibWeights.RESNET_V1)))

    def embed(self, chips: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        self.card.check_chips(chips)
        rows: list[NDArray[np.float32]] = []
        for start in range(0, len(chips), self.batch_size):
            batch = list(chips[start : start + self.batch_size])
            descriptors = self._net.compute_face_descriptor(batch)
            rows.extend(np.asarray(d, dtype=np.float32) for d in descriptors)
        if not rows:
            return np.zeros((0, self.card.embedding_dim), dtype=np.float32)
        return np.stack(rows)
