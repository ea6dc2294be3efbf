"""The train step: embedding and MLM objectives, one jitted step over the global batch, and the
GradCache variant.

The step sees global arrays sharded over the mesh; the similarity matrix is an ordinary matmul
over the whole batch and the compiler writes the all-gathers and their gradients. Dropout keys
are ``fold_in(seed_key, step)``: with partitionable threefry each device draws its own slice of
the mask, so every host passes the same key (host-side randomness, such as MLM masking, is
seeded by step and host instead).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jina_jax import losses
from jina_jax.metrics import encoder_forward_flops
from jina_jax.models import BertForMaskedLM, EncoderConfig, build_encoder
from jina_jax.models.pooling import pool, segment_pool


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any


# --------------------------------------------------------------------------- objectives


@dataclasses.dataclass(frozen=True)
class ContrastiveObjective:
    """Pairs (q, p) and items with hard negatives (q, p, n_1..n_K).

    ``loss="infonce"``: bidirectional InfoNCE, hard negatives added to the q->p denominator (v2).
    ``loss="v1"``: the same plus the triplet margin term (jina-embeddings-v1, stage 2).
    """

    model: EncoderConfig
    pooling: str = "mean"
    loss: str = "infonce"
    temperature: float = 0.05
    margin: float = 0.05
    triplet_weight: float = 1.0
    bidirectional: bool = True

    @property
    def module(self) -> nn.Module:
        return build_encoder(self.model)

    def init(self, rng: jax.Array, length: int = 8):
        ids = jnp.zeros((1, length), jnp.int32)
        return self.module.init(rng, ids, jnp.ones_like(ids))["params"]

    def embed(self, params, ids, mask, rng, train: bool) -> jax.Array:
        """``ids [N, L]`` -> float32 ``[N, D]`` pooled embeddings."""
        rngs = {"dropout": rng} if train else {}
        out = self.module.apply({"params": params}, ids, mask, deterministic=not train, rngs=rngs)
        return pool(out["last_hidden_state"], mask, self.pooling)

    def embed_packed(self, params, batch, rng, train: bool) -> jax.Array:
        """Packed rows ``packed_ids/segments/positions [R, L]`` -> ``[N, D]`` in text order:
        the queries, then the documents (see ``jina_jax.data.pipeline.pack_sequences``)."""
        segments, positions = batch["packed_segments"], batch["packed_positions"]
        rngs = {"dropout": rng} if train else {}
        out = self.module.apply(
            {"params": params},
            batch["packed_ids"],
            segments > 0,
            deterministic=not train,
            rngs=rngs,
            segment_ids=segments,
            position_ids=positions,
        )
        count = batch["query_lengths"].shape[0] + batch["docs_lengths"].shape[0]
        return segment_pool(out["last_hidden_state"], segments, positions, count, self.pooling)

    @staticmethod
    def documents(batch) -> tuple[jax.Array, jax.Array, int]:
        """Positives then all hard negatives, ``[B * (1 + K), L]``: the ``p p .. n n ..`` layout
        the loss's labels assume."""
        pos_ids, pos_mask = batch["pos_ids"], batch["pos_mask"]
        if "neg_ids" not in batch:
            return pos_ids, pos_mask, 0
        neg_ids, neg_mask = batch["neg_ids"], batch["neg_mask"]
        b, k, neg_len = neg_ids.shape
        length = max(pos_ids.shape[1], neg_len)

        def pad(x):
            return jnp.pad(x, ((0, 0), (0, length - x.shape[1])))

        ids = jnp.concatenate([pad(pos_ids), pad(neg_ids.reshape(b * k, neg_len))])
        mask = jnp.concatenate([pad(pos_mask), pad(neg_mask.reshape(b * k, neg_len))])
        return ids, mask, k

    def loss_from_embeddings(self, q, docs, k: int, in_batch_negatives):
        b = q.shape[0]
        p = docs[:b]
        n = docs[b:].reshape(b, k, -1) if k else None
        if self.loss == "v1" and n is not None:
            return losses.v1_hard_negative_loss(
                q,
                p,
                n,
                temperature=self.temperature,
                margin=self.margin,
                triplet_weight=self.triplet_weight,
            )
        if self.loss not in ("infonce", "v1"):
            raise ValueError(f"unknown contrastive loss {self.loss!r}; use infonce or v1")
        return losses.infonce_loss(
            q,
            p,
            temperature=self.temperature,
            negatives=n,
            in_batch_negatives=in_batch_negatives,
            bidirectional=self.bidirectional,
        )

    def __call__(self, params, batch, rng, train: bool = True):
        rq, rd = jax.random.split(rng)
        if "packed_segments" in batch:  # queries and documents packed into shared rows
            b = batch["query_lengths"].shape[0]
            texts = self.embed_packed(params, batch, rq, train)
            q, docs = texts[:b], texts[b:]
            k = docs.shape[0] // b - 1
        else:
            q = self.embed(params, batch["query_ids"], batch["query_mask"], rq, train)
            ids, mask, k = self.documents(batch)
            docs = self.embed(params, ids, mask, rd, train)
        return self.loss_from_embeddings(q, docs, k, batch.get("in_batch_negatives", True))

    ID_KEYS = ("query_ids", "pos_ids", "neg_ids", "packed_ids")

    def tokens(self, batch) -> int:
        """Token slots the encoder ran (padding included)."""
        return sum(batch[key].size for key in self.ID_KEYS if key in batch)

    def examples(self, batch) -> int:
        if "query_lengths" in batch:
            return batch["query_lengths"].shape[0]
        return batch["query_ids"].shape[0]

    def flops(self, batch) -> float:
        """Model FLOPs of a training step: forward + backward = 3 x forward."""
        total = 0.0
        for key in self.ID_KEYS:
            if key in batch:
                shape = batch[key].shape
                total += encoder_forward_flops(self.model, int(np.prod(shape[:-1])), shape[-1])
        return 3 * total


