"""``load_model``: any folder jina_jax reads (a Hugging Face / sentence-transformers folder, a
``jina_jax.convert`` output, a training stage folder), local or ``gs://``, or a local alias, as a
``Model``."""

from __future__ import annotations

import os

from jina_jax import checkpoints, tokenization
from jina_jax.embedders import ModelEmbedder
from jina_jax.hf.io import load_hf
from jina_jax.hf.local_models import resolve
from jina_jax.model import Model


def load_model(path: str | os.PathLike, **config_overrides) -> Model:
    """Loads a Hugging Face / sentence-transformers folder, a ``jina_jax.convert`` output, a
    training workdir (its latest checkpoint), local or in a bucket (``gs://bucket/run/pairs``),
    or a local alias such as ``all-MiniLM-L6-v2``."""
    folder = resolve(path)
    if not folder.exists():
        raise FileNotFoundError(f"{folder} does not exist")
    if (folder / checkpoints.MODEL_FILE).exists():
        return checkpoints.load_model_from_workdir(folder, **config_overrides)
    if (folder / "config.json").exists():
        return load_hf(folder, **config_overrides)
    raise FileNotFoundError(
        f"{folder}: neither a Hugging Face folder (config.json) nor a jina_jax workdir "
        f"({checkpoints.MODEL_FILE})"
    )


def load_embedder(
    path: str | os.PathLike, *, dtype: str | None = None, **embedder_options
) -> ModelEmbedder:
    """``load_model(path)`` wrapped as an embedder (``jina_jax.embedders``), e.g. the consistency
    filter's auxiliary model, an evaluation baseline or a distillation teacher; ``dtype``
    ("bfloat16") sets the model's compute dtype (float32 weights and pooling either way)."""
    model = load_model(path, dtype=dtype) if dtype else load_model(path)
    return ModelEmbedder(model, name=str(path), **embedder_options)


def load_tokenizer(name_or_path: str | os.PathLike) -> tokenization.Tokenizer:
    """``"jina_v2"`` (the JinaBERT vocabulary), a tokenizer folder or file, or the tokenizer of
    a model folder or local alias such as ``all-MiniLM-L6-v2``."""
    if str(name_or_path) == "jina_v2":
        return tokenization.jina_v2_tokenizer()
    return tokenization.load_tokenizer(resolve(name_or_path))
