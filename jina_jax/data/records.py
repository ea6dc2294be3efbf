"""The record types every reader produces and every filter and sampler consumes."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class PairRecord:
    """A query with its positive and, for triplet / multi-negative data, hard negatives."""

    query: str
    positive: str
    negatives: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class NegationRecord:
    """jinaai/negation-dataset layout: the negative contradicts the anchor/entailment pair."""

    anchor: str
    entailment: str
    negative: str


@dataclasses.dataclass(frozen=True)
class STSRecord:
    sentence1: str
    sentence2: str
    score: float
