"""JinaBERT (jina-embeddings-v2 backbone) and standard BERT, as one post-LN encoder.

``position_embedding_type="alibi"`` gives JinaBERT: no position table, symmetric ALiBi bias in
attention, usable beyond the training length. ``"absolute"`` gives a standard BERT (e.g.
all-MiniLM-L6-v2) with a learned position table. ``feed_forward_type`` picks the GLU feed-forward
(``geglu``/``reglu``) or BERT's plain two-layer MLP (``original``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jina_jax.models.architecture import (
    LINEAR,
    Architecture,
    Rule,
    layer_norm_rules,
    linear_from_heads,
    linear_rules,
    linear_to_heads,
    per_layer,
)
from jina_jax.models.attention import alibi_bias_fn, text_segments
from jina_jax.models.layers import (
    Dense,
    Embed,
    LayerNorm,
    SelfAttention,
    activation,
    stack_layers,
)

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
    attention_impl: str = "auto"  # auto | dense | chunked | flash (Pallas, TPU) | cudnn | xla
    attention_chunk_size: int = 512
    attention_chunk_threshold: int = 2048
    remat: bool = False
    # One nn.scan over the layers: parameters stacked on a leading "layers" axis, one layer body
    # to compile (compile time flat in depth). Checkpoints differ in layout from unscanned ones;
    # the HF import/export maps both.
    scan_layers: bool = False
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
    def position_limit(self) -> int | None:
        """Hard limit on positions: the position table of an absolute BERT; ALiBi has none."""
        return self.max_position_embeddings if self.position_embedding_type == "absolute" else None

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
    def __call__(self, x, segments, deterministic):
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
        )(x, segments, bias_fn, deterministic)
        attended = nn.Dropout(cfg.hidden_dropout)(attended, deterministic=deterministic)
        x = LayerNorm(cfg.layer_norm_eps, dtype=dtype, name="attention_norm")(x + attended)
        h = BertFeedForward(cfg, name="mlp")(x, deterministic)
        h = nn.Dropout(cfg.hidden_dropout)(h, deterministic=deterministic)
        x = LayerNorm(cfg.layer_norm_eps, dtype=dtype, name="mlp_norm")(x + h)
        return (x, None) if cfg.scan_layers else x  # nn.scan's (carry, output)


class BertEncoder(nn.Module):
    """Returns ``{"last_hidden_state": [B, L, H], "pooler_output": [B, H] (if add_pooler)}``."""

    config: BertConfig

    def setup(self):
        cfg = self.config
        self.embeddings = BertEmbeddings(cfg)
        layer_cls = stack_layers(BertLayer, cfg, broadcast_args=2)
        if cfg.scan_layers:
            self.layers = layer_cls(cfg)  # params "layers/...": [num_layers, ...]
        else:
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
        segments = text_segments(input_ids, attention_mask, segment_ids)
        x = self.embeddings(input_ids, token_type_ids, deterministic, position_ids)
        if self.config.scan_layers:
            x, _ = self.layers(x, segments, deterministic)
        else:
            for layer in self.layers:
                x = layer(x, segments, deterministic)
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
        segment_ids=None,
        position_ids=None,
        predict_at=None,
    ):
        """Logits ``[B, L, V]``, or ``[B, M, V]`` at ``predict_at [B, M]`` only: the vocabulary
        projection is the costliest matmul of MLM, and only masked positions need it."""
        hidden = self.bert(
            input_ids, attention_mask, token_type_ids, deterministic, segment_ids, position_ids
        )
        states = hidden["last_hidden_state"]
        if predict_at is not None:
            states = jnp.take_along_axis(states, predict_at[..., None], axis=1)
        params = self.bert.variables["params"]
        table = nn.meta.unbox(params["embeddings"]["word_embeddings"]["embedding"])
        return self.cls(states, table.astype(jnp.float32))


# --------------------------------------------------------------------------- Hugging Face


def _heads(config: BertConfig) -> tuple[int, int]:
    return config.num_heads, config.head_dim


QKV_KERNEL, QKV_BIAS = linear_to_heads(_heads)
OUTPUT_KERNEL = linear_from_heads(_heads)


def bert_rules(
    config: BertConfig, prefix: str = "", flax_prefix: tuple[str, ...] = ()
) -> list[Rule]:
    """``BertModel`` / ``JinaBertModel`` names (``prefix="bert."`` inside the MLM models)."""
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
        *layer_norm_rules(f"{p}embeddings.LayerNorm", (*f, "embeddings", "LayerNorm")),
    ]
    if config.position_embedding_type == "absolute":
        rules.append(
            Rule(
                f"{p}embeddings.position_embeddings.weight",
                (*f, "embeddings", "position_embeddings", "embedding"),
            )
        )
    for i in range(config.num_layers):
        rules += per_layer(
            _layer_rules(config, f"{p}encoder.layer.{i}", (*f, f"layer_{i}")),
            i,
            config.scan_layers,
            (*f, f"layer_{i}"),
            "layers",
        )
    if config.add_pooler:
        rules += linear_rules(f"{p}pooler.dense", (*f, "pooler"), kernel_transform=LINEAR)
    return rules


def _layer_rules(config: BertConfig, hf: str, fl: tuple[str, ...]) -> list[Rule]:
    rules: list[Rule] = []
    for name in ("query", "key", "value"):
        rules += linear_rules(
            f"{hf}.attention.self.{name}",
            (*fl, "attention", name),
            kernel_transform=QKV_KERNEL,
            bias_transform=QKV_BIAS,
        )
    rules += linear_rules(
        f"{hf}.attention.output.dense",
        (*fl, "attention", "output"),
        kernel_transform=OUTPUT_KERNEL,
    )
    rules += layer_norm_rules(f"{hf}.attention.output.LayerNorm", (*fl, "attention_norm"))
    if config.feed_forward_type == "original":
        rules += linear_rules(f"{hf}.intermediate.dense", (*fl, "mlp", "intermediate"))
        rules += linear_rules(f"{hf}.output.dense", (*fl, "mlp", "wo"))
        rules += layer_norm_rules(f"{hf}.output.LayerNorm", (*fl, "mlp_norm"))
    else:
        rules += linear_rules(f"{hf}.mlp.gated_layers", (*fl, "mlp", "gated_layers"), bias=False)
        rules += linear_rules(f"{hf}.mlp.wo", (*fl, "mlp", "wo"))
        rules += layer_norm_rules(f"{hf}.mlp.layernorm", (*fl, "mlp_norm"))
    return rules


def hf_rules(config: BertConfig, *, mlm: bool = False) -> list[Rule]:
    """The encoder's rules, or (``mlm``) those of ``BertForMaskedLM`` / ``JinaBertForMaskedLM``,
    whose decoder weight is tied to the word embeddings."""
    if not mlm:
        return bert_rules(config)
    encoder = dataclasses.replace(config, add_pooler=False)
    return [
        *bert_rules(encoder, prefix="bert.", flax_prefix=("bert",)),
        *linear_rules("cls.predictions.transform.dense", ("cls", "transform")),
        *layer_norm_rules("cls.predictions.transform.LayerNorm", ("cls", "transform_norm")),
        Rule("cls.predictions.bias", ("cls", "bias")),
    ]


def config_from_hf(hf_config: dict[str, Any], **overrides) -> BertConfig:
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


def config_to_hf(config: BertConfig, *, mlm: bool = False) -> dict[str, Any]:
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


def _import_tensors(tensors: dict, overrides: dict) -> tuple[dict, dict]:
    """Some checkpoints name an MLM architecture but hold bare encoder weights, or the reverse:
    the tensors decide. Whether the encoder has a pooler follows the tensors too."""
    if any(k.startswith("bert.") for k in tensors):
        tensors = {
            k.removeprefix("bert."): v for k, v in tensors.items() if not k.startswith("cls.")
        }
    overrides = {"add_pooler": "pooler.dense.weight" in tensors, **overrides}
    return tensors, overrides


def forward_flops(config: BertConfig, rows: int, length: int) -> float:
    """Matmul FLOPs of one forward pass over ``rows x length`` tokens: projections, feed-forward
    and the two attention products (embeddings are lookups)."""
    hidden = config.hidden_size
    glu = config.feed_forward_type != "original"
    per_layer_params = 4 * hidden * hidden + (3 if glu else 2) * hidden * config.intermediate_size
    attention = 4 * length * hidden
    return rows * length * config.num_layers * (2 * per_layer_params + attention)


ARCHITECTURE = Architecture(
    name="bert",
    config_cls=BertConfig,
    encoder=BertEncoder,
    mlm=BertForMaskedLM,
    hf_classes={
        "BertModel": "encoder",
        "JinaBertModel": "encoder",
        "BertForMaskedLM": "mlm",
        "JinaBertForMaskedLM": "mlm",
    },
    hf_model_type="bert",
    hf_rules=hf_rules,
    config_from_hf=config_from_hf,
    config_to_hf=config_to_hf,
    forward_flops=forward_flops,
    ignorable_hf=(
        "embeddings.position_ids",
        "cls.predictions.decoder.weight",
        "cls.predictions.decoder.bias",
    ),
    import_tensors=_import_tensors,
    needs_remote_code=lambda config: config.position_embedding_type == "alibi",
)
