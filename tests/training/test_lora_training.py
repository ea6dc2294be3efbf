"""Task LoRA adapters trained, selected and exported, on a tiny random BERT with the
all-MiniLM-L6-v2 tokenizer: a few real train steps (queries/passages through two adapters, one
text-matching dataset through a third, a fourth never trained), then

- B = 0 at step 0: every adapter embeds exactly as the base model;
- after the steps the base and the untrained adapter are bit-identical, the others moved;
- the merged weights (what ``encode`` runs) embed as the unmerged training branch;
- tasks give different embeddings, and an unknown task is an error naming the known ones;
- exports (merged, and PEFT folders) reload into jina_jax with the same embeddings, and into
  transformers' ``BertModel`` with the PEFT factors merged by hand (peft's own rule,
  ``W += lora_alpha / r * B @ A``, on the modules named in the files)."""

from __future__ import annotations

import json
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jina_jax import config_lib
from jina_jax import sharding as shd
from jina_jax.data.pipeline import contrastive_batch
from jina_jax.embedders import ModelEmbedder
from jina_jax.encoding import encode
from jina_jax.hf.io import save_hf
from jina_jax.loading import load_model, load_tokenizer
from jina_jax.model import Model
from jina_jax.models import BertConfig, lora
from jina_jax.training.loop import init_state, jit_train_step
from jina_jax.training.objectives import LoraObjective
from jina_jax.training.optim import make_optimizer
from jina_jax.training.step import make_train_step

# A standard BERT (absolute positions, plain MLP), so that transformers' BertModel loads exports.
CONFIG = BertConfig(
    vocab_size=30522,
    hidden_size=32,
    num_layers=2,
    num_heads=4,
    intermediate_size=64,
    feed_forward_type="original",
    position_embedding_type="absolute",
    max_position_embeddings=64,
    add_pooler=False,
)
TASKS = ("retrieval.query", "retrieval.passage", "text-matching", "separation")
TRAINED = TASKS[:3]
RANK, ALPHA = 4, 8.0
LENGTH = 24


def _cosines(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


def _relative(a, b):
    """Per row, ``|a - b| / |b|``."""
    return np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)


def _model(tokenizer, params) -> Model:
    adapters = lora.Adapters(params["lora"], RANK, ALPHA)
    return Model(CONFIG, params["base"], tokenizer, max_length=LENGTH, adapters=adapters)


@pytest.fixture(scope="module")
def run(real_sentences):
    """Four steps: qa pairs (retrieval.query -> retrieval.passage) and paraphrase pairs
    (text-matching both sides), alternately; returns the params before and after."""
    tokenizer = load_tokenizer("all-MiniLM-L6-v2")
    objective = LoraObjective(CONFIG, rank=RANK, alpha=ALPHA, tasks=TASKS, temperature=0.05)
    opt = config_lib.optimizer(1e-2, 0, schedule="constant", weight_decay=0.01)
    tx, schedule = make_optimizer(opt, 4, objective.optimizer_groups())
    mesh = shd.make_mesh({"data": 1}, devices=jax.devices()[:1])
    key = jax.random.key(0)
    state = init_state(objective, tx, mesh, shd.DEFAULT_RULES, key)
    start = jax.tree.map(np.array, state.params)  # copies: the state is donated to the step
    step = jit_train_step(make_train_step(objective, tx, schedule), state)

    def batch(i: int) -> dict:
        texts = real_sentences[8 * i : 8 * i + 8]
        if i % 2 == 0:
            queries, docs, (q, p) = [" ".join(t.split()[:4]) for t in texts], texts, (0, 1)
        else:
            queries, docs, (q, p) = texts, [" ".join(t.split()[::-1]) for t in texts], (2, 2)
        q_ids, _ = tokenizer.encode_batch(queries, LENGTH)
        d_ids, _ = tokenizer.encode_batch(docs, LENGTH)
        b = contrastive_batch(
            q_ids, d_ids, max_length=LENGTH, pad_id=0, pack=False, fixed_length=True
        )
        out = {k: v for k, v in b.items() if isinstance(v, np.ndarray) and v.ndim}
        return {**out, "query_adapter": jnp.int32(q), "passage_adapter": jnp.int32(p)}

    losses = []
    with jax.set_mesh(mesh):
        for i in range(4):
            state, metrics = step(state, shd.global_batch(batch(i), mesh), key)
            losses.append(float(metrics["loss"]))
    assert all(np.isfinite(losses))
    trained = jax.tree.map(np.asarray, state.params)
    opt_leaves = jax.tree.leaves(state.opt_state)
    return dict(
        tokenizer=tokenizer,
        objective=objective,
        start=start,
        trained=trained,
        opt_size=sum(np.size(x) for x in opt_leaves),
        texts=real_sentences[40:56],
    )


