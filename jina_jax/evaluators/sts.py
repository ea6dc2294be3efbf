"""Semantic textual similarity: Spearman correlation of cosine similarity with human scores
(MTEB's STS main score), with Pearson alongside."""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any

import numpy as np
from scipy import stats

from jina_jax.data.readers import read_sts
from jina_jax.data.records import STSRecord
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


def load_sts(dataset: Any = "lee_sts", data_dir: str | os.PathLike | None = None):
    """Records from themselves, a file the readers understand, or a starter STS name."""
    if not isinstance(dataset, str | os.PathLike):
        return [r if isinstance(r, STSRecord) else STSRecord(*r) for r in dataset]
    if pathlib.Path(dataset).exists():
        return list(read_sts(dataset, split=None))
    return list(load_starter(data_dir).sts(str(dataset)))


def sts_metrics(first, second, scores) -> dict[str, float]:
    """first, second: [N, D] L2-normalised (dense or scipy sparse); scores: [N] human
    similarity."""
    cosine = row_dot(first, second).astype(np.float64)
    return {
        "spearman": float(stats.spearmanr(cosine, scores).statistic),
        "pearson": float(stats.pearsonr(cosine, scores).statistic),
    }


@dataclasses.dataclass
class STSEvaluator:
    """``dataset``: "lee_sts" (starter), a jsonl path (sentence1, sentence2, score), or records.
    Each distinct sentence is embedded once; a fitted embedder (TF-IDF) is fitted on all
    sentences of both sides.

    ``dims``: also score each embedding truncated to its first d dimensions and
    L2-renormalised (Matryoshka; embedded once at full size), as ``spearman/dim_<d>`` and
    ``pearson/dim_<d>``; dense embedders only. None (the default): the ``matryoshka_dims`` of
    the embedder's model (``common.evaluation_dims``); (): none."""

    headline = "spearman"

    dataset: Any = "lee_sts"
    data_dir: str | None = None
    batch_size: int = 32
    max_length: int | None = None
    dims: tuple[int, ...] | None = None

    def __post_init__(self):
        self.dims = check_dims(self.dims)

    def __call__(self, embedder) -> dict[str, Any]:
        embedder = as_embedder(embedder, batch_size=self.batch_size)
        records = load_sts(self.dataset, self.data_dir)
        if len(records) < 2:
            raise ValueError("STS evaluation needs at least two scored pairs")
        sentences = [t for r in records for t in (r.sentence1, r.sentence2)]
        fit(embedder, sentences)
        texts = list(dict.fromkeys(sentences))
        index = {t: i for i, t in enumerate(texts)}
        vectors = embed(embedder, texts, max_length=self.max_length)
        first = vectors[[index[r.sentence1] for r in records]]
        second = vectors[[index[r.sentence2] for r in records]]
        scores = [r.score for r in records]
        metrics = sts_metrics(first, second, scores)
        for dim in evaluation_dims(self.dims, embedder, vectors.shape[1]):
            truncated = sts_metrics(truncate(first, dim), truncate(second, dim), scores)
            metrics |= {metric_name(name, dim): value for name, value in truncated.items()}
        return {**metrics, "num_pairs": len(records)}
