"""Embedders: what evaluators, baselines and the consistency filter score texts with.

An embedder has ``embed(texts, *, max_length=None) -> [N, D]`` rows that are L2-normalised (so
cosine similarity is a dot product; a scipy sparse matrix is allowed, e.g. TF-IDF), and
optionally ``fit(texts)``, called with a task's own texts before ``embed`` (TF-IDF learns its
vocabulary there). ``name`` labels it in result tables.

``ModelEmbedder`` wraps a jina_jax ``Model`` and the one encode path (``jina_jax.encode``);
``TfidfEmbedder`` is the lexical baseline (sparse TF-IDF rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from jina_jax.encoding import encode


@runtime_checkable
class Embedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str], *, max_length: int | None = None) -> Any: ...


class ModelEmbedder:
    """A jina_jax ``Model`` as an embedder: ``encode`` with normalisation on, no progress bar.
    ``model`` stays reachable for evaluators that need token states (late chunking).
    ``adapter``: embed through one of the model's task LoRA adapters (None: the base)."""

    def __init__(
        self,
        model,
        *,
        name: str = "model",
        batch_size: int = 32,
        max_length: int | None = None,
        adapter: str | None = None,
    ):
        self.model = model
        self.adapter = adapter
        self.name = name
        self.batch_size = batch_size
        self.max_length = max_length

    def embed(self, texts: Sequence[str], *, max_length: int | None = None) -> np.ndarray:
        return encode(
            self.model,
            list(texts),
            batch_size=self.batch_size,
            max_length=max_length or self.max_length,
            normalize=True,
            show_progress=False,
            adapter=self.adapter,
        )


class TfidfEmbedder:
    """Sparse TF-IDF rows (scikit-learn ``TfidfVectorizer(sublinear_tf=True, lowercase=True)``;
    rows are L2-normalised, so cosine is a dot product). ``fit(texts)`` learns the vocabulary and
    document frequencies; evaluators call it with each task's own texts. ``max_length`` is
    ignored (nothing is truncated)."""

    def __init__(self, *, name: str = "tfidf"):
        self.name = name
        self.vectorizer = None

    def fit(self, texts: Sequence[str]) -> TfidfEmbedder:
        # scikit-learn is only needed by this baseline (not a jina_jax dependency).
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vectorizer = TfidfVectorizer(sublinear_tf=True, lowercase=True).fit(list(texts))
        return self

    def embed(self, texts: Sequence[str], *, max_length: int | None = None):
        """[N, V] scipy sparse matrix (CSR) of L2-normalised TF-IDF rows."""
        if self.vectorizer is None:
            raise RuntimeError(
                f"TfidfEmbedder {self.name!r}: call fit(texts) before embed (the evaluators fit "
                "it on each task's own texts)"
            )
        return self.vectorizer.transform(list(texts))
