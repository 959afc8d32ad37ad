"""Synthetic templates shaped like dlib's 128-d descriptors, the index flavours under test, and
a brute-force reference answer.

The model (the same as ``benchmarks/bench_search.py``, which documents its calibration against
real dlib-resnet-v1 descriptors): a common mean vector of norm 1.37; identities drawn around one
of 16 group centres; samples of an identity scattered around it; variances fall off as a power
law (i^-0.6) in a random basis. Same-identity distances come out around 0.38 (median) and
different-identity distances around 0.85, as real ones do; the decision threshold is 0.5251.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from faceaccord.matching import ScalableIndex

DIMENSION = 128
THRESHOLD = 0.5251
MODEL = "dlib-resnet-v1"
GROUPS = 16
IDENTITY_VARIANCE = 0.30
SAMPLE_VARIANCE = 0.074
BETWEEN_GROUPS = 0.5
MEAN_NORM = 1.37

IndexFactory = Callable[[], ScalableIndex]


@dataclass(frozen=True)
class Gallery:
    vectors: NDArray[np.float32]
    template_ids: list[str]
    subject_ids: list[str]
    mated_probes: NDArray[np.float32]
    """A fresh sample of an enrolled identity each (``mated_subjects``)."""
    mated_subjects: list[str]
    unmated_probes: NDArray[np.float32]
    """A sample of an identity that is not enrolled each."""

    @property
    def probes(self) -> NDArray[np.float32]:
        return np.concatenate([self.mated_probes, self.unmated_probes])


def dlib_like(*, identities: int, probes: int, seed: int) -> Gallery:
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((DIMENSION, DIMENSION)))
    decay = np.arange(1, DIMENSION + 1) ** -0.6
    shape = np.sqrt(decay / decay.sum())
    mean = rng.standard_normal(DIMENSION)
    mean *= MEAN_NORM / np.linalg.norm(mean)
    spread = shape * np.sqrt(IDENTITY_VARIANCE * BETWEEN_GROUPS)
    groups = rng.standard_normal((GROUPS, DIMENSION)) * spread

    def centres(count: int) -> NDArray[np.float64]:
        own = rng.standard_normal((count, DIMENSION)) * spread
        return groups[rng.integers(0, GROUPS, count)] + own

    def samples(centre: NDArray[np.float64], scale: NDArray[np.float64]) -> NDArray[np.float32]:
        noise = rng.standard_normal(centre.shape) * shape * np.sqrt(SAMPLE_VARIANCE)
        return ((centre + noise * scale[:, None]) @ basis.T + mean).astype(np.float32)

    centre = centres(identities)
    scale = np.exp(rng.normal(0.0, 0.12, identities))
    per = 1 + rng.binomial(6, 0.5, identities)
    owner = np.repeat(np.arange(identities), per)
    mated = rng.choice(identities, probes, replace=False)
    strangers = centres(probes)
    return Gallery(
        vectors=samples(centre[owner], scale[owner]),
        template_ids=[f"t{i}" for i in range(len(owner))],
        subject_ids=[f"s{i}" for i in owner],
        mated_probes=samples(centre[mated], scale[mated]),
        mated_subjects=[f"s{i}" for i in mated],
        unmated_probes=samples(strangers, np.ones(probes)),
    )


FLAVOURS: dict[str, dict[str, object]] = {
    "exact-float32": {"kind": "exact"},
    "exact-float16": {"kind": "exact", "storage": "float16"},
    "hnsw": {"kind": "hnsw"},
}


def brute_force(
    vectors: NDArray[np.float32],
    subject_ids: list[str],
    template_ids: list[str],
    probe: NDArray[np.float32],
    *,
    k: int,
    threshold: float,
) -> list[tuple[str, str, float]]:
    """The reference answer: every distance in float64, nearest first (ties by row), the
    nearest template of each subject, within the threshold, k of them."""
    distances = np.sqrt(((vectors.astype(np.float64) - probe.astype(np.float64)) ** 2).sum(1))
    best: dict[str, tuple[str, float]] = {}
    for row in np.lexsort((np.arange(len(distances)), distances)).tolist():
        if distances[row] > threshold or len(best) == k:
            break
        best.setdefault(subject_ids[row], (template_ids[row], float(distances[row])))
    return [(subject, template, distance) for subject, (template, distance) in best.items()]
