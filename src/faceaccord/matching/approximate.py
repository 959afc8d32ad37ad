"""Approximate 1:N search at millions of templates: a FAISS HNSW graph, re-ranked exactly.

``HnswIndex`` finds candidate templates on a FAISS ``IndexHNSWFlat`` graph (L2, float32 vectors
kept in the graph's own storage) and re-ranks them with ``rank_exactly`` in float64 from those
float32 vectors. So *recall* is approximate (the graph can miss a near template; the benchmark
measures how often) but every distance returned is exact, the threshold is applied to exact
distances, and there is one candidate per subject (its nearest template found).

* **Fetching.** A search asks the graph for ``fetch * k`` templates (a subject has several) with
  ``efSearch = max(ef_search, fetch * k)``; when fewer than ``k`` subjects come back and the
  farthest template fetched is still within the threshold, it asks again for four times as many.
* **Removal.** HNSW graphs cannot delete a node (``remove_ids`` is unsupported), so a removed or
  replaced template becomes a *tombstone*: its node stays in the graph as a waypoint, a bitmap
  ``IDSelector`` keeps it out of results (the search still finds ``k`` live neighbours), and its
  template and subject ids are forgotten at once. When tombstones exceed ``compact_at`` of the
  nodes, the graph is rebuilt from the live vectors (``compact``): the cost of a build of the
  live templates, paid once per ``compact_at * n`` removals, under the lock.
* **Threads.** One lock, held for a whole search, add, removal or save. FAISS parallelises a
  batch (``search_many``) and a large ``add`` over its OpenMP threads.

Why HNSW, and these defaults (M=32, efConstruction=80, efSearch=256). ``bench_search.py`` at
1,000,000 dlib-like templates, three full runs on a shared 2-core machine: the graph builds in
245-268 s; recall@10 (the exact top-10 subjects found) is 0.9815 at efSearch 256 with p50
1.4-2.4 ms per probe, 0.9425 at 128 (1.0-1.25 ms), 0.9895 at 384 (2.0-2.5 ms). Its IVF peer
(``IndexIVFFlat``, 4,096 lists, 128 probed) reaches 0.9955 at 1.3-1.6 ms and builds in 28-76 s.
While choosing: M=48 with efConstruction=128 took 9.4 minutes to build for 0.991 at efSearch 192
(1.3 ms), and float16 or 8-bit codes made neither HNSW nor IVF faster. So on these templates IVF
matches HNSW's recall per millisecond and builds several times faster; HNSW is kept because it
needs no training set: a gallery starts empty and grows one enrolment at a time, which an IVF
index must follow with training and periodic retraining. That lifecycle is the next step for
galleries of tens of millions.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss as faiss_module
import numpy as np
from numpy.typing import NDArray

from faceaccord.matching import persistence
from faceaccord.matching.exact import (
    SubjectTable,
    check_threshold,
    checked_probes,
    checked_templates,
    faiss_threads,
    last_occurrences,
    rank_exactly,
)
from faceaccord.matching.index import Candidate

__all__ = ["HnswIndex"]

faiss: Any = faiss_module
"""FAISS, untyped here: its bundled stubs lack IDSelectorBitmap, SearchParametersHNSW, swig_ptr."""
FORMAT_KIND = "hnsw"
GRAPH_FILE = "graph.faiss"
TOMBSTONE = -1


class HnswIndex:
    def __init__(
        self,
        *,
        model_id: str,
        dimension: int,
        neighbours: int = 32,
        ef_construction: int = 80,
        ef_search: int = 256,
        fetch: int = 4,
        compact_at: float = 0.25,
    ) -> None:
        """``neighbours`` is HNSW's M (links per node; 2M on the bottom layer),
        ``ef_construction`` and ``ef_search`` its candidate-list sizes when inserting and
        searching; ``fetch`` templates are fetched per subject asked for; the graph is rebuilt
        when tombstones exceed ``compact_at`` (0 < compact_at <= 1) of its nodes."""
        if dimension <= 0:
            raise ValueError(f"dimension must be positive, got {dimension}")
        if neighbours < 2 or ef_construction < 1 or ef_search < 1 or fetch < 1:
            raise ValueError("neighbours must be >= 2 and ef_construction, ef_search, fetch >= 1")
        if not 0 < compact_at <= 1:
            raise ValueError(f"compact_at must be in (0, 1], got {compact_at}")
        self.model_id = model_id
        self.dimension = dimension
        self.neighbours = neighbours
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.fetch = fetch
        self.compact_at = compact_at
        self._graph: Any = self._new_graph()
        self._template_of: list[str | None] = []
        """Template id of each node (label), None for a tombstone."""
        self._label_of: dict[str, int] = {}
        self._subject_codes = np.zeros(1024, dtype=np.int32)
        self._alive = np.zeros(1024 // 8, dtype=np.uint8)
        """One bit per node, FAISS ``IDSelectorBitmap`` order (bit ``i & 7`` of byte ``i >> 3``)."""
        self._tombstones = 0
        self._subjects = SubjectTable()
        self._lock = threading.RLock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._label_of)

    @property
    def tombstones(self) -> int:
        """Nodes of removed or replaced templates still in the graph."""
        with self._lock:
            return self._tombstones

    def template_ids(self) -> set[str]:
        with self._lock:
            return set(self._label_of)

    def add(
        self,
        *,
        template_ids: Sequence[str],
        subject_ids: Sequence[str],
        vectors: NDArray[np.float32],
    ) -> None:
        """Add templates (rows of ``vectors``); re-adding a template id replaces it (the old node
        becomes a tombstone), and within one call the last occurrence of an id wins."""
        checked = checked_templates(vectors, self.dimension, template_ids, subject_ids)
        ids, subjects, rows = last_occurrences(template_ids, subject_ids, checked)
        with self._lock:
            replaced = [self._label_of[t] for t in ids if t in self._label_of]
            self._bury(np.asarray(replaced, dtype=np.intp))
            self._append(ids, self._subjects.codes(subjects), rows)
            self._compact_if_due()

    def remove_subjects(self, subject_ids: Sequence[str]) -> int:
        """Remove every template of these subjects (they become tombstones at once)."""
        with self._lock:
            codes = self._subjects.known_codes(subject_ids)
            if not codes:
                return 0
            nodes = self._graph.ntotal
            labels = np.flatnonzero(np.isin(self._subject_codes[:nodes], codes))
            self._bury(labels)
            self._subjects.forget(codes)
            self._compact_if_due()
            return int(labels.size)

    def compact(self) -> None:
        """Rebuild the graph from the live templates, dropping every tombstone."""
        with self._lock:
            self._compact()

    def search(self, probe: NDArray[np.float32], *, k: int, threshold: float) -> list[Candidate]:
        """Up to ``k`` subjects whose nearest template found is within ``threshold``, nearest
        first, with exact distances."""
        flat = np.asarray(probe, dtype=np.float32).reshape(-1)
        if flat.shape != (self.dimension,):
            raise ValueError(f"expected a probe of length {self.dimension}, got {np.shape(probe)}")
        return self.search_many(flat[None, :], k=k, threshold=threshold)[0]

    def search_many(
        self, probes: NDArray[np.float32], *, k: int, threshold: float
    ) -> list[list[Candidate]]:
        """``search`` for each row of ``probes`` (m, dimension), as one FAISS batch."""
        checked = checked_probes(probes, self.dimension)
        check_threshold(threshold)
        results: list[list[Candidate]] = [[] for _ in range(len(checked))]
        with self._lock:
            live = len(self._label_of)
            if live == 0 or k <= 0 or threshold < 0:
                return results
            want = min(live, k * self.fetch)
            pending = np.arange(len(checked))
            while pending.size:
                squared, labels = self._nearest(checked[pending], want)
                still: list[int] = []
                for j, row_squared, row_labels in zip(
                    pending.tolist(), squared, labels, strict=True
                ):
                    found = row_labels[row_labels >= 0].astype(np.intp)
                    results[j] = rank_exactly(
                        checked[j],
                        found,
                        self._graph.reconstruct_batch(found) if found.size else checked[:0],
                        codes=self._subject_codes,
                        template_ids=self._template_of,
                        subjects=self._subjects,
                        k=k,
                        threshold=threshold,
                    )
                    farthest = (
                        math.sqrt(max(float(row_squared[found.size - 1]), 0.0))
                        if found.size
                        else math.inf
                    )
                    if (
                        len(results[j]) < k
                        and want < live
                        and found.size == want
                        and farthest <= threshold * (1 + 1e-6) + 1e-6
                    ):
                        still.append(j)
                pending = np.asarray(still, dtype=np.intp)
                want = min(live, want * 4)
        return results

    def save(self, directory: Path) -> None:
        """Write the index to ``directory`` atomically (see ``faceaccord.matching.persistence``);
        tombstones are saved as they are."""
        with self._lock:
            nodes = self._graph.ntotal
            graph = self._graph

            def write_graph(path: Path) -> None:
                faiss.write_index(graph, str(path))

            persistence.save(
                directory,
                kind=FORMAT_KIND,
                model_id=self.model_id,
                dimension=self.dimension,
                count=nodes,
                options={
                    "neighbours": self.neighbours,
                    "ef_construction": self.ef_construction,
                    "ef_search": self.ef_search,
                    "fetch": self.fetch,
                    "compact_at": self.compact_at,
                    "live": len(self._label_of),
                },
                arrays={"subject_codes.npy": self._subject_codes[:nodes]},
                lists={"template_ids.json": self._template_of, **self._subjects.dump()},
                files={GRAPH_FILE: write_graph},
            )

    @classmethod
    def load(
        cls,
        directory: Path,
        *,
        model_id: str,
        dimension: int,
        ef_search: int | None = None,
    ) -> HnswIndex:
        """Reopen a saved index; refuses (``ValueError``) another model or dimension, or files
        that are corrupt or truncated. ``ef_search`` defaults to the saved one."""
        saved = persistence.load(
            directory, kind=FORMAT_KIND, model_id=model_id, dimension=dimension
        )
        options = saved.options
        index = cls(
            model_id=model_id,
            dimension=dimension,
            neighbours=int(options["neighbours"]),
            ef_construction=int(options["ef_construction"]),
            ef_search=ef_search if ef_search is not None else int(options["ef_search"]),
            fetch=int(options["fetch"]),
            compact_at=float(options["compact_at"]),
        )
        graph = faiss.read_index(str(saved.path(GRAPH_FILE)))
        if (
            not isinstance(graph, faiss.IndexHNSWFlat)
            or graph.d != dimension
            or graph.ntotal != saved.count
        ):
            raise ValueError(f"{saved.path(GRAPH_FILE)} is not the graph its manifest describes")
        codes = saved.array("subject_codes.npy", dtype=np.int32, shape=(saved.count,))
        template_of = saved.optional_strings("template_ids.json", length=saved.count)
        index._subjects = SubjectTable.load(saved)
        live = [label for label, t in enumerate(template_of) if t is not None]
        label_of = {t: label for label, t in enumerate(template_of) if t is not None}
        if len(label_of) != len(live) or np.any(
            (codes >= 0) != [t is not None for t in template_of]
        ):
            raise ValueError(f"the index in {directory} has inconsistent template ids")
        index._graph = graph
        index._template_of = template_of
        index._label_of = label_of
        index._reserve(saved.count)
        index._subject_codes[: saved.count] = codes
        index._set_alive(np.asarray(live, dtype=np.intp), alive=True)
        index._tombstones = saved.count - len(live)
        return index

    # --- internals (the lock is held) ------------------------------------------------------------

    def _new_graph(self) -> Any:
        graph = faiss.IndexHNSWFlat(self.dimension, self.neighbours, faiss.METRIC_L2)
        graph.hnsw.efConstruction = self.ef_construction
        return graph

    def _append(
        self, ids: list[str], codes: NDArray[np.int32], vectors: NDArray[np.float32]
    ) -> None:
        start = self._graph.ntotal
        labels = np.arange(start, start + len(ids), dtype=np.intp)
        self._reserve(start + len(ids))
        self._graph.add(vectors)
        self._template_of.extend(ids)
        self._label_of.update(zip(ids, labels.tolist(), strict=True))
        self._subject_codes[labels] = codes
        self._set_alive(labels, alive=True)

    def _bury(self, labels: NDArray[np.intp]) -> None:
        for label in labels.tolist():
            template_id = self._template_of[label]
            if template_id is not None:
                del self._label_of[template_id]
                self._template_of[label] = None
        self._subject_codes[labels] = TOMBSTONE
        self._set_alive(labels, alive=False)
        self._tombstones += int(labels.size)

    def _compact_if_due(self) -> None:
        if self._tombstones > self.compact_at * self._graph.ntotal:
            self._compact()

    def _compact(self) -> None:
        nodes = self._graph.ntotal
        live = np.flatnonzero(self._subject_codes[:nodes] != TOMBSTONE)
        vectors = (
            self._graph.reconstruct_batch(live)
            if live.size
            else np.zeros((0, self.dimension), np.float32)
        )
        ids = [self._template_of[label] for label in live.tolist()]
        codes = self._subject_codes[live].copy()
        self._graph = self._new_graph()
        self._template_of, self._label_of = [], {}
        self._alive[:] = 0
        self._tombstones = 0
        self._append([t for t in ids if t is not None], codes, vectors)

    def _reserve(self, nodes: int) -> None:
        capacity = len(self._subject_codes)
        if nodes <= capacity:
            return
        capacity = max(nodes, capacity * 2)
        codes = np.full(capacity, TOMBSTONE, dtype=np.int32)
        codes[: len(self._subject_codes)] = self._subject_codes
        alive = np.zeros((capacity + 7) // 8, dtype=np.uint8)
        alive[: len(self._alive)] = self._alive
        self._subject_codes, self._alive = codes, alive

    def _set_alive(self, labels: NDArray[np.intp], *, alive: bool) -> None:
        if labels.size == 0:
            return
        masks = np.left_shift(1, labels & 7).astype(np.uint8)
        if alive:
            np.bitwise_or.at(self._alive, labels >> 3, masks)
        else:
            np.bitwise_and.at(self._alive, labels >> 3, ~masks)

    def _nearest(
        self, probes: NDArray[np.float32], want: int
    ) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """The graph's ``want`` nearest live nodes of each probe: squared float32 distances and
        labels (-1 pads when the graph finds fewer)."""
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(self.ef_search, want)
        selector = None
        if self._tombstones:
            selector = faiss.IDSelectorBitmap(self._graph.ntotal, faiss.swig_ptr(self._alive))
            params.sel = selector
        with faiss_threads(faiss, 1 if len(probes) == 1 else None):
            squared, labels = self._graph.search(np.ascontiguousarray(probes), want, params=params)
        del selector  # kept alive until the search is over
        return squared, labels
