"""Helpers shared by the benchmarks: data sets, timing, and pair statistics."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from faceaccord.fairness.metrics import threshold_for_fmr

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    subject: str


def folder_per_person(root: Path) -> list[LabelledImage]:
    """Images under ``root/<subject>/``, sorted; non-image files (manifests, CSVs) are skipped."""
    return [
        LabelledImage(path=path, subject=path.parent.name)
        for path in sorted(root.glob("*/*"))
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    ]


def pair_distances(
    embeddings: NDArray[np.float64], subjects: Sequence[str]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Euclidean distances of all genuine and all impostor pairs (each unordered pair once)."""
    diff = embeddings[:, None, :] - embeddings[None, :, :]
    dist = np.sqrt((diff**2).sum(-1))
    labels = np.asarray(subjects)
    upper = np.triu_indices(len(labels), k=1)
    same = labels[upper[0]] == labels[upper[1]]
    values = dist[upper]
    return values[same], values[~same]


def threshold_at_fmr(impostor: NDArray[np.float64], target_fmr: float) -> float:
    """The largest distance threshold whose false-match rate (distance <= t) is <= target."""
    return threshold_for_fmr(impostor, target_fmr)


def rate(errors: int, trials: int) -> float:
    return errors / trials if trials else float("nan")


def clopper_pearson(errors: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial confidence interval, by bisection on the regularised incomplete beta."""
    if trials == 0:
        return (0.0, 1.0)
    alpha = 1 - confidence

    def cdf(k: int, p: float) -> float:  # P[X <= k], X ~ Bin(n, p), summed in log space
        if p <= 0.0:
            return 1.0
        if p >= 1.0:
            return 1.0 if k >= trials else 0.0
        log_norm = math.lgamma(trials + 1)
        return sum(
            math.exp(
                log_norm
                - math.lgamma(i + 1)
                - math.lgamma(trials - i + 1)
                + i * math.log(p)
                + (trials - i) * math.log1p(-p)
            )
            for i in range(k + 1)
        )

    def solve_decreasing(f: Callable[[float], float], target: float) -> float:
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if f(mid) > target:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    # lower: P[X >= errors] = alpha/2, i.e. cdf(errors - 1, p) = 1 - alpha/2 (decreasing in p)
    lower = 0.0 if errors == 0 else solve_decreasing(lambda p: cdf(errors - 1, p), 1 - alpha / 2)
    # upper: P[X <= errors] = alpha/2 (decreasing in p)
    upper = 1.0 if errors == trials else solve_decreasing(lambda p: cdf(errors, p), alpha / 2)
    return (lower, upper)


def roc_auc(genuine: NDArray[np.float64], impostor: NDArray[np.float64]) -> float:
    """P(genuine distance < impostor distance), ties counted half (Mann-Whitney U)."""
    scores = np.concatenate([genuine, impostor])
    ranks = _average_ranks(scores)
    rank_sum = ranks[: len(genuine)].sum()
    u = rank_sum - len(genuine) * (len(genuine) + 1) / 2
    return float(1 - u / (len(genuine) * len(impostor)))


def tmr_at_fmr(genuine: NDArray[np.float64], impostor: NDArray[np.float64], fmr: float) -> float:
    threshold = threshold_at_fmr(impostor, fmr)
    return float((genuine <= threshold).mean())


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def _average_ranks(values: NDArray[np.float64]) -> NDArray[np.float64]:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks
