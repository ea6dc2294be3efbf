"""The main job on the demo config: stages run, write their outputs, and a rerun skips them."""

from __future__ import annotations

import json

import numpy as np

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
