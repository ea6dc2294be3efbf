"""Small building blocks shared by the encoders: logically-partitioned dense/embedding layers,
layer norms, activations and the multi-head self-attention block.

Every parameter is created through ``nn.with_logical_partitioning`` with names from
``LOGICAL_AXES``; ``jina_jax.sharding`` maps those names to mesh axes with one rules table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jina_jax.models.attention import BiasFn, dot_product_attention

# vocab: token-table rows; embed: model width; mlp: feed-forward width; heads/kv: attention.
# None marks a small axis that is never sharded (token types, positions, buckets).
LOGICAL_AXES = ("vocab", "embed", "mlp", "heads", "kv")

Initializer = Callable[..., jax.Array]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),  # exact erf GELU, as BERT's "gelu"
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),  # tanh approximation (T5 v1.1)
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
}


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def partitioned(init: Initializer, axes: Sequence[str | None]) -> Initializer:
    return nn.with_logical_partitioning(init, tuple(axes))


class Dense(nn.Module):
    """``y = x @ kernel (+ bias)`` over the last ``len(in_axes)`` input axes, with named axes;
    plus a low-rank branch when the module is applied with a ``lora`` collection."""

    features: int | tuple[int, ...]
    in_axes: tuple[str | None, ...]
    out_axes: tuple[str | None, ...]
    use_bias: bool = True
    init_std: float = 0.02
    dtype: jnp.dtype = jnp.float32
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = (self.features,) if isinstance(self.features, int) else tuple(self.features)
        in_shape = x.shape[-len(self.in_axes) :]
        kernel = self.param(
            "kernel",
            partitioned(nn.initializers.normal(self.init_std), self.in_axes + self.out_axes),
            in_shape + features,
            self.param_dtype,
        )
        contract = tuple(range(x.ndim - len(self.in_axes), x.ndim))
        y = jax.lax.dot_general(
            x.astype(self.dtype),
            kernel.astype(self.dtype),
            ((contract, tuple(range(len(self.in_axes)))), ((), ())),
            preferred_element_type=jnp.float32,
        )
        if self.has_variable("lora", "a"):
            # A LoRA branch (jina_jax.models.lora.as_collection): + (x A)(B), with B already
            # scaled by alpha / rank, over the flattened input and output axes.
            a = self.get_variable("lora", "a").astype(self.dtype)
            b = self.get_variable("lora", "b").astype(self.dtype)
            flat = x.reshape(*x.shape[: x.ndim - len(self.in_axes)], -1).astype(self.dtype)
            low = jnp.dot(flat, a, preferred_element_type=jnp.float32).astype(self.dtype)
            y = y + jnp.dot(low, b, preferred_element_type=jnp.float32).reshape(y.shape)
        if self.use_bias:
            bias = self.param(
                "bias",
                partitioned(nn.initializers.zeros, self.out_axes),
                features,
                self.param_dtype,
            )
            y = y + bias
        return y.astype(self.dtype)


class LayerNorm(nn.Module):
    """BERT LayerNorm computed in float32 (the statistics must not run in bf16)."""

    epsilon: float = 1e-12
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = (x.shape[-1],)
        scale = self.param("scale", partitioned(nn.initializers.ones, ("embed",)), features)
        bias = self.param("bias", partitioned(nn.initializers.zeros, ("embed",)), features)
        x32 = x.astype(jnp.float32)
        mean = jnp.mean(x32, axis=-1, keepdims=True)
        variance = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
        y = (x32 - mean) * jax.lax.rsqrt(variance + self.epsilon) * scale + bias
        return y.astype(self.dtype)


class RMSNorm(nn.Module):
    """T5 layer norm: scale only, no mean subtraction, variance in float32."""

    epsilon: float = 1e-6
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = self.param("scale", partitioned(nn.initializers.ones, ("embed",)), (x.shape[-1],))
        x32 = x.astype(jnp.float32)
        variance = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
        return (x32 * jax.lax.rsqrt(variance + self.epsilon) * scale).astype(self.dtype)


class Embed(nn.Module):
    """Token table with named axes."""

    num_embeddings: int
    features: int
    axes: tuple[str | None, str | None] = ("vocab", "embed")
    init_std: float = 0.02
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.embedding = self.param(
            "embedding",
            partitioned(nn.initializers.normal(self.init_std), self.axes),
            (self.num_embeddings, self.features),
        )

    def __call__(self, ids: jax.Array) -> jax.Array:
        return jnp.take(self.embedding, ids, axis=0).astype(self.dtype)


class SelfAttention(nn.Module):
    """Multi-head self-attention: projections around ``dot_product_attention``."""

    num_heads: int
    head_dim: int
    out_features: int
    use_bias: bool = True
    scale: float | None = None  # None: 1/sqrt(head_dim); T5 uses 1.0
    dropout_rate: float = 0.0
    init_std: float = 0.02
    implementation: str = "dense"
    chunk_size: int = 512
    chunk_threshold: int = 2048
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(
        self,
        x: jax.Array,  # [B, L, H]
        segment_ids: jax.Array,  # [B, L] int: 0 padding, k > 0 the k-th text of the row
        bias_fn: BiasFn | None,
        deterministic: bool = True,
    ) -> jax.Array:
        def projection(name):
            return Dense(
                (self.num_heads, self.head_dim),
                in_axes=("embed",),
                out_axes=("heads", "kv"),
                use_bias=self.use_bias,
                init_std=self.init_std,
                dtype=self.dtype,
                name=name,
            )(x)  # [B, L, heads, head_dim]

        query, key, value = projection("query"), projection("key"), projection("value")
        dropout_rng = None
        if not deterministic and self.dropout_rate > 0.0:
            dropout_rng = self.make_rng("dropout")
        context = dot_product_attention(
            query,
            key,
            value,
            segment_ids=segment_ids,
            bias_fn=bias_fn,
            scale=self.scale,
            dropout_rate=self.dropout_rate,
            dropout_rng=dropout_rng,
            implementation=self.implementation,
            chunk_size=self.chunk_size,
            chunk_threshold=self.chunk_threshold,
        )
        return Dense(
            self.out_features,
            in_axes=("heads", "kv"),
            out_axes=("embed",),
            use_bias=self.use_bias,
            init_std=self.init_std,
            dtype=self.dtype,
            name="output",
        )(context)


def stack_layers(layer_cls: type[nn.Module], config, broadcast_args: int) -> type[nn.Module]:
    """The layer class an encoder instantiates, from a layer whose call is ``(x, *shared,
    deterministic)`` with ``broadcast_args`` arguments after ``x`` (``deterministic`` last).

    ``config.remat``: activations recomputed in the backward pass (``nn.remat``).
    ``config.scan_layers``: ONE module that runs ``config.num_layers`` copies under
    ``nn.scan`` (MaxText's ``scan_layers``): the layer is traced and compiled once, whatever the
    depth, and every parameter is stacked on a leading axis named ``layers`` (replicated by the
    sharding rules). The layer must then return ``(x, None)``.
    """
    if config.remat:
        layer_cls = nn.remat(
            layer_cls,
            static_argnums=(broadcast_args + 1,),  # deterministic (self is argument 0)
            prevent_cse=not config.scan_layers,  # scan already keeps the remat boundaries
        )
    if not config.scan_layers:
        return layer_cls
    return nn.scan(
        layer_cls,
        variable_axes={"params": 0, "lora": 0},  # a LoRA branch is stacked like its kernel
        split_rngs={"params": True, "dropout": True},
        in_axes=(nn.broadcast,) * broadcast_args,
        length=config.num_layers,
        metadata_params={nn.PARTITION_NAME: "layers"},
    )
