"""Task LoRA adapters as functions over parameter trees: which kernels are adapted, the merge
against numpy by hand (2-D, head-shaped and scanned kernels), the training branch against the
merge, a zero B changing nothing, and the PEFT tensors against the HF weights by hand."""

from __future__ import annotations

import dataclasses
import functools
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jina_jax.hf.io import params_to_hf, peft_tensors
from jina_jax.model import Model
from jina_jax.models import BertConfig, T5Config, build_encoder, init_params, lora
from jina_jax.models.layers import Dense

BERT = BertConfig(
    vocab_size=64,
    hidden_size=24,
    num_layers=2,
    num_heads=3,
    intermediate_size=40,
    add_pooler=False,
)
T5 = T5Config(vocab_size=64, d_model=24, d_kv=6, d_ff=40, num_layers=2, num_heads=3)
TASKS = ("retrieval.query", "text-matching")


@functools.cache
def _params(config, seed=0):
    init = jax.jit(lambda key: nn.meta.unbox(init_params(config, key)))
    return jax.tree.map(np.asarray, init(jax.random.key(seed)))


def _shapes(config):
    return jax.eval_shape(lambda: nn.meta.unbox(init_params(config, jax.random.key(0))))


def _nonzero_b(adapters, seed=1):
    """B filled with random values (a trained adapter), so that merges change something."""
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map_with_path(
        lambda p, x: (
            rng.normal(0, 0.3, np.shape(x)).astype(np.float32)
            if p[-1].key == "b"
            else np.asarray(x)
        ),
        adapters,
    )


@pytest.mark.parametrize(
    ("in_shape", "features", "in_axes", "out_axes"),
    [
        ((5,), 7, ("embed",), ("mlp",)),  # a plain [in, out] projection
        ((5,), (2, 3), ("embed",), ("heads", "kv")),  # query/key/value: [H, heads, kv]
        ((2, 3), 5, ("heads", "kv"), ("embed",)),  # attention output: [heads, kv, H]
    ],
    ids=["2d", "head-out", "head-in"],
)
def test_dense_branch_by_hand(in_shape, features, in_axes, out_axes):
    """One Dense with a LoRA branch: x W + b + (alpha/r) (x A) B, against numpy by hand."""
    rng = np.random.default_rng(0)
    dense = Dense(features, in_axes, out_axes)
    x = rng.normal(size=(4, 3, *in_shape)).astype(np.float32)
    w = rng.normal(size=(*in_shape, *np.atleast_1d(features))).astype(np.float32)
    bias = rng.normal(size=np.atleast_1d(features)).astype(np.float32)
    fan_in, fan_out = int(np.prod(in_shape)), int(np.prod(features))
    rank, alpha = 3, 12.0
    a = rng.normal(size=(fan_in, rank)).astype(np.float32)
    b = rng.normal(size=(rank, fan_out)).astype(np.float32)
    branch = lora.as_collection({"dense": {"a": a, "b": b}}, alpha, rank)["dense"]
    y = dense.apply({"params": {"kernel": w, "bias": bias}, "lora": branch}, x)

    x2 = x.reshape(4, 3, fan_in).astype(np.float64)
    expected = x2 @ w.reshape(fan_in, fan_out) + bias.reshape(-1)
    expected += (alpha / rank) * (x2 @ a) @ b
    np.testing.assert_allclose(np.asarray(y).reshape(4, 3, fan_out), expected, rtol=1e-5, atol=1e-5)
    # the branch really adds something, and without it the layer is the plain projection
    plain = np.asarray(dense.apply({"params": {"kernel": w, "bias": bias}}, x))
    assert np.abs(plain - np.asarray(y)).max() > 1.0
    np.testing.assert_allclose(
        plain.reshape(4, 3, fan_out), x2 @ w.reshape(fan_in, fan_out) + bias.reshape(-1), atol=1e-5
    )


