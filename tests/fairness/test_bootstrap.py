"""The subject-level bootstrap: hand-checked replicates, coverage of its 95 % intervals checked
by simulation where errors are correlated within a subject (and the naive pair-level bootstrap
shown to under-cover there), and the bootstrap test of a difference between two groups."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from numpy.typing import NDArray

from faceaccord.fairness.bootstrap import BootstrapRates, bootstrap_rates, difference_p_value

# Hand-checked replicates


def test_a_replicate_weighs_pairs_by_how_often_their_subjects_were_drawn() -> None:
    # Two subjects, 0 and 1. One impostor pair (0, 1), a false match. Subject 0's genuine pair
    # is a false non-match, subject 1's is not. Drawing 2 subjects with replacement:
    #   counts (2, 0), p = 1/4: impostor weight 2*0 = 0 -> FMR undefined (NaN); FNMR 2/2 = 1
    #   counts (1, 1), p = 1/2: impostor weight 1 -> FMR 1;  FNMR (1*1 + 1*0) / 2 = 0.5
    #   counts (0, 2), p = 1/4: FMR NaN;                      FNMR 0/2 = 0
    rates = bootstrap_rates(
        subjects=np.array([0, 1]),
        genuine_subject=np.array([0, 1]),
        genuine_error=np.array([True, False]),
        impostor_a=np.array([0]),
        impostor_b=np.array([1]),
        impostor_error=np.array([True]),
        replicates=4000,
        seed=1,
    )
    assert rates.fmr.shape == rates.fnmr.shape == (4000,)
    assert set(np.unique(rates.fmr[np.isfinite(rates.fmr)])) == {1.0}
    assert np.mean(np.isnan(rates.fmr)) == pytest.approx(0.5, abs=0.03)
    assert set(np.unique(rates.fnmr)) == {0.0, 0.5, 1.0}
    assert np.mean(rates.fnmr == 1.0) == pytest.approx(0.25, abs=0.03)
    assert np.mean(rates.fnmr == 0.5) == pytest.approx(0.5, abs=0.03)
    assert np.mean(rates.fnmr == 0.0) == pytest.approx(0.25, abs=0.03)


def test_subject_indices_need_not_start_at_zero_and_the_seed_fixes_the_replicates() -> None:
    def run(seed: int) -> BootstrapRates:
        return bootstrap_rates(
            subjects=np.array([7, 9, 12]),
            genuine_subject=np.array([7, 9, 12]),
            genuine_error=np.array([False, True, False]),
            impostor_a=np.array([7, 7, 9]),
            impostor_b=np.array([9, 12, 12]),
            impostor_error=np.array([False, False, False]),
            replicates=250,  # not a multiple of the chunk of 100
            seed=seed,
        )

    first, again, other = run(5), run(5), run(6)
    assert first.fnmr.shape == (250,)
    np.testing.assert_array_equal(first.fnmr, again.fnmr)
    assert not np.array_equal(first.fnmr, other.fnmr)
    # no false match anywhere: every defined replicate is 0
    assert np.all(first.fmr[np.isfinite(first.fmr)] == 0.0)
    # the FNMR replicates centre on the observed 1/3
    assert np.mean(first.fnmr) == pytest.approx(1 / 3, abs=0.05)


def test_the_interval_is_the_percentile_interval_of_the_defined_replicates() -> None:
    samples = np.arange(101, dtype=np.float64)  # 0, 1, ..., 100
    assert BootstrapRates.interval(samples) == pytest.approx((2.5, 97.5))
    assert BootstrapRates.interval(samples, level=0.9) == pytest.approx((5.0, 95.0))
    with_nan = np.concatenate([samples, np.full(50, np.nan)])
    assert BootstrapRates.interval(with_nan) == pytest.approx((2.5, 97.5))
    low, high = BootstrapRates.interval(np.full(3, np.nan))
    assert math.isnan(low)
    assert math.isnan(high)


# Coverage by simulation


@dataclass(frozen=True)
class Simulated:
    """One dataset of a group of people whose error propensities vary: each person i has a
    false-match propensity p_i and a false non-match propensity q_i ~ Beta(a, b) (mean
    a / (a + b)); an impostor image pair of i and j errs with probability (p_i + p_j) / 2, a
    genuine pair of i with q_i. The population's true FMR and FNMR are both a / (a + b)."""

    impostor_a: NDArray[np.int64]
    impostor_b: NDArray[np.int64]
    impostor_error: NDArray[np.bool_]
    genuine_subject: NDArray[np.int64]
    genuine_error: NDArray[np.bool_]


def simulate(
    rng: np.random.Generator,
    *,
    people: int,
    a: float,
    b: float,
    impostor_per_pair: int = 4,
    genuine_per_person: int = 10,
) -> Simulated:
    p, q = rng.beta(a, b, size=people), rng.beta(a, b, size=people)
    first, second = np.triu_indices(people, k=1)
    first = np.repeat(first, impostor_per_pair)  # 2 photos each: 4 image pairs per two people
    second = np.repeat(second, impostor_per_pair)
    owner = np.repeat(np.arange(people), genuine_per_person)  # 5 photos each: 10 genuine pairs
    return Simulated(
        impostor_a=first,
        impostor_b=second,
        impostor_error=rng.random(first.size) < (p[first] + p[second]) / 2,
        genuine_subject=owner,
        genuine_error=rng.random(owner.size) < q[owner],
    )


