"""Negation sensitivity (SPEC §3, the jina-embeddings v1 paper): does the model rank the
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
from collections.abc import Sequence
from typing import Any

import numpy as np

from jina_jax.data.records import NegationRecord
from jina_jax.evaluators.common import embed, load_starter


def load_negations(
    dataset: Any = "test", data_dir: str | os.PathLike | None = None
) -> list[NegationRecord]:
    """Records from themselves, a file/folder the readers understand, or a starter split name
    ("test" = the held-out triplets, "train")."""
    from jina_jax.data.readers import read_negations

    if not isinstance(dataset, str | os.PathLike):
        return [r if isinstance(r, NegationRecord) else NegationRecord(*r) for r in dataset]
    if pathlib.Path(dataset).exists():
        return list(read_negations(dataset, split=None))
    if dataset not in ("test", "train"):
        raise ValueError(f"negation data {dataset!r}: not a file, nor 'test' / 'train'")
    return list(load_starter(data_dir).negations(str(dataset)))


def negation_metrics(
    anchors: np.ndarray, entailments: np.ndarray, negatives: np.ndarray
) -> dict[str, float]:
    """All [N, D], L2-normalised. Ties count as errors (strictly greater is required)."""
    positive = np.einsum("nd,nd->n", anchors, entailments)
    easy = float(np.mean(positive > np.einsum("nd,nd->n", anchors, negatives)))
    hard = float(np.mean(positive > np.einsum("nd,nd->n", entailments, negatives)))
    return {
        "easy_accuracy": easy,
        "hard_accuracy": hard,
        "easy_error_rate": 1.0 - easy,
        "hard_error_rate": 1.0 - hard,
    }


@dataclasses.dataclass
class NegationEvaluator:
    """``dataset``: "test" (starter held-out triplets), "train", a jsonl path, or records."""

    dataset: Any = "test"
    data_dir: str | None = None
    batch_size: int = 32
    max_length: int | None = None

    def __call__(self, model) -> dict[str, Any]:
        records = load_negations(self.dataset, self.data_dir)
        if not records:
            raise ValueError("negation evaluation got no triplets")
        vectors = self._embed(model, [t for r in records for t in dataclasses.astuple(r)])
        anchors, entailments, negatives = vectors[0::3], vectors[1::3], vectors[2::3]
        return {**negation_metrics(anchors, entailments, negatives), "num_triplets": len(records)}

    def _embed(self, model, texts: Sequence[str]) -> np.ndarray:
        return embed(model, texts, batch_size=self.batch_size, max_length=self.max_length)
