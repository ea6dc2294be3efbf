"""TF-IDF baseline (``TfidfEmbedder`` through the ordinary evaluators) against hand
computations on tiny data."""

from __future__ import annotations

import json
import math

import pytest

from jina_jax.data.records import NegationRecord, STSRecord
from jina_jax.embedders import TfidfEmbedder
from jina_jax.evaluators import run_evaluator


@pytest.fixture()
def beir(tmp_path):
    corpus = {
        "d1": "apt installs debian packages",
        "d2": "python lists are mutable sequences",
        "d3": "the kernel schedules processes",
    }
    queries = {
        "q1": "how do debian packages get installed",
        "q2": "are python lists mutable",
        "q3": "xyz",
    }
    qrels = {"q1": {"d1": 1}, "q2": {"d3": 1}, "q3": {"d2": 1}}
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


def test_retrieval_by_hand(beir):
    metrics = run_evaluator("retrieval", TfidfEmbedder(), dataset=str(beir))
    # q1 finds d1 at rank 1 (nDCG 1). q2 shares words only with d2, so its relevant d3 (no shared
    # word, score 0) comes at rank 2 or 3: nDCG = 1/log2(3) or 1/log2(4). q3 shares no word with
    # anything: every score is 0 and trec_eval breaks ties by document id descending, so d3, d2,
    # d1: relevant d2 at rank 2. q2's zero-score tie (d1, d3) likewise puts d3 at rank 2.
    expected = (1.0 + 1 / math.log2(3) + 1 / math.log2(3)) / 3
    assert metrics["ndcg_at_10"] == pytest.approx(expected, abs=1e-4)
    assert metrics["num_queries"] == 3


def test_sts_and_negation_by_hand():
    sts = [
        STSRecord("red apple pie", "red apple pie", 5.0),
        STSRecord("red apple pie", "red apple tart", 3.0),
        STSRecord("red apple pie", "blue car engine", 0.0),
    ]
    assert run_evaluator("sts", TfidfEmbedder(), dataset=sts)["spearman"] == pytest.approx(1.0)
    negations = [NegationRecord("red apple", "red apple fruit", "blue car")]
    result = run_evaluator("negation", TfidfEmbedder(), dataset=negations)
    # cos(a,e) > 0 = cos(a,n) and cos(e,n) = 0: both accuracies 1
    assert result["easy_error_rate"] == 0.0 and result["hard_error_rate"] == 0.0


def test_embed_before_fit_is_an_error():
    with pytest.raises(RuntimeError, match="fit"):
        TfidfEmbedder().embed(["red apple"])


def test_late_chunking_needs_a_model(beir):
    from jina_jax.evaluators.retrieval import RetrievalEvaluator

    with pytest.raises(ValueError, match=r"'tfidf' has no \.model"):
        RetrievalEvaluator(dataset=str(beir), chunking="late")(TfidfEmbedder())


def test_sparse_and_dense_rows_give_the_same_similarities():
    import numpy as np
    from scipy import sparse

    from jina_jax.evaluators.common import dot, row_dot, top_k_search

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 7)), rng.normal(size=(9, 7))
    a[a < 0.3], b[b < 0.3] = 0, 0
    sa, sb = sparse.csr_matrix(a), sparse.csr_matrix(b)
    np.testing.assert_allclose(row_dot(sa, sb[:5]), row_dot(a, b[:5]))
    np.testing.assert_allclose(dot(sa, sb), a @ b.T)
    chunks = lambda m: [(0, m[:4]), (4, m[4:])]  # noqa: E731
    dense_scores, dense_index = top_k_search(a, chunks(b), 3, block_size=2)
    sparse_scores, sparse_index = top_k_search(sa, chunks(sb), 3, block_size=2)
    np.testing.assert_allclose(sparse_scores, dense_scores)
    np.testing.assert_array_equal(sparse_index, dense_index)


def test_compare_and_results_table():
    from jina_jax.evaluators import compare, results_table

    entries = {
        "neg": dict(
            type="negation",
            every=0,
            dataset=[NegationRecord("red apple", "red apple fruit", "blue car")],
        ),
        "sts": dict(
            type="sts",
            dataset=[STSRecord("red pie", "red pie", 5.0), STSRecord("red pie", "blue car", 0.0)],
        ),
    }
    rows = compare(entries, [TfidfEmbedder()])
    assert list(rows) == ["tfidf"] and rows["tfidf"]["neg"]["hard_error_rate"] == 0.0
    table = results_table(rows, entries).splitlines()
    assert table[0] == "| model | neg (hard_error_rate) | sts (spearman) |"
    assert table[2] == "| tfidf | 0.0000 | 1.0000 |"