def test_targets_of_each_architecture():
    bert = lora.target_kernels(_shapes(BERT))
    assert sorted(bert) == sorted(
        f"layer_{i}/{m}"
        for i in range(2)
        for m in (
            "attention/query",
            "attention/key",
            "attention/value",
            "attention/output",
            "mlp/gated_layers",
            "mlp/wo",
        )
    )
    assert bert["layer_0/attention/query"] == (24, 3, 8)
    assert bert["layer_0/attention/output"] == (3, 8, 24)
    original = lora.target_kernels(_shapes(dataclasses.replace(BERT, feed_forward_type="original")))
    assert "layer_1/mlp/intermediate" in original and "layer_1/mlp/gated_layers" not in original
    scanned = lora.target_kernels(_shapes(dataclasses.replace(BERT, scan_layers=True)))
    assert scanned["layers/attention/query"] == (2, 24, 3, 8)
    gated = lora.target_kernels(_shapes(dataclasses.replace(T5, feed_forward_proj="gated-gelu")))
    assert {p.split("/", 1)[1] for p in gated} == {
        "attention/query",
        "attention/key",
        "attention/value",
        "attention/output",
        "mlp/wi_0",
        "mlp/wi_1",
        "mlp/wo",
    }
    only = lora.target_kernels(_shapes(BERT), targets=("query", "value"))
    assert sorted(only) == [
        f"layer_{i}/attention/{m}" for i in range(2) for m in ("query", "value")
    ]


@pytest.mark.parametrize("scan", [False, True])
def test_factor_shapes_and_init(scan):
    params = _params(dataclasses.replace(BERT, scan_layers=scan))
    adapters = _init_lora(params, rank=4, tasks=TASKS, rng=jax.random.key(0))
    assert tuple(adapters) == TASKS
    prefix = "layers" if scan else "layer_0"
    lead = (2,) if scan else ()
    query = adapters["text-matching"][f"{prefix}/attention/query"]
    output = adapters["text-matching"][f"{prefix}/attention/output"]
    gated = adapters["text-matching"][f"{prefix}/mlp/gated_layers"]
    assert query["a"].shape == (*lead, 24, 4) and query["b"].shape == (*lead, 4, 24)
    assert output["a"].shape == (*lead, 24, 4) and output["b"].shape == (*lead, 4, 24)
    assert gated["a"].shape == (*lead, 24, 4) and gated["b"].shape == (*lead, 4, 80)
    # PEFT's default init: A ~ U(-1/sqrt(in), 1/sqrt(in)), B = 0; tasks differ
    wo = adapters["text-matching"][f"{prefix}/mlp/wo"]
    assert np.abs(wo["a"]).max() <= 1 / np.sqrt(40) and np.abs(wo["a"]).max() > 0.5 / np.sqrt(40)
    assert not np.any(np.asarray(wo["b"]))
    other = adapters["retrieval.query"][f"{prefix}/mlp/wo"]
    assert not np.array_equal(np.asarray(other["a"]), np.asarray(wo["a"]))


@pytest.mark.parametrize("scan", [False, True])
def test_merge_by_hand(scan):
    """W + alpha/r A @ B, reshaped to the kernel: 2-D ([I, H]), head-shaped ([H, heads, kv] and
    [heads, kv, H]) and stacked over layers, against numpy by hand."""
    params = _params(dataclasses.replace(BERT, scan_layers=scan))
    adapters = _nonzero_b(_init_lora(params, rank=3, tasks=TASKS, rng=jax.random.key(1)))
    task = adapters["retrieval.query"]
    merged = lora.merge_jit(params, task, alpha=6.0, rank=3)
    scale = 2.0
    prefix = "layers" if scan else "layer_1"
    layers = range(2) if scan else [None]
    for path, (fan_in, fan_out) in {
        f"{prefix}/attention/query": (24, 24),
        f"{prefix}/attention/output": (24, 24),
        f"{prefix}/mlp/wo": (40, 24),
    }.items():
        module = path.split("/")
        w = params
        m = merged
        for key in module:
            w, m = w[key], m[key]
        w, m = np.asarray(w["kernel"], np.float64), np.asarray(m["kernel"], np.float64)
        a, b = np.asarray(task[path]["a"], np.float64), np.asarray(task[path]["b"], np.float64)
        for layer in layers:
            wl, ml = (w, m) if layer is None else (w[layer], m[layer])
            al, bl = (a, b) if layer is None else (a[layer], b[layer])
            expected = wl.reshape(fan_in, fan_out) + scale * al @ bl
            np.testing.assert_allclose(ml.reshape(fan_in, fan_out), expected, atol=1e-5)
    # untouched: norms, embeddings, and the input tree itself
    np.testing.assert_array_equal(
        merged["embeddings"]["word_embeddings"]["embedding"],
        params["embeddings"]["word_embeddings"]["embedding"],
    )
    assert params is not merged
    again = _params.__wrapped__(dataclasses.replace(BERT, scan_layers=scan))
    jax.tree.map(np.testing.assert_array_equal, params, again)


