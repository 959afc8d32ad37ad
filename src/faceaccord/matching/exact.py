"""Exact 1:N search in process: a blocked scan that shortlists, then an exact re-rank.

Every search runs in two steps. A scan over all templates computes approximate distances
cheaply and keeps a *shortlist* that provably contains the nearest template of every subject in
the answer; then ``rank_exactly`` computes the distances of the shortlist in float64 from the
stored float32 vectors and picks the nearest subjects. The answer is therefore exact, and so is
every distance returned: ``|probe - template|`` of the float32 vectors, whatever the scan did.

Two storages (``Storage``):

* ``float32`` (default): one contiguous float32 matrix in memory, 4 bytes per dimension. The scan
  is ``|t|^2 - 2 p.t`` over blocks of rows: 64k rows for one probe (a memory-bound product, by
  NumPy on one thread), fewer for a batch (a matrix product, by BLAS on its threads) so the
  block of distances stays in the last-level cache. Its float32 rounding error is bounded
  (``_margin``) and every row within the bound of the cut-off is shortlisted, so ties and
  near-ties are settled by the float64 re-rank, never by rounding.
* ``float16``: the scan reads a float16 copy (2 bytes per dimension, with FAISS's SIMD float16
  kernel: NumPy has no fast float16 product), half the memory traffic of float32. float16 cannot
  give float32 back, so the float32 originals are written to a memory-mapped spill file (an
  unlinked temporary file in ``spill_dir``: nothing is left behind, even after a crash) and the
  re-rank reads only the shortlisted rows from it. Resident memory is the float16 copy; the
  spill file costs 4 bytes per dimension of disk (and whatever page cache the kernel gives it).
  The shortlist is every row within ``2 * eps`` of the k-th subject, where ``eps`` bounds the
  float16 rounding of any stored row (measured when it is added) plus the kernel's float32
  arithmetic, so the answers are the same as in float32 storage.

Rows are dense: removal moves the last rows into the holes, so the matrix never fragments; add
and remove are vectorised (one pass over the subject codes per ``remove_subjects`` call). Safe to
share between threads: one lock, held for a whole search, add or removal.

The validation and ranking helpers at the end of this module are shared with
``faceaccord.matching.approximate``.
"""

from __future__ import annotations

import math
import tempfile
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from faceaccord.matching import persistence
from faceaccord.matching.index import Candidate

__all__ = ["ExactIndex", "Storage"]

FORMAT_KIND = "exact"
UNIT_ROUNDOFF = 2.0**-24
"""float32 unit roundoff."""
FLOAT16_MAX = 65504.0
SINGLE_PROBE_BLOCK_ROWS = 65_536
BATCH_BLOCK_BYTES = 1 << 23
"""A batch scans blocks of rows whose (probes x rows) float32 distances fit in about 8 MiB
(L3): smaller blocks mean more BLAS calls, each a synchronisation of BLAS's threads that stalls
when another process holds a core (64 probes over 1M rows, 2 busy cores: 1.1-1.5 s with 8k-row
blocks, 0.6 s with 32k)."""
TRUNCATE_AT = 256
"""Per block and probe, at most this many scan hits are kept at once (a floor is recorded)."""

Float32Array = NDArray[np.float32]
RowArray = NDArray[np.intp]


class Storage(StrEnum):
    FLOAT32 = "float32"
    FLOAT16 = "float16"


