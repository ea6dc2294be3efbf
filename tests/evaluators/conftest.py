"""Fixtures for the evaluator tests: all-MiniLM-L6-v2 in JAX and, as the independent reference,
the same wheel's folder through sentence-transformers (PyTorch)."""

from __future__ import annotations

import pathlib

import pytest

STARTER = pathlib.Path(__file__).parents[2] / "data_cache" / "starter"


@pytest.fixture(scope="session")
def minilm():
    import jina_jax

    return jina_jax.load_model("all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def torch_minilm(minilm_dir):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_dir), device="cpu", local_files_only=True)
    model.max_seq_length = 32
    return lambda texts: model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)


@pytest.fixture(scope="session")
def starter_dir() -> pathlib.Path:
    if not (STARTER / "manifest.json").is_file():
        pytest.skip(f"no starter corpus in {STARTER} (python -m jina_jax.data.starter)")
    return STARTER
