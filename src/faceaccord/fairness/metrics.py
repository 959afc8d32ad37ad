"""Error rates and the summary measures of demographic differentials.

Comparison scores here are *distances*: a pair matches when distance <= threshold (the engine's
convention). Everything is computed on NumPy arrays of pair distances; nothing here knows about
images or people.

Summary measures over the per-group rates (``../shared/design/FAIRNESS_AUDIT.md``):

- ratio: max / min (NIST's "10 to 100 times"); ``None`` when the minimum is 0 (undefined, never
  silently infinite), with the rule-of-three bound offered instead;
- difference: max - min;
- FDR (de Freitas Pereira & Marcel 2021):
  1 - (a * max|FMR_i - FMR_j| + (1-a) * max|FNMR_i - FNMR_j|);
- inequity rate: (max FMR / min FMR)^a * (max FNMR / min FNMR)^(1-a), ``None`` on a zero minimum;
- GARBE (Howard et al. 2022): a * Gini(FMR) + (1-a) * Gini(FNMR), with
  Gini(x) = n / (n - 1) * sum_i sum_j |x_i - x_j| / (2 n^2 mean(x)); 0 when all rates are 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DetPoint",
    "Summary",
    "det_curve",
    "equal_error_rate",
    "false_match_rate",
    "false_non_match_rate",
    "fdr",
    "fnmr_at_fmr",
    "garbe",
    "gini",
    "inequity_rate",
    "rule_of_three",
    "summarize",
    "threshold_for_fmr",
]

Scores = NDArray[np.float64]
DEFAULT_ALPHA = 0.5


def false_match_rate(impostor: Scores, threshold: float) -> float:
    """Share of impostor pairs that match (distance <= threshold); NaN with no pairs."""
    return float(np.mean(impostor <= threshold)) if impostor.size else math.nan


def false_non_match_rate(genuine: Scores, threshold: float) -> float:
    """Share of genuine pairs that do not match (distance > threshold); NaN with no pairs."""
    return float(np.mean(genuine > threshold)) if genuine.size else math.nan


def threshold_for_fmr(impostor: Scores, target_fmr: float) -> float:
    """The largest threshold whose false-match rate is at most ``target_fmr``: halfway between
    the last impostor distance allowed to match and the first that must not."""
    if impostor.size == 0:
        raise ValueError("a threshold needs impostor pairs")
    if not 0 < target_fmr < 1:
        raise ValueError(f"the target false-match rate must be in (0, 1), not {target_fmr}")
    ordered = np.sort(impostor)
    allowed = math.floor(target_fmr * ordered.size)
    first_refused = ordered[allowed]  # it, and every distance equal to it, must not match
    below = ordered[ordered < first_refused]
    if below.size == 0:
        return float(np.nextafter(first_refused, -np.inf))
    return float((below[-1] + first_refused) / 2)


def rule_of_three(trials: int) -> float:
    """The exact one-sided 95 % upper bound on a rate when 0 errors were seen in ``trials``:
    1 - 0.05^(1/N), about 3/N."""
    if trials <= 0:
        return 1.0
    return 1.0 - math.pow(0.05, 1.0 / trials)


@dataclass(frozen=True, slots=True)
class DetPoint:
    threshold: float
    fmr: float
    fnmr: float


def det_curve(genuine: Scores, impostor: Scores, *, points: int = 200) -> list[DetPoint]:
    """FMR and FNMR over thresholds spanning all scores (a detection error trade-off curve)."""
    if genuine.size == 0 or impostor.size == 0:
        return []
    everything = np.concatenate([genuine, impostor])
    thresholds = np.unique(np.quantile(everything, np.linspace(0, 1, points)))
    impostor_sorted, genuine_sorted = np.sort(impostor), np.sort(genuine)
    fmr = np.searchsorted(impostor_sorted, thresholds, side="right") / impostor.size
    fnmr = 1 - np.searchsorted(genuine_sorted, thresholds, side="right") / genuine.size
    return [
        DetPoint(float(t), float(m), float(n))
        for t, m, n in zip(thresholds, fmr, fnmr, strict=True)
    ]


def equal_error_rate(genuine: Scores, impostor: Scores) -> float:
    """The rate where FMR and FNMR cross (their mean at the closest threshold)."""
    if genuine.size == 0 or impostor.size == 0:
        return math.nan
    candidates = np.unique(np.concatenate([genuine, impostor]))
    fmr = np.searchsorted(np.sort(impostor), candidates, side="right") / impostor.size
    fnmr = 1 - np.searchsorted(np.sort(genuine), candidates, side="right") / genuine.size
    best = int(np.argmin(np.abs(fmr - fnmr)))
    return float((fmr[best] + fnmr[best]) / 2)


def fnmr_at_fmr(genuine: Scores, impostor: Scores, fmr: float) -> float:
    """FNMR at the group's own threshold for ``fmr`` (how well the group could do)."""
    if genuine.size == 0 or impostor.size == 0:
        return math.nan
    return false_non_match_rate(genuine, threshold_for_fmr(impostor, fmr))


