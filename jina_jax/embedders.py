"""Embedders: what evaluators, baselines and the consistency filter score texts with.

An embedder has ``embed(texts, *, max_length=None) -> [N, D]`` rows that are L2-normalised (so
cosine similarity is a dot product; a scipy sparse matrix is allowed, e.g. TF-IDF), and
optionally ``fit(texts)``, called with a task's own texts before ``embed`` (TF-IDF learns its
vocabulary there). ``name`` labels it in result tables.

``ModelEmbedder`` wraps a jina_jax ``Model`` and the one encode path (``jina_jax.encode``).
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
    ``model`` stays reachable for evaluators that need token states (late chunking)."""

    def __init__(
        self,
        model,
        *,
        name: str = "model",
        batch_size: int = 32,
        max_length: int | None = None,
    ):
        self.model = model
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
        )
