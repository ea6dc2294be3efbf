"""Per-query nDCG@10 (for paired bootstraps) against ir-measures' aggregate, pytrec_eval and a
hand computation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import pytrec_eval

from jina_jax.embedders import TfidfEmbedder
from jina_jax.evaluators import run_evaluator
from jina_jax.evaluators.retrieval import trec_metrics, trec_per_query


def test_per_query_by_hand_and_mean_is_the_aggregate():
    qrels = {"q1": {"d1": 1, "d3": 2}, "q2": {"d2": 1}, "q3": {"d9": 0}, "q4": {"d4": 1}}
    run = {"q1": {"d1": 0.9, "d2": 0.8, "d3": 0.1}, "q2": {"d1": 0.5, "d2": 0.4}}
    got = trec_per_query(qrels, run)
    # q3 has nothing relevant (left out, as trec_metrics does); q4 retrieved nothing: 0
    assert set(got) == {"q1", "q2", "q4"}
    assert got["q1"] == pytest.approx((1 + 2 / math.log2(4)) / (2 + 1 / math.log2(3)), abs=1e-12)
    assert got["q2"] == pytest.approx(1 / math.log2(3), abs=1e-12)
    assert got["q4"] == 0.0
    assert np.mean(list(got.values())) == pytest.approx(trec_metrics(qrels, run)["ndcg_at_10"])


def test_per_query_matches_pytrec_eval_on_random_runs():
    rng = np.random.default_rng(0)
    qrels, run = {}, {}
    for q in range(15):
        relevance = rng.choice([0, 0, 0, 1, 2], size=30)
        relevance[rng.integers(30)] = 1
        qrels[f"q{q}"] = {f"d{d}": int(r) for d, r in enumerate(relevance)}
        run[f"q{q}"] = {f"d{d}": float(s) for d, s in enumerate(rng.permutation(30) / 30)}
    got = trec_per_query(qrels, run)
    direct = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    assert got == pytest.approx({q: m["ndcg_cut_10"] for q, m in direct.items()}, abs=1e-12)
    assert np.mean(list(got.values())) == pytest.approx(trec_metrics(qrels, run)["ndcg_at_10"])


@pytest.fixture()
def beir(tmp_path):
    corpus = {
        "d1": "apt installs debian packages",
        "d2": "python lists are mutable sequences",
        "d3": "the kernel schedules processes",
        "d4": "git commit records changes",
    }
    queries = {
        "q1": "how do debian packages get installed",
        "q2": "are python lists mutable",
        "q3": "xyz",
        "q4": "what does the kernel schedule",
    }
    qrels = {"q1": {"d1": 1}, "q2": {"d3": 1}, "q3": {"d2": 1}, "q4": {"d3": 1, "d4": 0}}
    (tmp_path / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": k, "text": v}) for k, v in corpus.items())
    )
    (tmp_path / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": k, "text": v}) for k, v in queries.items())
    )
    (tmp_path / "qrels").mkdir()
    rows = ["query-id\tcorpus-id\tscore"] + [
        f"{q}\t{d}\t{r}" for q, docs in qrels.items() for d, r in docs.items()
    ]
    (tmp_path / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_evaluator_per_query_leaves_other_outputs_unchanged(beir):
    plain = run_evaluator("retrieval", TfidfEmbedder(), dataset=str(beir))
    with_per_query = run_evaluator("retrieval", TfidfEmbedder(), dataset=str(beir), per_query=True)
    per_query = with_per_query.pop("per_query_ndcg_at_10")
    assert with_per_query == plain
    assert "per_query_ndcg_at_10" not in plain
    assert sorted(per_query) == ["q1", "q2", "q3", "q4"]
    assert np.mean(list(per_query.values())) == pytest.approx(plain["ndcg_at_10"], abs=1e-12)
    # q1 shares "debian packages" with d1 only: d1 first, nDCG 1; q4's one relevant document
    # d3 shares "kernel" with it, and no other document shares a word: nDCG 1
    assert per_query["q1"] == pytest.approx(1.0) and per_query["q4"] == pytest.approx(1.0)