def gini(values: Sequence[float]) -> float:
    x = np.asarray(values, dtype=np.float64)
    n = x.size
    if n < 2:
        raise ValueError("the Gini coefficient needs at least two groups")
    mean = float(x.mean())
    if mean == 0:
        return 0.0  # every group at zero: perfectly equal
    total = float(np.abs(x[:, None] - x[None, :]).sum())
    return n / (n - 1) * total / (2 * n * n * mean)


def garbe(fmrs: Sequence[float], fnmrs: Sequence[float], *, alpha: float = DEFAULT_ALPHA) -> float:
    return alpha * gini(fmrs) + (1 - alpha) * gini(fnmrs)


def fdr(fmrs: Sequence[float], fnmrs: Sequence[float], *, alpha: float = DEFAULT_ALPHA) -> float:
    fmr_gap = max(fmrs) - min(fmrs)
    fnmr_gap = max(fnmrs) - min(fnmrs)
    return 1 - (alpha * fmr_gap + (1 - alpha) * fnmr_gap)


def _ratio(values: Sequence[float]) -> float | None:
    low = min(values)
    return None if low == 0 else max(values) / low


def inequity_rate(
    fmrs: Sequence[float], fnmrs: Sequence[float], *, alpha: float = DEFAULT_ALPHA
) -> float | None:
    fmr_ratio, fnmr_ratio = _ratio(fmrs), _ratio(fnmrs)
    if fmr_ratio is None or fnmr_ratio is None:
        return None
    return float(fmr_ratio**alpha * fnmr_ratio ** (1 - alpha))


@dataclass(frozen=True, slots=True)
class Summary:
    fmr_ratio: float | None
    fnmr_ratio: float | None
    fmr_difference: float
    fnmr_difference: float
    fdr: float
    inequity_rate: float | None
    garbe: float
    alpha: float
    note: str

    def as_dict(self) -> dict[str, float | str | None]:
        return {
            "fmr_ratio": self.fmr_ratio,
            "fnmr_ratio": self.fnmr_ratio,
            "fmr_difference": self.fmr_difference,
            "fnmr_difference": self.fnmr_difference,
            "fdr": self.fdr,
            "inequity_rate": self.inequity_rate,
            "garbe": self.garbe,
            "alpha": self.alpha,
            "note": self.note,
        }


def summarize(
    fmrs: Sequence[float], fnmrs: Sequence[float], *, alpha: float = DEFAULT_ALPHA
) -> Summary:
    """All summary measures over per-group rates (at least two groups, no NaN)."""
    if len(fmrs) != len(fnmrs) or len(fmrs) < 2:
        raise ValueError("summary measures need the FMR and FNMR of at least two groups")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha}")
    for rate in (*fmrs, *fnmrs):
        if not (0 <= rate <= 1) or math.isnan(rate):
            raise ValueError(f"a rate must be between 0 and 1, not {rate}")
    zero = [name for name, values in (("FMR", fmrs), ("FNMR", fnmrs)) if min(values) == 0]
    note = (
        f"the lowest {' and '.join(zero)} is 0, so the ratio and the inequity rate are undefined "
        "(reported as null, never as infinity); compare the rule-of-three upper bounds instead"
        if zero
        else ""
    )
    return Summary(
        fmr_ratio=_ratio(fmrs),
        fnmr_ratio=_ratio(fnmrs),
        fmr_difference=max(fmrs) - min(fmrs),
        fnmr_difference=max(fnmrs) - min(fnmrs),
        fdr=fdr(fmrs, fnmrs, alpha=alpha),
        inequity_rate=inequity_rate(fmrs, fnmrs, alpha=alpha),
        garbe=garbe(fmrs, fnmrs, alpha=alpha),
        alpha=alpha,
        note=note,
    )