def test_zero_b_adapters_leave_embeddings_unchanged(run):
    start, texts = run["start"], run["texts"]
    for task in TASKS:
        assert not any(np.any(f["b"]) for f in start["lora"][task].values())
        assert all(np.abs(f["a"]).max() > 0 for f in start["lora"][task].values())
    model = _model(run["tokenizer"], start)
    base = encode(model, texts)
    for task in TASKS:
        np.testing.assert_array_equal(encode(model, texts, adapter=task), base)
    # the training branch, unmerged, too
    branch = _branch_embeddings(run, start, "retrieval.query")
    np.testing.assert_allclose(branch, base, atol=1e-6)


def test_training_updates_only_adapter_params(run):
    start, trained = run["start"], run["trained"]
    # the frozen base: bit-identical after four AdamW steps with weight decay
    jax.tree.map(np.testing.assert_array_equal, trained["base"], start["base"])
    for task in TRAINED:
        moved = [np.abs(trained["lora"][task][p]["b"]).max() for p in start["lora"][task]]
        assert min(moved) > 1e-3, task  # every adapted module of a trained task moved
    # an adapter no batch selected: not even weight decay or momentum touched it
    jax.tree.map(
        np.testing.assert_array_equal, trained["lora"]["separation"], start["lora"]["separation"]
    )
    # no optimiser state for the base: only the adapters' Adam moments (and counts)
    adapter_size = sum(np.size(x) for x in jax.tree.leaves(start["lora"]))
    base_size = sum(np.size(x) for x in jax.tree.leaves(start["base"]))
    assert run["opt_size"] < 2 * adapter_size + 100 < base_size


def _branch_embeddings(run, params, task: str) -> np.ndarray:
    """Mean-pooled embeddings of the unmerged model: the frozen kernels plus the low-rank
    branch (the training path), pooled here by hand."""
    ids, _ = run["tokenizer"].encode_batch(run["texts"], LENGTH)
    grid = np.zeros((len(ids), LENGTH), np.int32)
    mask = np.zeros_like(grid)
    for i, row in enumerate(ids):
        grid[i, : len(row)], mask[i, : len(row)] = row, 1
    variables = {
        "params": params["base"],
        "lora": lora.as_collection(params["lora"][task], ALPHA, RANK),
    }
    module = run["objective"].module
    hidden = np.asarray(module.apply(variables, grid, mask)["last_hidden_state"], np.float64)
    return (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)


def test_merged_equals_unmerged_after_training(run):
    model = _model(run["tokenizer"], run["trained"])
    base = encode(model, run["texts"])
    for task in TRAINED:
        merged = encode(model, run["texts"], adapter=task)
        branch = _branch_embeddings(run, run["trained"], task)
        assert _cosines(merged, branch).min() >= 0.9999, task
        # merged == branch to float32 rounding; the adapter moved every text 100x further
        assert _relative(merged, branch).max() < 1e-4, task
        assert _relative(merged, base).min() > 1e-2, task


def test_tasks_differ_and_unknown_task_is_named(run):
    model = _model(run["tokenizer"], run["trained"])
    texts = run["texts"]
    query = encode(model, texts, adapter="retrieval.query")
    matching = encode(model, texts, adapter="text-matching")
    assert _relative(query, matching).min() > 1e-2
    # the embedder the evaluators use selects the same adapter
    embedder = ModelEmbedder(model, adapter="text-matching")
    np.testing.assert_allclose(
        embedder.embed(texts), matching / np.linalg.norm(matching, axis=1, keepdims=True), atol=1e-6
    )
    known = "retrieval.passage, retrieval.query, separation, text-matching"  # sorted
    with pytest.raises(
        ValueError, match=re.escape(f"no adapter 'retrieval.querry'; this model has {known}")
    ):
        encode(model, texts, adapter="retrieval.querry")
    with pytest.raises(ValueError, match=re.escape(f"no adapter 'query'; this model has {known}")):
        ModelEmbedder(model, adapter="query").embed(texts)


