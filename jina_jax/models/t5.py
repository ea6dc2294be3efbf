"""T5 encoder (jina-embeddings-v1 backbone): pre-norm RMS blocks, no biases, unscaled attention
logits, and one bucketed relative-position bias computed in the first layer and shared by all.

``feed_forward_proj="relu"`` is T5 v1.0 (t5-small/base/large, what jina v1 used);
``"gated-gelu"`` is T5 v1.1 (gated FFN with tanh-GELU, as transformers' ``gelu_new``).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax.numpy as jnp

from jina_jax.models.attention import encoder_mask, t5_bias_fn
from jina_jax.models.layers import Dense, Embed, RMSNorm, SelfAttention, activation, partitioned

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
    def __call__(self, x, key_mask, bias_table, deterministic):
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
        )(h, key_mask, bias_fn, deterministic)
        x = x + nn.Dropout(cfg.dropout_rate)(h, deterministic=deterministic)
        h = RMSNorm(cfg.layer_norm_epsilon, dtype=dtype, name="mlp_norm")(x)
        h = T5FeedForward(cfg, name="mlp")(h, deterministic)
        return x + nn.Dropout(cfg.dropout_rate)(h, deterministic=deterministic)


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
        key_mask = encoder_mask(input_ids, attention_mask, segment_ids)
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
        block_cls = nn.remat(T5Block, static_argnums=(4,)) if cfg.remat else T5Block
        for i in range(cfg.num_layers):
            x = block_cls(cfg, name=f"block_{i}")(x, key_mask, table, deterministic)
        x = RMSNorm(cfg.layer_norm_epsilon, dtype=dtype, name="final_layer_norm")(x)
        x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
        return {"last_hidden_state": x}
