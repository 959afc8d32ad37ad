"""Every error rate and summary measure of faceaccord.fairness.metrics against small examples
computed by hand (the arithmetic is in the comments). Scores are distances: a pair matches when
distance <= threshold, ties included."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from faceaccord.fairness.metrics import (
    det_curve,
    equal_error_rate,
    false_match_rate,
    false_non_match_rate,
    fdr,
    fnmr_at_fmr,
    garbe,
    gini,
    inequity_rate,
    rule_of_three,
    summarize,
    threshold_for_fmr,
)


def scores(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


# Three groups used throughout:
#   FMR  = [0.1, 0.2, 0.3]    max 0.3, min 0.1, gap 0.2,  mean 0.2
#   FNMR = [0.02, 0.02, 0.08] max 0.08, min 0.02, gap 0.06, mean 0.04
FMRS = [0.1, 0.2, 0.3]
FNMRS = [0.02, 0.02, 0.08]


# FMR and FNMR at a threshold


def test_fmr_counts_impostor_distances_at_or_below_the_threshold() -> None:
    impostor = scores(0.2, 0.4, 0.5, 0.6, 0.9)
    # <= 0.5: 0.2, 0.4, 0.5 (the tie counts as a match) -> 3 / 5
    assert false_match_rate(impostor, 0.5) == pytest.approx(3 / 5)
    # <= 0.45: 0.2, 0.4 -> 2 / 5
    assert false_match_rate(impostor, 0.45) == pytest.approx(2 / 5)
    # below every distance: 0; above every distance: 1
    assert false_match_rate(impostor, 0.1) == 0.0
    assert false_match_rate(impostor, 0.9) == 1.0


def test_fnmr_counts_genuine_distances_above_the_threshold() -> None:
    genuine = scores(0.1, 0.3, 0.5, 0.7)
    # > 0.5: only 0.7 (0.5 is a tie, so a match) -> 1 / 4
    assert false_non_match_rate(genuine, 0.5) == pytest.approx(1 / 4)
    # > 0.3: 0.5 and 0.7 -> 2 / 4
    assert false_non_match_rate(genuine, 0.3) == pytest.approx(2 / 4)
    assert false_non_match_rate(genuine, 0.7) == 0.0
    assert false_non_match_rate(genuine, 0.05) == 1.0


def test_rates_of_no_pairs_are_nan_not_zero() -> None:
    assert math.isnan(false_match_rate(scores(), 0.5))
    assert math.isnan(false_non_match_rate(scores(), 0.5))


# The threshold for a target FMR


def test_threshold_for_fmr_is_halfway_between_the_last_allowed_and_the_first_refused() -> None:
    impostor = scores(1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)  # unsorted on purpose
    # target 0.2 of 10 pairs: floor(0.2 * 10) = 2 may match -> sorted[1] = 0.2, sorted[2] = 0.3
    # -> threshold (0.2 + 0.3) / 2 = 0.25, where FMR = 2 / 10 = 0.2 exactly
    threshold = threshold_for_fmr(impostor, 0.2)
    assert threshold == pytest.approx(0.25)
    assert false_match_rate(impostor, threshold) == pytest.approx(0.2)
    # target 0.25: floor(2.5) = 2 still -> the same threshold, FMR 0.2 <= 0.25
    assert threshold_for_fmr(impostor, 0.25) == pytest.approx(0.25)
    # target 0.5: floor(5) = 5 -> (sorted[4] + sorted[5]) / 2 = (0.5 + 0.6) / 2 = 0.55
    assert threshold_for_fmr(impostor, 0.5) == pytest.approx(0.55)


def test_a_target_below_one_pair_gives_a_threshold_below_every_impostor() -> None:
    impostor = scores(0.3, 0.2, 0.6)
    # floor(1e-3 * 3) = 0 pairs may match: just below the smallest distance, 0.2
    threshold = threshold_for_fmr(impostor, 1e-3)
    assert threshold < 0.2
    assert threshold == pytest.approx(0.2)
    assert false_match_rate(impostor, threshold) == 0.0


@pytest.mark.parametrize("target", [1e-3, 0.01, 0.05, 0.1, 0.3])
def test_the_threshold_meets_its_target_on_continuous_scores(target: float) -> None:
    impostor = np.random.default_rng(5).uniform(0.0, 1.0, size=1000)
    threshold = threshold_for_fmr(impostor, target)
    # exactly floor(target * 1000) impostors match, which is the most the target allows
    assert false_match_rate(impostor, threshold) == pytest.approx(math.floor(target * 1000) / 1000)
    assert false_match_rate(impostor, threshold) <= target


def test_the_threshold_meets_its_target_when_impostor_distances_tie() -> None:
    impostor = scores(0.1, 0.2, 0.2, 0.3)
    # target 0.5: floor(0.5 * 4) = 2 may match, but sorted[1] == sorted[2] == 0.2, so any
    # threshold >= 0.2 matches 3 of 4 (FMR 0.75). The largest threshold with FMR <= 0.5 is just
    # below 0.2 (FMR 1 / 4 = 0.25). The function returns (0.2 + 0.2) / 2 = 0.2: FMR 0.75.
    threshold = threshold_for_fmr(impostor, 0.5)
    assert false_match_rate(impostor, threshold) <= 0.5


def test_threshold_for_fmr_rejects_no_pairs_and_targets_outside_0_1() -> None:
    with pytest.raises(ValueError, match="impostor pairs"):
        threshold_for_fmr(scores(), 0.1)
    for target in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"in \(0, 1\)"):
            threshold_for_fmr(scores(0.1, 0.2), target)


# Rule of three


@pytest.mark.parametrize("trials", [1, 2, 10, 100, 1000, 100_000])
def test_rule_of_three_is_the_exact_95_percent_upper_bound(trials: int) -> None:
    bound = rule_of_three(trials)
    assert bound == pytest.approx(1 - 0.05 ** (1 / trials), rel=1e-12)
    # by definition: seeing 0 errors in N trials at that rate has probability 5 %
    assert (1 - bound) ** trials == pytest.approx(0.05, rel=1e-9)


def test_rule_of_three_values_and_its_3_over_n_approximation() -> None:
    # N = 1: 1 - 0.05 = 0.95; N = 10: 1 - 0.05 ** 0.1 = 1 - 0.74113 = 0.25887
    assert rule_of_three(1) == pytest.approx(0.95)
    assert rule_of_three(10) == pytest.approx(0.2588655508930523)
    # large N: -ln(0.05) / N = 2.9957 / N, i.e. about 3 / N
    assert rule_of_three(1000) == pytest.approx(3 / 1000, rel=0.01)
    assert rule_of_three(100_000) == pytest.approx(2.9957 / 100_000, rel=1e-4)


def test_rule_of_three_with_no_trials_bounds_nothing() -> None:
    assert rule_of_three(0) == 1.0


# EER, DET curve, FNMR at a fixed FMR


def test_equal_error_rate_by_hand() -> None:
    genuine = scores(0.1, 0.2, 0.3, 0.6)
    impostor = scores(0.4, 0.5, 0.7, 0.8)
    # threshold: 0.1  0.2  0.3  0.4  0.5  0.6  0.7  0.8
    # FMR (<=):  0    0    0    .25  .5   .5   .75  1
    # FNMR (>):  .75  .5   .25  .25  .25  0    0    0
    # they cross at 0.4: (0.25 + 0.25) / 2 = 0.25
    assert equal_error_rate(genuine, impostor) == pytest.approx(0.25)


def test_equal_error_rate_of_separated_and_of_missing_scores() -> None:
    # every genuine below every impostor: at 0.2 both rates are 0
    assert equal_error_rate(scores(0.1, 0.2), scores(0.8, 0.9)) == 0.0
    assert math.isnan(equal_error_rate(scores(), scores(0.5)))
    assert math.isnan(equal_error_rate(scores(0.5), scores()))


def test_det_curve_spans_every_score_from_no_false_match_to_no_false_non_match() -> None:
    genuine = scores(0.1, 0.2, 0.3, 0.6)
    impostor = scores(0.4, 0.5, 0.7, 0.8)
    curve = det_curve(genuine, impostor, points=50)
    first, last = curve[0], curve[-1]
    # lowest threshold = the smallest score 0.1: no impostor matches; 3 of 4 genuine do not
    assert first.threshold == pytest.approx(0.1)
    assert first.fmr == 0.0
    assert first.fnmr == pytest.approx(0.75)
    # highest threshold = the largest score 0.8: every impostor matches, every genuine does too
    assert last.threshold == pytest.approx(0.8)
    assert (last.fmr, last.fnmr) == (1.0, 0.0)
    thresholds = [p.threshold for p in curve]
    assert thresholds == sorted(thresholds)
    assert all(a.fmr <= b.fmr and a.fnmr >= b.fnmr for a, b in itertools.pairwise(curve))
    # every point is the rates at its threshold
    for point in curve:
        assert point.fmr == pytest.approx(false_match_rate(impostor, point.threshold))
        assert point.fnmr == pytest.approx(false_non_match_rate(genuine, point.threshold))
    assert det_curve(scores(), impostor) == []
    assert det_curve(genuine, scores()) == []


def test_fnmr_at_fmr_uses_the_groups_own_threshold() -> None:
    genuine = scores(0.1, 0.2, 0.3, 0.6)
    impostor = scores(0.4, 0.5, 0.7, 0.8)
    # FMR 0.25 of 4: floor(1) = 1 may match -> threshold (0.4 + 0.5) / 2 = 0.45
    # genuine above 0.45: only 0.6 -> FNMR 1 / 4
    assert fnmr_at_fmr(genuine, impostor, 0.25) == pytest.approx(0.25)
    # FMR 0.1: none may match -> just below 0.4: FNMR again 1 / 4 (0.6 is the only one above)
    assert fnmr_at_fmr(genuine, impostor, 0.1) == pytest.approx(0.25)
    assert math.isnan(fnmr_at_fmr(scores(), impostor, 0.1))


# Gini, GARBE, FDR, inequity rate


def test_gini_by_hand() -> None:
    # [0.1, 0.2, 0.3]: sum_i sum_j |xi - xj| = 2 * (0.1 + 0.2 + 0.1) = 0.8, n = 3, mean = 0.2
    # G = n / (n - 1) * 0.8 / (2 * n^2 * mean) = 1.5 * 0.8 / (2 * 9 * 0.2) = 1.2 / 3.6 = 1 / 3
    assert gini([0.1, 0.2, 0.3]) == pytest.approx(1 / 3, rel=1e-12)
    # [0.02, 0.02, 0.08]: sum |xi - xj| = 2 * (0 + 0.06 + 0.06) = 0.24, mean 0.04
    # G = 1.5 * 0.24 / (2 * 9 * 0.04) = 0.36 / 0.72 = 0.5
    assert gini(FNMRS) == pytest.approx(0.5, rel=1e-12)
    # [0, 1]: sum = 2, n = 2, mean 0.5 -> 2 * 2 / (2 * 4 * 0.5) = 1: all the error in one group
    assert gini([0.0, 1.0]) == pytest.approx(1.0)


def test_gini_of_equal_rates_is_zero_even_when_all_are_zero() -> None:
    assert gini([0.05, 0.05, 0.05]) == 0.0
    assert gini([0.0, 0.0]) == 0.0


def test_gini_needs_two_groups() -> None:
    with pytest.raises(ValueError, match="at least two groups"):
        gini([0.1])


def test_garbe_by_hand_with_two_alphas() -> None:
    # G(FMR) = 1/3, G(FNMR) = 0.5
    # alpha 0.5:  0.5 * 1/3 + 0.5 * 0.5 = 0.1666.. + 0.25 = 0.416666..
    assert garbe(FMRS, FNMRS) == pytest.approx(5 / 12, rel=1e-12)
    assert garbe(FMRS, FNMRS, alpha=0.5) == pytest.approx(5 / 12, rel=1e-12)
    # alpha 0.25: 0.25 * 1/3 + 0.75 * 0.5 = 0.083333.. + 0.375 = 0.458333..
    assert garbe(FMRS, FNMRS, alpha=0.25) == pytest.approx(11 / 24, rel=1e-12)
    # alpha 1 reads FMR only, alpha 0 FNMR only
    assert garbe(FMRS, FNMRS, alpha=1.0) == pytest.approx(1 / 3)
    assert garbe(FMRS, FNMRS, alpha=0.0) == pytest.approx(0.5)


def test_fdr_by_hand() -> None:
    # max |FMR_i - FMR_j| = 0.3 - 0.1 = 0.2, max |FNMR_i - FNMR_j| = 0.08 - 0.02 = 0.06
    # alpha 0.5:  1 - (0.5 * 0.2 + 0.5 * 0.06) = 1 - 0.13 = 0.87
    assert fdr(FMRS, FNMRS) == pytest.approx(0.87, rel=1e-12)
    # alpha 0.25: 1 - (0.25 * 0.2 + 0.75 * 0.06) = 1 - (0.05 + 0.045) = 0.905
    assert fdr(FMRS, FNMRS, alpha=0.25) == pytest.approx(0.905, rel=1e-12)
    # equal groups: perfectly fair
    assert fdr([0.1, 0.1], [0.2, 0.2]) == 1.0


def test_inequity_rate_by_hand() -> None:
    # (0.3 / 0.1)^0.5 * (0.08 / 0.02)^0.5 = sqrt(3) * sqrt(4) = 2 sqrt(3) = 3.4641..
    assert inequity_rate(FMRS, FNMRS) == pytest.approx(2 * math.sqrt(3), rel=1e-12)
    # alpha 0.25: 3^0.25 * 4^0.75 = 1.31607 * 2.82843 = 3.72241
    assert inequity_rate(FMRS, FNMRS, alpha=0.25) == pytest.approx(3**0.25 * 4**0.75, rel=1e-12)
    assert inequity_rate([0.1, 0.1], [0.2, 0.2]) == 1.0


def test_inequity_rate_is_undefined_when_a_minimum_is_zero() -> None:
    assert inequity_rate([0.0, 0.1], FNMRS[:2]) is None
    assert inequity_rate([0.1, 0.2], [0.0, 0.3]) is None


# summarize: all of them, with the note on zero minima and validation


def test_summarize_reports_every_measure_by_hand() -> None:
    summary = summarize(FMRS, FNMRS)
    assert summary.fmr_ratio == pytest.approx(3.0)  # 0.3 / 0.1
    assert summary.fnmr_ratio == pytest.approx(4.0)  # 0.08 / 0.02
    assert summary.fmr_difference == pytest.approx(0.2)
    assert summary.fnmr_difference == pytest.approx(0.06)
    assert summary.fdr == pytest.approx(0.87)
    assert summary.inequity_rate == pytest.approx(2 * math.sqrt(3))
    assert summary.garbe == pytest.approx(5 / 12)
    assert summary.alpha == 0.5
    assert summary.note == ""
    assert set(summary.as_dict()) == {
        "fmr_ratio", "fnmr_ratio", "fmr_difference", "fnmr_difference", "fdr",
        "inequity_rate", "garbe", "alpha", "note",
    }  # fmt: skip
    other = summarize(FMRS, FNMRS, alpha=0.25)
    assert other.alpha == 0.25
    assert other.fdr == pytest.approx(0.905)
    assert other.garbe == pytest.approx(11 / 24)
    assert other.inequity_rate == pytest.approx(3**0.25 * 4**0.75)


def test_a_zero_minimum_gives_none_and_a_note_never_infinity() -> None:
    summary = summarize([0.0, 0.01, 0.02], [0.05, 0.1, 0.2])
    assert summary.fmr_ratio is None
    assert summary.fnmr_ratio == pytest.approx(4.0)  # 0.2 / 0.05
    assert summary.inequity_rate is None
    # the other measures stay defined: gaps 0.02 and 0.15 -> FDR 1 - (0.01 + 0.075) = 0.915
    assert summary.fdr == pytest.approx(0.915)
    assert math.isfinite(summary.garbe)
    assert "FMR is 0" in summary.note
    assert "undefined" in summary.note
    assert "rule-of-three" in summary.note
    text = json.dumps(summary.as_dict())
    assert "Infinity" not in text
    assert "NaN" not in text
    both = summarize([0.0, 0.1], [0.0, 0.2])
    assert both.fmr_ratio is None
    assert both.fnmr_ratio is None
    assert "FMR and FNMR" in both.note


def test_all_rates_zero_is_perfectly_equal_but_ratios_are_undefined() -> None:
    summary = summarize([0.0, 0.0], [0.0, 0.0])
    assert summary.fmr_ratio is None
    assert summary.fnmr_ratio is None
    assert summary.garbe == 0.0
    assert summary.fdr == 1.0


@pytest.mark.parametrize(
    ("fmrs", "fnmrs", "message"),
    [
        ([0.1], [0.2], "at least two groups"),
        ([], [], "at least two groups"),
        ([0.1, 0.2], [0.2], "at least two groups"),  # lengths differ
        ([0.1, 1.2], [0.2, 0.3], "between 0 and 1"),
        ([0.1, 0.2], [-0.01, 0.3], "between 0 and 1"),
        ([0.1, math.nan], [0.2, 0.3], "between 0 and 1"),
        ([0.1, 0.2], [0.2, math.nan], "between 0 and 1"),
        ([0.1, math.inf], [0.2, 0.3], "between 0 and 1"),
    ],
)
def test_summarize_rejects_bad_rates(fmrs: list[float], fnmrs: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        summarize(fmrs, fnmrs)


@pytest.mark.parametrize("alpha", [-0.1, 1.01, math.nan])
def test_summarize_rejects_alpha_outside_0_1(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        summarize(FMRS, FNMRS, alpha=alpha)
