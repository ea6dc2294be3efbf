"""experiments.seed_spread's table and verdicts on hand-made scores."""

from __future__ import annotations

from experiments import seed_spread
from experiments.common import HELD_OUT_RETRIEVAL


def _scores(base: float) -> dict[str, float]:
    out = {f"retrieval:{s}": base + i for i, s in enumerate(HELD_OUT_RETRIEVAL)}
    return {**out, "sts:lee_sts": base / 2, "hard_error": 20.0}


def test_spread_table_rows_by_hand():
    runs = [_scores(60.0), _scores(62.0), _scores(64.0)]
    table = seed_spread.spread_table("demo.py", runs, {"tfidf": _scores(50.0)})
    lines = table.splitlines()
    # python_faq: 60, 62, 64 -> 62.0 ± 2.0; retrieval mean of a run = base + 1.5
    assert lines[2] == (
        "| demo.py, 3 seeds | 62.0 ± 2.0 | 63.0 ± 2.0 | 64.0 ± 2.0 | 65.0 ± 2.0 | 31.0 ± 1.0 "
        "| 20.0 ± 0.0 | 63.5 ± 2.0 |"
    )
    assert lines[3] == "| demo.py, seed 0 | 60.00 | 61.00 | 62.00 | 63.00 | 30.00 | 20.00 | 61.50 |"
    assert lines[-1] == "| tfidf | 50.00 | 51.00 | 52.00 | 53.00 | 25.00 | 20.00 | 51.50 |"


def test_against_baselines_averages_seeds_per_query():
    queries = [f"set/{i}" for i in range(10)]
    runs = [
        {q: 50.0 + i for i, q in enumerate(queries)},
        {q: 52.0 + i for i, q in enumerate(queries)},
    ]
    baselines = {
        "tfidf": {q: 40.0 + i for i, q in enumerate(queries)},  # 11 below the seeds' mean, always
        "teacher": {q: 51.0 + i for i, q in enumerate(queries)},  # equal to it
    }
    tfidf, teacher = seed_spread.against_baselines(runs, baselines)
    assert tfidf["baseline"] == "tfidf" and tfidf["difference"] == 11.0
    assert (tfidf["low"], tfidf["high"], tfidf["verdict"]) == (11.0, 11.0, "yes")
    assert teacher["difference"] == 0.0 and teacher["verdict"] == "within noise"
    assert tfidf["queries"] == 10 and tfidf["seeds"] == 2
