"""The one attention function of jina_jax, and the position-bias functions it takes.

Both JinaBERT (ALiBi) and the T5 encoder (bucketed relative positions) express position as an
additive bias on the attention logits. Instead of materialising a ``[heads, L, L]`` table for the
longest supported length, each model hands ``dot_product_attention`` a *bias function*
``bias_fn(q_pos, k_pos) -> [heads, Lq, Lk]`` that is evaluated for the actual positions. The dense
path calls it once; the chunked path calls it per key chunk, so no ``L x L`` tensor ever exists.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

# bias_fn(q_pos [Lq] int32, k_pos [Lk] int32) -> [heads, Lq, Lk] float32
BiasFn = Callable[[jax.Array, jax.Array], jax.Array]

# Large negative logit for masked keys; finite so that fully masked rows stay NaN-free.
MASK_VALUE = -1e30


def alibi_slopes(num_heads: int) -> np.ndarray:
    """ALiBi slopes of Press et al., including their rule for non-power-of-two head counts."""
    if num_heads < 1:
        raise ValueError(f"num_heads must be >= 1, got {num_heads}")

    def power_of_two_slopes(n: int) -> list[float]:
        start = 2.0 ** (-(2.0 ** -(math.log2(n) - 3)))
        return [start ** (i + 1) for i in range(n)]

    closest = 2 ** math.floor(math.log2(num_heads))
    slopes = power_of_two_slopes(closest)
    if closest != num_heads:
        slopes += power_of_two_slopes(2 * closest)[0::2][: num_heads - closest]
    return np.asarray(slopes, dtype=np.float32)


def alibi_bias_fn(num_heads: int) -> BiasFn:
    """Symmetric ALiBi: ``bias[h, i, j] = -slope[h] * |i - j|`` (JinaBERT uses both directions)."""
    slopes = jnp.asarray(alibi_slopes(num_heads))

    def bias_fn(q_pos: jax.Array, k_pos: jax.Array) -> jax.Array:
        distance = jnp.abs(q_pos[:, None] - k_pos[None, :]).astype(jnp.float32)
        return -slopes[:, None, None] * distance[None]

    return bias_fn


def t5_relative_position_bucket(
    relative_position: jax.Array,
    *,
    bidirectional: bool = True,
    num_buckets: int = 32,
    max_distance: int = 128,
) -> jax.Array:
    """T5's bucket index of ``relative_position = key_pos - query_pos``.

    Half the buckets are exact small distances, the rest grow logarithmically up to
    ``max_distance``; in the bidirectional case, the upper half of the buckets is for keys to the
    right of the query.
    """
    bucket = jnp.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        bucket = bucket + (relative_position > 0).astype(relative_position.dtype) * num_buckets
        distance = jnp.abs(relative_position)
    else:
        distance = -jnp.minimum(relative_position, 0)
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    # Same float32 arithmetic as the reference implementations, so bucket edges agree exactly.
    scaled = jnp.log(jnp.maximum(distance, 1).astype(jnp.float32) / max_exact) / math.log(
        max_distance / max_exact
    )
    large = max_exact + (scaled * (num_buckets - max_exact)).astype(relative_position.dtype)
    large = jnp.minimum(large, num_buckets - 1)
    return bucket + jnp.where(is_small, distance, large)


def t5_bias_fn(table: jax.Array, *, bidirectional: bool = True, max_distance: int = 128) -> BiasFn:
    """Bias from a learned ``[num_buckets, heads]`` table, looked up for the actual positions."""
    num_buckets = table.shape[0]
    table = jnp.asarray(table)  # host numpy weights cannot be indexed by traced buckets

    def bias_fn(q_pos: jax.Array, k_pos: jax.Array) -> jax.Array:
        relative = k_pos[None, :] - q_pos[:, None]  # [Lq, Lk]
        buckets = t5_relative_position_bucket(
            relative,
            bidirectional=bidirectional,
            num_buckets=num_buckets,
            max_distance=max_distance,
        )
        return jnp.transpose(table[buckets].astype(jnp.float32), (2, 0, 1))  # [heads, Lq, Lk]

    return bias_fn


def dot_product_attention(
    query: jax.Array,
    key: jax.Array,
    value: jax.Array,
    *,
    segment_ids: jax.Array | None = None,
    bias_fn: BiasFn | None = None,
    scale: float | None = None,
    dropout_rate: float = 0.0,
    dropout_rng: jax.Array | None = None,
    implementation: str = "dense",
    chunk_size: int = 512,
    chunk_threshold: int = 2048,
) -> jax.Array:
    """Multi-head self-attention with an additive, position-only bias, kept within texts.

    Args:
      query, key, value: ``[batch, length, heads, head_dim]`` (one sequence: Lq == Lk).
      segment_ids: ``[batch, length]`` int; 0 on padding, ``k > 0`` on the tokens of the k-th
        text of a row (an unpacked row holds one text, so this is just the padding mask). Query
        ``i`` attends key ``j`` when both carry the same non-zero id. The chunked path compares
        ids per key chunk, so packed rows never build a ``[batch, L, L]`` mask there. None: every
        token is real.
      bias_fn: position bias, evaluated on the actual positions (see module docstring).
      scale: logit scale; ``1/sqrt(head_dim)`` by default (T5 passes 1.0).
      implementation: ``dense`` (reference; materialises ``[B, heads, Lq, Lk]``), ``chunked``
        (online softmax over key chunks, ``O(L * chunk)`` memory), ``flash`` (the Pallas TPU
        flash-attention kernel; TPU only, or Pallas interpret mode), ``auto`` (chunked when the
        key length exceeds ``chunk_threshold``, else dense: ``auto_implementation``), or
        ``cudnn`` / ``xla`` (jax.nn's fused attention, for accelerators). Attention dropout needs the full probability matrix, so
        it runs on the dense path only; asking for it on another path is an error.

    Returns:
      ``[batch, Lq, heads, head_dim]`` in the query's dtype.
    """
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1])
    if implementation == "auto":
        implementation = auto_implementation(key.shape[1], chunk_threshold)
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(
            f"unknown attention implementation {implementation!r}; use one of "
            f"{', '.join(('auto', *IMPLEMENTATIONS))}"
        )
    if segment_ids is None:
        segment_ids = jnp.ones(query.shape[:2], jnp.int32)
    use_dropout = dropout_rate > 0.0 and dropout_rng is not None
    if use_dropout and implementation != "dense":
        raise ValueError(
            f"attention dropout ({dropout_rate}) needs the full probability matrix, which the "
            f"{implementation!r} attention path never builds (sequence length {key.shape[1]}); "
            "set model.attention_dropout=0.0, or model.attention_impl='dense'"
        )
    if implementation == "chunked":
        return _chunked_attention(query, key, value, segment_ids, bias_fn, scale, chunk_size)
    if implementation in ("cudnn", "xla"):
        return _fused_attention(query, key, value, segment_ids, bias_fn, scale, implementation)
    if implementation == "flash":
        return _flash_attention(query, key, value, segment_ids, bias_fn, scale)
    # Heads-major operands ([B, heads, L, head_dim]): on CPU, XLA runs both einsums as plain
    # batched matmuls then, several times faster than with the [B, L, heads, head_dim] layout.
    query, key, value = (jnp.swapaxes(x, 1, 2) for x in (query, key, value))
    logits = jnp.einsum("bhqd,bhkd->bhqk", query, key, preferred_element_type=jnp.float32)
    logits = logits * scale
    if bias_fn is not None:
        positions_q = jnp.arange(query.shape[2], dtype=jnp.int32)
        positions_k = jnp.arange(key.shape[2], dtype=jnp.int32)
        logits = logits + bias_fn(positions_q, positions_k)[None]
    logits = logits + _mask_bias(segment_ids, segment_ids)
    probs = jax.nn.softmax(logits, axis=-1)
    if use_dropout:
        keep = jax.random.bernoulli(dropout_rng, 1.0 - dropout_rate, probs.shape)
        probs = jnp.where(keep, probs / (1.0 - dropout_rate), 0.0)
    out = jnp.einsum("bhqk,bhkd->bhqd", probs.astype(value.dtype), value)
    return jnp.swapaxes(out, 1, 2).astype(query.dtype)


IMPLEMENTATIONS = ("dense", "chunked", "flash", "cudnn", "xla")


def auto_implementation(key_length: int, chunk_threshold: int = 2048) -> str:
    """What ``implementation="auto"`` runs: dense up to ``chunk_threshold`` keys, chunked above,
    on every backend, TPU included.

    Compiled for TPU (benchmarks/RESULTS.md, v5e-16): the Pallas flash kernel takes the
    position bias as a dense ``[B, heads, L, L]`` operand and returns its gradient in that
    shape, so with ALiBi it needed slightly more memory than the dense path for the v2-base
    pairs step at 512 tokens (3.82 vs 3.68 GiB of temporaries per chip) and five times the
    chunked path's for a v2-base forward over 8192-token rows (2.06 vs 0.42 GiB). Flash pays
    off only once the bias is computed inside the kernel."""
    return "chunked" if key_length > chunk_threshold else "dense"


def segment_mask(q_segments: jax.Array, k_segments: jax.Array | None = None) -> jax.Array:
    """Segment ids ``[B, Lq]`` (queries) and ``[B, Lk]`` (keys; default: the same) ->
    ``[B, Lq, Lk]`` bool: true where the key is a real token (id > 0) of the query's text. A
    padding query (id 0) attends every real key of its row, as in an ordinary padded batch, so
    no softmax row is fully masked; nothing reads its output.

    With relative position biases (ALiBi, T5 buckets) the bias between two tokens of one text is
    the same as in an unpacked row, so a packed text is encoded exactly as on its own."""
    k_segments = q_segments if k_segments is None else k_segments
    q, k = q_segments[:, :, None], k_segments[:, None, :]
    return ((q == k) | (q == 0)) & (k > 0)


def text_segments(input_ids, attention_mask=None, segment_ids=None) -> jax.Array:
    """The encoders' segment ids ``[B, L]`` int32: ``segment_ids`` for packed rows, else the
    padding mask as ids (one text per row), else all ones."""
    if segment_ids is not None:
        return segment_ids.astype(jnp.int32)
    if attention_mask is None:
        return jnp.ones(input_ids.shape, jnp.int32)
    return attention_mask.astype(jnp.int32)


def _mask_bias(q_segments: jax.Array, k_segments: jax.Array) -> jax.Array:
    """Additive ``[B, 1, Lq, Lk]``: 0 where the query may attend the key, ``MASK_VALUE`` else.

    Adding it equals selecting ``MASK_VALUE`` (every logit is tiny next to 1e30, so the sum rounds
    to it exactly), but XLA:CPU fuses a broadcast add into the softmax far better than a select.
    """
    allowed = segment_mask(q_segments, k_segments)
    return jnp.where(allowed, 0.0, MASK_VALUE).astype(jnp.float32)[:, None]


def _fused_attention(query, key, value, segment_ids, bias_fn, scale, implementation):
    """``jax.nn.dot_product_attention``: ``cudnn`` is the fused GPU kernel (it takes the bias and
    the mask as tensors, so ``[heads, L, L]`` and ``[B, L, L]`` exist here); ``xla`` is JAX's own
    lowering. For comparison on accelerators; the chunked path needs no ``L x L`` tensor."""
    bias = None
    if bias_fn is not None:
        positions_q = jnp.arange(query.shape[1], dtype=jnp.int32)
        positions_k = jnp.arange(key.shape[1], dtype=jnp.int32)
        bias = bias_fn(positions_q, positions_k)[None].astype(query.dtype)  # [1, heads, Lq, Lk]
    mask = segment_mask(segment_ids)[:, None]  # [B, 1, Lq, Lk]
    out = jax.nn.dot_product_attention(
        query, key, value, bias=bias, mask=mask, scale=scale, implementation=implementation
    )
    return out.astype(query.dtype)


def _chunked_attention(query, key, value, segment_ids, bias_fn, scale, chunk_size):
    """Online-softmax scan over key chunks; each chunk step is rematerialised in the backward
    pass. The mask of a chunk is built from the segment ids inside the step: ``[B, Lq, chunk]``."""
    batch, q_len, heads, head_dim = query.shape
    k_len = key.shape[1]
    chunk = min(chunk_size, k_len)
    num_chunks = -(-k_len // chunk)
    pad = num_chunks * chunk - k_len
    key_segments = segment_ids
    if pad:  # padded keys carry segment 0: nothing attends them
        key = jnp.pad(key, ((0, 0), (0, pad), (0, 0), (0, 0)))
        value = jnp.pad(value, ((0, 0), (0, pad), (0, 0), (0, 0)))
        key_segments = jnp.pad(key_segments, ((0, 0), (0, pad)))
    # [num_chunks, batch, heads, chunk, head_dim]: heads-major, as in the dense path
    key_chunks = key.reshape(batch, num_chunks, chunk, heads, head_dim).transpose(1, 0, 3, 2, 4)
    value_chunks = value.reshape(batch, num_chunks, chunk, heads, head_dim).transpose(1, 0, 3, 2, 4)
    segment_chunks = key_segments.reshape(batch, num_chunks, chunk).transpose(1, 0, 2)
    query = jnp.swapaxes(query, 1, 2)  # [batch, heads, Lq, head_dim]
    positions_q = jnp.arange(q_len, dtype=jnp.int32)

    @functools.partial(jax.checkpoint, prevent_cse=False)
    def step(carry, inputs):
        running_max, running_sum, accumulator = carry
        index, k_chunk, v_chunk, k_segments = inputs
        logits = jnp.einsum("bhqd,bhkd->bhqk", query, k_chunk, preferred_element_type=jnp.float32)
        logits = logits * scale
        if bias_fn is not None:
            positions_k = index * chunk + jnp.arange(chunk, dtype=jnp.int32)
            logits = logits + bias_fn(positions_q, positions_k)[None]
        logits = logits + _mask_bias(segment_ids, k_segments)
        new_max = jnp.maximum(running_max, logits.max(axis=-1))
        correction = jnp.exp(running_max - new_max)
        weights = jnp.exp(logits - new_max[..., None])  # [B, heads, Lq, chunk]
        running_sum = running_sum * correction + weights.sum(axis=-1)
        update = jnp.einsum(
            "bhqk,bhkd->bhqd",
            weights.astype(v_chunk.dtype),
            v_chunk,
            preferred_element_type=jnp.float32,
        )
        accumulator = accumulator * correction[..., None] + update
        return (new_max, running_sum, accumulator), None

    init = (
        jnp.full((batch, heads, q_len), -jnp.inf, jnp.float32),
        jnp.zeros((batch, heads, q_len), jnp.float32),
        jnp.zeros((batch, heads, q_len, head_dim), jnp.float32),
    )
    indices = jnp.arange(num_chunks, dtype=jnp.int32)
    (_, total, accumulator), _ = jax.lax.scan(
        step, init, (indices, key_chunks, value_chunks, segment_chunks)
    )
    out = accumulator / total[..., None]
    return jnp.swapaxes(out, 1, 2).astype(query.dtype)


def _flash_attention(query, key, value, segment_ids, bias_fn, scale):
    """The Pallas TPU flash-attention kernel (``jax.experimental.pallas.ops.tpu``).

    Its segment mask lets a query attend the keys of EQUAL id, so our ids pass as they are:
    a real token (id > 0) never meets a padding key (id 0), and a padding query attends the
    padding keys (itself at least, so no row is empty; nothing reads it). The kernel adds the
    bias ``ab`` BEFORE multiplying by ``sm_scale``: ``ab`` is the bias divided by ``scale``.
    It takes ``ab`` as a dense ``[B, heads, Lq, Lk]`` array (and differentiates it in the
    same shape): the cost of this path with a position bias."""
    # Optional: the Pallas TPU kernels are imported only on this path.
    from jax.experimental.pallas.ops.tpu import flash_attention as pallas_flash

    batch, length, heads, _ = query.shape
    # The kernel works in blocks of 128 keys: pad to a multiple with padding tokens (id 0),
    # which no real query attends, and drop the padded queries' outputs.
    pad = -length % 128
    if pad:
        query, key, value = (
            jnp.pad(x, ((0, 0), (0, pad), (0, 0), (0, 0))) for x in (query, key, value)
        )
        segment_ids = jnp.pad(segment_ids, ((0, 0), (0, pad)))
    padded = length + pad
    query, key, value = (jnp.swapaxes(x, 1, 2) for x in (query, key, value))  # [B, h, L, d]
    ab = None
    if bias_fn is not None:
        positions = jnp.arange(padded, dtype=jnp.int32)
        bias = bias_fn(positions, positions) / scale  # [heads, L, L]
        ab = jnp.broadcast_to(bias.astype(query.dtype)[None], (batch, heads, padded, padded))
    ids = segment_ids.astype(jnp.int32)
    block = 128
    sizes = pallas_flash.BlockSizes(
        block_q=block,
        block_k_major=block,
        block_k=block,
        block_b=1,
        block_q_major_dkv=block,
        block_k_major_dkv=block,
        block_k_dkv=block,
        block_q_dkv=block,
        block_k_major_dq=block,
        block_k_dq=block,
        block_q_dq=block,
    )

    def kernel(q, k, v, ids, *bias):
        return pallas_flash.flash_attention(
            q,
            k,
            v,
            ab=bias[0] if bias else None,
            segment_ids=pallas_flash.SegmentIds(q=ids, kv=ids),
            sm_scale=float(scale),
            block_sizes=sizes,
        )

    args = (query, key, value, ids, *(() if ab is None else (ab,)))
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or mesh.size == 1:
        out = kernel(*args)
    else:
        # XLA cannot partition a Mosaic kernel: each device runs it on its own rows (and heads,
        # under tensor parallelism). The axis names are those of jina_jax.sharding's mesh.
        batch_axes = tuple(a for a in ("data", "fsdp") if mesh.shape.get(a, 1) > 1)
        rows = batch_axes if batch % math.prod(mesh.shape[a] for a in batch_axes) == 0 else None
        tensor = mesh.shape.get("tensor", 1)
        head_axis = "tensor" if tensor > 1 and heads % tensor == 0 else None
        spec = P(rows or None, head_axis, None, None)  # q, k, v, ab: [B, heads, L, *]
        in_specs = (spec, spec, spec, P(rows or None, None), *((spec,) if ab is not None else ()))
        out = jax.shard_map(kernel, mesh=mesh, in_specs=in_specs, out_specs=spec, check_vma=False)(
            *args
        )
    return jnp.swapaxes(out, 1, 2)[:, :length].astype(query.dtype)
