"""The sequence-extrapolation experiment's tables, comparisons and plot on synthetic per-query
scores (the experiment itself trains six models and takes many minutes)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from experiments import sequence_extrapolation as se
from experiments.stats import NO, NOISE, YES


def _per_seed():
    rng = np.random.default_rng(0)
    queries = [f"q{i}" for i in range(40)]
    base = rng.uniform(0.2, 0.6, size=40)

    def seed_runs(shift_by_limit, noise):
        runs = []
        for seed in range(2):
            jitter = noise * np.random.default_rng(seed + 10).normal(size=40)
            runs.append(
                {
                    n: dict(zip(queries, np.clip(base + shift + jitter, 0, 1).tolist()))
                    for n, shift in shift_by_limit.items()
                }
            )
        return runs

    return {
        "alibi": seed_runs({128: 0.0, 256: 0.2, 512: -0.2, 1024: 0.0}, 0.01),
        "absolute": seed_runs({128: -0.1}, 0.01),
        se.LATE: seed_runs({128: 0.1, 256: 0.1, 512: 0.1, 1024: 0.1}, 0.01),
    }


def test_curves_are_means_over_queries_per_seed():
    per_seed = _per_seed()
    scores = se.curves(per_seed)
    assert sorted(scores["alibi"]) == [128, 256, 512, 1024] and sorted(scores["absolute"]) == [128]
    for curve, seeds in per_seed.items():
        for n, values in scores[curve].items():
            expected = [100 * np.mean(list(s[n].values())) for s in seeds]
            assert values == pytest.approx(expected, abs=1e-9)


def test_comparisons_directions_and_differences():
    per_seed = _per_seed()
    compared = se.comparisons(per_seed, 128, resamples=2000)
    holds = compared["holds"]
    assert sorted(holds) == [256, 512, 1024]  # the training length is the reference
    assert holds[256].verdict == YES and holds[512].verdict == NO
    # 1024 equals 128 up to the same jitter: the difference is exactly 0 per query
    assert (holds[1024].difference, holds[1024].verdict) == (pytest.approx(0.0, abs=1e-9), NOISE)
    # the difference is the mean over queries of the seed-averaged per-query differences (x100)
    a = np.mean([list(s[128].values()) for s in per_seed["alibi"]], axis=0)
    b = np.mean([list(s[256].values()) for s in per_seed["alibi"]], axis=0)
    assert holds[256].difference == pytest.approx(100 * np.mean(b - a), abs=1e-9)
    late = compared["late_vs_truncated"]
    assert late[128].verdict == YES and late[512].verdict == YES  # late above truncated
    assert late[256].verdict == NO  # truncated +0.2 beats late +0.1
    assert compared["alibi_vs_absolute"][128].verdict == YES


def test_table_and_plot(tmp_path):
    per_seed = _per_seed()
    scores = se.curves(per_seed)
    compared = se.comparisons(per_seed, 128, resamples=500)
    table = se.make_table(scores, compared, [128, 256, 512, 1024])
    lines = table.splitlines()
    assert lines[0].startswith("| nDCG@10 x100 \\ max tokens | 128 | 256 | 512 | 1024 |")
    absolute = next(line for line in lines if line.startswith("| JinaBERT, absolute positions"))
    assert absolute.endswith("| - | - | - |")  # cut at its table
    assert "(drops)" in table and "(holds)" in table and " ± " in table
    se.plot(scores, tmp_path / "p.png", 128, "t")
    assert (tmp_path / "p.png").stat().st_size > 1000


class _WordTokenizer:
    def encode_batch(self, texts, max_length):
        tokens = [text.split()[:max_length] for text in texts]
        return tokens, [len(t) for t in tokens]


def test_longer_than_counts_by_hand(tmp_path):
    # a hand-written BEIR folder: documents of 3, 5 and 9 words, d2 and d3 relevant
    (tmp_path / "qrels").mkdir()
    docs = {"d1": "a b c", "d2": "a b c d e", "d3": "a b c d e f g h i"}
    (tmp_path / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": d, "text": t}) for d, t in docs.items())
    )
    (tmp_path / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": q, "text": "x"}) for q in ("q1", "q2"))
    )
    (tmp_path / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td2\t1\nq2\td3\t1\n"
    )
    got = se.longer_than(tmp_path, _WordTokenizer(), [2, 4, 8, 16])
    assert got == {
        2: {"documents": 3, "relevant": 2},
        4: {"documents": 2, "relevant": 2},
        8: {"documents": 1, "relevant": 1},
        16: {"documents": 0, "relevant": 0},
    }
