"""Cleaning one pair dataset of the starter corpus: held-out exclusion, size cap, exact
de-duplication, language filter, then the consistency filter and hard-negative mining on a
stable sample (``jina_jax.data.filters``, ``mining``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from jina_jax.data import filters
from jina_jax.data.hashing import stable_sample
from jina_jax.data.records import PairRecord
from jina_jax.data.starter.config import StarterConfig
from jina_jax.data.starter.mining import MemoEmbedder, mine_hard_negatives
from jina_jax.data.starter.splits import HeldoutFilter


def clean_pair_dataset(
    name: str,
    records: list[PairRecord],
    eval_texts: set[str],
    config: StarterConfig,
    embedder: Any,
    language_filter: filters.LanguageFilter,
) -> dict[str, Any]:
    """Held-out exclusion, size cap, exact dedup, language filter, then consistency filter and
    hard-negative mining on a stable sample of ``config.aux_sample`` pairs, embedded with
    ``embedder`` (the auxiliary model). Returns {"pairs", "triplets", "reports"}."""
    reports = []
    records, report = HeldoutFilter(eval_texts)(records, dataset=name)
    reports.append(report)
    if config.max_pairs_per_dataset and len(records) > config.max_pairs_per_dataset:
        keys = [r.query + "\0" + r.positive for r in records]
        n_in = len(records)
        records = [records[i] for i in stable_sample(keys, config.max_pairs_per_dataset, "cap")]
        reports.append(
            filters.FilterReport(
                "max_pairs",
                name,
                n_in,
                len(records),
                {"over --max-pairs-per-dataset": n_in - len(records)},
            )
        )
    for stage in (filters.ExactDedup(), language_filter):
        records, report = stage(records, dataset=name)
        reports.append(report)

    keys = [r.query + "\0" + r.positive for r in records]
    sample = stable_sample(keys, config.aux_sample, f"aux:{name}")
    triplets: list[list[str]] = []
    dropped: set[int] = set()
    removed: dict[str, int] = {}
    if sample:
        chosen = [records[i] for i in sample]
        memo = MemoEmbedder(embedder)
        max_length = config.aux_max_length
        consistency = filters.ConsistencyFilter(
            embedder=memo,
            sample_size=len(chosen),
            top_k=config.consistency_top_k,
            max_length=max_length,
        )
        kept, judged = consistency(chosen, dataset=name)
        removed = judged.removed_by_reason
        kept_set = set(kept)  # records are distinct after exact dedup
        keep = np.array([r in kept_set for r in chosen])
        dropped = {sample[i] for i in np.flatnonzero(~keep)}
        q = memo.embed([r.query for r in chosen], max_length=max_length)
        p = memo.embed([r.positive for r in chosen], max_length=max_length)
        negatives = mine_hard_negatives(chosen, q, p, keep, config.near_duplicate)
        triplets = [
            [r.query, r.positive, chosen[j].positive] for r, j in zip(chosen, negatives) if j >= 0
        ]
    n_in = len(records)
    records = [r for i, r in enumerate(records) if i not in dropped]
    note = "" if len(sample) == n_in else f"judged {len(sample)} of {n_in} (aux_sample); rest kept"
    reports.append(
        filters.FilterReport("consistency", name, n_in, len(records), dict(removed), note)
    )
    return {
        "pairs": [[r.query, r.positive] for r in records],
        "triplets": triplets,
        "reports": [dataclasses.asdict(r) for r in reports],
    }
