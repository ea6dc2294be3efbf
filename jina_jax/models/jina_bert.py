"""JinaBERT (jina-embeddings-v2 backbone) and standard BERT, as one post-LN encoder.

``position_embedding_type="alibi"`` gives JinaBERT: no position table, symmetric ALiBi bias in
attention, usable beyond the training length. ``"absolute"`` gives a standard BERT (e.g.
all-MiniLM-L6-v2) with a learned position table. ``feed_forward_type`` picks the GLU feed-forward
(``geglu``/``reglu``) or BERT's plain two-layer MLP (``original``).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from jina_jax.models.attention import alibi_bias_fn, encoder_mask
from jina_jax.models.layers import Dense, Embed, LayerNorm, SelfAttention, activation

FEED_FORWARD_TYPES = ("original", "geglu", "reglu")
POSITION_EMBEDDING_TYPES = ("alibi", "absolute")


@dataclasses.dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30528
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    feed_forward_type: str = "geglu"
    position_embedding_type: str = "alibi"
    max_position_embeddings: int = 8192
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.0
    initializer_range: float = 0.02
    pad_token_id: int = 0
    add_pooler: bool = True
    dtype: str = "float32"  # compute dtype; parameters and pooling stay float32
    attention_impl: str = "auto"  # dense | chunked | auto
    attention_chunk_size: int = 512
    attention_chunk_threshold: int = 2048
    remat: bool = False
    arch: str = "bert"

    def __post_init__(self):
        if self.feed_forward_type not in FEED_FORWARD_TYPES:
            raise ValueError(
                f"feed_forward_type must be one of {FEED_FORWARD_TYPES}, "
                f"got {self.feed_forward_type!r}"
            )
        if self.position_embedding_type not in POSITION_EMBEDDING_TYPES:
            raise ValueError(
                f"position_embedding_type must be one of {POSITION_EMBEDDING_TYPES}, "
                f"got {self.position_embedding_type!r}"
            )
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}"
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def max_length(self) -> int:
        return self.max_position_embeddings

    @property
    def compute_dtype(self):
        return jnp.dtype(self.dtype)


class BertEmbeddings(nn.Module):
    config: BertConfig

    @nn.compact
    def __call__(self, input_ids, token_type_ids, deterministic, position_ids=None):
        cfg = self.config
        dtype = cfg.compute_dtype
        std = cfg.initializer_range
        x = Embed(cfg.vocab_size, cfg.hidden_size, init_std=std, name="word_embeddings")(input_ids)
        x = x + Embed(
            cfg.type_vocab_size,
            cfg.hidden_size,
            axes=(None, "embed"),
            init_std=std,
            name="token_type_embeddings",
        )(token_type_ids)
        if cfg.position_embedding_type == "absolute":
            length = input_ids.shape[1]
            if length > cfg.max_position_embeddings:
                raise ValueError(
                    f"sequence length {length} exceeds max_position_embeddings "
                    f"{cfg.max_position_embeddings} of an absolute-position BERT"
                )
            x = x + Embed(
                cfg.max_position_embeddings,
                cfg.hidden_size,
                axes=(None, "embed"),
                init_std=std,
                name="position_embeddings",
            )(jnp.arange(length)[None] if position_ids is None else position_ids)
        x = LayerNorm(cfg.layer_norm_eps, dtype=dtype, name="LayerNorm")(x)
        return nn.Dropout(cfg.hidden_dropout)(x, deterministic=deterministic)


class BertFeedForward(nn.Module):
    config: BertConfig

    @nn.compact
    def __call__(self, x, deterministic):
        cfg = self.config
        dtype = cfg.compute_dtype
        dense = dict(init_std=cfg.initializer_range, dtype=dtype)
        if cfg.feed_forward_type == "original":
            h = Dense(cfg.intermediate_size, ("embed",), ("mlp",), name="intermediate", **dense)(x)
            h = activation(cfg.hidden_act)(h)
        else:
            # [B, L, 2I]: the activation applies to the FIRST half (the gate).
            h = Dense(
                2 * cfg.intermediate_size,
                ("embed",),
                ("mlp",),
                use_bias=False,
                name="gated_layers",
                **dense,
            )(x)
            gated, plain = jnp.split(h, 2, axis=-1)
            act = activation("relu" if cfg.feed_forward_type == "reglu" else cfg.hidden_act)
            h = act(gated) * plain
            h = nn.Dropout(cfg.hidden_dropout)(h, deterministic=deterministic)
        return Dense(cfg.hidden_size, ("mlp",), ("embed",), name="wo", **dense)(h)


class BertLayer(nn.Module):
    config: BertConfig

    @nn.compact
    def __call__(self, x, key_mask, deterministic):
        cfg = self.config
        dtype = cfg.compute_dtype
        bias_fn = alibi_bias_fn(cfg.num_heads) if cfg.position_embedding_type == "alibi" else None
        attended = SelfAttention(
            num_heads=cfg.num_heads,
            head_dim=cfg.head_dim,
            out_features=cfg.hidden_size,
            dropout_rate=cfg.attention_dropout,
            init_std=cfg.initializer_range,
            implementation=cfg.attention_impl,
            chunk_size=cfg.attention_chunk_size,
            chunk_threshold=cfg.attention_chunk_threshold,
            dtype=dtype,
            name="attention",
        )(x, key_mask, bias_fn, deterministic)
        attended = nn.Dropout(cfg.hidden_dropout)(attended, deterministic=deterministic)
        x = LayerNorm(cfg.layer_norm_eps, dtype=dtype, name="attention_norm")(x + attended)
        h = BertFeedForward(cfg, name="mlp")(x, deterministic)
        h = nn.Dropout(cfg.hidden_dropout)(h, deterministic=deterministic)
        return LayerNorm(cfg.layer_norm_eps, dtype=dtype, name="mlp_norm")(x + h)


class BertEncoder(nn.Module):
    """Returns ``{"last_hidden_state": [B, L, H], "pooler_output": [B, H] (if add_pooler)}``."""

    config: BertConfig

    def setup(self):
        cfg = self.config
        self.embeddings = BertEmbeddings(cfg)
        layer_cls = nn.remat(BertLayer, static_argnums=(3,)) if cfg.remat else BertLayer
        self.layers = [layer_cls(cfg, name=f"layer_{i}") for i in range(cfg.num_layers)]
        if cfg.add_pooler:
            self.pooler = Dense(
                cfg.hidden_size,
                ("embed",),
                (None,),
                init_std=cfg.initializer_range,
                dtype=cfg.compute_dtype,
            )

    def __call__(
        self,
        input_ids,
        attention_mask=None,
        token_type_ids=None,
        deterministic=True,
        segment_ids=None,
        position_ids=None,
    ):
        """``segment_ids``/``position_ids`` ``[B, L]``: packed rows (several texts per row,
        see ``jina_jax.data.pipeline.pack_sequences``); attention stays within a text and
        absolute positions restart at each text. ``attention_mask`` is then ignored."""
        if token_type_ids is None:
            token_type_ids = jnp.zeros_like(input_ids)
        key_mask = encoder_mask(input_ids, attention_mask, segment_ids)
        x = self.embeddings(input_ids, token_type_ids, deterministic, position_ids)
        for layer in self.layers:
            x = layer(x, key_mask, deterministic)
        outputs = {"last_hidden_state": x}
        if self.config.add_pooler:
            outputs["pooler_output"] = jnp.tanh(self.pooler(x[:, 0]))
        return outputs


class MLMHead(nn.Module):
    """BERT's prediction head; the decoder is the (tied) word-embedding table."""

    config: BertConfig

    @nn.compact
    def __call__(self, x, word_embeddings: jax.Array):  # x [B, L, H]; table [V, H]
        cfg = self.config
        dtype = cfg.compute_dtype
        h = Dense(
            cfg.hidden_size,
            ("embed",),
            (None,),
            init_std=cfg.initializer_range,
            dtype=dtype,
            name="transform",
        )(x)
        h = activation(cfg.hidden_act)(h)
        h = LayerNorm(cfg.layer_norm_eps, dtype=dtype, name="transform_norm")(h)
        bias = self.param(
            "bias",
            nn.with_logical_partitioning(nn.initializers.zeros, ("vocab",)),
            (cfg.vocab_size,),
        )
        logits = jnp.einsum("...d,vd->...v", h.astype(jnp.float32), word_embeddings)
        return logits + bias  # [B, L, V] float32


class BertForMaskedLM(nn.Module):
    """Encoder (without pooler) + MLM head, for backbone pretraining."""

    config: BertConfig

    def setup(self):
        self.bert = BertEncoder(dataclasses.replace(self.config, add_pooler=False))
        self.cls = MLMHead(self.config)

    def __call__(
        self,
        input_ids,
        attention_mask=None,
        token_type_ids=None,
        deterministic=True,
        positions=None,
    ):
        """Logits ``[B, L, V]``, or ``[B, M, V]`` at ``positions [B, M]`` only: the vocabulary
        projection is the costliest matmul of MLM, and only masked positions need it."""
        hidden = self.bert(input_ids, attention_mask, token_type_ids, deterministic)
        states = hidden["last_hidden_state"]
        if positions is not None:
            states = jnp.take_along_axis(states, positions[..., None], axis=1)
        params = self.bert.variables["params"]
        table = nn.meta.unbox(params["embeddings"]["word_embeddings"]["embedding"])
        return self.cls(states, table.astype(jnp.float32))
