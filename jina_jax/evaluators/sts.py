"""Semantic textual similarity: Spearman correlation of cosine similarity with human scores
(MTEB's STS main score), with Pearson alongside."""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any

import numpy as np
from scipy import stats

from jina_jax.data.records import STSRecord
from jina_jax.evaluators.common import embed, load_starter


def load_sts(dataset: Any = "lee_sts", data_dir: str | os.PathLike | None = None):
    """Records from themselves, a file the readers understand, or a starter STS name."""
    from jina_jax.data.readers import read_sts

    if not isinstance(dataset, str | os.PathLike):
        return [r if isinstance(r, STSRecord) else STSRecord(*r) for r in dataset]
    if pathlib.Path(dataset).exists():
        return list(read_sts(dataset, split=None))
    return list(load_starter(data_dir).sts(str(dataset)))


def sts_metrics(first: np.ndarray, second: np.ndarray, scores) -> dict[str, float]:
    """first, second: [N, D] L2-normalised; scores: [N] human similarity."""
    cosine = np.einsum("nd,nd->n", first, second).astype(np.float64)
    return {
        "spearman": float(stats.spearmanr(cosine, scores).statistic),
        "pearson": float(stats.pearsonr(cosine, scores).statistic),
    }


@dataclasses.dataclass
class STSEvaluator:
    """``dataset``: "lee_sts" (starter), a jsonl path (sentence1, sentence2, score), or records.
    Each distinct sentence is embedded once."""

    dataset: Any = "lee_sts"
    data_dir: str | None = None
    batch_size: int = 32
    max_length: int | None = None

    def __call__(self, model) -> dict[str, Any]:
        records = load_sts(self.dataset, self.data_dir)
        if len(records) < 2:
            raise ValueError("STS evaluation needs at least two scored pairs")
        texts = list(dict.fromkeys(t for r in records for t in (r.sentence1, r.sentence2)))
        index = {t: i for i, t in enumerate(texts)}
        vectors = embed(model, texts, batch_size=self.batch_size, max_length=self.max_length)
        first = vectors[[index[r.sentence1] for r in records]]
        second = vectors[[index[r.sentence2] for r in records]]
        metrics = sts_metrics(first, second, [r.score for r in records])
        return {**metrics, "num_pairs": len(records)}
