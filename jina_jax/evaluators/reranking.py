"""Reranking: order each query's candidate documents by cosine; MAP over queries (MTEB's
reranking main score; per-query AP from sklearn) and MRR@10.

Offline, candidates for a starter retrieval set are the relevant documents plus the
``num_candidates`` lexically closest other documents (TF-IDF cosine, as a first-stage BM25
would give), so the model has to separate near misses rather than random documents.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import average_precision_score

from jina_jax.data.hashing import stable_sample
from jina_jax.evaluators.common import as_embedder, dot, embed, fit
from jina_jax.evaluators.retrieval import load_beir


@dataclasses.dataclass(frozen=True)
class RerankingSample:
    query: str
    positives: tuple[str, ...]
    negatives: tuple[str, ...]


def lexical_candidates(beir, num_candidates: int = 20) -> list[RerankingSample]:
    """Per judged query: its relevant documents and the ``num_candidates`` non-relevant
    documents with the highest TF-IDF cosine to it."""
    doc_ids = list(beir.corpus)
    vectorizer = TfidfVectorizer(sublinear_tf=True).fit(beir.corpus[d] for d in doc_ids)
    docs = vectorizer.transform(beir.corpus[d] for d in doc_ids)
    samples = []
    for qid, judged in beir.qrels.items():
        relevant = {d for d, r in judged.items() if r > 0 and d in beir.corpus}
        if qid not in beir.queries or not relevant:
            continue
        scores = (vectorizer.transform([beir.queries[qid]]) @ docs.T).toarray()[0]
        ranked = [doc_ids[j] for j in np.argsort(-scores, kind="stable")]
        negatives = [d for d in ranked if d not in relevant][:num_candidates]
        samples.append(
            RerankingSample(
                beir.queries[qid],
                tuple(beir.corpus[d] for d in sorted(relevant)),
                tuple(beir.corpus[d] for d in negatives),
            )
        )
    return samples


def reranking_metrics(
    query_vectors, candidate_vectors: Sequence, labels: Sequence[Sequence]
) -> dict[str, float]:
    """query_vectors: [Q, D]; candidate_vectors[i]: [C_i, D] (dense or scipy sparse rows);
    labels[i]: [C_i] in {0, 1}."""
    average_precision, reciprocal_rank = [], []
    for i, (candidates, relevant) in enumerate(zip(candidate_vectors, labels)):
        scores = dot(candidates, query_vectors[i]).ravel()
        relevant = np.asarray(relevant)
        average_precision.append(average_precision_score(relevant, scores))
        top = np.argsort(-scores, kind="stable")[:10]
        hits = np.flatnonzero(relevant[top])
        reciprocal_rank.append(1.0 / (hits[0] + 1) if len(hits) else 0.0)
    return {"map": float(np.mean(average_precision)), "mrr_at_10": float(np.mean(reciprocal_rank))}


@dataclasses.dataclass
class RerankingEvaluator:
    """``dataset``: a starter retrieval-set name or BEIR folder (candidates from
    ``lexical_candidates``), or a list of ``RerankingSample``. A fitted embedder (TF-IDF) is
    fitted on every query and candidate text."""

    headline = "map"

    dataset: Any = "debian_faq"
    data_dir: str | os.PathLike | None = None
    num_candidates: int = 20
    max_queries: int | None = None
    batch_size: int = 32
    max_length: int | None = None

    def __call__(self, embedder) -> dict[str, Any]:
        embedder = as_embedder(embedder, batch_size=self.batch_size)
        samples = self.samples()
        all_texts = [t for s in samples for t in (s.query, *s.positives, *s.negatives)]
        fit(embedder, all_texts)
        texts = list(dict.fromkeys(all_texts))
        index = {t: i for i, t in enumerate(texts)}
        vectors = embed(embedder, texts, max_length=self.max_length)
        queries = vectors[[index[s.query] for s in samples]]
        candidates = [vectors[[index[t] for t in (*s.positives, *s.negatives)]] for s in samples]
        labels = [[1] * len(s.positives) + [0] * len(s.negatives) for s in samples]
        return {**reranking_metrics(queries, candidates, labels), "num_queries": len(samples)}

    def samples(self) -> list[RerankingSample]:
        if isinstance(self.dataset, list | tuple):
            samples = list(self.dataset)
        else:
            samples = lexical_candidates(
                load_beir(self.dataset, self.data_dir), self.num_candidates
            )
        samples = [s for s in samples if s.positives and s.negatives]
        keep = stable_sample([s.query for s in samples], self.max_queries, "eval")
        return [samples[i] for i in keep]
