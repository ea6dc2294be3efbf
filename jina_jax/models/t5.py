"""T5 encoder (jina-embeddings-v1 backbone): pre-norm RMS blocks, no biases, unscaled attention
logits, and one bucketed relative-position bias computed in the first layer and shared by all.

``feed_forward_proj="relu"`` is T5 v1.0 (t5-small/base/large, what jina v1 used);
``"gated-gelu"`` is T5 v1.1 (gated FFN with tanh-GELU, as transformers' ``gelu_new``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from jina_jax.models.architecture import (
    Architecture,
    Rule,
    linear_from_heads,
    linear_rules,
    linear_to_heads,
    per_layer,
)
from jina_jax.models.attention import t5_bias_fn, text_segments
from jina_jax.models.layers import (
    Dense,
    Embed,
    RMSNorm,
    SelfAttention,
    activation,
    partitioned,
    stack_layers,
)

FEED_FORWARD_PROJ = ("relu", "gated-gelu", "gated-relu", "gelu")


@dataclasses.dataclass(frozen=True)
class T5Config:
    vocab_size: int = 32128
    d_model: int = 512
    d_kv: int = 64
    d_ff: int = 2048
    num_layers: int = 6
    num_heads: int = 8
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.1
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "relu"
    initializer_factor: float = 1.0
    pad_token_id: int = 0
    n_positions: int = 512  # the length it was trained at; relative positions allow more
    dtype: str = "float32"
    attention_impl: str = "auto"
    attention_chunk_size: int = 512
    attention_chunk_threshold: int = 2048
    remat: bool = False
    # nn.scan over the blocks (see BertConfig.scan_layers): stacked parameters, "blocks/...".
    scan_layers: bool = False
    arch: str = "t5"

    def __post_init__(self):
        if self.feed_forward_proj not in FEED_FORWARD_PROJ:
            raise ValueError(
                f"feed_forward_proj must be one of {FEED_FORWARD_PROJ}, "
                f"got {self.feed_forward_proj!r}"
            )

    @property
    def hidden_size(self) -> int:
        return self.d_model

    @property
    def is_gated(self) -> bool:
        return self.feed_forward_proj.startswith("gated-")

    @property
    def act(self) -> str:
        name = self.feed_forward_proj.removeprefix("gated-")
        # transformers maps T5's "gated-gelu" to the tanh approximation.
        return "gelu_new" if name == "gelu" else name

    @property
    def max_length(self) -> int:
        return self.n_positions

    @property
    def position_limit(self) -> int | None:
        """Relative positions have no hard limit (buckets saturate at max_distance)."""
        return None

    @property
    def compute_dtype(self):
        return jnp.dtype(self.dtype)


class T5FeedForward(nn.Module):
    config: T5Config

    @nn.compact
    def __call__(self, x, deterministic):
        cfg = self.config
        std = cfg.initializer_factor * cfg.d_model**-0.5
        kw = dict(use_bias=False, init_std=std, dtype=cfg.compute_dtype)
        act = activation(cfg.act)
        if cfg.is_gated:
            h = act(Dense(cfg.d_ff, ("embed",), ("mlp",), name="wi_0", **kw)(x))
            h = h * Dense(cfg.d_ff, ("embed",), ("mlp",), name="wi_1", **kw)(x)
        else:
            h = act(Dense(cfg.d_ff, ("embed",), ("mlp",), name="wi", **kw)(x))
        h = nn.Dropout(cfg.dropout_rate)(h, deterministic=deterministic)
        kw["init_std"] = cfg.initializer_factor * cfg.d_ff**-0.5
        return Dense(cfg.d_model, ("mlp",), ("embed",), name="wo", **kw)(h)


class T5Block(nn.Module):
    config: T5Config

    @nn.compact
    def __call__(self, x, segments, bias_table, deterministic):
        cfg = self.config
        dtype = cfg.compute_dtype
        bias_fn = t5_bias_fn(
            bias_table, bidirectional=True, max_distance=cfg.relative_attention_max_distance
        )
        h = RMSNorm(cfg.layer_norm_epsilon, dtype=dtype, name="attention_norm")(x)
        h = SelfAttention(
            num_heads=cfg.num_heads,
            head_dim=cfg.d_kv,
            out_features=cfg.d_model,
            use_bias=False,
            scale=1.0,  # T5 folds 1/sqrt(d) into the initialisation
            init_std=cfg.initializer_factor * cfg.d_model**-0.5,
            implementation=cfg.attention_impl,
            chunk_size=cfg.attention_chunk_size,
            chunk_threshold=cfg.attention_chunk_threshold,
            dtype=dtype,
            name="attention",
        )(h, segments, bias_fn, deterministic)
        x = x + nn.Dropout(cfg.dropout_rate)(h, deterministic=deterministic)
        h = RMSNorm(cfg.layer_norm_epsilon, dtype=dtype, name="mlp_norm")(x)
        h = T5FeedForward(cfg, name="mlp")(h, deterministic)
        x = x + nn.Dropout(cfg.dropout_rate)(h, deterministic=deterministic)
        return (x, None) if cfg.scan_layers else x  # nn.scan's (carry, output)


class T5Encoder(nn.Module):
    """Returns ``{"last_hidden_state": [B, L, d_model]}``."""

    config: T5Config

    @nn.compact
    def __call__(
        self,
        input_ids,
        attention_mask=None,
        token_type_ids=None,
        deterministic=True,
        segment_ids=None,
        position_ids=None,
    ):
        """``segment_ids [B, L]``: packed rows, attention within a text (the relative bias needs
        no ``position_ids``; accepted for a uniform signature)."""
        del token_type_ids, position_ids  # no segment embeddings; positions are relative
        cfg = self.config
        dtype = cfg.compute_dtype
        segments = text_segments(input_ids, attention_mask, segment_ids)
        x = Embed(
            cfg.vocab_size, cfg.d_model, init_std=cfg.initializer_factor, dtype=dtype, name="shared"
        )(input_ids)
        x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
        table = self.param(
            "relative_attention_bias",
            partitioned(
                nn.initializers.normal(cfg.initializer_factor * cfg.d_model**-0.5),
                (None, "heads"),
            ),
            (cfg.relative_attention_num_buckets, cfg.num_heads),
        )  # [buckets, heads], shared by every layer
        block_cls = stack_layers(T5Block, cfg, broadcast_args=3)
        if cfg.scan_layers:
            x, _ = block_cls(cfg, name="blocks")(x, segments, table, deterministic)
        else:
            for i in range(cfg.num_layers):
                x = block_cls(cfg, name=f"block_{i}")(x, segments, table, deterministic)
        x = RMSNorm(cfg.layer_norm_epsilon, dtype=dtype, name="final_layer_norm")(x)
        x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
        return {"last_hidden_state": x}


# --------------------------------------------------------------------------- Hugging Face


def _heads(config: T5Config) -> tuple[int, int]:
    return config.num_heads, config.d_kv


QKV_KERNEL, _ = linear_to_heads(_heads)
OUTPUT_KERNEL = linear_from_heads(_heads)


def hf_rules(config: T5Config, *, mlm: bool = False) -> list[Rule]:
    """``T5EncoderModel`` names (also the encoder half of T5Model / T5ForConditionalGeneration)."""
    if mlm:
        raise ValueError("T5 encoders have no MLM head in jina_jax")
    rules = [
        Rule("shared.weight", ("shared", "embedding")),
        Rule(
            "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
            ("relative_attention_bias",),
        ),
        Rule("encoder.final_layer_norm.weight", ("final_layer_norm", "scale")),
    ]
    for i in range(config.num_layers):
        rules += per_layer(
            _block_rules(config, i), i, config.scan_layers, (f"block_{i}",), "blocks"
        )
    return rules


def _block_rules(config: T5Config, i: int) -> list[Rule]:
    hf, fl = f"encoder.block.{i}", (f"block_{i}",)
    rules: list[Rule] = []
    for hf_name, name in (("q", "query"), ("k", "key"), ("v", "value")):
        rules += linear_rules(
            f"{hf}.layer.0.SelfAttention.{hf_name}",
            (*fl, "attention", name),
            bias=False,
            kernel_transform=QKV_KERNEL,
        )
    rules += linear_rules(
        f"{hf}.layer.0.SelfAttention.o",
        (*fl, "attention", "output"),
        bias=False,
        kernel_transform=OUTPUT_KERNEL,
    )
    rules.append(Rule(f"{hf}.layer.0.layer_norm.weight", (*fl, "attention_norm", "scale")))
    wis = ("wi_0", "wi_1") if config.is_gated else ("wi",)
    for wi in (*wis, "wo"):
        rules += linear_rules(f"{hf}.layer.1.DenseReluDense.{wi}", (*fl, "mlp", wi), bias=False)
    rules.append(Rule(f"{hf}.layer.1.layer_norm.weight", (*fl, "mlp_norm", "scale")))
    return rules


def config_from_hf(hf_config: dict[str, Any], **overrides) -> T5Config:
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


def config_to_hf(config: T5Config, *, mlm: bool = False) -> dict[str, Any]:
    del mlm  # T5 encoders have no MLM head here (hf_rules refuses it)
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


def _export_tensors(tensors: dict) -> dict:
    """T5EncoderModel ties encoder.embed_tokens to shared; write both so any loader is happy."""
    return {**tensors, "encoder.embed_tokens.weight": tensors["shared.weight"]}


def forward_flops(config: T5Config, rows: int, length: int) -> float:
    """Matmul FLOPs of one forward pass over ``rows x length`` tokens."""
    hidden, inner = config.d_model, config.num_heads * config.d_kv
    ffn = (3 if config.is_gated else 2) * hidden * config.d_ff
    per_layer_params = 4 * hidden * inner + ffn
    attention = 4 * length * inner
    return rows * length * config.num_layers * (2 * per_layer_params + attention)


ARCHITECTURE = Architecture(
    name="t5",
    config_cls=T5Config,
    encoder=T5Encoder,
    hf_classes={
        "T5EncoderModel": "encoder",
        "T5Model": "encoder",
        "T5ForConditionalGeneration": "encoder",
    },
    hf_model_type="t5",
    hf_rules=hf_rules,
    config_from_hf=config_from_hf,
    config_to_hf=config_to_hf,
    forward_flops=forward_flops,
    ignorable_hf=("encoder.embed_tokens.weight", "lm_head.weight"),
    export_tensors=_export_tensors,
)
