"""The MLM objective: logits at masked positions only give the same loss and gradients as the
full [B, L, V] projection, and the tied decoder is the word-embedding table."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import torch

from jina_jax.data.masking import IGNORE_INDEX
from jina_jax.models import BertConfig, BertForMaskedLM
from jina_jax.training.objectives import MLMObjective

CONFIG = BertConfig(vocab_size=50, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)


def _batch():
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 50, (3, 10)).astype(np.int32)
    labels = np.full((3, 10), IGNORE_INDEX, np.int32)
    for row, cols in enumerate(([1, 4, 7], [0], [2, 3, 5, 8])):
        labels[row, cols] = ids[row, cols]
        ids[row, cols] = 4  # [MASK]
    positions = np.broadcast_to(np.arange(10, dtype=np.int32), ids.shape)
    return {"ids": ids, "segments": np.ones_like(ids), "positions": positions, "labels": labels}


def test_masked_positions_only_equals_full_projection():
    objective = MLMObjective(CONFIG)
    params = nn.meta.unbox(objective.init(jax.random.key(0)))
    batch = {k: jnp.asarray(v) for k, v in _batch().items()}

    def full_loss(p):
        logits = BertForMaskedLM(CONFIG).apply({"params": p}, batch["ids"], batch["segments"])
        # independent reference: torch cross-entropy over every position, ignoring -100
        return logits

    logits = np.asarray(full_loss(params))
    ref = torch.nn.functional.cross_entropy(
        torch.as_tensor(logits).reshape(-1, 50),
        torch.as_tensor(np.asarray(batch["labels"])).reshape(-1).long(),
        ignore_index=IGNORE_INDEX,
    )
    loss, metrics = objective(params, batch, jax.random.key(1), train=False)
    assert abs(float(loss) - float(ref)) < 1e-5
    assert int(metrics["num_masked"]) == 8
    # gradients agree with the full-projection loss
    from jina_jax.losses import mlm_loss

    g_full = jax.jit(jax.grad(lambda p: mlm_loss(full_loss(p), batch["labels"])[0]))(params)
    g_ours = jax.jit(jax.grad(lambda p: objective(p, batch, jax.random.key(1), train=False)[0]))(
        params
    )
    for a, b in zip(jax.tree.leaves(g_full), jax.tree.leaves(g_ours)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    # the decoder is tied: the word embeddings get gradient from the output projection too
    table = params["bert"]["embeddings"]["word_embeddings"]["embedding"]
    assert "decoder" not in params["cls"] and table.shape == (50, 16)


def test_an_mlm_stage_loads_as_its_encoder():
    """load_model on an MLM stage folder: the encoder under "bert" (its "cls" head dropped)
    has exactly the tree and shapes of the encoder model.json describes."""
    import dataclasses

    from jina_jax.checkpoints import abstract_params, check_params_match, encoder_params

    params = nn.meta.unbox(MLMObjective(CONFIG).init(jax.random.key(0)))
    encoder = encoder_params(params)
    assert encoder is params["bert"]
    recorded = dataclasses.replace(CONFIG, add_pooler=False)  # as the MLM stage's model.json
    check_params_match(encoder, recorded, source="test")  # raises on any missing/extra leaf
    shapes = jax.tree.map(lambda s: s.shape, abstract_params(recorded))
    assert jax.tree.map(np.shape, encoder) == shapes