@dataclasses.dataclass(frozen=True)
class MLMObjective:
    """Masked-language-model pretraining of the backbone (inputs masked in the data pipeline)."""

    model: EncoderConfig
    max_mask_fraction: float = 0.5  # upper bound on masked tokens per row (30% is the default)

    @property
    def module(self) -> nn.Module:
        return BertForMaskedLM(self.model)

    def init(self, rng: jax.Array, length: int = 8):
        ids = jnp.zeros((1, length), jnp.int32)
        return self.module.init(rng, ids, jnp.ones_like(ids))["params"]

    def __call__(self, params, batch, rng, train: bool = True):
        rngs = {"dropout": rng} if train else {}
        labels = batch["labels"]
        # Only masked positions reach the vocabulary projection: the first `slots` of each row
        # after sorting masked positions first (slots > mask_prob * L, so none are dropped).
        slots = min(labels.shape[1], int(np.ceil(labels.shape[1] * self.max_mask_fraction)))
        positions = jnp.argsort(labels == losses.IGNORE_INDEX, axis=1, stable=True)[:, :slots]
        logits = self.module.apply(
            {"params": params},
            batch["input_ids"],
            batch["attention_mask"],
            deterministic=not train,
            rngs=rngs,
            positions=positions,
        )
        return losses.mlm_loss(logits, jnp.take_along_axis(labels, positions, axis=1))

    def tokens(self, batch) -> int:
        return batch["input_ids"].size

    def examples(self, batch) -> int:
        return batch["input_ids"].shape[0]

    def flops(self, batch) -> float:
        b, length = batch["input_ids"].shape
        slots = min(length, int(np.ceil(length * self.max_mask_fraction)))
        hidden = self.model.hidden_size
        head = 2 * b * slots * (hidden * hidden + hidden * self.model.vocab_size)
        return 3 * (encoder_forward_flops(self.model, b, length) + head)


# --------------------------------------------------------------------------- steps


def _apply_gradients(
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
        return _apply_gradients(state, grads, loss, metrics, tx, schedule)

    return step


def _chunks(x: jax.Array, size: int) -> jax.Array:
    if x.shape[0] % size:
        raise ValueError(f"GradCache chunk {size} does not divide batch dimension {x.shape[0]}")
    return x.reshape(x.shape[0] // size, size, *x.shape[1:])


def grad_cache_gradients(objective: ContrastiveObjective, params, batch, rng, chunk: int):
    """GradCache (Gao et al. 2021): the loss gradient of a large batch in chunk-sized memory.

    1. embed every chunk without keeping activations;
    2. differentiate the loss with respect to the embeddings only;
    3. re-embed chunk by chunk, pulling the embedding gradients back into the parameters.
    Chunk ``i`` uses dropout key ``fold_in(key, i)`` in both passes, so the two passes agree.
    """
    if "packed_segments" in batch:
        raise ValueError(
            "GradCache (grad_cache_chunk > 0) splits the batch by rows, which packed batches "
            "(pack=True) do not have; turn one of them off"
        )
    rq, rd = jax.random.split(rng)
    ids, mask, k = objective.documents(batch)
    groups = [
        (_chunks(batch["query_ids"], chunk), _chunks(batch["query_mask"], chunk), rq),
        (_chunks(ids, chunk), _chunks(mask, chunk), rd),
    ]

    def embed_all(ids_c, mask_c, key):
        def one(xs):
            i, ids_i, mask_i = xs
            return jax.lax.stop_gradient(
                objective.embed(params, ids_i, mask_i, jax.random.fold_in(key, i), True)
            )

        index = jnp.arange(ids_c.shape[0])
        out = jax.lax.map(one, (index, ids_c, mask_c))  # [n_chunks, chunk, D]
        return out.reshape(-1, out.shape[-1])

    q, docs = (embed_all(*g) for g in groups)
    in_batch = batch.get("in_batch_negatives", True)
    (loss, metrics), (grad_q, grad_docs) = jax.value_and_grad(
        lambda q_, d_: objective.loss_from_embeddings(q_, d_, k, in_batch),
        argnums=(0, 1),
        has_aux=True,
    )(q, docs)

    grads = jax.tree.map(jnp.zeros_like, params)
    for (ids_c, mask_c, key), g in zip(groups, (grad_q, grad_docs)):

        def pull_back(grads, xs, key=key):
            i, ids_i, mask_i, g_i = xs
            _, vjp = jax.vjp(
                lambda p: objective.embed(p, ids_i, mask_i, jax.random.fold_in(key, i), True),
                params,
            )
            return jax.tree.map(jnp.add, grads, vjp(g_i)[0]), None

        index = jnp.arange(ids_c.shape[0])
        grads, _ = jax.lax.scan(pull_back, grads, (index, ids_c, mask_c, _chunks(g, chunk)))
    return (loss, metrics), grads


def make_grad_cache_step(objective: ContrastiveObjective, tx, schedule, chunk: int) -> Callable:
    def step(state: TrainState, batch, key):
        rng = jax.random.fold_in(key, state.step)
        (loss, metrics), grads = grad_cache_gradients(objective, state.params, batch, rng, chunk)
        return _apply_gradients(state, grads, loss, metrics, tx, schedule)

    return step
