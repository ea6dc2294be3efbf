"""experiments.stats against hand computation, numpy and the statistics module."""

from __future__ import annotations

import statistics
from math import factorial

import numpy as np
import pytest

from experiments.stats import (
    NO,
    NOISE,
    YES,
    format_mean_std,
    mean_std,
    paired_bootstrap,
    per_query_matrix,
    verdict,
)


def test_mean_std_against_numpy_and_statistics():
    values = [61.5, 53.9, 12.3, 47.25]
    mean, std = mean_std(values)
    assert mean == pytest.approx(np.mean(values), abs=1e-12)
    assert std == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    assert std == pytest.approx(statistics.stdev(values), abs=1e-12)
    # hand: [1, 2, 3] -> mean 2, sample variance (1 + 0 + 1) / 2 = 1
    assert mean_std([1, 2, 3]) == (2.0, 1.0)
    assert mean_std([7.0]) == (7.0, None)
    with pytest.raises(ValueError):
        mean_std([])


def test_format_mean_std():
    assert format_mean_std([12.0, 12.2, 12.7]) == "12.3 ± 0.4"  # std 0.3606
    assert format_mean_std([1, 2, 3], digits=2) == "2.00 ± 1.00"
    assert format_mean_std([12.34]) == "12.3 (n=1, no spread)"


def test_identical_arms_are_within_noise():
    a = np.random.default_rng(3).uniform(size=50)
    result = paired_bootstrap(a, a.copy())
    assert (result.difference, result.low, result.high) == (0.0, 0.0, 0.0)
    assert result.verdict == NOISE


def test_constant_shift_gives_a_point_interval():
    a = np.random.default_rng(4).uniform(size=40)
    b = a + 0.1
    result = paired_bootstrap(a, b)
    for value in (result.difference, result.low, result.high):
        assert value == pytest.approx(0.1, abs=1e-12)
    assert result.verdict == YES
    assert paired_bootstrap(a, b, expected="lower").verdict == NO
    assert paired_bootstrap(b, a, expected="lower").verdict == YES


def _loop_percentile(sorted_values, q):
    """numpy's default ("linear") percentile, written out: rank h = (n - 1) q / 100,
    interpolated between the neighbours."""
    h = (len(sorted_values) - 1) * q / 100
    lo = int(h)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


def test_small_example_against_a_plain_loop():
    a = [0.2, 0.5, 0.9, 0.4, 0.0]
    b = [0.3, 0.4, 1.0, 0.8, 0.1]  # differences 0.1, -0.1, 0.1, 0.4, 0.1: mean 0.12
    resamples, seed = 2000, 7
    result = paired_bootstrap(a, b, resamples=resamples, seed=seed)
    assert result.difference == pytest.approx(0.12, abs=1e-12)
    # the same draws (default_rng(seed).integers, [resamples, n]), averaged in a loop
    draws = np.random.default_rng(seed).integers(0, 5, size=(resamples, 5))
    differences = [bi - ai for ai, bi in zip(a, b)]
    means = sorted(sum(differences[int(i)] for i in row) / 5 for row in draws)
    assert result.low == pytest.approx(_loop_percentile(means, 2.5), abs=1e-12)
    assert result.high == pytest.approx(_loop_percentile(means, 97.5), abs=1e-12)
    # independent of the draws: the exact bootstrap distribution of the mean, enumerated over
    # the counts of the three distinct differences (-0.1 once, 0.1 three times, 0.4 once in
    # five); the sampled interval's ends lie within one step (0.04) of its 2.5% and 97.5%
    # quantiles
    exact = {}
    for n_minus, n_plus, n_big in np.ndindex(6, 6, 6):
        if n_minus + n_plus + n_big != 5:
            continue
        ways = factorial(5) // (factorial(n_minus) * factorial(n_plus) * factorial(n_big))
        p = ways * 0.2**n_minus * 0.6**n_plus * 0.2**n_big
        mean = round((-0.1 * n_minus + 0.1 * n_plus + 0.4 * n_big) / 5, 10)
        exact[mean] = exact.get(mean, 0.0) + p
    assert sum(exact.values()) == pytest.approx(1.0)
    cdf, quantile = 0.0, {}
    for mean in sorted(exact):
        cdf += exact[mean]
        for q in (0.025, 0.975):
            if cdf >= q and q not in quantile:
                quantile[q] = mean
    assert abs(result.low - quantile[0.025]) <= 0.04 + 1e-9
    assert abs(result.high - quantile[0.975]) <= 0.04 + 1e-9
    assert result.low <= 0.0 <= result.high, quantile
    assert result.verdict == NOISE


def test_seeds_are_averaged_per_query_first():
    a = np.array([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]])  # per-query means 0.2, 0.2, 0.2
    b = np.array([[0.5, 0.5, 0.5]])  # one seed
    result = paired_bootstrap(a, b)
    assert result.difference == pytest.approx(0.3)
    assert result.low == pytest.approx(0.3) and result.high == pytest.approx(0.3)
    assert (result.queries, result.verdict) == (3, YES)
    with pytest.raises(ValueError):
        paired_bootstrap([0.1, 0.2], [0.1, 0.2, 0.3])


def test_verdict_edges():
    assert verdict(0.0, 0.2) == NOISE  # 0 on the interval's edge is inside it
    assert verdict(0.01, 0.2) == YES and verdict(-0.2, -0.01) == NO
    assert verdict(-0.2, -0.01, "lower") == YES


def test_per_query_matrix():
    queries, matrix = per_query_matrix([{"q2": 1.0, "q1": 0.5}, {"q1": 0.0, "q2": 0.25}])
    assert queries == ["q1", "q2"]
    np.testing.assert_array_equal(matrix, [[0.5, 1.0], [0.0, 0.25]])
    with pytest.raises(ValueError):
        per_query_matrix([{"q1": 1.0}, {"q2": 1.0}])
