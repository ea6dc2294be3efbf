"""Model names: local folders, wheel aliases, and the hub path (exercised on local files in the
hub's snapshot layout; no network)."""

from __future__ import annotations

import fnmatch
import shutil

import huggingface_hub
import numpy as np
import pytest

import jina_jax
from jina_jax.hf import local_models


def test_hub_name_loads_a_snapshot_without_pickles(
    monkeypatch, tmp_path, minilm_dir, real_sentences
):
    snapshot = tmp_path / "hub" / "models--org--minilm" / "snapshots" / "abc"
    shutil.copytree(minilm_dir, snapshot)
    (snapshot / "pytorch_model.bin").write_bytes(b"a pickle that must not be fetched")
    seen = {}

    def fake_snapshot_download(repo_id, allow_patterns=None, **kwargs):
        seen["repo"], seen["patterns"] = repo_id, allow_patterns
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    model = jina_jax.load_model("org/minilm")
    assert seen["repo"] == "org/minilm"
    assert not any(fnmatch.fnmatch("pytorch_model.bin", p) for p in seen["patterns"])
    assert any(fnmatch.fnmatch("model.safetensors", p) for p in seen["patterns"])
    texts = real_sentences[:8]
    np.testing.assert_allclose(
        jina_jax.encode(model, texts),
        jina_jax.encode(jina_jax.load_model("all-MiniLM-L6-v2"), texts),
        atol=1e-6,
    )


def test_unreachable_hub_name_is_a_clear_error(monkeypatch):
    def offline(repo_id, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(
        FileNotFoundError, match="'org/missing' is not a local folder and could not be fetched"
    ):
        local_models.resolve("org/missing")