class ExactIndex:
    def __init__(
        self,
        *,
        model_id: str,
        dimension: int,
        capacity: int = 1024,
        storage: Storage | str = Storage.FLOAT32,
        spill_dir: Path | None = None,
        block_rows: int = SINGLE_PROBE_BLOCK_ROWS,
    ) -> None:
        if dimension <= 0:
            raise ValueError(f"dimension must be positive, got {dimension}")
        if block_rows <= 0:
            raise ValueError(f"block_rows must be positive, got {block_rows}")
        self.model_id = model_id
        self.dimension = dimension
        self.storage = Storage(storage)
        capacity = max(capacity, 1)
        self._rows: _Rows = (
            _Float32Rows(dimension, capacity, block_rows)
            if self.storage is Storage.FLOAT32
            else _Float16Rows(dimension, capacity, spill_dir)
        )
        self._count = 0
        self._template_ids: list[str] = []
        self._row_of: dict[str, int] = {}
        self._subject_codes = np.zeros(capacity, dtype=np.int32)
        self._subjects = SubjectTable()
        self._lock = threading.RLock()

    def __len__(self) -> int:
        with self._lock:
            return self._count

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
        """Add templates (rows of ``vectors``); re-adding a template id replaces it, and within
        one call the last occurrence of an id wins."""
        checked = checked_templates(vectors, self.dimension, template_ids, subject_ids)
        if self.storage is Storage.FLOAT16 and checked.size and np.abs(checked).max() > FLOAT16_MAX:
            raise ValueError(f"float16 storage cannot hold a value above {FLOAT16_MAX}")
        with self._lock:
            self._add(*last_occurrences(template_ids, subject_ids, checked))

    def _add(self, template_ids: list[str], subject_ids: list[str], vectors: Float32Array) -> None:
        rows = np.fromiter(
            (self._row_of.get(t, -1) for t in template_ids), dtype=np.intp, count=len(template_ids)
        )
        new = np.flatnonzero(rows < 0)
        start = self._count
        self._reserve(start + len(new))
        rows[new] = np.arange(start, start + len(new))
        new_ids = [template_ids[i] for i in new.tolist()]
        self._template_ids.extend(new_ids)
        self._row_of.update(zip(new_ids, range(start, start + len(new)), strict=True))
        self._subject_codes[rows] = self._subjects.codes(subject_ids)
        self._rows.write(rows, vectors)
        self._count = start + len(new)
        self._rows.set_count(self._count)

    def remove_subjects(self, subject_ids: Sequence[str]) -> int:
        with self._lock:
            return self._remove_subjects(subject_ids)

    def _remove_subjects(self, subject_ids: Sequence[str]) -> int:
        codes = self._subjects.known_codes(subject_ids)
        if not codes:
            return 0
        count = self._count
        gone = np.flatnonzero(np.isin(self._subject_codes[:count], codes))
        self._subjects.forget(codes)
        if gone.size == 0:
            return 0
        kept = count - gone.size
        holes = gone[gone < kept]
        tail = np.arange(kept, count)
        movers = tail[~np.isin(tail, gone)]
        for row in gone.tolist():
            del self._row_of[self._template_ids[row]]
        self._rows.move(holes, movers)
        self._subject_codes[holes] = self._subject_codes[movers]
        for hole, mover in zip(holes.tolist(), movers.tolist(), strict=True):
            template_id = self._template_ids[mover]
            self._template_ids[hole] = template_id
            self._row_of[template_id] = hole
        del self._template_ids[kept:]
        self._count = kept
        self._rows.set_count(kept)
        return int(gone.size)

    def search(self, probe: NDArray[np.float32], *, k: int, threshold: float) -> list[Candidate]:
        """Up to ``k`` subjects whose nearest template is within ``threshold``, nearest first."""
        flat = np.asarray(probe, dtype=np.float32).reshape(-1)
        if flat.shape != (self.dimension,):
            raise ValueError(f"expected a probe of length {self.dimension}, got {np.shape(probe)}")
        return self.search_many(flat[None, :], k=k, threshold=threshold)[0]

    def search_many(
        self, probes: NDArray[np.float32], *, k: int, threshold: float
    ) -> list[list[Candidate]]:
        """``search`` for each row of ``probes`` (m, dimension), in one pass over the templates."""
        checked = checked_probes(probes, self.dimension)
        check_threshold(threshold)
        with self._lock:
            if self._count == 0 or k <= 0 or threshold < 0 or len(checked) == 0:
                return [[] for _ in range(len(checked))]
            codes = self._subject_codes[: self._count]
            shortlists = self._rows.shortlist(checked, k=k, threshold=threshold, codes=codes)
            return [
                rank_exactly(
                    probe,
                    rows,
                    self._rows.exact(rows),
                    codes=codes,
                    template_ids=self._template_ids,
                    subjects=self._subjects,
                    k=k,
                    threshold=threshold,
                )
                for probe, rows in zip(checked, shortlists, strict=True)
            ]

    def save(self, directory: Path) -> None:
        """Write the index to ``directory`` atomically (see ``faceaccord.matching.persistence``)."""
        with self._lock:
            count = self._count
            vectors = self._rows.exact(np.arange(count))
            persistence.save(
                directory,
                kind=FORMAT_KIND,
                model_id=self.model_id,
                dimension=self.dimension,
                count=count,
                options={"storage": self.storage.value},
                arrays={
                    "vectors.npy": vectors,
                    "subject_codes.npy": self._subject_codes[:count],
                },
                lists={"template_ids.json": self._template_ids, **self._subjects.dump()},
            )

    @classmethod
    def load(
        cls,
        directory: Path,
        *,
        model_id: str,
        dimension: int,
        storage: Storage | str | None = None,
        spill_dir: Path | None = None,
    ) -> ExactIndex:
        """Reopen a saved index; refuses (``ValueError``) another model or dimension, or files
        that are corrupt or truncated. ``storage`` defaults to the saved one."""
        saved = persistence.load(
            directory, kind=FORMAT_KIND, model_id=model_id, dimension=dimension
        )
        vectors = saved.array("vectors.npy", dtype=np.float32, shape=(saved.count, dimension))
        codes = saved.array("subject_codes.npy", dtype=np.int32, shape=(saved.count,))
        template_ids = saved.strings("template_ids.json", length=saved.count)
        subjects = SubjectTable.load(saved)
        subject_ids = subjects.names_of(codes)
        index = cls(
            model_id=model_id,
            dimension=dimension,
            capacity=saved.count,
            storage=storage if storage is not None else str(saved.options.get("storage")),
            spill_dir=spill_dir,
        )
        if len(set(template_ids)) != len(template_ids):
            raise ValueError(f"the index in {directory} repeats a template id")
        index.add(template_ids=template_ids, subject_ids=subject_ids, vectors=vectors)
        return index

    def _reserve(self, needed: int) -> None:
        capacity = len(self._subject_codes)
        if needed <= capacity:
            return
        new_capacity = max(needed, capacity * 2)
        codes = np.zeros(new_capacity, dtype=np.int32)
        codes[:capacity] = self._subject_codes
        self._subject_codes = codes
        self._rows.reserve(new_capacity)


