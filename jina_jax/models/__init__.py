"""Encoders by name: ``config_from_dict({"arch": "bert" | "t5", ...})`` -> ``build_encoder``."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jina_jax.models.jina_bert import BertConfig, BertEncoder, BertForMaskedLM
from jina_jax.models.pooling import l2_normalize, mean_pool
from jina_jax.models.t5 import T5Config, T5Encoder

EncoderConfig = BertConfig | T5Config

_CONFIGS: dict[str, type] = {"bert": BertConfig, "t5": T5Config}
_ENCODERS: dict[str, type[nn.Module]] = {"bert": BertEncoder, "t5": T5Encoder}

__all__ = [
    "BertConfig",
    "BertEncoder",
    "BertForMaskedLM",
    "EncoderConfig",
    "T5Config",
    "T5Encoder",
    "build_encoder",
    "config_from_dict",
    "config_to_dict",
    "init_params",
    "l2_normalize",
    "mean_pool",
]


def config_from_dict(values: dict[str, Any]) -> EncoderConfig:
    """Builds an encoder config; unknown fields are an error that names the close matches."""
    values = dict(values)
    arch = values.get("arch", "bert")
    if arch not in _CONFIGS:
        raise ValueError(f"unknown model arch {arch!r}; known: {sorted(_CONFIGS)}")
    cls = _CONFIGS[arch]
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"unknown {arch} model config key {key!r}{hint}")
    return cls(**values)


def config_to_dict(config: EncoderConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def build_encoder(config: EncoderConfig) -> nn.Module:
    return _ENCODERS[config.arch](config)


def init_params(config: EncoderConfig, rng: jax.Array, length: int = 8) -> dict:
    """Randomly initialised encoder parameters (boxed with logical axis names)."""
    ids = jnp.zeros((1, length), jnp.int32)
    return build_encoder(config).init(rng, ids, jnp.ones_like(ids))["params"]
