"""The one encode path: texts -> embeddings. Used by evaluation, benchmarks, export checks and
the mteb adapter.

Texts are tokenised once, sorted by length and cut into batches of a fixed size whose length is
padded up to a bucket (16, 32, 64, ... max_length). Every batch therefore has one of a handful of
shapes, so XLA compiles a few programs rather than one per batch.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jina_jax.models import build_encoder
from jina_jax.models.pooling import l2_normalize, pool

log = logging.getLogger(__name__)

MIN_BUCKET = 16


def bucket_lengths(max_length: int) -> list[int]:
    buckets, n = [], MIN_BUCKET
    while n < max_length:
        buckets.append(n)
        n *= 2
    return [*buckets, max_length]


def bucket_for(length: int, buckets: Sequence[int]) -> int:
    for b in buckets:
        if length <= b:
            return b
    return buckets[-1]


@functools.lru_cache(maxsize=32)
def embed_fn(config, pooling: str):
    """Jitted ``(params, ids [B, L], mask [B, L]) -> (embeddings [B, H] f32, states [B, L, H])``;
    cached per config so that every caller shares compiled programs."""
    module = build_encoder(config)

    @jax.jit
    def run(params, ids, mask):
        states = module.apply({"params": params}, ids, mask)["last_hidden_state"]
        return pool(states, mask, pooling), states

    return run


def _check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("encode() takes a list of texts, got a single string; wrap it in a list")
    texts = list(texts)
    if not texts:
        raise ValueError("encode() got an empty list of texts")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"encode(): texts[{i}] is {type(t).__name__}, not str")
    return texts


def encode(
    model,
    texts: Sequence[str],
    batch_size: int = 32,
    max_length: int | None = None,
    *,
    normalize: bool | None = None,
    show_progress: bool | None = None,
    return_stats: bool = False,
):
    """Embeds ``texts`` with ``model`` (a ``jina_jax.Model``); returns ``np.ndarray [N, D]``
    float32 in input order (and a stats dict with ``return_stats=True``).

    Texts longer than ``max_length`` tokens (default: the model's) are truncated and counted.
    ``normalize`` defaults to the model's own setting (e.g. a Normalize module in its
    sentence-transformers folder).
    """
    texts = _check_texts(texts)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    max_length = int(max_length or model.max_length)
    if (
        max_length > model.config.max_length
        and getattr(model.config, "position_embedding_type", "relative") == "absolute"
    ):
        raise ValueError(
            f"max_length {max_length} exceeds the {model.config.max_length} positions of this model"
        )
    normalize = model.normalize if normalize is None else normalize
    ids, truncated = model.tokenizer.encode_batch(texts, max_length)
    if truncated:
        log.warning("%d of %d texts were truncated to %d tokens", truncated, len(texts), max_length)
    lengths = np.array([len(x) for x in ids])
    order = np.argsort(-lengths, kind="stable")  # longest first: memory trouble shows at once
    buckets = bucket_lengths(max_length)
    run = embed_fn(model.config, model.pooling)
    pad_id = model.tokenizer.pad_id
    out = np.zeros((len(texts), model.dim), np.float32)
    num_batches = -(-len(texts) // batch_size)
    if show_progress is None:
        show_progress = num_batches > 8
    shapes = set()
    for start in tqdm(
        range(0, len(texts), batch_size),
        total=num_batches,
        disable=not show_progress,
        desc="encode",
        unit="batch",
    ):
        rows = order[start : start + batch_size]
        length = bucket_for(int(lengths[rows[0]]), buckets)
        batch = np.full((batch_size, length), pad_id, np.int32)
        mask = np.zeros((batch_size, length), np.int32)
        for j, r in enumerate(rows):
            batch[j, : lengths[r]] = ids[r]
            mask[j, : lengths[r]] = 1
        shapes.add(batch.shape)
        emb, _ = run(model.params, jnp.asarray(batch), jnp.asarray(mask))
        out[rows] = np.asarray(emb[: len(rows)])
    if normalize:
        out = np.asarray(l2_normalize(jnp.asarray(out)))
    if return_stats:
        return out, {"truncated": int(truncated), "batches": num_batches, "shapes": sorted(shapes)}
    return out
