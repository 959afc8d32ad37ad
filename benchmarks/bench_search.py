"""Benchmark 1:N search at millions of templates: faceaccord's indexes against FAISS and NumPy.

Systems, each measured in its own phase on the same probes, one at a time in memory:

* ``ExactIndex`` float32: blocked BLAS scan, shortlist, float64 re-rank (exact answers).
* ``ExactIndex`` float16: FAISS's float16 scan, re-rank from a float32 spill file (exact answers).
* ``HnswIndex``: FAISS HNSW graph (defaults M=32, efConstruction=80, efSearch=256), exact
  re-rank (approximate recall, exact distances). Also an efSearch sweep on the same graph.
* Peer ``faiss.IndexFlatL2``: FAISS's exact brute force, bare: the 40 nearest *templates*, no
  subjects, no threshold (less work than ours; its answers are grouped afterwards, untimed, only
  to check they agree).
* Peer ``faiss.IndexIVFFlat`` (up to 2M templates): the alternative to HNSW, bare like the
  flat peer: 4 sqrt(n) lists (rounded to a power of two), 1/32 of them probed.
* Peer naive NumPy: ``np.linalg.norm(X - p, axis=1)`` (as ``face_recognition.face_distance``
  does), ``np.argsort``, then the nearest subjects within the threshold.

Data: synthetic templates shaped like dlib-resnet-v1's, not uniform noise. A template is
``mean + R (g + c + s * e)``: ``mean`` a common vector of norm 1.37 (real descriptors share one:
their mean has norm 1.35-1.39); ``g`` one of 16 group centres and ``c`` the identity's own offset
(together the identity, variance 0.30, half between groups: real impostor distances have a heavy
lower tail, lookalikes); ``e`` a sample's noise (variance 0.074) scaled per identity by ``s``
(log-normal, sd 0.12); variances fall as i^-0.6 along the axes of a random rotation ``R``. Each
identity has 1 + Binomial(6, 1/2) templates (1-7, mean 4). The parameters were fitted to the
quantiles of 61 + 204 real photos (faces-dev, faces-demographic) embedded by the engine:

    real dlib, genuine  p1/5/25/50/75/95/99: 0.263 0.291 0.348 0.388 0.433 0.507 0.565
    real dlib, impostor p1/5/25/50/75/95/99: 0.611 0.687 0.784 0.849 0.910 0.985 1.042
    real dlib, norm: mean 1.47-1.52, sd 0.06-0.07

and the run prints the same figures for the synthetic templates (all pairs among the templates of
800 random identities) with their FMR / FNMR at the operating point 0.5251, against the model
card's 0.00098 / 0.025. Probes: half are fresh samples of enrolled identities (mated), half
samples of identities never enrolled.

Measured per system and size: build time (one ``add`` of everything); memory (growth of the
process's anonymous RSS over the build, after ``malloc_trim``; the float16 spill file apart);
single-probe latency (``search``, k=10, threshold 0.5251) p50 and p99; batched latency
(``search_many`` of 64 probes) p50 and p99 per batch and per probe; answers identical to
``ExactIndex`` float32; for HNSW, recall@10 against the exact index (the exact top-10 subjects
without a threshold; the stringent figure, dominated by impostors far beyond the threshold) and
identical answers at the operating point. Each timed loop stops after its time budget (at least
5 probes or 1 batch are timed): the count is printed. The machine's memory bandwidth is a NumPy
sum over 2 GiB (one thread) and a BLAS product over the same bytes, best of 7, measured again
before each size (the best so far is used); the exact scans' effective GB/s (bytes of vectors
per probe / p50) are given as a fraction of it. The machine may be shared: the load average is
printed at the start and the end.

Sizes: --short 150,000 templates; full: 1,000,000 and 10,000,000. Neither HNSW nor the IVF peer
is built at 10,000,000: the HNSW build at 1,000,000 alone takes minutes on 2 cores (printed),
insertion cost grows with the graph, and ten times as many would not fit this run's budget; the
10M rows are the exact systems, which need no build beyond a copy.

    .venv/bin/python benchmarks/bench_search.py [--short] [--sizes N [N ...]] [--json-out PATH]

Run time on 2 cores: about 2 minutes with --short, about 20 in full. Exit status 1 when
``ExactIndex`` float16 disagrees with float32 on any probe (the peers compute in float32 and may
differ on a near-tie: their agreement is printed, not checked).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from numpy.typing import NDArray

from _common import median
from bench_engine import machine_facts
from faceaccord.matching import ExactIndex, Storage
from faceaccord.matching.approximate import HnswIndex
from faceaccord.matching.index import Candidate

SEED = 20261122
DIMENSION = 128
THRESHOLD = 0.5251
"""dlib-resnet-v1's default operating point (model card: FMR 0.00098, FNMR 0.025)."""
K = 10
FETCH_ROWS = 40
"""Templates FAISS IndexFlatL2 returns per probe (as many as HnswIndex fetches for k=10)."""
BATCH = 64
SHORT_SIZES = (150_000,)
FULL_SIZES = (1_000_000, 10_000_000)
HNSW_MAX_SIZE = 2_000_000
SINGLE_PROBES = 200
BATCHES = 4
SINGLE_BUDGET_S = 15.0
BATCH_BUDGET_S = 25.0
NAIVE_BATCH_BUDGET_S = 5.0
WARM_UP = 3
EF_SWEEP = (64, 128, 256, 384)
BANDWIDTH_BYTES = 2 << 30
GROUPS = 16
IDENTITY_VARIANCE = 0.30
BETWEEN_GROUPS = 0.5
SAMPLE_VARIANCE = 0.074
NOISE_SCALE_SD = 0.12
MEAN_NORM = 1.37
DECAY = 0.6
REAL_GENUINE = (0.263, 0.291, 0.348, 0.388, 0.433, 0.507, 0.565)
REAL_IMPOSTOR = (0.611, 0.687, 0.784, 0.849, 0.910, 0.985, 1.042)
QUANTILES = (1, 5, 25, 50, 75, 95, 99)
EXACT32, EXACT16, HNSW, FLAT, IVF, NAIVE = (
    "ExactIndex float32",
    "ExactIndex float16",
    "HnswIndex",
    "faiss IndexFlatL2 (peer)",
    "faiss IndexIVFFlat (peer)",
    "numpy naive (peer)",
)


