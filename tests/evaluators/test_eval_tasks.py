"""Negation, STS, pair classification, reranking, classification and clustering: the metric
functions against hand computations on tiny vectors, and the evaluators (through
jina_jax.encode) against the same numbers from sentence-transformers embeddings."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from jina_jax.data.records import NegationRecord, STSRecord
from jina_jax.evaluators import EVALUATORS, is_due, run_evals, run_evaluator
from jina_jax.evaluators.classification import LabelledTexts, logistic_regression_scores
from jina_jax.evaluators.clustering import kmeans_v_measure
from jina_jax.evaluators.negation import negation_metrics
from jina_jax.evaluators.pair_classification import pair_average_precision
from jina_jax.evaluators.reranking import reranking_metrics
from jina_jax.evaluators.sts import sts_metrics


def unit(*angles_deg):
    """2-D unit vectors at the given angles: cos(a, b) = cos(angle difference)."""
    radians = np.deg2rad(angles_deg)
    return np.stack([np.cos(radians), np.sin(radians)], axis=1)


def test_negation_metrics_on_2d_vectors():
    # triplet 0: a=0°, e=30°, n=90°  -> cos(a,e)=.87 > cos(a,n)=0 (easy ok); cos(e,n)=.5 (hard ok)
    # triplet 1: a=0°, e=60°, n=40°  -> cos(a,e)=.5 < cos(a,n)=.77 (easy wrong); cos(e,n)=.94 (wrong)
    # triplet 2: a=0°, e=50°, n=-60° -> .64 > .5 (easy ok); cos(e,n)=cos(110°)<0 (hard ok)
    # triplet 3: a=0°, e=70°, n=-20° -> .34 < .94 (easy wrong); cos(e,n)=cos(90°)=0 (hard ok)
    a, e, n = unit(0, 0, 0, 0), unit(30, 60, 50, 70), unit(90, 40, -60, -20)
    got = negation_metrics(a, e, n)
    assert got["easy_accuracy"] == pytest.approx(2 / 4)
    assert got["hard_accuracy"] == pytest.approx(3 / 4)
    assert got["easy_error_rate"] == pytest.approx(1 / 2)
    assert got["hard_error_rate"] == pytest.approx(1 / 4)


NEGATIONS = [
    NegationRecord(
        "the quality of being honest", "Honesty is truthfulness and sincerity.", "not honest"
    ),
    NegationRecord("full of light", "Bright; shining; illuminated.", "lacking light; dark"),
    NegationRecord("able to be seen", "Visible; perceptible by the eye.", "not able to be seen"),
]


def test_negation_evaluator_matches_reference(minilm, torch_minilm):
    got = run_evaluator("negation", minilm, dataset=NEGATIONS, max_length=32)
    a, e, n = (
        torch_minilm([getattr(r, f) for r in NEGATIONS])
        for f in ("anchor", "entailment", "negative")
    )
    pos = np.sum(a * e, 1)
    assert got["num_triplets"] == 3
    assert got["easy_accuracy"] == pytest.approx(np.mean(pos > np.sum(a * n, 1)))
    assert got["hard_accuracy"] == pytest.approx(np.mean(pos > np.sum(e * n, 1)))
    assert got["hard_error_rate"] == pytest.approx(1 - got["hard_accuracy"])


def test_spearman_by_hand():
    # cosines 1, .87, .5, 0, -.5 (ranks 5..1) against scores whose ranks are 4, 5, 3, 1, 2
    first, second = unit(0, 0, 0, 0, 0), unit(0, 30, 60, 90, 120)
    scores = [0.8, 0.9, 0.5, 0.1, 0.2]
    d = np.array([5, 4, 3, 2, 1]) - np.array([4, 5, 3, 1, 2])
    expected = 1 - 6 * np.sum(d**2) / (5 * (5**2 - 1))  # no ties: the textbook formula
    assert sts_metrics(first, second, scores)["spearman"] == pytest.approx(expected)


def test_sts_evaluator_matches_reference(minilm, torch_minilm):
    from scipy.stats import spearmanr

    records = [
        STSRecord("A man is playing a guitar.", "A person plays an instrument.", 4.2),
        STSRecord("A man is playing a guitar.", "The stock market fell today.", 0.1),
        STSRecord("Kids play football in the park.", "Children kick a ball outside.", 4.5),
        STSRecord("The sun is bright.", "It is raining heavily.", 1.0),
        STSRecord("A cat sleeps on the sofa.", "A kitten naps on the couch.", 4.8),
    ]
    got = run_evaluator("sts", minilm, dataset=records, max_length=32)
    cos = np.sum(
        torch_minilm([r.sentence1 for r in records]) * torch_minilm([r.sentence2 for r in records]),
        1,
    )
    assert got["spearman"] == pytest.approx(spearmanr(cos, [r.score for r in records])[0])
    assert got["num_pairs"] == 5


def test_pair_average_precision_by_hand():
    # cosines 1, .87, .5, 0 with labels 1, 0, 1, 0: precision at the positives is 1/1 and 2/3
    first, second = unit(0, 0, 0, 0), unit(0, 30, 60, 90)
    assert pair_average_precision(first, second, [1, 0, 1, 0]) == pytest.approx((1 + 2 / 3) / 2)


def test_pair_classification_evaluator_on_negation_pairs(minilm, torch_minilm):
    from sklearn.metrics import average_precision_score

    got = run_evaluator(
        "pair_classification",
        minilm,
        dataset=[
            (r.anchor, other, label)
            for r in NEGATIONS
            for other, label in ((r.entailment, 1), (r.negative, 0))
        ],
        max_length=32,
    )
    a = torch_minilm([r.anchor for r in NEGATIONS])
    e, n = (
        torch_minilm([r.entailment for r in NEGATIONS]),
        torch_minilm([r.negative for r in NEGATIONS]),
    )
    scores = np.stack([np.sum(a * e, 1), np.sum(a * n, 1)], 1).reshape(-1)
    assert got["ap"] == pytest.approx(average_precision_score([1, 0] * 3, scores), abs=1e-6)


def test_reranking_metrics_by_hand():
    query = unit(0)
    # query 1: candidates at 0°, 30°, 60° labelled 0, 1, 1: AP = (1/2 + 2/3) / 2, first hit rank 2
    # query 2: candidates at 80°, 10° labelled 1, 0: AP = 1/2, first hit rank 2
    got = reranking_metrics(
        np.concatenate([query, query]), [unit(0, 30, 60), unit(80, 10)], [[0, 1, 1], [1, 0]]
    )
    assert got["map"] == pytest.approx(((1 / 2 + 2 / 3) / 2 + 1 / 2) / 2)
    assert got["mrr_at_10"] == pytest.approx(1 / 2)


def test_reranking_evaluator_on_starter(minilm, starter_dir):
    got = run_evaluator(
        "reranking",
        minilm,
        dataset="debian_faq",
        data_dir=str(starter_dir),
        num_candidates=5,
        max_queries=8,
        max_length=32,
    )
    assert got["num_queries"] == 8 and 0.3 < got["map"] <= 1.0


def test_classification_and_clustering_by_hand():
    rng = np.random.default_rng(0)
    centres = np.array([[5.0, 0.0], [0.0, 5.0], [-5.0, -5.0]])
    labels = np.repeat(["a", "b", "c"], 20)
    points = centres[np.repeat([0, 1, 2], 20)] + rng.normal(scale=0.3, size=(60, 2))
    got = logistic_regression_scores(points[::2], labels[::2], points[1::2], labels[1::2])
    assert got["accuracy"] == 1.0
    assert kmeans_v_measure(points, labels) == pytest.approx(1.0)
    # one point of "c" moved into "a": clusters {a+c1}, {b}, {c-1}
    from sklearn.metrics import v_measure_score

    moved = points.copy()
    moved[40] = centres[0]
    assert kmeans_v_measure(moved, labels) == pytest.approx(
        v_measure_score(labels, np.r_[[0] * 20, [1] * 20, [0], [2] * 19])
    )


def test_classification_evaluator_matches_reference(minilm, torch_minilm):
    texts = (
        "apt install the package",
        "upgrade debian packages",
        "remove a debian package",
        "configure the apt sources list",
        "python list comprehension",
        "import a python module",
        "define a python function",
        "python virtual environment",
    )
    labels = ("debian",) * 4 + ("python",) * 4
    data = {
        "train": LabelledTexts(texts[0::2], labels[0::2]),
        "test": LabelledTexts(texts[1::2], labels[1::2]),
    }
    got = run_evaluator("classification", minilm, dataset=data, max_length=32)
    vectors = torch_minilm(list(texts))
    reference = LogisticRegression(max_iter=100, random_state=0)
    predicted = reference.fit(vectors[0::2], labels[0::2]).predict(vectors[1::2])
    assert got["accuracy"] == pytest.approx(np.mean(predicted == np.array(labels[1::2])))


def test_registry_and_schedule(minilm):
    from ml_collections import ConfigDict

    assert set(EVALUATORS) == {
        "retrieval",
        "sts",
        "pair_classification",
        "reranking",
        "classification",
        "clustering",
        "negation",
    }
    assert is_due(100, 200) and not is_due(100, 150) and is_due(100, 150, last_step=150)
    assert is_due(0, None) and not is_due(0, 10)
    evals = ConfigDict(
        {
            "neg": dict(type="negation", every=10, dataset=NEGATIONS, max_length=32),
            "later": dict(type="sts", every=1000, dataset="unused"),
        }
    )
    results = run_evals(evals, minilm, step=20)
    assert list(results) == ["neg"] and results["neg"]["num_triplets"] == 3
    with pytest.raises(ValueError, match="unknown evaluator type"):
        run_evaluator("nope", minilm)
