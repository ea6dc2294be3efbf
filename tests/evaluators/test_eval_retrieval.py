"""Retrieval metrics against hand computation, pytrec_eval and sklearn; blockwise top-k against
brute force; the evaluator end to end against sentence-transformers embeddings."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import pytrec_eval
from sklearn.metrics import ndcg_score

from jina_jax.evaluators import run_evaluator
from jina_jax.evaluators.common import top_k_search
from jina_jax.evaluators.retrieval import trec_metrics


def test_trec_metrics_by_hand():
    qrels = {"q1": {"d1": 1, "d3": 2}, "q2": {"d2": 1}, "q3": {"d9": 0}}  # q3: nothing relevant
    run = {"q1": {"d1": 0.9, "d2": 0.8, "d3": 0.1}, "q2": {"d1": 0.5, "d2": 0.4}}
    # trec_eval's nDCG uses the relevance itself as gain: DCG = sum rel_i / log2(i + 1)
    ndcg_q1 = (1 + 2 / math.log2(4)) / (2 + 1 / math.log2(3))
    ndcg_q2 = (1 / math.log2(3)) / 1
    ap_q1 = (1 / 1 + 2 / 3) / 2  # relevant at ranks 1 and 3
    ap_q2 = (1 / 2) / 1
    got = trec_metrics(qrels, run)
    assert got["ndcg_at_10"] == pytest.approx((ndcg_q1 + ndcg_q2) / 2, abs=1e-12)
    assert got["map_at_10"] == pytest.approx((ap_q1 + ap_q2) / 2, abs=1e-12)
    assert got["recall_at_100"] == 1.0
    # a judged query that retrieved nothing counts as zero
    got = trec_metrics(qrels, {"q1": run["q1"]})
    assert got["ndcg_at_10"] == pytest.approx(ndcg_q1 / 2, abs=1e-12)


def _random_case(seed=0, queries=12, docs=40):
    rng = np.random.default_rng(seed)
    qrels, run, dense = {}, {}, {}
    for q in range(queries):
        relevance = rng.choice([0, 0, 0, 1, 2], size=docs)
        relevance[rng.integers(docs)] = 1  # every query has a relevant document
        scores = rng.permutation(docs) / docs  # distinct scores: no tie-breaking questions
        qrels[f"q{q}"] = {f"d{d}": int(r) for d, r in enumerate(relevance)}
        run[f"q{q}"] = {f"d{d}": float(s) for d, s in enumerate(scores)}
        dense[f"q{q}"] = (relevance, scores)
    return qrels, run, dense


def test_ir_measures_agrees_with_pytrec_eval_and_sklearn():
    qrels, run, dense = _random_case()
    ours = trec_metrics(qrels, run)
    direct = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "map_cut.10", "recall.100"})
    per_query = direct.evaluate(run).values()
    assert ours["ndcg_at_10"] == pytest.approx(np.mean([m["ndcg_cut_10"] for m in per_query]))
    assert ours["map_at_10"] == pytest.approx(np.mean([m["map_cut_10"] for m in per_query]))
    assert ours["recall_at_100"] == pytest.approx(np.mean([m["recall_100"] for m in per_query]))
    # sklearn's nDCG@k with linear gains is the same definition when every document is scored
    sklearn = np.mean([ndcg_score([rel], [score], k=10) for rel, score in dense.values()])
    assert ours["ndcg_at_10"] == pytest.approx(sklearn, abs=1e-9)


def test_top_k_search_matches_brute_force():
    rng = np.random.default_rng(1)
    queries, corpus = rng.normal(size=(11, 5)), rng.normal(size=(23, 5))
    chunks = ((start, corpus[start : start + 7]) for start in range(0, 23, 7))
    scores, index = top_k_search(queries, chunks, k=6, block_size=4)
    full = queries @ corpus.T
    expected = np.argsort(-full, axis=1)[:, :6]
    np.testing.assert_array_equal(index, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(full, expected, 1), rtol=1e-6)
    # k larger than the corpus: everything, sorted
    scores, index = top_k_search(queries, [(0, corpus[:3])], k=10)
    assert index.shape == (11, 3) and np.all(np.diff(scores, axis=1) <= 0)


@pytest.fixture
def tiny_beir(tmp_path):
    docs = {
        "d1": "To install a Debian package, run apt install followed by its name.",
        "d2": "Python lists are mutable sequences; tuples cannot be changed.",
        "d3": "The kernel schedules processes and manages memory.",
        "d4": "Use git commit to record changes in the repository.",
        "d5": "A dictionary maps keys to values in Python.",
        "d6": "The cat climbed the tree and would not come down.",
    }
    queries = {
        "q1": "how do I install software on Debian",
        "q2": "difference between list and tuple",
        "q3": "what does the operating system kernel do",
        "q4": "python key value mapping",
    }
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}, "q4": {"d5": 1, "d2": 1}}
    (tmp_path / "qrels").mkdir()
    with open(tmp_path / "corpus.jsonl", "w") as f:
        for d, t in docs.items():
            f.write(json.dumps({"_id": d, "title": "", "text": t}) + "\n")
    with open(tmp_path / "queries.jsonl", "w") as f:
        for q, t in queries.items():
            f.write(json.dumps({"_id": q, "text": t}) + "\n")
    with open(tmp_path / "qrels" / "test.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q, judged in qrels.items():
            for d, r in judged.items():
                f.write(f"{q}\t{d}\t{r}\n")
    return tmp_path, docs, queries, qrels


def test_retrieval_evaluator_matches_reference(minilm, torch_minilm, tiny_beir):
    folder, docs, queries, qrels = tiny_beir
    got = run_evaluator(
        "retrieval", minilm, dataset=str(folder), max_length=32, corpus_chunk_size=4, block_size=3
    )
    q_vec, d_vec = torch_minilm(list(queries.values())), torch_minilm(list(docs.values()))
    scores = q_vec @ d_vec.T
    run = {q: {d: float(s) for d, s in zip(docs, row)} for q, row in zip(queries, scores)}
    reference = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    expected = np.mean([m["ndcg_cut_10"] for m in reference.values()])
    assert got["num_queries"] == 4 and got["num_documents"] == 6
    assert got["ndcg_at_10"] == pytest.approx(expected, abs=1e-6)
    assert got["ndcg_at_10"] > 0.8  # MiniLM gets these right
