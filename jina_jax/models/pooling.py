"""Sentence embeddings from token states: mean pooling in float32, and L2 normalisation."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def mean_pool(hidden: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of ``hidden [B, L, H]`` over tokens where ``mask [B, L]`` is set, in float32."""
    weights = mask.astype(jnp.float32)[..., None]
    total = jnp.sum(hidden.astype(jnp.float32) * weights, axis=1)
    return total / jnp.maximum(jnp.sum(weights, axis=1), 1e-9)


def cls_pool(hidden: jax.Array, mask: jax.Array) -> jax.Array:
    del mask
    return hidden[:, 0].astype(jnp.float32)


POOLERS = {"mean": mean_pool, "cls": cls_pool}


def pool(hidden: jax.Array, mask: jax.Array, mode: str = "mean") -> jax.Array:
    if mode not in POOLERS:
        raise ValueError(f"unknown pooling {mode!r}; known: {sorted(POOLERS)}")
    return POOLERS[mode](hidden, mask)


def l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


def segment_pool(
    hidden: jax.Array,
    segments: jax.Array,
    positions: jax.Array,
    count: int,
    mode: str = "mean",
) -> jax.Array:
    """Pooling over packed rows: ``hidden [R, L, H]``, ``segments [R, L]`` holding ``1 + i`` on
    the tokens of text ``i`` (0 on padding), ``positions [R, L]`` the token's index within its
    text. Returns float32 ``[count, H]`` in text order, equal to ``pool`` over unpacked rows."""
    if mode not in POOLERS:
        raise ValueError(f"unknown pooling {mode!r}; known: {sorted(POOLERS)}")
    flat = hidden.reshape(-1, hidden.shape[-1]).astype(jnp.float32)
    ids = segments.reshape(-1)
    weight = ids > 0
    if mode == "cls":
        weight &= positions.reshape(-1) == 0
    weight = weight.astype(jnp.float32)
    total = jax.ops.segment_sum(flat * weight[:, None], ids, num_segments=count + 1)[1:]
    norm = jax.ops.segment_sum(weight, ids, num_segments=count + 1)[1:]
    return total / jnp.maximum(norm, 1e-9)[:, None]
