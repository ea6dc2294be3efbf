"""``Model``: an encoder config, its parameters, its tokenizer and how it pools: everything
``encode``, the evaluators and the exporters need. Loading lives in ``jina_jax.loading``."""

from __future__ import annotations

import dataclasses
import functools
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
