"""TF-IDF baseline against hand computations on tiny data."""

from __future__ import annotations

import json
import math

import pytest

from jina_jax.data.records import NegationRecord, STSRecord
from jina_jax.evaluators.tfidf import tfidf_negation, tfidf_retrieval, tfidf_sts


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
    metrics = tfidf_retrieval(str(beir))
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
    assert tfidf_sts(sts)["spearman"] == pytest.approx(1.0)
    negations = [NegationRecord("red apple", "red apple fruit", "blue car")]
    result = tfidf_negation(negations)
    # cos(a,e) > 0 = cos(a,n) and cos(e,n) = 0: both accuracies 1
    assert result["easy_error_rate"] == 0.0 and result["hard_error_rate"] == 0.0
