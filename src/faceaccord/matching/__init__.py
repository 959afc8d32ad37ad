"""Matching: 1:1 verification, and 1:N identification behind the ``TemplateIndex`` port.

Two adapters satisfy the port (and ``ScalableIndex``, which adds batched search and saving):

* ``ExactIndex`` (``faceaccord.matching.exact``): exact answers by a blocked scan; float32 or
  float16 storage. The reference the approximate index is tested against.
* ``HnswIndex`` (``faceaccord.matching.approximate``): a FAISS HNSW graph for millions of
  templates; approximate recall, exact distances.

``make_index`` builds either from an ``IndexKind``; ``load_index`` reopens a saved one of either
kind. FAISS is imported only when an HNSW index (or float16 storage) is used.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from faceaccord.matching import persistence
from faceaccord.matching.exact import ExactIndex, Storage
from faceaccord.matching.index import Candidate, TemplateIndex

__all__ = [
    "Candidate",
    "ExactIndex",
    "IndexKind",
    "ScalableIndex",
    "Storage",
    "TemplateIndex",
    "load_index",
    "make_index",
]


class IndexKind(StrEnum):
    EXACT = "exact"
    HNSW = "hnsw"


class ScalableIndex(TemplateIndex, Protocol):
    """``TemplateIndex`` plus what search at scale needs (to join the port in ``index.py``)."""

    def search_many(
        self, probes: NDArray[np.float32], *, k: int, threshold: float
    ) -> list[list[Candidate]]:
        """``search`` for each row of ``probes`` (m, dimension)."""
        ...

    def save(self, directory: Path) -> None:
        """Write the index to ``directory`` atomically."""
        ...


def make_index(
    kind: IndexKind | str, *, model_id: str, dimension: int, **options: Any
) -> ScalableIndex:
    """An empty index of this kind; ``options`` go to its constructor (``ExactIndex``:
    ``capacity``, ``storage``, ``spill_dir``, ``block_rows``; ``HnswIndex``: ``neighbours``,
    ``ef_construction``, ``ef_search``, ``fetch``, ``compact_at``)."""
    match IndexKind(kind):
        case IndexKind.EXACT:
            return ExactIndex(model_id=model_id, dimension=dimension, **options)
        case IndexKind.HNSW:
            from faceaccord.matching.approximate import HnswIndex  # noqa: PLC0415 - loads FAISS

            return HnswIndex(model_id=model_id, dimension=dimension, **options)


def load_index(directory: Path, *, model_id: str, dimension: int) -> ScalableIndex:
    """Reopen the index saved in ``directory``, of whichever kind it is; refuses
    (``ValueError``) another model or dimension, or corrupt or truncated files."""
    match persistence.saved_kind(directory):
        case IndexKind.EXACT:
            return ExactIndex.load(directory, model_id=model_id, dimension=dimension)
        case IndexKind.HNSW:
            from faceaccord.matching.approximate import HnswIndex  # noqa: PLC0415 - loads FAISS

            return HnswIndex.load(directory, model_id=model_id, dimension=dimension)
        case other:
            raise ValueError(f"{directory} holds an index of unknown kind {other!r}")
