"""TF-IDF baseline: the same tasks and metric code as the embedding evaluators, with sparse
TF-IDF vectors (fitted on each task's own texts) in place of model embeddings."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np


def _vectorizer(texts):
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(sublinear_tf=True, lowercase=True).fit(texts)


def _row_cosines(a, b) -> np.ndarray:
    """Cosine of row i of ``a`` with row i of ``b`` (sparse, L2-normalised by the vectorizer)."""
    return np.asarray(a.multiply(b).sum(axis=1)).ravel()


def tfidf_retrieval(
    dataset: Any = "python_faq",
    data_dir: str | os.PathLike | None = None,
    top_k: int = 100,
    **_: Any,
) -> dict[str, Any]:
    from jina_jax.evaluators.retrieval import load_beir, trec_metrics

    data = load_beir(dataset, data_dir)
    doc_ids = list(data.corpus)
    query_ids = [
        q
        for q, docs in data.qrels.items()
        if q in data.queries and any(r > 0 for r in docs.values())
    ]
    vectorizer = _vectorizer([data.corpus[d] for d in doc_ids])
    docs = vectorizer.transform([data.corpus[d] for d in doc_ids])
    queries = vectorizer.transform([data.queries[q] for q in query_ids])
    scores = (queries @ docs.T).toarray()  # [Q, D]
    k = min(top_k, len(doc_ids))
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    run = {q: {doc_ids[j]: float(scores[i, j]) for j in top[i]} for i, q in enumerate(query_ids)}
    return {
        **trec_metrics(data.qrels, run),
        "num_queries": len(query_ids),
        "num_docs": len(doc_ids),
    }


def tfidf_sts(
    dataset: Any = "lee_sts", data_dir: str | os.PathLike | None = None, **_: Any
) -> dict[str, Any]:
    from scipy.stats import spearmanr

    from jina_jax.evaluators.sts import load_sts

    records = load_sts(dataset, data_dir)
    vectorizer = _vectorizer([t for r in records for t in (r.sentence1, r.sentence2)])
    cos = _row_cosines(
        vectorizer.transform([r.sentence1 for r in records]),
        vectorizer.transform([r.sentence2 for r in records]),
    )
    return {
        "spearman": float(spearmanr(cos, [r.score for r in records]).statistic),
        "num_pairs": len(records),
    }


def tfidf_negation(
    dataset: Any = "test", data_dir: str | os.PathLike | None = None, **_: Any
) -> dict[str, Any]:
    from jina_jax.evaluators.negation import load_negations

    records = load_negations(dataset, data_dir)
    vectorizer = _vectorizer([t for r in records for t in dataclasses.astuple(r)])
    a, e, n = (
        vectorizer.transform([getattr(r, f) for r in records])
        for f in ("anchor", "entailment", "negative")
    )
    positive = _row_cosines(a, e)
    easy = float(np.mean(positive > _row_cosines(a, n)))
    hard = float(np.mean(positive > _row_cosines(e, n)))
    return {
        "easy_accuracy": easy,
        "hard_accuracy": hard,
        "easy_error_rate": 1 - easy,
        "hard_error_rate": 1 - hard,
        "num_triplets": len(records),
    }


TFIDF = {"retrieval": tfidf_retrieval, "sts": tfidf_sts, "negation": tfidf_negation}


def run_tfidf(type_name: str, **kwargs: Any) -> dict[str, Any] | None:
    """The TF-IDF result for an evaluator entry, or None where TF-IDF has no counterpart."""
    fn = TFIDF.get(type_name)
    return None if fn is None else fn(**kwargs)
