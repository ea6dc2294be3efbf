"""Bad checkpoints get errors that name the tensor, key or architecture at fault."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from jina_jax.errors import CheckpointMismatchError
from jina_jax.hf.io import load_hf


@pytest.fixture()
def minilm_copy(minilm_dir, tmp_path):
    dst = tmp_path / "minilm"
    shutil.copytree(minilm_dir, dst)
    return dst


def _edit_tensors(folder, edit):
    tensors = load_file(str(folder / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(folder / "model.safetensors"))


def test_missing_tensor_is_named(minilm_copy):
    _edit_tensors(minilm_copy, lambda t: t.pop("encoder.layer.3.attention.self.key.weight"))
    with pytest.raises(
        CheckpointMismatchError,
        match=r"missing tensors: encoder\.layer\.3\.attention\.self\.key\.weight",
    ):
        load_hf(minilm_copy)


def test_extra_tensor_is_named(minilm_copy):
    _edit_tensors(
        minilm_copy, lambda t: t.update({"classifier.weight": np.zeros((2, 384), np.float32)})
    )
    with pytest.raises(CheckpointMismatchError, match=r"unexpected tensors: classifier\.weight"):
        load_hf(minilm_copy)


def test_wrong_shape_is_named(minilm_copy):
    def shrink(t):
        t["encoder.layer.0.intermediate.dense.weight"] = t[
            "encoder.layer.0.intermediate.dense.weight"
        ][:100]

    _edit_tensors(minilm_copy, shrink)
    with pytest.raises(
        CheckpointMismatchError,
        match=r"encoder\.layer\.0\.intermediate\.dense\.weight has shape \(100, 384\), the model expects \(1536, 384\)",
    ):
        load_hf(minilm_copy)


def test_unknown_architecture_is_named(minilm_copy):
    config = json.loads((minilm_copy / "config.json").read_text())
    config["architectures"] = ["RobertaForSequenceClassification"]
    (minilm_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        ValueError, match="unsupported architecture 'RobertaForSequenceClassification'"
    ):
        load_hf(minilm_copy)


def test_pickle_weights_are_refused(minilm_copy):
    (minilm_copy / "model.safetensors").unlink()
    (minilm_copy / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(FileNotFoundError, match="pickle files are never loaded"):
        load_hf(minilm_copy)
