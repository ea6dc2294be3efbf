"""``Model``: an encoder config, its parameters, its tokenizer and how it pools — everything
``encode``, the evaluators and the exporters need — and ``load_model`` for any folder we read."""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import flax.linen as nn

from jina_jax.models import EncoderConfig, build_encoder


@dataclasses.dataclass
class Model:
    config: EncoderConfig
    params: Any  # unboxed encoder parameters (a nested dict of arrays)
    tokenizer: Any  # jina_jax.tokenization.Tokenizer
    pooling: str = "mean"
    normalize: bool = False
    max_length: int = 512

    @functools.cached_property
    def module(self) -> nn.Module:
        return build_encoder(self.config)

    @property
    def dim(self) -> int:
        return self.config.hidden_size


def load_model(path: str | os.PathLike, **config_overrides) -> Model:
    """Loads a Hugging Face / sentence-transformers folder, a ``jina_jax.convert`` output, a
    training workdir (its latest checkpoint) or a local alias such as ``all-MiniLM-L6-v2``."""
    from jina_jax import checkpoints
    from jina_jax.hf.io import load_hf
    from jina_jax.hf.local_models import resolve

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
