"""Hugging Face <-> jina_jax: one table of parameter-name rules per architecture, plus the small
transforms between torch and Flax layouts, and the config.json translation.

A rule ties one HF tensor name to one path in the Flax parameter tree and names a transform.
``to_flax`` and ``to_torch`` are exact inverses, so import and export share the same table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from jina_jax.models import BertConfig, EncoderConfig, T5Config


@dataclasses.dataclass(frozen=True)
class Transform:
    to_flax: Callable[[np.ndarray, EncoderConfig], np.ndarray]
    to_torch: Callable[[np.ndarray, EncoderConfig], np.ndarray]


def _heads(config: EncoderConfig) -> tuple[int, int]:
    if isinstance(config, T5Config):
        return config.num_heads, config.d_kv
    return config.num_heads, config.head_dim


IDENTITY = Transform(lambda w, c: w, lambda w, c: w)
# torch Linear.weight is [out, in]; a Flax kernel is [in, out].
LINEAR = Transform(lambda w, c: w.T, lambda w, c: w.T)
# [heads*kv, H] <-> [H, heads, kv]
LINEAR_TO_HEADS = Transform(
    lambda w, c: w.T.reshape(w.shape[1], *_heads(c)),
    lambda w, c: w.reshape(w.shape[0], -1).T,
)
# [heads*kv] <-> [heads, kv]
BIAS_TO_HEADS = Transform(lambda w, c: w.reshape(_heads(c)), lambda w, c: w.reshape(-1))
# [H, heads*kv] <-> [heads, kv, H]
LINEAR_FROM_HEADS = Transform(
    lambda w, c: w.T.reshape(*_heads(c), w.shape[0]),
    lambda w, c: w.reshape(-1, w.shape[-1]).T,
)


@dataclasses.dataclass(frozen=True)
class Rule:
    hf_name: str
    flax_path: tuple[str, ...]
    transform: Transform = IDENTITY


def _linear(hf: str, path: tuple[str, ...], bias: bool = True, kind: str = "plain") -> list[Rule]:
    weight, bias_t = {
        "plain": (LINEAR, IDENTITY),
        "to_heads": (LINEAR_TO_HEADS, BIAS_TO_HEADS),
        "from_heads": (LINEAR_FROM_HEADS, IDENTITY),
    }[kind]
    rules = [Rule(f"{hf}.weight", (*path, "kernel"), weight)]
    if bias:
        rules.append(Rule(f"{hf}.bias", (*path, "bias"), bias_t))
    return rules


def _layer_norm(hf: str, path: tuple[str, ...]) -> list[Rule]:
    return [Rule(f"{hf}.weight", (*path, "scale")), Rule(f"{hf}.bias", (*path, "bias"))]


def bert_rules(
    config: BertConfig, prefix: str = "", flax_prefix: tuple[str, ...] = ()
) -> list[Rule]:
    """Rules for BertModel / JinaBertModel (``prefix="bert."`` inside the MLM models)."""
    p, f = prefix, flax_prefix
    rules = [
        Rule(
            f"{p}embeddings.word_embeddings.weight",
            (*f, "embeddings", "word_embeddings", "embedding"),
        ),
        Rule(
            f"{p}embeddings.token_type_embeddings.weight",
            (*f, "embeddings", "token_type_embeddings", "embedding"),
        ),
        *_layer_norm(f"{p}embeddings.LayerNorm", (*f, "embeddings", "LayerNorm")),
    ]
    if config.position_embedding_type == "absolute":
        rules.append(
            Rule(
                f"{p}embeddings.position_embeddings.weight",
                (*f, "embeddings", "position_embeddings", "embedding"),
            )
        )
    for i in range(config.num_layers):
        hf, fl = f"{p}encoder.layer.{i}", (*f, f"layer_{i}")
        for name in ("query", "key", "value"):
            rules += _linear(
                f"{hf}.attention.self.{name}", (*fl, "attention", name), kind="to_heads"
            )
        rules += _linear(
            f"{hf}.attention.output.dense", (*fl, "attention", "output"), kind="from_heads"
        )
        rules += _layer_norm(f"{hf}.attention.output.LayerNorm", (*fl, "attention_norm"))
        if config.feed_forward_type == "original":
            rules += _linear(f"{hf}.intermediate.dense", (*fl, "mlp", "intermediate"))
            rules += _linear(f"{hf}.output.dense", (*fl, "mlp", "wo"))
            rules += _layer_norm(f"{hf}.output.LayerNorm", (*fl, "mlp_norm"))
        else:
            rules += _linear(f"{hf}.mlp.gated_layers", (*fl, "mlp", "gated_layers"), bias=False)
            rules += _linear(f"{hf}.mlp.wo", (*fl, "mlp", "wo"))
            rules += _layer_norm(f"{hf}.mlp.layernorm", (*fl, "mlp_norm"))
    if config.add_pooler:
        rules += _linear(f"{p}pooler.dense", (*f, "pooler"))
    return rules


def bert_mlm_rules(config: BertConfig) -> list[Rule]:
    """BertForMaskedLM / JinaBertForMaskedLM; the decoder weight is tied to the word embeddings."""
    encoder = dataclasses.replace(config, add_pooler=False)
    return [
        *bert_rules(encoder, prefix="bert.", flax_prefix=("bert",)),
        *_linear("cls.predictions.transform.dense", ("cls", "transform")),
        *_layer_norm("cls.predictions.transform.LayerNorm", ("cls", "transform_norm")),
        Rule("cls.predictions.bias", ("cls", "bias")),
    ]


def t5_rules(config: T5Config) -> list[Rule]:
    """T5EncoderModel (also the encoder half of T5Model / T5ForConditionalGeneration)."""
    rules = [
        Rule("shared.weight", ("shared", "embedding")),
        Rule(
            "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
            ("relative_attention_bias",),
        ),
        Rule("encoder.final_layer_norm.weight", ("final_layer_norm", "scale")),
    ]
    for i in range(config.num_layers):
        hf, fl = f"encoder.block.{i}", (f"block_{i}",)
        for hf_name, name in (("q", "query"), ("k", "key"), ("v", "value")):
            rules += _linear(
                f"{hf}.layer.0.SelfAttention.{hf_name}", (*fl, "attention", name), False, "to_heads"
            )
        rules += _linear(
            f"{hf}.layer.0.SelfAttention.o", (*fl, "attention", "output"), False, "from_heads"
        )
        rules.append(Rule(f"{hf}.layer.0.layer_norm.weight", (*fl, "attention_norm", "scale")))
        wis = ("wi_0", "wi_1") if config.is_gated else ("wi",)
        for wi in (*wis, "wo"):
            rules += _linear(f"{hf}.layer.1.DenseReluDense.{wi}", (*fl, "mlp", wi), bias=False)
        rules.append(Rule(f"{hf}.layer.1.layer_norm.weight", (*fl, "mlp_norm", "scale")))
    return rules


# HF tensors that carry no information of their own (tied copies, buffers); allowed on import.
IGNORABLE_SUFFIXES = (
    "embeddings.position_ids",
    "cls.predictions.decoder.weight",
    "cls.predictions.decoder.bias",
    "encoder.embed_tokens.weight",
    "lm_head.weight",
)


# --------------------------------------------------------------------------- config.json

BERT_ARCHITECTURES = {
    "BertModel": "encoder",
    "JinaBertModel": "encoder",
    "BertForMaskedLM": "mlm",
    "JinaBertForMaskedLM": "mlm",
}
T5_ARCHITECTURES = {"T5EncoderModel", "T5Model", "T5ForConditionalGeneration"}
SUPPORTED_ARCHITECTURES = sorted(BERT_ARCHITECTURES) + sorted(T5_ARCHITECTURES)


def architecture_of(hf_config: dict[str, Any], source: str = "config.json") -> str:
    architectures = hf_config.get("architectures") or []
    model_type = hf_config.get("model_type")
    if not architectures:
        # Folders written by some tools omit it; fall back on the model type.
        fallback = {"bert": "BertModel", "t5": "T5EncoderModel"}
        if model_type in fallback:
            return fallback[model_type]
        raise ValueError(f"{source}: no 'architectures' and unknown model_type {model_type!r}")
    arch = architectures[0]
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ValueError(
            f"{source}: unsupported architecture {arch!r} (model_type {model_type!r}); "
            f"jina_jax reads {', '.join(SUPPORTED_ARCHITECTURES)}"
        )
    return arch


def config_from_hf(
    hf_config: dict[str, Any], source: str = "config.json", **overrides
) -> EncoderConfig:
    arch = architecture_of(hf_config, source)
    if arch in T5_ARCHITECTURES:
        fields = dict(
            vocab_size=hf_config["vocab_size"],
            d_model=hf_config["d_model"],
            d_kv=hf_config["d_kv"],
            d_ff=hf_config["d_ff"],
            num_layers=hf_config["num_layers"],
            num_heads=hf_config["num_heads"],
            relative_attention_num_buckets=hf_config.get("relative_attention_num_buckets", 32),
            relative_attention_max_distance=hf_config.get("relative_attention_max_distance", 128),
            dropout_rate=hf_config.get("dropout_rate", 0.1),
            layer_norm_epsilon=hf_config.get("layer_norm_epsilon", 1e-6),
            feed_forward_proj=hf_config.get("feed_forward_proj", "relu"),
            initializer_factor=hf_config.get("initializer_factor", 1.0),
            pad_token_id=hf_config.get("pad_token_id", 0),
            n_positions=hf_config.get("n_positions", 512),
        )
        return T5Config(**{**fields, **overrides})
    fields = dict(
        vocab_size=hf_config["vocab_size"],
        hidden_size=hf_config["hidden_size"],
        num_layers=hf_config["num_hidden_layers"],
        num_heads=hf_config["num_attention_heads"],
        intermediate_size=hf_config["intermediate_size"],
        hidden_act=hf_config.get("hidden_act", "gelu"),
        feed_forward_type=hf_config.get("feed_forward_type", "original"),
        position_embedding_type=hf_config.get("position_embedding_type", "absolute"),
        max_position_embeddings=hf_config.get("max_position_embeddings", 512),
        type_vocab_size=hf_config.get("type_vocab_size", 2),
        layer_norm_eps=hf_config.get("layer_norm_eps", 1e-12),
        hidden_dropout=hf_config.get("hidden_dropout_prob", 0.1),
        attention_dropout=hf_config.get("attention_probs_dropout_prob", 0.0),
        initializer_range=hf_config.get("initializer_range", 0.02),
        pad_token_id=hf_config.get("pad_token_id", 0),
    )
    return BertConfig(**{**fields, **overrides})


def bert_hf_config(config: BertConfig, *, mlm: bool = False) -> dict[str, Any]:
    """config.json for BertModel (absolute) or JinaBERT (alibi), with the official field set."""
    fields: dict[str, Any] = {
        "model_type": "bert",
        "attention_probs_dropout_prob": config.attention_dropout,
        "classifier_dropout": None,
        "hidden_act": config.hidden_act,
        "hidden_dropout_prob": config.hidden_dropout,
        "hidden_size": config.hidden_size,
        "initializer_range": config.initializer_range,
        "intermediate_size": config.intermediate_size,
        "layer_norm_eps": config.layer_norm_eps,
        "max_position_embeddings": config.max_position_embeddings,
        "num_attention_heads": config.num_heads,
        "num_hidden_layers": config.num_layers,
        "pad_token_id": config.pad_token_id,
        "position_embedding_type": config.position_embedding_type,
        "type_vocab_size": config.type_vocab_size,
        "use_cache": True,
        "vocab_size": config.vocab_size,
        "torch_dtype": "float32",
    }
    if config.position_embedding_type == "alibi":
        fields["architectures"] = ["JinaBertForMaskedLM" if mlm else "JinaBertModel"]
        fields["feed_forward_type"] = config.feed_forward_type
        fields["emb_pooler"] = "mean"
    else:
        if config.feed_forward_type != "original":
            raise ValueError(
                "a BERT with absolute positions exports as transformers' BertModel, which has "
                f"no {config.feed_forward_type!r} feed-forward"
            )
        fields["architectures"] = ["BertForMaskedLM" if mlm else "BertModel"]
    return fields


def t5_hf_config(config: T5Config) -> dict[str, Any]:
    return {
        "architectures": ["T5EncoderModel"],
        "model_type": "t5",
        "vocab_size": config.vocab_size,
        "d_model": config.d_model,
        "d_kv": config.d_kv,
        "d_ff": config.d_ff,
        "num_layers": config.num_layers,
        "num_heads": config.num_heads,
        "relative_attention_num_buckets": config.relative_attention_num_buckets,
        "relative_attention_max_distance": config.relative_attention_max_distance,
        "dropout_rate": config.dropout_rate,
        "layer_norm_epsilon": config.layer_norm_epsilon,
        "feed_forward_proj": config.feed_forward_proj,
        "initializer_factor": config.initializer_factor,
        "pad_token_id": config.pad_token_id,
        "eos_token_id": 1,
        "decoder_start_token_id": 0,
        "n_positions": config.n_positions,
        "is_encoder_decoder": False,
        "use_cache": False,
        "torch_dtype": "float32",
    }


def rules_for(config: EncoderConfig, *, mlm: bool = False) -> list[Rule]:
    if isinstance(config, T5Config):
        if mlm:
            raise ValueError("T5 encoders have no MLM head in jina_jax")
        return t5_rules(config)
    return bert_mlm_rules(config) if mlm else bert_rules(config)
