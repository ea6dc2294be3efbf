"""The main job on the demo config: stages run, write their outputs, and a rerun skips them."""

from __future__ import annotations

import json

import numpy as np
import pytest

import jina_jax
from jina_jax.data.stdlib_text import stdlib_sentences
from jina_jax.main import run


def _demo_config():
    import importlib.util

    spec = importlib.util.spec_from_file_location("io", "configs/import_export.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    config.unlock()
    config.sample_texts = 40
    return config


def test_demo_runs_and_resumes(tmp_path, capsys):
    config = _demo_config()
    results = run(config, tmp_path)
    assert results["verify_export"]["min_cosine"] >= 0.9999
    saved = np.load(tmp_path / "encode" / "embeddings.npy")
    reference = jina_jax.encode(jina_jax.load_model("all-MiniLM-L6-v2"), stdlib_sentences(40))
    np.testing.assert_allclose(saved, reference, atol=1e-5)
    done = (tmp_path / "encode" / "DONE").read_text()
    capsys.readouterr()
    again = run(config, tmp_path)
    out = capsys.readouterr().out
    assert out.count("already complete") == 4
    assert (tmp_path / "encode" / "DONE").read_text() == done
    assert again["encode"] == json.loads(done)


def _lora_config(folder, steps: int, stages=("lora", "export")):
    """A LoRA stage on a tiny random JinaBERT, from local pair files: qa pairs through
    retrieval.query -> retrieval.passage, paraphrases through text-matching; packed GradCache
    chunks as the local configs run it; then the export."""
    from ml_collections import ConfigDict

    from jina_jax import config_lib

    sentences = stdlib_sentences(120)
    for name, pairs in (
        ("qa", [(" ".join(s.split()[:4]), s) for s in sentences[:60]]),
        ("para", [(s, " ".join(s.split()[::-1])) for s in sentences[60:]]),
    ):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    c = config_lib.jina_v2_config("small", {"local"})
    c.unlock()
    c.stages = stages
    c.model.update(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64)
    c.lora.datasets = ConfigDict(
        {n: config_lib.dataset(str(folder / f"{n}.jsonl"), batch_size=8) for n in ("qa", "para")}
    )
    c.lora.adapters = ConfigDict({"para": ("text-matching", "text-matching")})
    c.lora.tasks = ("retrieval.query", "retrieval.passage", "text-matching")
    # one padded shape: one compilation
    c.lora.update(steps=steps, query_max_length=24, passage_max_length=24, log_every=1)
    c.lora.update(pack=False, pad_to_max_length=True, grad_cache_chunk=8)
    c.lora.checkpoint.update(every=2, keep=2)
    c.lora.optimizer.update(warmup_steps=0)  # step 0 (qa, in this draw) trains too
    c.lock()
    return c


@pytest.mark.slow  # two runs, each compiling a GradCache step (about a minute on 2 cores)
def test_lora_stage_trains_resumes_and_exports(tmp_path, capsys):
    from jina_jax import checkpoints
    from jina_jax.encoding import encode

    workdir = tmp_path / "run"
    results = run(_lora_config(tmp_path, steps=2, stages=("lora",)), workdir)
    assert results["lora"]["steps"] == 2 and np.isfinite(results["lora"]["loss"])
    spec = json.loads((workdir / "lora" / "model.json").read_text())
    assert spec["lora"]["rank"] == 4 and spec["lora"]["alpha"] == 4.0
    first, _ = checkpoints.restore_params(workdir / "lora")

    # more steps: resumes from the step-2 checkpoint; the base never moves
    capsys.readouterr()
    again = run(_lora_config(tmp_path, steps=4), workdir)
    out = capsys.readouterr().out
    assert "continuing from its checkpoint" in out and "resuming from step 2" in out
    assert again["lora"]["steps"] == 4 and again["lora"]["resumed_from"] == 2
    assert sorted(again["export"]["adapters"]) == [
        "retrieval.passage",
        "retrieval.query",
        "text-matching",
    ]
    second, _ = checkpoints.restore_params(workdir / "lora")
    assert all(
        np.array_equal(a, b) for a, b in zip(_leaves(first["base"]), _leaves(second["base"]))
    )
    assert not all(
        np.array_equal(a, b) for a, b in zip(_leaves(first["lora"]), _leaves(second["lora"]))
    )

    # the stage folder and the export (base + PEFT folders) embed alike, adapter by adapter
    trained = jina_jax.load_model(workdir / "lora")
    exported = jina_jax.load_model(workdir / "export" / "model")
    texts = stdlib_sentences(8)
    base = encode(trained, texts)
    for task in ("retrieval.query", "text-matching"):
        ours = encode(trained, texts, adapter=task)
        np.testing.assert_allclose(encode(exported, texts, adapter=task), ours, atol=1e-5)
        assert np.abs(ours - base).max() > 1e-4
    assert (
        workdir / "export" / "model" / "adapters" / "text-matching" / "adapter_config.json"
    ).exists()


def _leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]