def _init_lora(params, *, rank, tasks, rng):
    init = jax.jit(functools.partial(lora.init_lora, rank=rank, tasks=tasks))
    return jax.tree.map(np.asarray, init(params, rng=rng))


@functools.cache
def _apply(config):
    module = build_encoder(config)
    return jax.jit(lambda v, ids: module.apply(v, ids, jnp.ones_like(ids))["last_hidden_state"])


def _hidden(config, variables, ids):
    return np.asarray(_apply(config)(variables, ids))


@pytest.mark.parametrize(
    "config",
    [dataclasses.replace(BERT, scan_layers=True), T5],
    ids=["bert-scan", "t5"],  # unscanned BERT: tests/training/test_lora_training.py
)
def test_branch_equals_merged_and_zero_b_is_identity(config):
    params = _params(config)
    ids = jnp.asarray(np.random.default_rng(0).integers(1, 64, (2, 9)), jnp.int32)
    fresh = _init_lora(params, rank=4, tasks=TASKS, rng=jax.random.key(2))["text-matching"]
    base = _hidden(config, {"params": params}, ids)
    # B = 0: both the merged weights and the training branch give the base model exactly
    merged0 = lora.merge_jit(params, fresh, alpha=8.0, rank=4)
    np.testing.assert_array_equal(_hidden(config, {"params": merged0}, ids), base)
    branch0 = {"params": params, "lora": lora.as_collection(fresh, 8.0, 4)}
    np.testing.assert_allclose(_hidden(config, branch0, ids), base, atol=1e-6)
    # trained B: the branch x W + (x A)(s B) equals the merged kernel
    trained = _nonzero_b({"t": fresh})["t"]
    merged = _hidden(config, {"params": lora.merge_jit(params, trained, alpha=8.0, rank=4)}, ids)
    branch = _hidden(config, {"params": params, "lora": lora.as_collection(trained, 8.0, 4)}, ids)
    assert np.abs(merged - base).max() > 1e-2
    np.testing.assert_allclose(branch, merged, atol=2e-5)


def test_model_params_for_caches_and_checks(tmp_path):
    params = _params(BERT)
    adapters = _nonzero_b(_init_lora(params, rank=2, tasks=TASKS, rng=jax.random.key(0)))
    model = Model(BERT, params, tokenizer=None, adapters=lora.Adapters(adapters, 2, 2.0))
    assert model.params_for(None) is params
    first = model.params_for("text-matching")
    assert model.params_for("text-matching") is first  # merged once
    copy = dataclasses.replace(model)
    assert copy._merged == {}
    with pytest.raises(
        ValueError, match=re.escape("no adapter 'nope'; this model has retrieval.query")
    ):
        model.params_for("nope")
    with pytest.raises(ValueError, match="has no adapters"):
        Model(BERT, params, tokenizer=None).params_for("text-matching")


@pytest.mark.parametrize(
    "config",
    [
        BERT,
        dataclasses.replace(BERT, scan_layers=True, feed_forward_type="original"),
        dataclasses.replace(T5, scan_layers=True, feed_forward_proj="gated-gelu"),
    ],
    ids=["bert", "bert-original-scan", "t5-gated-scan"],
)
def test_peft_tensors_merge_into_hf_weights_by_hand(config):
    """The PEFT tensors, merged into the exported HF weights as PEFT merges them
    (W += alpha/r lora_B @ lora_A), give the export of the merged model."""
    params = _params(config)
    adapters = _nonzero_b(_init_lora(params, rank=3, tasks=TASKS, rng=jax.random.key(3)))
    model = Model(config, params, tokenizer=None, adapters=lora.Adapters(adapters, 3, 1.5))
    tensors = peft_tensors(model, "retrieval.query")
    hf = params_to_hf(params, config)
    expected = params_to_hf(model.params_for("retrieval.query"), config)
    merged = {k: v.astype(np.float64) for k, v in hf.items()}
    modules = {k.rsplit(".lora_", 1)[0] for k in tensors}
    assert len(tensors) == 2 * len(modules)
    for module in modules:
        a, b = tensors[f"{module}.lora_A.weight"], tensors[f"{module}.lora_B.weight"]
        assert a.shape[0] == 3 and b.shape[1] == 3
        name = module.removeprefix("base_model.model.") + ".weight"
        merged[name] += 0.5 * b.astype(np.float64) @ a.astype(np.float64)
    changed = 0
    for name in hf:
        np.testing.assert_allclose(merged[name], expected[name], atol=1e-5, err_msg=name)
        changed += not np.allclose(hf[name], expected[name])
    assert changed == len(modules)
