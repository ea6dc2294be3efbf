"""Negation sensitivity (the jina-embeddings v1 paper, Günther et al. 2023, "Jina Embeddings:
A Novel Set of High-Performance Sentence Embedding Models"): does the model rank the
entailment above the negation?

    pos = cos(anchor, entailment)
    EasyNegation = mean(pos > cos(anchor, negative))
    HardNegation = mean(pos > cos(entailment, negative))

and each error rate is 1 - accuracy (the paper's table reports error rates).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any

import numpy as np

from jina_jax.data.readers import read_negations
from jina_jax.data.records import NegationRecord
from jina_jax.evaluators.common import (
    as_embedder,
    check_dims,
    embed,
    evaluation_dims,
    fit,
    load_starter,
    metric_name,
    row_dot,
    truncate,
)


def load_negations(
    dataset: Any = "test", data_dir: str | os.PathLike | None = None
) -> list[NegationRecord]:
    """Records from themselves, a file/folder the readers understand, or a starter split name
    ("test" = the held-out triplets, "train")."""
    if not isinstance(dataset, str | os.PathLike):
        return [r if isinstance(r, NegationRecord) else NegationRecord(*r) for r in dataset]
    if pathlib.Path(dataset).exists():
        return list(read_negations(dataset, split=None))
    if dataset not in ("test", "train"):
        raise ValueError(f"negation data {dataset!r}: not a file, nor 'test' / 'train'")
    return list(load_starter(data_dir).negations(str(dataset)))


def negation_metrics(anchors, entailments, negatives) -> dict[str, float]:
    """All [N, D], L2-normalised (dense or scipy sparse). Ties count as errors (strictly
    greater is required)."""
    positive = row_dot(anchors, entailments)
    easy = float(np.mean(positive > row_dot(anchors, negatives)))
    hard = float(np.mean(positive > row_dot(entailments, negatives)))
    return {
        "easy_accuracy": easy,
        "hard_accuracy": hard,
        "easy_error_rate": 1.0 - easy,
        "hard_error_rate": 1.0 - hard,
    }


@dataclasses.dataclass
class NegationEvaluator:
    """``dataset``: "test" (starter held-out triplets), "train", a jsonl path, or records. A
    fitted embedder (TF-IDF) is fitted on all anchor, entailment and negative texts.

    ``dims``: also score the embeddings truncated to their first d dimensions and
    L2-renormalised (Matryoshka; embedded once at full size), each metric named as
    ``common.metric_name`` names it (``hard_error_rate/dim_128``); dense embedders only. None
    (the default): the ``matryoshka_dims`` of the embedder's model; (): none."""

    headline = "hard_error_rate"

    dataset: Any = "test"
    data_dir: str | None = None
    batch_size: int = 32
    max_length: int | None = None
    dims: tuple[int, ...] | None = None
    per_triplet: bool = False  # also return per_triplet_hard_error: [N] 0/1 (full size)

    def __post_init__(self):
        self.dims = check_dims(self.dims)

    def __call__(self, embedder) -> dict[str, Any]:
        embedder = as_embedder(embedder, batch_size=self.batch_size)
        records = load_negations(self.dataset, self.data_dir)
        if not records:
            raise ValueError("negation evaluation got no triplets")
        texts = [t for r in records for t in dataclasses.astuple(r)]
        fit(embedder, texts)
        vectors = embed(embedder, texts, max_length=self.max_length)
        metrics = negation_metrics(vectors[0::3], vectors[1::3], vectors[2::3])
        if self.per_triplet:
            anchors, entailments, negatives = vectors[0::3], vectors[1::3], vectors[2::3]
            hard = row_dot(anchors, entailments) > row_dot(entailments, negatives)
            metrics["per_triplet_hard_error"] = [int(not ok) for ok in np.asarray(hard).ravel()]
        for dim in evaluation_dims(self.dims, embedder, vectors.shape[1]):
            cut = truncate(vectors, dim)
            truncated = negation_metrics(cut[0::3], cut[1::3], cut[2::3])
            metrics |= {metric_name(name, dim): value for name, value in truncated.items()}
        return {**metrics, "num_triplets": len(records)}
