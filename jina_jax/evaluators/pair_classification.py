"""Pair classification: average precision (sklearn) of the cosine similarity as a score for
"the two texts belong together" (MTEB's pair-classification AP, cosine variant).

Offline, the held-out negation triplets become pairs: (anchor, entailment) labelled 1 and
(anchor, negative) labelled 0.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score

from jina_jax.data.readers import read_sts
from jina_jax.evaluators.common import as_embedder, embed, fit, row_dot
from jina_jax.evaluators.negation import load_negations


def negation_pairs(records) -> list[tuple[str, str, int]]:
    return [
        pair for r in records for pair in ((r.anchor, r.entailment, 1), (r.anchor, r.negative, 0))
    ]


def load_pairs(
    dataset: Any = "negation", data_dir: str | os.PathLike | None = None
) -> list[tuple[str, str, int]]:
    """(text1, text2, label) from themselves, "negation" (starter held-out triplets as pairs),
    or a jsonl file of sentence1, sentence2, label."""
    if not isinstance(dataset, str | os.PathLike):
        return [(a, b, int(label)) for a, b, label in dataset]
    if pathlib.Path(dataset).exists():
        return [(r.sentence1, r.sentence2, int(r.score)) for r in read_sts(dataset, split=None)]
    if dataset == "negation":
        return negation_pairs(load_negations("test", data_dir))
    raise ValueError(f"pair-classification data {dataset!r}: not a file, nor 'negation'")


def pair_average_precision(first, second, labels: Sequence[int]) -> float:
    """first, second: [N, D] L2-normalised (dense or scipy sparse); labels: [N] in {0, 1}."""
    cosine = row_dot(first, second)
    return float(average_precision_score(np.asarray(labels), cosine))


@dataclasses.dataclass
class PairClassificationEvaluator:
    """``dataset``: "negation" (starter held-out triplets as pairs), a jsonl path (sentence1,
    sentence2, label) or (text1, text2, label) tuples. A fitted embedder (TF-IDF) is fitted on
    all texts of the pairs."""

    headline = "ap"

    dataset: Any = "negation"
    data_dir: str | None = None
    batch_size: int = 32
    max_length: int | None = None

    def __call__(self, embedder) -> dict[str, Any]:
        embedder = as_embedder(embedder, batch_size=self.batch_size)
        pairs = load_pairs(self.dataset, self.data_dir)
        labels = [label for _, _, label in pairs]
        if len(set(labels)) != 2:
            raise ValueError("pair classification needs both labels 0 and 1")
        all_texts = [t for a, b, _ in pairs for t in (a, b)]
        fit(embedder, all_texts)
        texts = list(dict.fromkeys(all_texts))
        index = {t: i for i, t in enumerate(texts)}
        vectors = embed(embedder, texts, max_length=self.max_length)
        first = vectors[[index[a] for a, _, _ in pairs]]
        second = vectors[[index[b] for _, b, _ in pairs]]
        return {"ap": pair_average_precision(first, second, labels), "num_pairs": len(pairs)}
