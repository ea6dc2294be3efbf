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
