"""The train step: sharded == single device (data parallel, FSDP, data x tensor), GradCache ==
plain gradients, optimiser rules."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from jina_jax import config_lib
from jina_jax import sharding as shd
from jina_jax.data.pipeline import contrastive_batch
from jina_jax.models import BertConfig
from jina_jax.training.loop import init_state, jit_train_step
from jina_jax.training.objectives import ContrastiveObjective
from jina_jax.training.optim import make_optimizer, weight_decay_mask
from jina_jax.training.step import grad_cache_gradients, make_train_step

TINY = BertConfig(
    vocab_size=96,
    hidden_size=32,
    num_layers=2,
    num_heads=4,
    intermediate_size=64,
    hidden_dropout=0.1,
    add_pooler=False,
)
OPT = config_lib.optimizer(1e-3, 2, schedule="linear", weight_decay=0.01)


def _batch(b=8, k=2, seed=0, pack=False, row_multiple=1):
    """Random token texts of ragged lengths: b queries (<= 12 tokens), b positives and b x k
    hard negatives (<= 16), one text per row (or packed)."""
    rng = np.random.default_rng(seed)

    def texts(n, length):
        return [
            rng.integers(1, 96, size=length - rng.integers(0, 5)).astype(np.int32) for _ in range(n)
        ]

    batch = contrastive_batch(
        texts(b, 12),
        texts(b, 16) + texts(b * k, 16),
        max_length=16,
        pad_id=0,
        pack=pack,
        row_multiple=row_multiple,
    )
    return {key: v for key, v in batch.items() if isinstance(v, np.ndarray) and v.ndim}


def _run_step(mesh, objective, init, batch):
    tx, schedule = make_optimizer(OPT, total_steps=10)
    key = jax.random.key(0)
    state = init_state(objective, tx, mesh, shd.DEFAULT_RULES, key, init)
    step = jit_train_step(make_train_step(objective, tx, schedule), state)
    with jax.set_mesh(mesh):
        gbatch = shd.global_batch(batch, mesh)
        state, metrics = step(state, gbatch, key)
        state, metrics = step(state, gbatch, key)  # two steps: optimiser state matters too
    return float(metrics["loss"]), jax.tree.map(np.asarray, state.params), state


@pytest.fixture(scope="module")
def reference():
    objective = ContrastiveObjective(TINY, temperature=0.05)
    init = jax.tree.map(
        np.asarray,
        jax.device_get(__import__("flax").linen.meta.unbox(objective.init(jax.random.key(42)))),
    )
    batch = _batch()
    single = shd.make_mesh({"data": 1}, devices=jax.devices()[:1])
    loss, params, _ = _run_step(single, objective, init, batch)
    return objective, init, batch, loss, params


@pytest.mark.parametrize(
    ("name", "mesh_shape", "expect"),
    [
        ("data", {"data": 8}, {"embed": None}),
        ("fsdp", {"data": 1, "fsdp": 8}, {"embed": "fsdp"}),
        ("data_x_tensor", {"data": 4, "tensor": 2}, {"heads": "tensor"}),
    ],
)
def test_sharded_step_equals_single_device(reference, name, mesh_shape, expect):
    assert len(jax.devices()) == 8
    objective, init, batch, ref_loss, ref_params = reference
    mesh = shd.make_mesh(mesh_shape)
    loss, params, state = _run_step(mesh, objective, init, batch)
    assert abs(loss - ref_loss) <= 1e-5 * max(1.0, abs(ref_loss)), (loss, ref_loss)
    for (path, a), b in zip(
        jax.tree_util.tree_flatten_with_path(params)[0], jax.tree.leaves(ref_params)
    ):
        np.testing.assert_allclose(a, b, atol=1e-5, err_msg=jax.tree_util.keystr(path))
    # the parameters really are laid out as the rules say
    query = state.params["layer_0"]["attention"]["query"]["kernel"]  # [embed, heads, kv]
    spec = query.sharding.spec
    if "embed" in expect:
        assert (spec[0] if len(spec) else None) == expect["embed"]
    if "heads" in expect:
        assert spec[1] == expect["heads"]


def test_grad_cache_equals_plain_gradients(reference):
    objective, init, batch, *_ = reference
    objective = ContrastiveObjective(
        BertConfig(**{**TINY.__dict__, "hidden_dropout": 0.0}), temperature=0.05
    )
    rng = jax.random.key(7)
    gbatch = {k: jax.numpy.asarray(v) for k, v in batch.items()}
    (loss, _), plain = jax.jit(jax.value_and_grad(objective, has_aux=True))(init, gbatch, rng)
    (loss_gc, _), cached = jax.jit(
        lambda p, b, r: grad_cache_gradients(objective, p, b, r, chunk=2)
    )(init, gbatch, rng)
    assert abs(float(loss) - float(loss_gc)) <= 1e-6
    flat_plain, flat_cached = jax.tree.leaves(plain), jax.tree.leaves(cached)
    num = np.sqrt(
        sum(np.sum((np.asarray(a) - np.asarray(b)) ** 2) for a, b in zip(flat_plain, flat_cached))
    )
    den = np.sqrt(sum(np.sum(np.asarray(a) ** 2) for a in flat_plain))
    assert num / den <= 1e-5, num / den


def test_weight_decay_mask_and_schedule():
    params = {
        "layer": {"kernel": 1.0, "bias": 2.0},
        "norm": {"scale": 1.0, "bias": 0.0},
        "emb": {"embedding": 3},
    }
    assert weight_decay_mask(params) == {
        "layer": {"kernel": True, "bias": False},
        "norm": {"scale": False, "bias": False},
        "emb": {"embedding": True},
    }
    _, schedule = make_optimizer(config_lib.optimizer(1.0, 4, schedule="linear"), 12)
    # warmup 0 -> 1 over 4 steps, then linear to 0 over the remaining 8
    np.testing.assert_allclose(
        [float(schedule(s)) for s in (0, 2, 4, 8, 12)], [0, 0.5, 1.0, 0.5, 0.0], atol=1e-6
    )
