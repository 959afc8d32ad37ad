"""Subject-level bootstrap of error rates.

Errors are correlated within a subject (the same face is in many pairs), so replicates resample
*subjects* with replacement, not pairs: a subject drawn ``c`` times carries its genuine pairs with
weight ``c``, and an impostor pair of subjects drawn ``c_a`` and ``c_b`` times has weight
``c_a * c_b``. Percentile intervals; a two-sided bootstrap p-value for a difference between two
groups (replicates of the two groups drawn independently).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["BootstrapRates", "bootstrap_rates", "difference_p_value"]


@dataclass(frozen=True, slots=True)
class BootstrapRates:
    fmr: NDArray[np.float64]
    """One FMR per replicate (NaN where a replicate has no impostor pair)."""
    fnmr: NDArray[np.float64]

    @staticmethod
    def interval(samples: NDArray[np.float64], level: float = 0.95) -> tuple[float, float]:
        finite = samples[np.isfinite(samples)]
        if finite.size == 0:
            return (math.nan, math.nan)
        tail = (1 - level) / 2 * 100
        low, high = np.percentile(finite, [tail, 100 - tail])
        return (float(low), float(high))


def bootstrap_rates(
    *,
    subjects: NDArray[np.int64],
    genuine_subject: NDArray[np.int64],
    genuine_error: NDArray[np.bool_],
    impostor_a: NDArray[np.int64],
    impostor_b: NDArray[np.int64],
    impostor_error: NDArray[np.bool_],
    replicates: int,
    seed: int,
    chunk: int = 100,
) -> BootstrapRates:
    """Replicates of (FMR, FNMR) for one group, whose subjects are ``subjects`` (indices); the
    pairs' subject indices must be among them."""
    position = {int(s): i for i, s in enumerate(subjects)}
    g = np.array([position[int(s)] for s in genuine_subject], dtype=np.int64)
    ia = np.array([position[int(s)] for s in impostor_a], dtype=np.int64)
    ib = np.array([position[int(s)] for s in impostor_b], dtype=np.int64)
    g_err, i_err = genuine_error.astype(np.float64), impostor_error.astype(np.float64)
    rng = np.random.default_rng(seed)
    fmr, fnmr = [], []
    n = len(subjects)
    for start in range(0, replicates, chunk):
        size = min(chunk, replicates - start)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(np.float64)
        genuine_weight = counts[:, g]
        impostor_weight = counts[:, ia] * counts[:, ib]
        with np.errstate(invalid="ignore", divide="ignore"):
            fnmr.append((genuine_weight @ g_err) / genuine_weight.sum(axis=1))
            fmr.append((impostor_weight @ i_err) / impostor_weight.sum(axis=1))
    return BootstrapRates(fmr=np.concatenate(fmr), fnmr=np.concatenate(fnmr))


def difference_p_value(first: NDArray[np.float64], second: NDArray[np.float64]) -> float:
    """Two-sided bootstrap p-value of the hypothesis that two rates are equal."""
    both = np.isfinite(first) & np.isfinite(second)
    if not both.any():
        return math.nan
    difference = first[both] - second[both]
    below, above = float(np.mean(difference <= 0)), float(np.mean(difference >= 0))
    return min(1.0, 2 * min(below, above))
