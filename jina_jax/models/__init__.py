"""Encoders by name. Each architecture file ends with an ``Architecture`` (config class, module,
HF name table and config translation, FLOPs); this package collects them:

    config = config_from_dict({"arch": "bert", "hidden_size": 128, ...})
    module = build_encoder(config)
    ARCHITECTURES["t5"].hf_rules(config)        # or architecture_of(config)
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jina_jax.models import jina_bert, t5
from jina_jax.models.architecture import Architecture
from jina_jax.models.jina_bert import BertConfig, BertEncoder, BertForMaskedLM
from jina_jax.models.pooling import l2_normalize, mean_pool
from jina_jax.models.t5 import T5Config, T5Encoder

EncoderConfig = BertConfig | T5Config

ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch for arch in (jina_bert.ARCHITECTURE, t5.ARCHITECTURE)
}

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "BertConfig",
    "BertEncoder",
    "BertForMaskedLM",
    "EncoderConfig",
    "T5Config",
    "T5Encoder",
    "architecture_of",
    "build_encoder",
    "build_mlm",
    "config_from_dict",
    "config_to_dict",
    "forward_flops",
    "init_params",
    "l2_normalize",
    "mean_pool",
]


def architecture_of(config: EncoderConfig) -> Architecture:
    return ARCHITECTURES[config.arch]


def config_from_dict(values: dict[str, Any]) -> EncoderConfig:
    """Builds an encoder config; unknown fields are an error that names the close matches."""
    values = dict(values)
    arch = values.get("arch", "bert")
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown model arch {arch!r}; known: {sorted(ARCHITECTURES)}")
    cls = ARCHITECTURES[arch].config_cls
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
    return architecture_of(config).encoder(config)


def build_mlm(config: EncoderConfig) -> nn.Module:
    arch = architecture_of(config)
    if arch.mlm is None:
        raise ValueError(f"the {arch.name} architecture has no MLM model in jina_jax")
    return arch.mlm(config)


def forward_flops(config: EncoderConfig, rows: int, length: int) -> float:
    """Matmul FLOPs of one encoder forward pass over ``rows x length`` tokens."""
    return architecture_of(config).forward_flops(config, rows, length)


def init_params(config: EncoderConfig, rng: jax.Array, length: int = 8) -> dict:
    """Randomly initialised encoder parameters (boxed with logical axis names)."""
    ids = jnp.zeros((1, length), jnp.int32)
    return build_encoder(config).init(rng, ids, jnp.ones_like(ids))["params"]
