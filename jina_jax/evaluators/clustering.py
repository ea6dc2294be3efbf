"""Clustering: k-means (sklearn) on embeddings with k = number of gold labels; V-measure
against the labels (MTEB's clustering main score).

Offline task ``manpage_sections``: the held-out man page DESCRIPTION texts, labelled with
their section (2 system calls, 3 library functions, 4 devices, 5 file formats, 7 overviews,
8 administration), from the page id (``name.section``).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from sklearn.cluster import KMeans
from sklearn.metrics import v_measure_score

from jina_jax.evaluators.classification import LabelledTexts
from jina_jax.evaluators.common import as_embedder, embed, fit, load_starter


def manpage_sections(data_dir: str | os.PathLike | None = None) -> LabelledTexts:
    corpus = load_starter(data_dir).beir("manpages").corpus
    rows = [(text, doc_id.rsplit(".", 1)[-1][:1]) for doc_id, text in corpus.items()]
    return LabelledTexts(tuple(t for t, _ in rows), tuple(s for _, s in rows))


def kmeans_v_measure(vectors, labels, *, seed: int = 0, n_init: int = 10) -> float:
    """vectors: [N, D], dense or scipy sparse."""
    k = len(set(labels))
    clusters = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(vectors)
    return float(v_measure_score(labels, clusters))


@dataclasses.dataclass
class ClusteringEvaluator:
    """``dataset``: "manpage_sections" or a ``LabelledTexts``. A fitted embedder (TF-IDF) is
    fitted on the texts to cluster."""

    headline = "v_measure"

    dataset: Any = "manpage_sections"
    data_dir: str | os.PathLike | None = None
    seed: int = 0
    n_init: int = 10
    batch_size: int = 32
    max_length: int | None = None

    def __call__(self, embedder) -> dict[str, Any]:
        embedder = as_embedder(embedder, batch_size=self.batch_size)
        data = self.dataset
        if data == "manpage_sections":
            data = manpage_sections(self.data_dir)
        if not isinstance(data, LabelledTexts):
            raise ValueError(f"clustering data {self.dataset!r}: not 'manpage_sections'")
        fit(embedder, data.texts)
        vectors = embed(embedder, data.texts, max_length=self.max_length)
        score = kmeans_v_measure(vectors, data.labels, seed=self.seed, n_init=self.n_init)
        return {
            "v_measure": score,
            "num_texts": len(data.texts),
            "num_labels": len(set(data.labels)),
        }
