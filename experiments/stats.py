"""Spread over seeds and paired comparisons over queries, for the experiments' tables.

``mean_std`` / ``format_mean_std``: the mean and the sample standard deviation (ddof=1) of one
score over seeds, written "12.3 ± 0.4" ("12.3 (n=1, no spread)" for a single seed).

``paired_bootstrap``: arm B against arm A on the same queries. Per-query scores may carry
several seeds (``[seeds, queries]``); they are averaged over seeds per query first, so the
interval is over queries only: it says how much the difference depends on which queries were
drawn, not on which seeds (the seed spread is the ± column of the tables). The mean difference
B - A is resampled over queries with replacement (``resamples`` draws from
``numpy.random.default_rng(seed)``), and the 95% interval is the 2.5th and 97.5th percentiles of
the resampled means (``numpy.percentile``, linear interpolation). The verdict compares the
interval with the paper's direction (``expected``: "higher" when the paper says B beats A,
"lower" when it says B loses): "yes" when the interval lies entirely on the paper's side of 0,
"no" when entirely on the other side, "within noise" when it contains 0.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

YES, NO, NOISE = "yes", "no", "within noise"
DIRECTIONS = {"higher": 1.0, "lower": -1.0}


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """(mean, sample std with ddof=1); std is None for a single value (no spread)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_std of no values")
    mean = math.fsum(values) / len(values)
    if len(values) == 1:
        return mean, None
    variance = math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(variance)


def format_mean_std(values: Sequence[float], digits: int = 1) -> str:
    """ "12.3 ± 0.4" over the values (seeds); "12.3 (n=1, no spread)" for one value."""
    mean, std = mean_std(values)
    if std is None:
        return f"{mean:.{digits}f} (n=1, no spread)"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


@dataclasses.dataclass(frozen=True)
class Comparison:
    """B - A over queries: the mean difference, its 95% bootstrap interval, the verdict."""

    difference: float
    low: float
    high: float
    verdict: str
    queries: int
    seeds: int
    resamples: int

    def describe(self, digits: int = 2) -> str:
        return (
            f"{self.difference:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]: "
            f"{self.verdict}"
        )


def format_interval(comparison: Mapping[str, float], digits: int = 2) -> str:
    """ "+1.23 [+0.45, +2.01]": a comparison's difference and 95% interval (a ``Comparison``'s
    fields as a dict, e.g. ``vars(result)``)."""
    d, low, high = (comparison[k] for k in ("difference", "low", "high"))
    return f"{d:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def per_query_matrix(
    runs: Sequence[Mapping[str, float]], queries: Sequence[str] | None = None
) -> tuple[list[str], np.ndarray]:
    """Per-query scores of several seeds ({query: score} each) as ``[seeds, queries]``, the
    queries in a fixed order (sorted, or ``queries``); every run must score every query."""
    if queries is None:
        queries = sorted(runs[0])
    missing = [i for i, run in enumerate(runs) if set(run) != set(queries)]
    if missing:
        raise ValueError(f"runs {missing} do not score the same queries as run 0")
    return list(queries), np.asarray([[run[q] for q in queries] for run in runs], dtype=np.float64)


def verdict(low: float, high: float, expected: str = "higher") -> str:
    sign = DIRECTIONS[expected]
    if low <= 0.0 <= high:
        return NOISE
    return YES if (low > 0.0) == (sign > 0) else NO


def paired_bootstrap(
    a,
    b,
    *,
    expected: str = "higher",
    resamples: int = 10_000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Comparison:
    """B - A over the same queries. ``a``, ``b``: per-query scores, ``[queries]`` or
    ``[seeds, queries]`` (averaged over seeds per query first; A and B may have different
    seed counts). See the module docstring for the interval and the verdict."""
    if expected not in DIRECTIONS:
        raise ValueError(f"expected must be one of {sorted(DIRECTIONS)}, got {expected!r}")
    a, b = np.atleast_2d(np.asarray(a, np.float64)), np.atleast_2d(np.asarray(b, np.float64))
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"arms score different numbers of queries: {a.shape[1]} vs {b.shape[1]}")
    if a.shape[1] == 0:
        raise ValueError("no queries to compare")
    differences = b.mean(axis=0) - a.mean(axis=0)  # [queries]
    n = differences.shape[0]
    rng = np.random.default_rng(seed)
    index = rng.integers(0, n, size=(resamples, n))
    means = differences[index].mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return Comparison(
        difference=float(differences.mean()),
        low=float(low),
        high=float(high),
        verdict=verdict(float(low), float(high), expected),
        queries=n,
        seeds=max(a.shape[0], b.shape[0]),
        resamples=resamples,
    )