# --- data --------------------------------------------------------------------------------------


@dataclass
class Templates:
    vectors: NDArray[np.float32]
    identities: int
    template_ids: list[str]
    subject_ids: list[str]
    single: NDArray[np.float32]
    batches: NDArray[np.float32]
    """(batches, 64, d)."""
    mated: list[str | None]
    """The enrolled subject of each single probe, None for a stranger."""
    sample_rows: NDArray[np.intp]
    """Every template of 800 random identities, to compare distances with real dlib ones."""
    generate_s: float


class Model:
    """The generative model of dlib-like templates (see the module docstring)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        rotation, _ = np.linalg.qr(rng.standard_normal((DIMENSION, DIMENSION)))
        self.rotation_t = rotation.T.astype(np.float32)
        decay = np.arange(1, DIMENSION + 1) ** -DECAY
        shape = np.sqrt(decay / decay.sum())
        self.spread = (shape * math.sqrt(IDENTITY_VARIANCE * BETWEEN_GROUPS)).astype(np.float32)
        self.noise = (shape * math.sqrt(SAMPLE_VARIANCE)).astype(np.float32)
        mean = rng.standard_normal(DIMENSION)
        self.mean = (mean * MEAN_NORM / np.linalg.norm(mean)).astype(np.float32)
        self.groups = rng.standard_normal((GROUPS, DIMENSION), dtype=np.float32) * self.spread

    def identities(self, count: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Identity centres (before rotation) and per-identity noise scales."""
        own = self.rng.standard_normal((count, DIMENSION), dtype=np.float32) * self.spread
        centres = self.groups[self.rng.integers(0, GROUPS, count)] + own
        scales = np.exp(self.rng.normal(0.0, NOISE_SCALE_SD, count)).astype(np.float32)
        return centres, scales

    def samples(
        self, centres: NDArray[np.float32], scales: NDArray[np.float32]
    ) -> NDArray[np.float32]:
        noise = self.rng.standard_normal(centres.shape, dtype=np.float32) * self.noise
        out: NDArray[np.float32] = (centres + noise * scales[:, None]) @ self.rotation_t
        out += self.mean
        return out


def make_templates(size: int, single: int, batches: int) -> Templates:
    started = time.perf_counter()
    model = Model(np.random.default_rng(SEED + size))
    per = 1 + model.rng.binomial(6, 0.5, size // 3 + 10)
    identities = int(np.searchsorted(np.cumsum(per), size)) + 1
    owner = np.repeat(np.arange(identities, dtype=np.int32), per[:identities])[:size]
    centres, scales = model.identities(identities)
    vectors = np.empty((size, DIMENSION), dtype=np.float32)
    step = 1 << 18
    for lo in range(0, size, step):
        rows = owner[lo : lo + step]
        vectors[lo : lo + step] = model.samples(centres[rows], scales[rows])
    names = [f"s{i}" for i in range(identities)]
    mated_count = single // 2
    mated = model.rng.choice(identities, mated_count, replace=False)
    strangers, stranger_scales = model.identities(single - mated_count)
    probes = np.concatenate(
        [model.samples(centres[mated], scales[mated]), model.samples(strangers, stranger_scales)]
    )
    expected: list[str | None] = [names[i] for i in mated] + [None] * (single - mated_count)
    order = model.rng.permutation(single)
    batch_count = batches * BATCH
    batch_mated = model.rng.choice(identities, batch_count // 2, replace=False)
    other, other_scales = model.identities(batch_count - batch_count // 2)
    batch_probes = np.concatenate(
        [
            model.samples(centres[batch_mated], scales[batch_mated]),
            model.samples(other, other_scales),
        ]
    )[model.rng.permutation(batch_count)]
    return Templates(
        vectors=vectors,
        identities=identities,
        template_ids=[f"t{i}" for i in range(size)],
        subject_ids=[names[i] for i in owner.tolist()],
        single=np.ascontiguousarray(probes[order]),
        batches=batch_probes.reshape(batches, BATCH, DIMENSION),
        mated=[expected[i] for i in order],
        sample_rows=np.flatnonzero(
            np.isin(owner, model.rng.choice(identities, min(800, identities), replace=False))
        ),
        generate_s=time.perf_counter() - started,
    )


def realism(templates: Templates) -> dict[str, Any]:
    """Distance quantiles, norms and the FMR / FNMR at the threshold on a sample of templates."""
    rows = templates.sample_rows
    sample = templates.vectors[rows].astype(np.float64)
    squared = (sample**2).sum(1)
    distances = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * sample @ sample.T, 0))
    labels = np.asarray([templates.subject_ids[r] for r in rows])
    upper = np.triu_indices(len(rows), k=1)
    same = labels[upper[0]] == labels[upper[1]]
    genuine, impostor = distances[upper][same], distances[upper][~same]
    norms = np.linalg.norm(templates.vectors[rows], axis=1)
    return {
        "genuine_quantiles": np.percentile(genuine, QUANTILES).round(3).tolist(),
        "impostor_quantiles": np.percentile(impostor, QUANTILES).round(3).tolist(),
        "genuine_pairs": len(genuine),
        "impostor_pairs": len(impostor),
        "fnmr": float((genuine > THRESHOLD).mean()),
        "fmr": float((impostor <= THRESHOLD).mean()),
        "norm_mean": float(norms.mean()),
        "norm_sd": float(norms.std()),
    }


# --- measuring ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) else float("nan")


def anonymous_rss() -> int:
    """Bytes of anonymous resident memory of this process (heap, NumPy, FAISS), Linux."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def timed_loop(
    items: Sequence[Any],
    run: Callable[[Any], Any],
    budget_s: float,
    minimum: int,
    warm_up: int | None = None,
) -> tuple[list[float], list[Any]]:
    """Latencies (s) and answers of ``run`` over ``items`` in order, until the budget is spent
    (at least ``minimum`` items); warm-up calls first (by default three probes or one batch),
    not timed."""
    for item in items[: (1 if minimum == 1 else WARM_UP) if warm_up is None else warm_up]:
        run(item)
    latencies: list[float] = []
    answers: list[Any] = []
    spent = 0.0
    for item in items:
        if spent > budget_s and len(latencies) >= minimum:
            break
        start = time.perf_counter()
        answers.append(run(item))
        elapsed = time.perf_counter() - start
        latencies.append(elapsed)
        spent += elapsed
    return latencies, answers


@dataclass
class Row:
    size: int
    system: str
    build_s: float = float("nan")
    memory_bytes: float = float("nan")
    disk_bytes: float = 0.0
    single_ms: list[float] = field(default_factory=list)
    batch_ms: list[float] = field(default_factory=list)
    identical: tuple[int, int] | None = None
    recall_at_10: float | None = None
    note: str = ""

    def p(self, which: str, q: float) -> float:
        return percentile(self.single_ms if which == "single" else self.batch_ms, q)

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "system": self.system,
            "build_s": self.build_s,
            "memory_bytes": self.memory_bytes,
            "memory_bytes_per_template": self.memory_bytes / self.size,
            "spill_file_bytes": self.disk_bytes,
            "single": summary(self.single_ms),
            "batch_of_64": summary(self.batch_ms),
            "identical_answers": self.identical,
            "recall_at_10": self.recall_at_10,
            "note": self.note,
        }


def summary(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50_ms": median(values), "p99_ms": percentile(values, 99)}


Answer = list[tuple[str, str]]


def names(candidates: list[Candidate]) -> Answer:
    return [(c.subject_id, c.template_id) for c in candidates]


def group_rows(
    distances: NDArray[np.float32],
    rows: NDArray[np.int64],
    subject_ids: Sequence[str],
    threshold: float = THRESHOLD,
) -> Answer:
    """A bare nearest-templates answer grouped like ours: nearest template per subject, k of
    them, within the threshold (untimed, only to compare answers)."""
    best: dict[str, str] = {}
    for squared, row in zip(distances.tolist(), rows.tolist(), strict=True):
        if row < 0 or math.sqrt(max(squared, 0.0)) > threshold or len(best) == K:
            break
        best.setdefault(subject_ids[row], f"t{row}")
    return list(best.items())


def naive_search(vectors: NDArray[np.float32], subject_ids: Sequence[str], probe: Any) -> Answer:
    distances = np.linalg.norm(vectors - probe, axis=1)
    best: dict[str, str] = {}
    for row in np.argsort(distances, kind="stable").tolist():
        if distances[row] > THRESHOLD or len(best) == K:
            break
        best.setdefault(subject_ids[row], f"t{row}")
    return list(best.items())


def measure_index(
    size: int,
    system: str,
    templates: Templates,
    build: Callable[[], Any],
    truth: list[Answer] | None,
) -> tuple[Row, Any, list[Answer]]:
    before = anonymous_rss()
    start = time.perf_counter()
    index = build()
    build_s = time.perf_counter() - start
    row = Row(size, system, build_s=build_s, memory_bytes=anonymous_rss() - before)
    print(f"   {system}: built in {build_s:.1f} s", flush=True)
    latencies, answers = timed_loop(
        list(templates.single),
        lambda p: names(index.search(p, k=K, threshold=THRESHOLD)),
        SINGLE_BUDGET_S,
        5,
    )
    row.single_ms = [s * 1e3 for s in latencies]
    batch_latencies, _ = timed_loop(
        list(templates.batches),
        lambda b: index.search_many(b, k=K, threshold=THRESHOLD),
        BATCH_BUDGET_S,
        1,
    )
    row.batch_ms = [s * 1e3 for s in batch_latencies]
    if truth is not None:
        row.identical = agreement(answers, truth)
    return row, index, answers


def measure_peer(
    size: int,
    system: str,
    templates: Templates,
    build: Callable[[], Any],
    truth: list[Answer],
    exact_top10: list[list[Candidate]] | None,
) -> Row:
    """A FAISS index, bare (the 40 nearest templates); grouped afterwards, untimed, to compare
    its answers with ours and, when approximate, its recall."""
    before = anonymous_rss()
    start = time.perf_counter()
    index = build()
    row = Row(size, system, build_s=time.perf_counter() - start, note="bare top-40 templates")
    row.memory_bytes = anonymous_rss() - before
    print(f"   {system}: built in {row.build_s:.1f} s", flush=True)
    latencies, found = timed_loop(
        list(templates.single),
        lambda p: index.search(p[None, :], FETCH_ROWS),
        SINGLE_BUDGET_S,
        5,
    )
    row.single_ms = [s * 1e3 for s in latencies]
    grouped = [group_rows(d[0], r[0], templates.subject_ids) for d, r in found]
    row.identical = agreement(grouped, truth)
    batch_latencies, _ = timed_loop(
        list(templates.batches), lambda b: index.search(b, FETCH_ROWS), BATCH_BUDGET_S, 1
    )
    row.batch_ms = [s * 1e3 for s in batch_latencies]
    if exact_top10 is not None:
        distances, labels = index.search(templates.single, FETCH_ROWS)
        top = [
            {s for s, _ in group_rows(d, r, templates.subject_ids, math.inf)}
            for d, r in zip(distances, labels, strict=True)
        ]
        shared = sum(
            len({c.subject_id for c in e} & t) for e, t in zip(exact_top10, top, strict=True)
        )
        row.recall_at_10 = shared / max(1, sum(len(e) for e in exact_top10))
    return row


def flat_index(vectors: NDArray[np.float32]) -> Any:
    index = faiss.IndexFlatL2(DIMENSION)
    index.add(vectors)
    return index


def ivf_index(vectors: NDArray[np.float32]) -> Any:
    """IVF-Flat with 4 sqrt(n) lists (a power of two), trained on 50 vectors per list, probing
    1/32 of the lists: the setting measured while choosing HNSW (recall@10 0.995 at 1M)."""
    lists = 1 << round(math.log2(4 * math.sqrt(len(vectors))))
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(DIMENSION), DIMENSION, lists)
    sample = np.random.default_rng(SEED).choice(len(vectors), min(len(vectors), 50 * lists), False)
    index.train(vectors[np.sort(sample)])
    index.add(vectors)
    index.nprobe = lists // 32
    return index


def agreement(answers: Sequence[Answer], truth: Sequence[Answer]) -> tuple[int, int]:
    """Identical answers, over the probes both systems answered (each stops at its budget)."""
    compared = min(len(answers), len(truth))
    return sum(a == t for a, t in zip(answers, truth, strict=False)), compared


def recall_at_10(exact: list[list[Candidate]], found: list[list[Candidate]]) -> float:
    shared = sum(
        len({c.subject_id for c in e} & {c.subject_id for c in f})
        for e, f in zip(exact, found, strict=True)
    )
    return shared / max(1, sum(len(e) for e in exact))


def run_size(size: int, spill_dir: Path | None) -> tuple[list[Row], dict[str, Any]]:
    single = SINGLE_PROBES if size <= 2_000_000 else 30
    batches = BATCHES if size <= 2_000_000 else 2
    print(f"\n== {size:,} templates ==", flush=True)
    templates = make_templates(size, single, batches)
    real = realism(templates)
    identities = templates.identities
    print(
        f"   generated in {templates.generate_s:.1f} s: {identities:,} identities; "
        f"{single} single probes and {batches} batches of {BATCH} (half mated)",
        flush=True,
    )
    rows: list[Row] = []
    extra: dict[str, Any] = {"size": size, "identities": identities, "realism": real}
    ids, subjects, vectors = templates.template_ids, templates.subject_ids, templates.vectors

    def exact(storage: Storage) -> ExactIndex:
        index = ExactIndex(
            model_id="dlib-resnet-v1",
            dimension=DIMENSION,
            capacity=size,
            storage=storage,
            spill_dir=spill_dir,
        )
        index.add(template_ids=ids, subject_ids=subjects, vectors=vectors)
        return index

    row, index, truth = measure_index(
        size, EXACT32, templates, lambda: exact(Storage.FLOAT32), None
    )
    row.identical = (len(truth), len(truth))
    rows.append(row)
    exact_top10: list[list[Candidate]] | None = None
    if size <= HNSW_MAX_SIZE:
        exact_top10 = index.search_many(templates.single, k=K, threshold=math.inf)
    del index

    row, index, _ = measure_index(size, EXACT16, templates, lambda: exact(Storage.FLOAT16), truth)
    row.disk_bytes = size * DIMENSION * 4
    rows.append(row)
    del index

    if size <= HNSW_MAX_SIZE and exact_top10 is not None:

        def hnsw() -> HnswIndex:
            index = HnswIndex(model_id="dlib-resnet-v1", dimension=DIMENSION)
            index.add(template_ids=ids, subject_ids=subjects, vectors=vectors)
            return index

        row, index, answers = measure_index(size, HNSW, templates, hnsw, truth)
        row.recall_at_10 = recall_at_10(
            exact_top10, index.search_many(templates.single, k=K, threshold=math.inf)
        )
        mated = [
            bool(a) and a[0][0] == m for a, m in zip(answers, templates.mated, strict=False) if m
        ]
        extra["hnsw_mated_rank1"] = (sum(mated), len(mated))
        sweep = []
        for ef in EF_SWEEP:
            index.ef_search = ef
            latencies, _ = timed_loop(
                list(templates.single),
                lambda p: index.search(p, k=K, threshold=THRESHOLD),
                SINGLE_BUDGET_S,
                5,
            )
            found = index.search_many(templates.single, k=K, threshold=math.inf)
            sweep.append(
                {
                    "ef_search": ef,
                    "p50_ms": median(latencies) * 1e3,
                    "p99_ms": percentile(latencies, 99) * 1e3,
                    "recall_at_10": recall_at_10(exact_top10, found),
                }
            )
        extra["hnsw_ef_sweep"] = sweep
        rows.append(row)
        del index
    else:
        print(f"   {HNSW}: not built at this size (see the docstring)", flush=True)

    rows.append(measure_peer(size, FLAT, templates, lambda: flat_index(vectors), truth, None))
    if exact_top10 is not None:
        rows.append(
            measure_peer(size, IVF, templates, lambda: ivf_index(vectors), truth, exact_top10)
        )
        lists = 1 << round(math.log2(4 * math.sqrt(size)))
        extra["ivf"] = f"nlist {lists}, nprobe {lists // 32}"

    row = Row(size, NAIVE, build_s=0.0, memory_bytes=0.0, note="loops over a batch")
    latencies, answers = timed_loop(
        list(templates.single),
        lambda p: naive_search(vectors, subjects, p),
        SINGLE_BUDGET_S,
        5,
        warm_up=1,
    )
    row.single_ms = [s * 1e3 for s in latencies]
    row.identical = agreement(answers, truth)
    if size <= HNSW_MAX_SIZE:
        batch_latencies, _ = timed_loop(
            list(templates.batches),
            lambda b: [naive_search(vectors, subjects, p) for p in b],
            NAIVE_BATCH_BUDGET_S,
            1,
            warm_up=0,  # its single probes just ran: one batch is 64 more of them
        )
        row.batch_ms = [s * 1e3 for s in batch_latencies]
    else:
        row.note = "batch not run (64 full scans)"
    rows.append(row)
    print(f"   {NAIVE}: measured", flush=True)
    return rows, extra


def memory_bandwidth() -> dict[str, float]:
    """Read bandwidth: a NumPy sum (one thread) and a BLAS matrix-vector product (BLAS's
    threads), each over 2 GiB of float32, the best of 7 (what the machine can do: on a shared
    machine a median would measure the neighbours)."""
    data = np.ones(BANDWIDTH_BYTES // 4, dtype=np.float32)
    matrix = data.reshape(-1, DIMENSION)
    vector = np.ones(DIMENSION, dtype=np.float32)
    figures = {}
    for name, run in (("numpy_sum", data.sum), ("blas_gemv", lambda: matrix @ vector)):
        times = []
        for _ in range(7):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        figures[f"{name}_gb_s"] = BANDWIDTH_BYTES / min(times) / 1e9
    return figures


# --- printing ----------------------------------------------------------------------------------


def print_size(rows: list[Row], extra: dict[str, Any], bandwidth: dict[str, float]) -> None:
    size = extra["size"]
    real = extra["realism"]
    print(
        f"\n-- {size:,} templates of {extra['identities']:,} identities, k={K}, "
        f"threshold {THRESHOLD} --"
    )
    for label, key, reference in (
        ("genuine ", "genuine_quantiles", REAL_GENUINE),
        ("impostor", "impostor_quantiles", REAL_IMPOSTOR),
    ):
        synthetic = " ".join(f"{v:.3f}" for v in real[key])
        print(
            f"   synthetic {label} p1/5/25/50/75/95/99: {synthetic}   (real dlib: "
            f"{' '.join(f'{v:.3f}' for v in reference)})"
        )
    print(
        f"   synthetic norm {real['norm_mean']:.3f} sd {real['norm_sd']:.3f}; at {THRESHOLD}: "
        f"FMR {real['fmr']:.5f} ({real['impostor_pairs']:,} pairs), FNMR {real['fnmr']:.3f} "
        f"({real['genuine_pairs']:,} pairs); model card FMR 0.00098, FNMR 0.025"
    )
    base = next(r for r in rows if r.system == EXACT32)
    peer = next(r for r in rows if r.system == FLAT)
    header = (
        f"   {'system':<26}{'build s':>9}{'B/tmpl':>8}{'1 probe p50':>12}{'p99 ms':>10}"
        f"{'64 p50':>10}{'p99 ms':>10}{'/probe':>9}{'same':>10}{'x f32':>8}{'x flat':>8}"
    )
    print(header)
    for row in rows:
        p50 = row.p("single", 50)
        batch50 = row.p("batch", 50)
        same = f"{row.identical[0]}/{row.identical[1]}" if row.identical else "-"
        print(
            f"   {row.system:<26}{row.build_s:>9.1f}{row.memory_bytes / size:>8.0f}"
            f"{p50:>12.3f}{row.p('single', 99):>10.3f}{batch50:>10.1f}{row.p('batch', 99):>10.1f}"
            f"{batch50 / BATCH:>9.3f}{same:>10}{ratio(base.p('single', 50), p50):>8.2f}"
            f"{ratio(peer.p('single', 50), p50):>8.2f}" + (f"  ({row.note})" if row.note else "")
        )
    print(
        "   (B/tmpl: anonymous RSS growth over the build per template; 'same': answers identical "
        "to ExactIndex float32\n    at the operating point; 'x f32' / 'x flat': single-probe p50 "
        "speed-up over ExactIndex float32 / IndexFlatL2)"
    )
    counts = ", ".join(f"{r.system} {len(r.single_ms)}/{len(r.batch_ms)}" for r in rows)
    print(f"   probes timed (single/batches): {counts}")
    for row in rows:
        if row.system in {EXACT32, EXACT16}:
            width = 4 if row.system == EXACT32 else 2
            scanned = size * DIMENSION * width
            rate = scanned / (row.p("single", 50) / 1e3) / 1e9
            print(
                f"   {row.system}: scans {scanned / 1e9:.2f} GB per probe = {rate:.1f} GB/s "
                f"effective, {rate / bandwidth['numpy_sum_gb_s']:.2f} of the NumPy-sum "
                f"bandwidth, {rate / bandwidth['blas_gemv_gb_s']:.2f} of BLAS gemv's"
                + (
                    f"; float32 originals in a {row.disk_bytes / 2**30:.2f} GiB spill file"
                    if row.disk_bytes
                    else ""
                )
            )
    hnsw = next((r for r in rows if r.system == HNSW), None)
    if hnsw is not None:
        hits, mated = extra["hnsw_mated_rank1"]
        print(
            f"   {HNSW}: recall@10 {hnsw.recall_at_10:.4f} against the exact top-10 subjects (no "
            f"threshold); mated probes' subject ranked first {hits}/{mated}; p50 "
            f"{ratio(base.p('single', 50), hnsw.p('single', 50)):.0f}x faster than exact"
        )
        sweep = "; ".join(
            f"ef {s['ef_search']}: p50 {s['p50_ms']:.3f} ms, p99 {s['p99_ms']:.3f} ms, "
            f"recall@10 {s['recall_at_10']:.4f}"
            for s in extra["hnsw_ef_sweep"]
        )
        print(f"   efSearch sweep on the same graph: {sweep}")
    ivf = next((r for r in rows if r.system == IVF), None)
    if ivf is not None and ivf.recall_at_10 is not None:
        print(
            f"   {IVF}: recall@10 {ivf.recall_at_10:.4f} (its 40 nearest templates grouped by "
            f"subject; {extra['ivf']}); build {ivf.build_s:.1f} s vs HnswIndex "
            f"{hnsw.build_s if hnsw else float('nan'):.1f} s"
        )


def summary_table(rows: list[Row]) -> None:
    print("\nSummary")
    print(
        f"   {'templates':>11} {'system':<26}{'build s':>9}{'B/tmpl':>8}{'p50 ms':>10}"
        f"{'p99 ms':>10}{'64: ms/probe':>13}{'recall@10':>10}{'same':>10}"
    )
    for row in rows:
        same = f"{row.identical[0]}/{row.identical[1]}" if row.identical else "-"
        recall = f"{row.recall_at_10:.4f}" if row.recall_at_10 is not None else "exact"
        if row.system in {FLAT, NAIVE}:
            recall = "exact"
        elif row.system == IVF and row.recall_at_10 is not None:
            recall = f"{row.recall_at_10:.4f}"
        print(
            f"   {row.size:>11,} {row.system:<26}{row.build_s:>9.1f}"
            f"{row.memory_bytes / row.size:>8.0f}{row.p('single', 50):>10.3f}"
            f"{row.p('single', 99):>10.3f}{row.p('batch', 50) / BATCH:>13.3f}{recall:>10}"
            f"{same:>10}"
        )


# --- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="150,000 templates only (CI)")
    parser.add_argument("--sizes", type=int, nargs="+", help="template counts to run instead")
    parser.add_argument("--json-out", type=Path, help="also write the figures here as JSON")
    parser.add_argument("--spill-dir", type=Path, help="where float16 storage's spill file goes")
    args = parser.parse_args()
    started = time.perf_counter()
    sizes = args.sizes or (SHORT_SIZES if args.short else FULL_SIZES)
    print(f"faceaccord search benchmark, {'short' if args.short else 'full'} mode")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    machine = machine_facts() | {
        "numpy": np.__version__,
        "faiss": faiss.__version__,
        "faiss_omp_threads": faiss.omp_get_max_threads(),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "unset"),
        "load_average": " ".join(f"{v:.2f}" for v in os.getloadavg()),
    }
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
    bandwidth = memory_bandwidth()
    print(
        f"memory bandwidth (best of 7): NumPy sum over 2 GiB {bandwidth['numpy_sum_gb_s']:.1f} "
        f"GB/s (one thread); BLAS gemv over the same {bandwidth['blas_gemv_gb_s']:.1f} GB/s",
        flush=True,
    )
    rows: list[Row] = []
    extras: list[dict[str, Any]] = []
    spill = args.spill_dir or Path(tempfile.gettempdir())
    for i, size in enumerate(sizes):
        if i:  # again before each size; the best figures so far are the machine's
            again = memory_bandwidth()
            bandwidth = {key: max(value, again[key]) for key, value in bandwidth.items()}
            print(
                f"\nmemory bandwidth, best so far: NumPy sum {bandwidth['numpy_sum_gb_s']:.1f} "
                f"GB/s, BLAS gemv {bandwidth['blas_gemv_gb_s']:.1f} GB/s",
                flush=True,
            )
        size_rows, extra = run_size(size, spill)
        print_size(size_rows, extra, bandwidth)
        rows += size_rows
        extras.append(extra)
        gc.collect()
    summary_table(rows)
    run_s = time.perf_counter() - started
    print(f"   run time {run_s:.0f} s; load average at the end {os.getloadavg()[0]:.2f}")
    if args.json_out:
        report = {
            "machine": machine,
            "bandwidth": bandwidth,
            "rows": [r.to_json() for r in rows],
            "sizes": extras,
            "run_s": run_s,
        }
        args.json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"figures written to {args.json_out}")
    exact_ok = all(
        r.identical is not None and r.identical[0] == r.identical[1]
        for r in rows
        if r.system == EXACT16
    )
    return 0 if exact_ok else 1


if __name__ == "__main__":
    sys.exit(main())