# --- storages ----------------------------------------------------------------------------------


class _Rows(Protocol):
    def reserve(self, capacity: int) -> None: ...
    def set_count(self, count: int) -> None: ...
    def write(self, rows: RowArray, vectors: Float32Array) -> None: ...
    def move(self, holes: RowArray, movers: RowArray) -> None: ...
    def exact(self, rows: RowArray) -> Float32Array:
        """The stored float32 vectors of these rows."""
        ...

    def shortlist(
        self, probes: Float32Array, *, k: int, threshold: float, codes: NDArray[np.int32]
    ) -> list[RowArray]:
        """Per probe, rows holding the nearest template of every subject in the exact answer."""
        ...


class _Float32Rows:
    def __init__(self, dimension: int, capacity: int, block_rows: int) -> None:
        self._dimension = dimension
        self._block_rows = block_rows
        self._vectors = np.zeros((capacity, dimension), dtype=np.float32)
        self._norms = np.zeros(capacity, dtype=np.float32)
        self._count = 0
        self._max_norm = 0.0

    def reserve(self, capacity: int) -> None:
        vectors = np.zeros((capacity, self._dimension), dtype=np.float32)
        vectors[: self._count] = self._vectors[: self._count]
        norms = np.zeros(capacity, dtype=np.float32)
        norms[: self._count] = self._norms[: self._count]
        self._vectors, self._norms = vectors, norms

    def set_count(self, count: int) -> None:
        self._count = count

    def write(self, rows: RowArray, vectors: Float32Array) -> None:
        self._vectors[rows] = vectors
        squared = np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64)
        self._norms[rows] = squared
        if squared.size:
            self._max_norm = max(self._max_norm, math.sqrt(float(squared.max())))

    def move(self, holes: RowArray, movers: RowArray) -> None:
        self._vectors[holes] = self._vectors[movers]
        self._norms[holes] = self._norms[movers]

    def exact(self, rows: RowArray) -> Float32Array:
        return self._vectors[rows]

    def shortlist(
        self, probes: Float32Array, *, k: int, threshold: float, codes: NDArray[np.int32]
    ) -> list[RowArray]:
        count, m = self._count, len(probes)
        squared_probes = np.einsum("ij,ij->i", probes, probes, dtype=np.float64)
        pools = [
            _Pool(k, threshold * threshold, float(p), self._margin(float(p)))
            for p in squared_probes
        ]
        step = self._block_rows if m == 1 else max(1024, BATCH_BLOCK_BYTES // (4 * m))
        step = min(step, self._block_rows)
        floors: list[tuple[int, int, int, float]] = []
        for lo in range(0, count, step):
            hi = min(lo + step, count)
            scores = self._scores(probes, lo, hi)
            cutoffs = np.array([pool.cutoff32() for pool in pools], dtype=np.float32)
            hits = np.count_nonzero(scores <= cutoffs[:, None], axis=1)
            for j in np.flatnonzero(hits).tolist():
                row = scores[j]
                if hits[j] > TRUNCATE_AT:
                    order = np.argpartition(row, TRUNCATE_AT)
                    keep = order[:TRUNCATE_AT]
                    floors.append((j, lo, hi, float(row[order[TRUNCATE_AT]])))
                else:
                    keep = np.flatnonzero(row <= cutoffs[j])
                pools[j].offer(keep + lo, row[keep], codes)
        # A block whose hits were truncated is scanned again for that probe if its floor (the
        # smallest score dropped) is within the final cut-off: rare (a subject with hundreds of
        # templates in one block), never wrong.
        for j, lo, hi, floor in floors:
            if floor <= pools[j].cutoff():
                row = self._scores(probes[j : j + 1], lo, hi)[0]
                keep = np.flatnonzero(row <= pools[j].cutoff32())
                pools[j].offer(keep + lo, row[keep], codes)
        return [pool.rows() for pool in pools]

    def _scores(self, probes: Float32Array, lo: int, hi: int) -> Float32Array:
        """``|t|^2 - 2 p.t`` for rows lo..hi: the squared distance less ``|p|^2``, (m, rows)."""
        block = self._vectors[lo:hi]
        if len(probes) == 1:
            # Memory-bound: one thread reads at ~0.9 of the machine's bandwidth, and NumPy's
            # own kernel does it without BLAS's threads, which stall on a busy core (measured
            # at 4-18 GB/s against 19-22 for this on the 2-core development machine).
            scores: Float32Array = np.einsum("ij,j->i", block, probes[0])[None, :]
        else:
            scores = probes @ block.T  # compute-bound: BLAS and its threads
        scores *= -2.0
        scores += self._norms[lo:hi]
        return scores

    def _margin(self, squared_probe: float) -> float:
        """A bound on the float32 error of a score: the dot product of d terms
        (gamma_d |p||t|, doubled), the stored norm and the subtraction, with a factor 2 spare."""
        d = self._dimension
        gamma = (d + 2) * UNIT_ROUNDOFF / (1 - (d + 2) * UNIT_ROUNDOFF)
        p, t = math.sqrt(squared_probe), self._max_norm
        return 2.0 * ((2 * gamma + 2 * UNIT_ROUNDOFF) * p * t + 3 * UNIT_ROUNDOFF * t * t) + 1e-30


class _Pool:
    """One probe's candidate rows during a scan, with the score cut-off they must beat.

    Scores are squared distances less ``|p|^2``. The cut-off is ``min(threshold^2, D_k + margin)
    + margin - |p|^2`` where ``D_k`` is the k-th nearest subject's squared distance among the
    candidates so far; it only tightens as candidates arrive.
    """

    def __init__(self, k: int, threshold_squared: float, squared_probe: float, margin: float):
        self._k = k
        self._ceiling = threshold_squared + margin - squared_probe
        self._margin = margin
        self._cut = self._ceiling
        self._rows: list[RowArray] = []
        self._scores: list[Float32Array] = []
        self._size = 0
        self._pruned_at = 0

    def cutoff(self) -> float:
        return self._cut

    def cutoff32(self) -> np.float32:
        """The cut-off as float32, rounded up so no float32 score under it is lost."""
        return np.float32(np.nextafter(np.float32(self._cut), np.float32(np.inf)))

    def offer(self, rows: RowArray, scores: Float32Array, codes: NDArray[np.int32]) -> None:
        if rows.size == 0:
            return
        self._rows.append(rows)
        self._scores.append(scores)
        self._size += rows.size
        if self._size >= self._k and self._size > 2 * self._pruned_at:
            self._tighten(codes)

    def _tighten(self, codes: NDArray[np.int32]) -> None:
        rows, scores = np.concatenate(self._rows), np.concatenate(self._scores)
        order = np.argsort(scores, kind="stable")
        _, first = np.unique(codes[rows[order]], return_index=True)
        if len(first) >= self._k:
            kth = float(scores[order[np.sort(first)[self._k - 1]]])
            self._cut = min(self._ceiling, kth + 2 * self._margin)
        keep = scores <= self._cut
        self._rows, self._scores = [rows[keep]], [scores[keep]]
        self._size = self._pruned_at = int(np.count_nonzero(keep))

    def rows(self) -> RowArray:
        if not self._rows:
            return np.zeros(0, dtype=np.intp)
        rows, scores = np.concatenate(self._rows), np.concatenate(self._scores)
        return np.unique(rows[scores <= self._cut])  # a rescanned block offers rows again


class _Float16Rows:
    def __init__(self, dimension: int, capacity: int, spill_dir: Path | None) -> None:
        import faiss  # noqa: PLC0415 - only this storage needs FAISS

        self._faiss: Any = faiss
        self._dimension = dimension
        self._kernel: Any = faiss.IndexScalarQuantizer(
            dimension, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_L2
        )
        self._spill: IO[bytes] = tempfile.TemporaryFile(dir=spill_dir)  # noqa: SIM115 - lives with self
        weakref.finalize(self, self._spill.close)  # closed (and so deleted) with the index
        self._count = 0
        self._max_norm = 0.0
        self._max_error = 0.0
        self._capacity = 0
        self._codes = np.zeros((0, dimension), dtype=np.float16)
        self._originals: Float32Array = np.zeros((0, dimension), dtype=np.float32)
        self.reserve(capacity)

    def reserve(self, capacity: int) -> None:
        self._kernel.codes.resize(capacity * self._dimension * 2)
        self._spill.truncate(capacity * self._dimension * 4)
        self._capacity = capacity
        self._views()

    def _views(self) -> None:
        """NumPy views of FAISS's code vector (moved by any resize) and of the spill file."""
        size = self._capacity * self._dimension * 2
        raw = self._faiss.rev_swig_ptr(self._kernel.codes.data(), size)
        self._codes = raw.view(np.float16).reshape(self._capacity, self._dimension)
        self._originals = np.memmap(
            self._spill, dtype=np.float32, mode="r+", shape=(self._capacity, self._dimension)
        )

    def set_count(self, count: int) -> None:
        self._count = count
        self._kernel.ntotal = count

    def write(self, rows: RowArray, vectors: Float32Array) -> None:
        for lo in range(0, len(vectors), SINGLE_PROBE_BLOCK_ROWS):  # bounded temporaries
            part = vectors[lo : lo + SINGLE_PROBE_BLOCK_ROWS]
            where = rows[lo : lo + len(part)]
            halves = part.astype(np.float16)
            self._codes[where] = halves
            self._originals[where] = part
            error = np.sqrt(((halves.astype(np.float64) - part) ** 2).sum(axis=1)).max()
            norm = np.sqrt(np.einsum("ij,ij->i", part, part, dtype=np.float64)).max()
            self._max_error = max(self._max_error, float(error))
            self._max_norm = max(self._max_norm, float(norm))

    def move(self, holes: RowArray, movers: RowArray) -> None:
        self._codes[holes] = self._codes[movers]
        self._originals[holes] = self._originals[movers]

    def exact(self, rows: RowArray) -> Float32Array:
        return np.asarray(self._originals[rows])

    def shortlist(
        self, probes: Float32Array, *, k: int, threshold: float, codes: NDArray[np.int32]
    ) -> list[RowArray]:
        """FAISS's float16 top-``want`` rows, ``want`` growing fourfold until the rows beyond it
        are provably too far (``_shortlist_of``)."""
        count = self._count
        want = min(count, max(4 * k, 64))
        results: list[RowArray | None] = [None] * len(probes)
        pending = np.arange(len(probes))
        while pending.size:
            with faiss_threads(self._faiss, 1 if pending.size == 1 else None):
                squared, rows = self._kernel.search(np.ascontiguousarray(probes[pending]), want)
            still: list[int] = []
            for j, row_squared, found in zip(pending.tolist(), squared, rows, strict=True):
                done = _shortlist_of(
                    np.sqrt(np.maximum(row_squared, 0.0)),
                    found,
                    codes,
                    k=k,
                    threshold=threshold,
                    eps=self._eps(probes[j]),
                    complete=want >= count,
                )
                if done is None:
                    still.append(j)
                else:
                    results[j] = done
            pending = np.asarray(still, dtype=np.intp)
            want = min(count, want * 4)
        return [r if r is not None else np.zeros(0, dtype=np.intp) for r in results]

    def _eps(self, probe: Float32Array) -> float:
        """A bound on |float16-scan distance - exact distance| for this probe and any row: the
        largest float16 rounding of a stored row, plus the float32 arithmetic of the kernel."""
        d = self._dimension
        gamma = (d + 2) * UNIT_ROUNDOFF / (1 - (d + 2) * UNIT_ROUNDOFF)
        reach = float(np.sqrt(probe.astype(np.float64) @ probe)) + self._max_norm
        return self._max_error + 2.0 * gamma * (reach + self._max_error) + 1e-12


def _shortlist_of(
    distances: NDArray[np.float32],
    rows: NDArray[np.int64],
    codes: NDArray[np.int32],
    *,
    k: int,
    threshold: float,
    eps: float,
    complete: bool,
) -> RowArray | None:
    """The shortlist from one probe's nearest rows by float16 distance (ascending), or None
    when rows beyond these might still belong to it.

    Each scan distance is within ``eps`` of the exact one. So the exact k-th subject distance is
    at most ``D_k + eps`` (``D_k``: k-th distinct subject here), and every row the answer needs
    has a scan distance of at most ``cut = min(threshold + eps, D_k + 2 eps)``. The rows fetched
    are all of them once the farthest fetched is beyond ``cut`` (or every row was fetched).
    """
    valid = rows >= 0
    distances, rows = distances[valid], rows[valid]
    _, first = np.unique(codes[rows], return_index=True)
    kth = float(distances[np.sort(first)[k - 1]]) if len(first) >= k else math.inf
    cut = min(threshold + eps, kth + 2 * eps)
    if not complete and (rows.size == 0 or float(distances[-1]) <= cut):
        return None
    return rows[distances <= cut].astype(np.intp)


# --- shared with faceaccord.matching.approximate ------------------------------------------------


@contextmanager
def faiss_threads(faiss: Any, threads: int | None) -> Iterator[None]:
    """Run FAISS calls of this thread on ``threads`` OpenMP threads (None: unchanged).

    One probe gains nothing from a parallel region but pays to start one (about 0.1 ms on two
    cores, a tenth of an HNSW search). OpenMP's thread count is per calling thread, so this
    does not touch other threads' searches.
    """
    if threads is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class SubjectTable:
    """Subject ids interned as int32 codes, so a row's subject is a number in an array. A code
    is freed (and its id forgotten) when its subject is removed."""

    def __init__(self) -> None:
        self._code_of: dict[str, int] = {}
        self._names: list[str] = []
        self._free: list[int] = []

    def codes(self, subject_ids: Sequence[str]) -> NDArray[np.int32]:
        out = np.empty(len(subject_ids), dtype=np.int32)
        for i, subject_id in enumerate(subject_ids):
            code = self._code_of.get(subject_id)
            if code is None:
                if self._free:
                    code = self._free.pop()
                    self._names[code] = subject_id
                else:
                    code = len(self._names)
                    self._names.append(subject_id)
                self._code_of[subject_id] = code
            out[i] = code
        return out

    def known_codes(self, subject_ids: Sequence[str]) -> list[int]:
        return [self._code_of[s] for s in dict.fromkeys(subject_ids) if s in self._code_of]

    def forget(self, codes: Sequence[int]) -> None:
        for code in codes:
            del self._code_of[self._names[code]]
            self._names[code] = ""
            self._free.append(code)

    def name(self, code: int) -> str:
        return self._names[code]

    def names_of(self, codes: NDArray[np.int32]) -> list[str]:
        return [self._names[c] for c in codes.tolist()]

    def dump(self) -> dict[str, list[str]]:
        return {"subjects.json": self._names}

    @classmethod
    def load(cls, saved: persistence.SavedIndex) -> SubjectTable:
        table = cls()
        names = saved.strings("subjects.json")
        table._names = names
        table._code_of = {name: code for code, name in enumerate(names) if name}
        table._free = [code for code, name in enumerate(names) if not name]
        return table


def checked_templates(
    vectors: NDArray[np.float32],
    dimension: int,
    template_ids: Sequence[str],
    subject_ids: Sequence[str],
) -> Float32Array:
    checked = np.ascontiguousarray(vectors, dtype=np.float32)
    if checked.ndim != 2 or checked.shape[1] != dimension:
        raise ValueError(f"expected vectors of shape (n, {dimension}), got {np.shape(vectors)}")
    if not len(template_ids) == len(subject_ids) == len(checked):
        raise ValueError("template_ids, subject_ids and vectors differ in length")
    if not np.isfinite(checked).all():
        raise ValueError("a template has a NaN or infinite value")
    return checked


def checked_probes(probes: NDArray[np.float32], dimension: int) -> Float32Array:
    checked = np.ascontiguousarray(probes, dtype=np.float32)
    if checked.ndim != 2 or checked.shape[1] != dimension:
        raise ValueError(f"expected probes of shape (m, {dimension}), got {np.shape(probes)}")
    if not np.isfinite(checked).all():
        raise ValueError("a probe has a NaN or infinite value")
    return checked


def check_threshold(threshold: float) -> None:
    if math.isnan(threshold):
        raise ValueError("the threshold is NaN")


def last_occurrences(
    template_ids: Sequence[str], subject_ids: Sequence[str], vectors: Float32Array
) -> tuple[list[str], list[str], Float32Array]:
    """The batch with each template id once, at its last occurrence (a later row replaces an
    earlier one, as two calls would)."""
    last = {template_id: i for i, template_id in enumerate(template_ids)}
    if len(last) == len(template_ids):
        return list(template_ids), list(subject_ids), vectors
    keep = sorted(last.values())
    return [template_ids[i] for i in keep], [subject_ids[i] for i in keep], vectors[keep]


def rank_exactly(
    probe: Float32Array,
    rows: RowArray,
    vectors: Float32Array,
    *,
    codes: NDArray[np.int32],
    template_ids: Sequence[str | None],
    subjects: SubjectTable,
    k: int,
    threshold: float,
) -> list[Candidate]:
    """The nearest ``k`` subjects within ``threshold`` among ``rows`` (whose float32 vectors are
    ``vectors``), one candidate per subject (its nearest template), with float64 distances and
    cosine similarities. Ties are broken by row, so the answer is deterministic."""
    if rows.size == 0:
        return []
    p = probe.astype(np.float64)
    t = vectors.astype(np.float64)
    distances = np.sqrt(((t - p) ** 2).sum(axis=1))
    order = np.lexsort((rows, distances))
    order = order[distances[order] <= threshold]
    _, first = np.unique(codes[rows[order]], return_index=True)
    chosen = order[np.sort(first)[:k]]
    probe_norm = float(np.sqrt(p @ p))
    candidates: list[Candidate] = []
    for i in chosen.tolist():
        template_norm = float(np.sqrt(t[i] @ t[i]))
        norms = probe_norm * template_norm
        template_id = template_ids[int(rows[i])]
        assert template_id is not None  # rows come from the live rows only
        candidates.append(
            Candidate(
                subject_id=subjects.name(int(codes[rows[i]])),
                template_id=template_id,
                distance=float(distances[i]),
                similarity=float(t[i] @ p) / norms if norms > 0 else 0.0,
            )
        )
    return candidates
