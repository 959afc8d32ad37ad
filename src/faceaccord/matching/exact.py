"""Exact 1:N search in process with NumPy (float32, one matrix product per probe).

Distances are Euclidean, computed as ``|p|^2 + |t|^2 - 2 p.t`` over a contiguous matrix that
grows by doubling; removal swaps the last row into the hole, so add and remove are O(1) per
template and the matrix never fragments. Search is O(n * d) and exact. Safe to share between
threads (one lock; a search at 100,000 templates holds it for a few milliseconds).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from faceaccord.matching.index import Candidate

__all__ = ["ExactIndex"]


class ExactIndex:
    def __init__(self, *, model_id: str, dimension: int, capacity: int = 1024) -> None:
        self.model_id = model_id
        self.dimension = dimension
        self._vectors = np.zeros((capacity, dimension), dtype=np.float32)
        self._norms = np.zeros(capacity, dtype=np.float32)
        self._template_ids: list[str] = []
        self._subject_ids: list[str] = []
        self._row_of: dict[str, int] = {}
        self._rows_of_subject: dict[str, set[int]] = {}
        self._lock = threading.RLock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._template_ids)

    def template_ids(self) -> set[str]:
        with self._lock:
            return set(self._template_ids)

    def add(
        self,
        *,
        template_ids: Sequence[str],
        subject_ids: Sequence[str],
        vectors: NDArray[np.float32],
    ) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise ValueError(
                f"expected vectors of shape (n, {self.dimension}), got {vectors.shape}"
            )
        if not len(template_ids) == len(subject_ids) == len(vectors):
            raise ValueError("template_ids, subject_ids and vectors differ in length")
        if not np.isfinite(vectors).all():
            raise ValueError("a template has a NaN or infinite value")
        with self._lock:
            self._add(template_ids, subject_ids, vectors)

    def _add(
        self, template_ids: Sequence[str], subject_ids: Sequence[str], vectors: NDArray[np.float32]
    ) -> None:
        for template_id, subject_id, vector in zip(template_ids, subject_ids, vectors, strict=True):
            row = self._row_of.get(template_id)
            if row is None:
                row = len(self._template_ids)
                self._grow(row + 1)
                self._template_ids.append(template_id)
                self._subject_ids.append(subject_id)
                self._row_of[template_id] = row
            else:
                self._rows_of_subject[self._subject_ids[row]].discard(row)
                self._subject_ids[row] = subject_id
            self._rows_of_subject.setdefault(subject_id, set()).add(row)
            self._vectors[row] = vector
            self._norms[row] = float(vector @ vector)

    def remove_subjects(self, subject_ids: Sequence[str]) -> int:
        with self._lock:
            return self._remove_subjects(subject_ids)

    def _remove_subjects(self, subject_ids: Sequence[str]) -> int:
        removed = 0
        for subject_id in subject_ids:
            rows = self._rows_of_subject.pop(subject_id, set())
            for row in sorted(rows, reverse=True):
                self._remove_row(row)
                removed += 1
        return removed

    def search(self, probe: NDArray[np.float32], *, k: int, threshold: float) -> list[Candidate]:
        probe = np.asarray(probe, dtype=np.float32).reshape(-1)
        if probe.shape != (self.dimension,):
            raise ValueError(f"expected a probe of length {self.dimension}, got {probe.shape}")
        with self._lock:
            return self._search(probe, k=k, threshold=threshold)

    def _search(self, probe: NDArray[np.float32], *, k: int, threshold: float) -> list[Candidate]:
        count = len(self._template_ids)
        if count == 0 or k <= 0:
            return []
        squared = self._norms[:count] - 2.0 * (self._vectors[:count] @ probe) + probe @ probe
        within = np.flatnonzero(squared <= threshold * threshold * (1 + 1e-6))
        if within.size == 0:
            return []
        order = within[np.argsort(squared[within], kind="stable")]
        probe_norm = float(np.sqrt(probe @ probe))
        best: dict[str, Candidate] = {}
        for row in order:
            subject_id = self._subject_ids[row]
            if subject_id in best:
                continue
            distance = float(np.sqrt(max(float(squared[row]), 0.0)))
            if distance > threshold:
                continue
            template_norm = float(np.sqrt(self._norms[row]))
            dot = (probe_norm**2 + template_norm**2 - distance**2) / 2
            norms = probe_norm * template_norm
            best[subject_id] = Candidate(
                subject_id=subject_id,
                template_id=self._template_ids[row],
                distance=distance,
                similarity=dot / norms if norms > 0 else 0.0,
            )
            if len(best) == k:
                break
        return list(best.values())

    def _grow(self, needed: int) -> None:
        capacity = len(self._vectors)
        if needed <= capacity:
            return
        new_capacity = max(needed, capacity * 2)
        vectors = np.zeros((new_capacity, self.dimension), dtype=np.float32)
        vectors[:capacity] = self._vectors
        norms = np.zeros(new_capacity, dtype=np.float32)
        norms[:capacity] = self._norms
        self._vectors, self._norms = vectors, norms

    def _remove_row(self, row: int) -> None:
        last = len(self._template_ids) - 1
        removed_template = self._template_ids[row]
        if row != last:
            moved_template, moved_subject = self._template_ids[last], self._subject_ids[last]
            self._vectors[row] = self._vectors[last]
            self._norms[row] = self._norms[last]
            self._template_ids[row] = moved_template
            self._subject_ids[row] = moved_subject
            self._row_of[moved_template] = row
            rows = self._rows_of_subject[moved_subject]
            rows.discard(last)
            rows.add(row)
        self._template_ids.pop()
        self._subject_ids.pop()
        del self._row_of[removed_template]
