"""The train step: one jitted function over the global batch, and its GradCache variant.

The step sees global arrays sharded over the mesh; the similarity matrix is an ordinary matmul
over the whole batch and the compiler writes the all-gathers and their gradients. Dropout keys
are ``fold_in(seed_key, step)``: with partitionable threefry each device draws its own slice of
the mask, so every host passes the same key (host-side randomness, such as MLM masking, is
seeded by step and host instead).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax
from jax.sharding import PartitionSpec as P

from jina_jax.training.objectives import ContrastiveObjective, batch_layout

ROW_KEYS = ("ids", "segments", "positions")


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any


def apply_gradients(
    state: TrainState, grads, loss, metrics, tx, schedule
) -> tuple[TrainState, dict]:
    grad_norm = optax.global_norm(grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    # A non-finite step leaves the state as it was, so nothing saved afterwards is poisoned.
    keep = functools.partial(jax.tree.map, lambda new, old: jnp.where(ok, new, old))
    new_state = TrainState(
        state.step + 1, keep(params, state.params), keep(opt_state, state.opt_state)
    )
    metrics = {
        **metrics,
        "loss": loss,
        "grad_norm": grad_norm,
        "lr": schedule(state.step),
        "ok": ok,
    }
    return new_state, metrics


def make_train_step(objective: Callable, tx, schedule) -> Callable:
    """``(state, batch, key) -> (state, metrics)``: one step on the global batch."""

    def step(state: TrainState, batch, key):
        rng = jax.random.fold_in(key, state.step)
        (loss, metrics), grads = jax.value_and_grad(objective, has_aux=True)(
            state.params, batch, rng
        )
        return apply_gradients(state, grads, loss, metrics, tx, schedule)

    return step


def chunk_rows(x: jax.Array, chunk: int, shards: int, batch_axes=None) -> jax.Array:
    """``[R, ...]`` rows -> ``[R / chunk, chunk, ...]`` chunks that take ``chunk / shards`` rows
    from EVERY batch shard.

    The batch is sharded by row: shard ``s`` holds rows ``[s R/shards, (s+1) R/shards)``. A plain
    reshape to ``[R / chunk, chunk]`` would hand whole chunks to single shards, and every device
    would then compute every chunk. Here chunk ``c`` is rows ``[c chunk/shards, (c+1)
    chunk/shards)`` of each shard, so each device computes ``chunk / shards`` rows per chunk.
    ``batch_axes``: the mesh axes of the batch dimension, to pin that layout."""
    rows = x.shape[0]
    if chunk % shards or rows % chunk:
        raise ValueError(
            f"GradCache: the chunk of {chunk} rows must be a multiple of the {shards} batch "
            f"shards and divide the {rows} rows of the batch"
        )
    per_shard = chunk // shards
    x = x.reshape(shards, rows // chunk, per_shard, *x.shape[1:]).swapaxes(0, 1)
    x = x.reshape(rows // chunk, chunk, *x.shape[3:])
    if batch_axes:
        spec = P(None, batch_axes, *([None] * (x.ndim - 2)))
        x = jax.lax.with_sharding_constraint(x, spec)
    return x


def grad_cache_gradients(
    objective: ContrastiveObjective,
    params,
    batch,
    rng,
    chunk: int,
    shards: int = 1,
    batch_axes=None,
):
    """GradCache (Gao et al. 2021): the loss gradient of a large batch in chunk-sized memory.

    1. embed every chunk of rows without keeping activations (texts of other chunks get zeros,
       so the chunks' embeddings add up to the batch's);
    2. differentiate the loss with respect to the text embeddings only;
    3. re-embed chunk by chunk, pulling the embedding gradients back into the parameters.
    Rows are packed or one text per row alike (a text lives in one row, so in one chunk). Chunk
    ``i`` uses dropout key ``fold_in(rng, i)`` in both passes, so the two passes agree. Each
    chunk takes rows from every batch shard (``chunk_rows``).
    """
    _, _, num_texts = batch_layout(batch)
    chunks = tuple(chunk_rows(batch[key], chunk, shards, batch_axes) for key in ROW_KEYS)
    index = jnp.arange(chunks[0].shape[0])

    def spread(texts):
        """Text embeddings ``[N, D]`` split over the batch shards: a chunk's pooled texts
        are then reduce-scattered, not all-reduced, and no device holds all N of them."""
        if batch_axes and num_texts % shards == 0:
            return jax.lax.with_sharding_constraint(texts, P(batch_axes, None))
        return texts

    def embed(p, i, ids, segments, positions):
        key = jax.random.fold_in(rng, i)
        texts = objective.embed_rows(p, ids, segments, positions, num_texts, key, True, batch)
        return spread(texts)

    def forward(total, xs):
        return total + jax.lax.stop_gradient(embed(params, *xs)), None

    width = objective.model.hidden_size
    start = spread(jnp.zeros((num_texts, width), jnp.float32))
    texts, _ = jax.lax.scan(forward, start, (index, *chunks))
    (loss, metrics), grad_texts = jax.value_and_grad(objective.loss_from_embeddings, has_aux=True)(
        texts, batch
    )
    grad_texts = spread(grad_texts)

    def pull_back(grads, xs):
        _, vjp = jax.vjp(lambda p: embed(p, *xs), params)
        return jax.tree.map(jnp.add, grads, vjp(grad_texts)[0]), None

    grads, _ = jax.lax.scan(pull_back, jax.tree.map(jnp.zeros_like, params), (index, *chunks))
    return (loss, metrics), grads


def make_grad_cache_step(
    objective: ContrastiveObjective, tx, schedule, chunk: int, shards: int = 1, batch_axes=None
) -> Callable:
    def step(state: TrainState, batch, key):
        rng = jax.random.fold_in(key, state.step)
        (loss, metrics), grads = grad_cache_gradients(
            objective, state.params, batch, rng, chunk, shards, batch_axes
        )
        return apply_gradients(state, grads, loss, metrics, tx, schedule)

    return step