def subject_bootstrap(data: Simulated, people: int, replicates: int, seed: int) -> BootstrapRates:
    return bootstrap_rates(
        subjects=np.arange(people),
        genuine_subject=data.genuine_subject,
        genuine_error=data.genuine_error,
        impostor_a=data.impostor_a,
        impostor_b=data.impostor_b,
        impostor_error=data.impostor_error,
        replicates=replicates,
        seed=seed,
    )


def pair_bootstrap(
    errors: NDArray[np.bool_], replicates: int, rng: np.random.Generator
) -> tuple[float, float]:
    """The naive bootstrap: resample pairs as if they were independent."""
    draws = rng.integers(0, errors.size, size=(replicates, errors.size))
    return BootstrapRates.interval(errors[draws].mean(axis=1))


def test_subject_bootstrap_intervals_cover_the_true_rate_and_pair_bootstrap_ones_do_not() -> None:
    # 200 datasets of 40 people, propensities ~ Beta(1, 9): true FMR = FNMR = 0.1, but some
    # people err far more than others, so a person's pairs err together. (Tuning runs over 8
    # seeds gave subject-bootstrap coverage 0.92-0.98 for FMR and 0.915-0.95 for FNMR, and
    # pair-bootstrap coverage of FMR 0.49-0.55.)
    rng = np.random.default_rng(20261122)
    people, datasets, replicates, truth = 40, 200, 300, 0.1
    covered = {"fmr": 0, "fnmr": 0, "pair_fmr": 0}
    widths = {"subject": 0.0, "pair": 0.0}
    for number in range(datasets):
        data = simulate(rng, people=people, a=1.0, b=9.0)
        rates = subject_bootstrap(data, people, replicates, seed=number)
        low, high = BootstrapRates.interval(rates.fmr)
        covered["fmr"] += low <= truth <= high
        widths["subject"] += high - low
        low, high = BootstrapRates.interval(rates.fnmr)
        covered["fnmr"] += low <= truth <= high
        low, high = pair_bootstrap(data.impostor_error, replicates, rng)
        covered["pair_fmr"] += low <= truth <= high
        widths["pair"] += high - low
    coverage = {k: v / datasets for k, v in covered.items()}
    assert 0.88 <= coverage["fmr"] <= 0.99, coverage
    assert 0.88 <= coverage["fnmr"] <= 0.99, coverage
    # resampling pairs ignores the correlation: intervals far too narrow, coverage far below 95 %
    assert coverage["pair_fmr"] < 0.75, coverage
    assert coverage["fmr"] - coverage["pair_fmr"] > 0.2, coverage
    assert widths["subject"] > 1.8 * widths["pair"], widths


# The test of a difference between two groups


def test_difference_p_value_by_hand() -> None:
    # every replicate of the first above every one of the second: P(diff <= 0) = 0 -> p = 0
    assert difference_p_value(np.array([0.1, 0.2, 0.3, 0.4]), np.zeros(4)) == 0.0
    # diffs -1.5, -0.5, 0.5, 1.5: half on each side -> 2 * min(0.5, 0.5) = 1
    assert difference_p_value(np.array([1.0, 2.0, 3.0, 4.0]), np.full(4, 2.5)) == 1.0
    # diffs -1, 1, 2, 3: P(<= 0) = 1/4, P(>= 0) = 3/4 -> 2 * 1/4 = 0.5
    assert difference_p_value(np.array([0.0, 2.0, 3.0, 4.0]), np.ones(4)) == 0.5
    # replicates undefined in either group are left out: diffs 1, 1 -> p = 0
    first = np.array([np.nan, 2.0, 3.0, 1.0])
    second = np.array([0.0, 1.0, 2.0, np.nan])
    assert difference_p_value(first, second) == 0.0
    assert math.isnan(difference_p_value(np.full(3, np.nan), np.zeros(3)))


def test_a_large_true_difference_gives_a_small_p_value() -> None:
    rng = np.random.default_rng(3)
    people = 40
    high = simulate(rng, people=people, a=1.0, b=9.0)  # FMR 0.10
    low = simulate(rng, people=people, a=0.1, b=9.9)  # FMR 0.01
    first = subject_bootstrap(high, people, 1000, seed=1)
    second = subject_bootstrap(low, people, 1000, seed=2)
    assert difference_p_value(first.fmr, second.fmr) < 0.01
    assert difference_p_value(second.fmr, first.fmr) < 0.01  # two-sided


def test_equal_groups_give_a_large_p_value() -> None:
    rng = np.random.default_rng(4)
    people = 40
    data = simulate(rng, people=people, a=1.0, b=9.0)
    # the same people measured twice, bootstrapped independently: no difference at all
    first = subject_bootstrap(data, people, 1000, seed=1)
    second = subject_bootstrap(data, people, 1000, seed=2)
    assert difference_p_value(first.fmr, second.fmr) > 0.5
    assert difference_p_value(first.fnmr, second.fnmr) > 0.5


def test_the_difference_test_rarely_rejects_groups_drawn_alike() -> None:
    # 100 pairs of groups from the same population: p < 0.05 should happen about 5 % of the
    # time (a bootstrap test is approximate; allow up to 12 %)
    rng = np.random.default_rng(5)
    people, rejections = 40, 0
    for number in range(100):
        first = subject_bootstrap(simulate(rng, people=people, a=1, b=9), people, 300, number)
        again = simulate(rng, people=people, a=1, b=9)
        second = subject_bootstrap(again, people, 300, 1000 + number)
        rejections += difference_p_value(first.fmr, second.fmr) < 0.05
    assert rejections <= 12