def _torch_embeddings(folder, tokenizer, texts, peft_folder=None):
    """transformers' BertModel from ``folder``, with a PEFT adapter folder merged into its
    Linear layers by hand, mean-pooled."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel

    hf = AutoModel.from_pretrained(str(folder)).eval()
    if peft_folder is not None:
        cfg = json.loads((peft_folder / "adapter_config.json").read_text())
        tensors = load_file(str(peft_folder / "adapter_model.safetensors"))
        assert cfg["peft_type"] == "LORA" and cfg["r"] == RANK and cfg["lora_alpha"] == ALPHA
        linears = {
            name
            for name, m in hf.named_modules()
            if isinstance(m, torch.nn.Linear) and ".layer." in name
        }
        # every Linear of attention and MLP, under its HF module name, and nothing else
        assert set(cfg["target_modules"]) == linears and len(linears) == 6 * CONFIG.num_layers
        assert len(tensors) == 2 * len(linears)
        with torch.no_grad():
            for name in cfg["target_modules"]:
                linear = hf.get_submodule(name)
                a = tensors[f"base_model.model.{name}.lora_A.weight"]
                b = tensors[f"base_model.model.{name}.lora_B.weight"]
                assert a.shape == (cfg["r"], linear.in_features)
                assert b.shape == (linear.out_features, cfg["r"])
                linear.weight += cfg["lora_alpha"] / cfg["r"] * (b @ a)
    ids, _ = tokenizer.encode_batch(texts, LENGTH)
    grid = np.zeros((len(ids), max(map(len, ids))), np.int64)
    mask = np.zeros_like(grid)
    for i, row in enumerate(ids):
        grid[i, : len(row)], mask[i, : len(row)] = row, 1
    with torch.no_grad():
        hidden = hf(input_ids=torch.from_numpy(grid), attention_mask=torch.from_numpy(mask))
    hidden = hidden.last_hidden_state.numpy().astype(np.float64)
    return (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)


def test_export_merged_and_peft_reload_with_same_embeddings(run, tmp_path):
    model = _model(run["tokenizer"], run["trained"])
    texts = run["texts"]
    expected = {task: encode(model, texts, adapter=task) for task in TASKS}

    merged_dir = save_hf(model, tmp_path / "merged", adapter="retrieval.query")
    assert not (merged_dir / "adapters").exists()
    merged = load_model(merged_dir)
    assert merged.adapters is None
    np.testing.assert_allclose(encode(merged, texts), expected["retrieval.query"], atol=1e-5)
    torch_merged = _torch_embeddings(merged_dir, run["tokenizer"], texts)
    assert _cosines(torch_merged, expected["retrieval.query"]).min() >= 0.9999

    peft_dir = save_hf(model, tmp_path / "peft", peft=True)
    for task in TASKS:
        folder = peft_dir / "adapters" / task
        assert {p.name for p in folder.iterdir()} == {
            "adapter_config.json",
            "adapter_model.safetensors",
        }
    reloaded = load_model(peft_dir)
    assert sorted(reloaded.adapters.tasks) == sorted(TASKS)
    np.testing.assert_allclose(encode(reloaded, texts), encode(model, texts), atol=1e-6)
    for task in TASKS:
        np.testing.assert_allclose(encode(reloaded, texts, adapter=task), expected[task], atol=1e-5)
    task = "text-matching"
    torch_peft = _torch_embeddings(
        peft_dir, run["tokenizer"], texts, peft_folder=peft_dir / "adapters" / task
    )
    assert _cosines(torch_peft, expected[task]).min() >= 0.9999
    assert _relative(torch_peft, expected["retrieval.query"]).min() > 1e-2
    # one adapter alone
    single = save_hf(model, tmp_path / "one", peft=True, adapter="separation")
    assert [p.name for p in (single / "adapters").iterdir()] == ["separation"]
    with pytest.raises(
        ValueError,
        match=re.escape(
            "no adapter 'nope'; this model has retrieval.passage, retrieval.query, sep"
        ),
    ):
        save_hf(model, tmp_path / "bad", adapter="nope")


def test_unboxed_init_matches_objective(run):
    """The objective's adapters cover exactly the model's attention and MLP kernels."""
    shapes = jax.eval_shape(lambda: nn.meta.unbox(run["objective"].init(jax.random.key(0))))
    assert sorted(shapes["lora"]) == sorted(TASKS)
    assert set(shapes["lora"]["separation"]) == {
        f"layer_{i}/{m}"
        for i in range(CONFIG.num_layers)
        for m in (
            "attention/query",
            "attention/key",
            "attention/value",
            "attention/output",
            "mlp/intermediate",
            "mlp/wo",
        )
    }
