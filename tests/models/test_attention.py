"""The attention function and its bias functions, against hand computations and torch."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jina_jax.models.attention import (
    alibi_bias_fn,
    alibi_slopes,
    dot_product_attention,
    t5_bias_fn,
    t5_relative_position_bucket,
)


def test_alibi_slopes_power_of_two_by_hand():
    np.testing.assert_allclose(alibi_slopes(8), [2.0**-k for k in range(1, 9)], rtol=0, atol=0)
    # 16 heads: start = 2^-(2^-(4-3)) = 2^-0.5
    np.testing.assert_allclose(
        alibi_slopes(16), [2.0 ** (-0.5 * k) for k in range(1, 17)], rtol=1e-7
    )


def test_alibi_slopes_twelve_heads_by_hand():
    # closest power of two is 8 (1/2 ... 1/256); then every other slope of 16 heads, first 4.
    sixteen = [2.0 ** (-0.5 * k) for k in range(1, 17)]
    expected = [2.0**-k for k in range(1, 9)] + sixteen[0::2][:4]
    np.testing.assert_allclose(alibi_slopes(12), expected, rtol=1e-7)
    assert expected[8:] == pytest.approx([2**-0.5, 2**-1.5, 2**-2.5, 2**-3.5])


def test_alibi_bias_symmetric_and_linear_in_distance():
    heads = 12
    bias = np.asarray(alibi_bias_fn(heads)(jnp.arange(7), jnp.arange(7)))
    slopes = alibi_slopes(heads)
    for h in range(heads):
        for i in range(7):
            for j in range(7):
                assert bias[h, i, j] == pytest.approx(-slopes[h] * abs(i - j), rel=1e-6)
    np.testing.assert_array_equal(bias, np.swapaxes(bias, 1, 2))
    assert np.all(np.diagonal(bias, axis1=1, axis2=2) == 0)


def test_t5_buckets_match_transformers():
    import torch
    from transformers.models.t5.modeling_t5 import T5Attention

    relative = np.arange(-300, 301)[None, :] - np.arange(0, 3)[:, None]
    for bidirectional in (True, False):
        for buckets, distance in ((32, 128), (16, 64)):
            ours = t5_relative_position_bucket(
                jnp.asarray(relative, jnp.int32),
                bidirectional=bidirectional,
                num_buckets=buckets,
                max_distance=distance,
            )
            ref = T5Attention._relative_position_bucket(
                torch.as_tensor(relative), bidirectional, buckets, distance
            )
            np.testing.assert_array_equal(np.asarray(ours), ref.numpy())


def _reference_attention(q, k, v, mask, bias, scale):
    """Plain numpy softmax attention: q,k,v [B, L, H, D], mask [B, L], bias [H, L, L]."""
    logits = np.einsum("bqhd,bkhd->bhqk", q, k) * scale + bias[None]
    logits = np.where(mask[:, None, None, :], logits, -np.inf)
    logits = logits - logits.max(-1, keepdims=True)
    p = np.exp(logits)
    p = p / p.sum(-1, keepdims=True)
    return np.einsum("bhqk,bkhd->bqhd", p, v)


@pytest.fixture(scope="module")
def qkv():
    rng = np.random.default_rng(0)
    shape = (2, 37, 4, 8)
    q, k, v = (rng.standard_normal(shape).astype(np.float32) for _ in range(3))
    mask = np.ones((2, 37), np.int32)  # segment ids: one text per row, 0 on padding
    mask[1, 29:] = 0  # the second sequence is padded
    return q, k, v, mask


def test_dense_attention_matches_numpy_with_alibi_and_padding(qkv):
    q, k, v, mask = qkv
    bias_fn = alibi_bias_fn(4)
    ours = dot_product_attention(q, k, v, segment_ids=mask, bias_fn=bias_fn)
    bias = np.asarray(bias_fn(jnp.arange(37), jnp.arange(37)))
    ref = _reference_attention(q, k, v, mask, bias, 1 / math.sqrt(8))
    np.testing.assert_allclose(np.asarray(ours), ref, atol=1e-5)


def test_padding_is_masked(qkv):
    q, k, v, mask = qkv
    bias_fn = alibi_bias_fn(4)
    out = dot_product_attention(q, k, v, segment_ids=mask, bias_fn=bias_fn)
    k2, v2 = k.copy(), v.copy()
    k2[1, 29:] = 100.0  # garbage in padded keys must not reach any output
    v2[1, 29:] = -100.0
    out2 = dot_product_attention(q, k2, v2, segment_ids=mask, bias_fn=bias_fn)
    np.testing.assert_allclose(np.asarray(out), np.asarray(out2), atol=1e-6)
    # and equals running the unpadded sequence alone
    alone = dot_product_attention(q[1:, :29], k[1:, :29], v[1:, :29], bias_fn=bias_fn)
    np.testing.assert_allclose(np.asarray(out[1:, :29]), np.asarray(alone), atol=1e-5)


@pytest.mark.parametrize("bias_kind", ["alibi", "t5", "none"])
@pytest.mark.parametrize("chunk", [8, 16, 64])
def test_chunked_equals_dense_forward_and_gradient(qkv, bias_kind, chunk):
    q, k, v, mask = qkv
    table = jnp.asarray(np.random.default_rng(1).standard_normal((32, 4)), jnp.float32)
    bias_fn = {
        "alibi": alibi_bias_fn(4),
        "t5": t5_bias_fn(table),
        "none": None,
    }[bias_kind]

    def loss(q, k, v, implementation):
        out = dot_product_attention(
            q,
            k,
            v,
            segment_ids=mask,
            bias_fn=bias_fn,
            implementation=implementation,
            chunk_size=chunk,
        )
        return jnp.sum(out * jnp.cos(jnp.arange(out.size).reshape(out.shape)))

    dense = dot_product_attention(
        q, k, v, segment_ids=mask, bias_fn=bias_fn, implementation="dense"
    )
    chunked = dot_product_attention(
        q, k, v, segment_ids=mask, bias_fn=bias_fn, implementation="chunked", chunk_size=chunk
    )
    np.testing.assert_allclose(np.asarray(chunked), np.asarray(dense), atol=1e-5)
    grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2)), static_argnums=3)
    grads_dense = grad(q, k, v, "dense")
    grads_chunked = grad(q, k, v, "chunked")
    for gd, gc in zip(grads_dense, grads_chunked):
        np.testing.assert_allclose(np.asarray(gc), np.asarray(gd), atol=1e-5)


def test_auto_switches_on_length(qkv):
    q, k, v, _mask = qkv
    jaxpr_dense = jax.make_jaxpr(
        lambda q, k, v: dot_product_attention(q, k, v, implementation="auto", chunk_threshold=64)
    )(q, k, v)
    jaxpr_chunked = jax.make_jaxpr(
        lambda q, k, v: dot_product_attention(
            q, k, v, implementation="auto", chunk_threshold=16, chunk_size=8
        )
    )(q, k, v)
    assert "scan" not in str(jaxpr_dense)
    assert "scan" in str(jaxpr_chunked)


def test_jax_nn_attention_path_matches_dense(qkv):
    q, k, v, mask = qkv
    bias_fn = alibi_bias_fn(4)
    dense = dot_product_attention(q, k, v, segment_ids=mask, bias_fn=bias_fn)
    fused = dot_product_attention(q, k, v, segment_ids=mask, bias_fn=bias_fn, implementation="xla")
    np.testing.assert_allclose(np.asarray(fused), np.asarray(dense), atol=1e-5)


@pytest.mark.parametrize("bias", ["alibi", "t5"])
def test_flash_kernel_equals_dense_in_interpret_mode(bias):
    """The Pallas TPU flash kernel (run by Pallas's TPU interpreter on CPU) with packed rows and
    padding: outputs at real tokens and the query gradient equal the dense path's."""
    from jax.experimental.pallas import tpu as pltpu

    rng = np.random.default_rng(0)
    length, heads = 128, 2
    q, k, v = (
        jnp.asarray(rng.standard_normal((1, length, heads, 32)), jnp.float32) for _ in range(3)
    )
    segments = np.zeros((1, length), np.int32)
    segments[0, :50], segments[0, 50:110] = 1, 2  # two texts, then 18 padding tokens
    segments = jnp.asarray(segments)
    table = jnp.asarray(rng.standard_normal((8, heads)), jnp.float32)
    bias_fn = alibi_bias_fn(heads) if bias == "alibi" else t5_bias_fn(table, max_distance=20)
    scale = None if bias == "alibi" else 1.0
    real = (segments > 0)[..., None, None]

    def loss(query, implementation):
        out = dot_product_attention(
            query, k, v, segment_ids=segments, bias_fn=bias_fn, scale=scale,
            implementation=implementation,
        )  # fmt: skip
        return jnp.sum(jnp.where(real, out, 0.0) ** 2), out

    with pltpu.force_tpu_interpret_mode():
        (_, flash), grad_flash = jax.value_and_grad(loss, has_aux=True)(q, "flash")
    (_, dense), grad_dense = jax.value_and_grad(loss, has_aux=True)(q, "dense")
    keep = np.asarray(segments[0] > 0)
    np.testing.assert_allclose(np.asarray(flash)[0, keep], np.asarray(dense)[0, keep], atol=1e-5)
    # float32 sums in another order: 1e-6 of the largest gradient entry
    tolerance = 1e-6 * float(np.abs(np.asarray(grad_dense)).max())
    np.testing.assert_allclose(np.asarray(grad_flash), np.asarray(grad_dense), atol=tolerance)


def test_flash_pads_lengths_to_128_blocks():
    """A 100-token row runs in one padded block of 128: the padding is never attended."""
    from jax.experimental.pallas import tpu as pltpu

    rng = np.random.default_rng(1)
    q, k, v = (jnp.asarray(rng.standard_normal((1, 100, 2, 16)), jnp.float32) for _ in range(3))
    bias_fn = alibi_bias_fn(2)
    with pltpu.force_tpu_interpret_mode():
        flash = dot_product_attention(q, k, v, bias_fn=bias_fn, implementation="flash")
    dense = dot_product_attention(q, k, v, bias_fn=bias_fn, implementation="dense")
    assert flash.shape == dense.shape
    np.testing.assert_allclose(np.asarray(flash), np.asarray(dense), atol=1e-5)
