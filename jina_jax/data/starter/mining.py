"""Hard-negative mining with the auxiliary embedder, and ``MemoEmbedder``, which lets the
consistency filter and the mining share one embedding per text.

An embedder is any object with ``embed(texts, *, max_length=None) -> [N, D]`` L2-normalised rows
and a ``name`` (``jina_jax.embedders``); the starter build gets one from its caller."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from jina_jax.data.hashing import normalize_text
from jina_jax.data.records import PairRecord


class MemoEmbedder:
    """Wraps an embedder and remembers every text's vector (per ``max_length``), so that the
    consistency filter and the hard-negative mining embed each text once. One per dataset
    (memory). It is itself an embedder."""

    def __init__(self, embedder: Any):
        self.embedder = embedder
        self.name = embedder.name
        self.vectors: dict[int | None, dict[str, np.ndarray]] = {}

    def embed(self, texts: Sequence[str], *, max_length: int | None = None) -> np.ndarray:
        vectors = self.vectors.setdefault(max_length, {})
        new = [t for t in dict.fromkeys(texts) if t not in vectors]
        if new:
            out = self.embedder.embed(new, max_length=max_length)
            vectors.update(zip(new, np.asarray(out, dtype=np.float32)))
        return np.stack([vectors[t] for t in texts])


def mine_hard_negatives(
    records: Sequence[PairRecord],
    queries: np.ndarray,
    positives: np.ndarray,
    usable: np.ndarray,
    near_duplicate: float = 0.95,
) -> list[int]:
    """For each record, the index of the usable record whose positive is most similar to its
    query, skipping itself, records with the same query or positive text, and positives with
    cosine >= ``near_duplicate`` to its own; -1 when there is none or the record is unusable.
    queries, positives: [N, D] L2-normalised; usable: bool [N]."""
    ids: dict[str, int] = {}  # normalised text -> small integer, to compare texts as ints
    query_ids = np.array([ids.setdefault(normalize_text(r.query), len(ids)) for r in records])
    positive_ids = np.array([ids.setdefault(normalize_text(r.positive), len(ids)) for r in records])
    scores = queries @ positives.T  # [N, N]
    blocked = (positives @ positives.T) >= near_duplicate
    blocked |= query_ids[:, None] == query_ids[None, :]
    blocked |= positive_ids[:, None] == positive_ids[None, :]
    blocked |= ~usable[None, :]
    np.fill_diagonal(blocked, True)
    scores = np.where(blocked, -np.inf, scores)
    best = scores.argmax(axis=1)
    found = np.isfinite(scores[np.arange(len(records)), best]) & usable
    return [int(j) if ok else -1 for j, ok in zip(best, found)]
