"""Comparison pairs: every genuine pair (capped per subject, seeded) and every impostor pair,
with the indices of the subjects involved, so groups and bootstrap replicates are selections."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["PairSet", "build_pairs"]


@dataclass(frozen=True, slots=True)
class PairSet:
    subject_a: NDArray[np.int64]
    subject_b: NDArray[np.int64]
    distance: NDArray[np.float64]
    genuine: NDArray[np.bool_]
    row_a: NDArray[np.int64]
    row_b: NDArray[np.int64]
    """The rows of the embeddings each pair compares (to apply per-template offsets)."""

    def with_distances(self, distance: NDArray[np.float64]) -> PairSet:
        """The same pairs scored otherwise (normalised distances)."""
        if distance.shape != self.distance.shape:
            raise ValueError("one distance per pair")
        return PairSet(self.subject_a, self.subject_b, distance, self.genuine, self.row_a,
                       self.row_b)  # fmt: skip

    @property
    def impostor(self) -> NDArray[np.bool_]:
        return ~self.genuine

    def __len__(self) -> int:
        return int(self.distance.size)


def build_pairs(
    embeddings: NDArray[np.float64],
    subjects: NDArray[np.int64],
    *,
    genuine_cap: int = 100,
    seed: int = 20261122,
) -> PairSet:
    """Pairs of the rows of ``embeddings`` (acquired images only), with ``subjects`` giving each
    row's subject index. Genuine pairs per subject are capped at ``genuine_cap`` (a seeded
    sample); impostor pairs are all pairs of different subjects."""
    rng = np.random.default_rng(seed)
    count = len(embeddings)
    if count != len(subjects):
        raise ValueError("one subject per embedding")
    upper_a, upper_b = np.triu_indices(count, k=1)
    same = subjects[upper_a] == subjects[upper_b]
    keep = ~same
    for subject in np.unique(subjects):
        rows = np.flatnonzero(same & (subjects[upper_a] == subject))
        if rows.size > genuine_cap:
            rows = rng.choice(rows, size=genuine_cap, replace=False)
        keep[rows] = True
    a, b = upper_a[keep], upper_b[keep]
    squared = (
        np.einsum("ij,ij->i", embeddings[a], embeddings[a])
        + np.einsum("ij,ij->i", embeddings[b], embeddings[b])
        - 2 * np.einsum("ij,ij->i", embeddings[a], embeddings[b])
    )
    return PairSet(
        subject_a=subjects[a].astype(np.int64),
        subject_b=subjects[b].astype(np.int64),
        distance=np.sqrt(np.maximum(squared, 0.0)),
        genuine=(subjects[a] == subjects[b]),
        row_a=a.astype(np.int64),
        row_b=b.astype(np.int64),
    )
