"""Sequence packing: several texts per row with attention kept within each text.

References: the packing layout by hand; the packed objective (loss AND parameter gradients)
against the ordinary padded objective on the same texts, for absolute-position BERT, ALiBi
JinaBERT and T5; packed attention through the chunked path against the dense one; the packed
step on 4 devices against one device.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jina_jax import config_lib
from jina_jax import sharding as shd
from jina_jax.data.pipeline import pack_sequences, row_bucket, tokenize_pairs
from jina_jax.data.records import PairRecord
from jina_jax.data.sampler import DatasetSpec
from jina_jax.models import BertConfig, T5Config
from jina_jax.models.attention import dot_product_attention, segment_mask
from jina_jax.training.loop import init_state, jit_train_step
from jina_jax.training.objectives import ContrastiveObjective
from jina_jax.training.optim import make_optimizer
from jina_jax.training.step import make_train_step

VOCAB = 90


def test_pack_layout_by_hand():
    rows = [np.arange(1, 6), np.arange(10, 13), np.arange(20, 27), np.arange(30, 32)]  # 5 3 7 2
    out = pack_sequences(rows, pack_length=8, pad_id=0)
    # first-fit decreasing: 7 -> row 0 (1 left); 5 -> row 1 (3 left); 3 -> row 1 (0 left);
    # 2 -> row 2
    expected_ids = [
        [20, 21, 22, 23, 24, 25, 26, 0],
        [1, 2, 3, 4, 5, 10, 11, 12],
        [30, 31, 0, 0, 0, 0, 0, 0],
    ]
    np.testing.assert_array_equal(out["ids"], expected_ids)
    np.testing.assert_array_equal(
        out["segments"],
        [[3, 3, 3, 3, 3, 3, 3, 0], [1, 1, 1, 1, 1, 2, 2, 2], [4, 4, 0, 0, 0, 0, 0, 0]],
    )
    np.testing.assert_array_equal(
        out["positions"],
        [[0, 1, 2, 3, 4, 5, 6, 0], [0, 1, 2, 3, 4, 0, 1, 2], [0, 1, 0, 0, 0, 0, 0, 0]],
    )
    np.testing.assert_array_equal(out["lengths"], [5, 3, 7, 2])
    assert pack_sequences(rows, 8, 0, row_multiple=4)["ids"].shape == (4, 8)
    with pytest.raises(ValueError, match="text 2 has 7 tokens, more than the pack length 6"):
        pack_sequences(rows, pack_length=6, pad_id=0)


def test_row_bucket_ladder():
    # multiples of `multiple` up to 8 of them, then 8 steps per doubling
    assert [row_bucket(n) for n in (1, 3, 8, 9, 16, 17, 18, 19, 33, 65)] == [
        1,
        3,
        8,
        9,
        16,
        18,
        18,
        20,
        36,
        72,
    ]
    assert [row_bucket(n, 4) for n in (1, 5, 33, 35, 70)] == [4, 8, 36, 36, 72]
    # 4 steps per doubling: (4, 8] by 1, (8, 16] by 2, (16, 32] by 4, (32, 64] by 8
    assert [row_bucket(n, 1, 4) for n in (3, 5, 9, 11, 17, 33)] == [3, 5, 10, 12, 20, 40]
    with pytest.raises(ValueError, match="power of two"):
        row_bucket(5, 1, 3)


def test_segment_mask_by_hand():
    mask = np.asarray(segment_mask(jnp.asarray([[1, 1, 2, 0]])))[0]
    # a padding query attends every real key (as in a padded batch); nothing attends padding
    expected = [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [1, 1, 1, 0]]
    np.testing.assert_array_equal(mask, np.asarray(expected, bool))


class _Tokenizer:
    """Whitespace 'tokenizer' over integers: exact lengths, no vocabulary file needed."""

    pad_id = 0

    def encode_batch(self, texts, max_length):
        rows = [np.asarray([int(t) for t in text.split()][:max_length], np.int32) for text in texts]
        return rows, None


def _records(n=6, k=2, seed=0):
    rng = np.random.default_rng(seed)

    def text(lo, hi):
        return " ".join(str(t) for t in rng.integers(1, VOCAB, rng.integers(lo, hi)))

    return [
        PairRecord(text(2, 9), text(3, 17), tuple(text(3, 17) for _ in range(k))) for _ in range(n)
    ]


def _both_batches(records, k, row_multiple=1):
    spec = DatasetSpec("d", batch_size=len(records), num_negatives=k)
    tok = _Tokenizer()
    padded = tokenize_pairs(records, spec, tok, 16, 16, pack=False)
    packed = tokenize_pairs(records, spec, tok, 16, 16, pack=True, row_multiple=row_multiple)
    strip = ("dataset", "in_batch_negatives")
    return [{key: v for key, v in b.items() if key not in strip} for b in (padded, packed)]


MODELS = {
    "bert-absolute": BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        intermediate_size=48,
        position_embedding_type="absolute",
        feed_forward_type="original",
        max_position_embeddings=32,
        add_pooler=False,
    ),
    "jinabert-alibi": BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=48
    ),
    "t5": T5Config(
        vocab_size=VOCAB,
        d_model=32,
        d_kv=8,
        d_ff=40,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=12,
    ),
}


@pytest.mark.parametrize("k", [0, 2])
@pytest.mark.parametrize("arch", sorted(MODELS))
def test_packed_objective_equals_padded(arch, k):
    objective = ContrastiveObjective(MODELS[arch], pooling="cls" if arch == "t5" else "mean")
    params = nn.meta.unbox(objective.init(jax.random.key(1)))
    padded, packed = _both_batches(_records(k=2), k)
    padded_rows = padded["ids"].shape[0]  # one text per row
    assert packed["ids"].shape[0] < padded_rows  # it did pack
    rng = jax.random.key(0)

    def loss_and_grads(batch):
        fn = jax.value_and_grad(lambda p: objective(p, batch, rng, train=False), has_aux=True)
        (loss, _), grads = jax.jit(fn)(params)
        return float(loss), grads

    loss_a, grads_a = loss_and_grads(padded)
    loss_b, grads_b = loss_and_grads(packed)
    assert abs(loss_a - loss_b) <= 1e-5 * max(1.0, abs(loss_a))
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(grads_a), jax.tree.leaves(grads_b)):
        np.testing.assert_allclose(
            np.asarray(b), np.asarray(a), atol=1e-5, err_msg=jax.tree_util.keystr(path)
        )


def test_packed_attention_chunked_equals_dense():
    rng = np.random.default_rng(0)
    q, k, v = (jnp.asarray(rng.normal(size=(2, 24, 2, 8)), jnp.float32) for _ in range(3))
    segments = jnp.asarray([[1] * 10 + [2] * 9 + [0] * 5, [1] * 24])
    from jina_jax.models.attention import alibi_bias_fn

    bias = alibi_bias_fn(2)

    def attend(implementation, q, k, v):
        return dot_product_attention(
            q, k, v, segment_ids=segments, bias_fn=bias, implementation=implementation, chunk_size=8
        )

    dense = attend("dense", q, k, v)
    chunked = attend("chunked", q, k, v)
    real = np.asarray(segments > 0)
    np.testing.assert_allclose(np.asarray(chunked)[real], np.asarray(dense)[real], atol=1e-5)
    # text 2 of row 0 alone (positions restart: ALiBi is relative, so the same numbers)
    alone = dot_product_attention(q[:1, 10:19], k[:1, 10:19], v[:1, 10:19], bias_fn=bias)
    np.testing.assert_allclose(np.asarray(dense)[0, 10:19], np.asarray(alone)[0], atol=1e-5)
    grad = jax.jit(
        jax.grad(lambda q_: jnp.sum(attend("chunked", q_, k, v) * real[..., None, None]))
    )(q)
    grad_ref = jax.jit(
        jax.grad(lambda q_: jnp.sum(attend("dense", q_, k, v) * real[..., None, None]))
    )(q)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(grad_ref), atol=1e-5)


def test_packed_step_on_four_devices_equals_one():
    assert len(jax.devices()) == 8  # tests/conftest.py: 8 host devices
    config = MODELS["jinabert-alibi"]
    objective = ContrastiveObjective(config)
    opt = config_lib.optimizer(1e-3, 0, schedule="constant", weight_decay=0.0)
    tx, schedule = make_optimizer(opt, total_steps=10)
    key = jax.random.key(0)
    _, packed = _both_batches(_records(n=8, k=2, seed=3), 2, row_multiple=4)
    results = []
    for devices in (jax.devices()[:1], jax.devices()[:4]):
        mesh = shd.make_mesh({"data": len(devices)}, devices=devices)
        state = init_state(objective, tx, mesh, shd.DEFAULT_RULES, key)
        step = jit_train_step(make_train_step(objective, tx, schedule), state)
        with jax.set_mesh(mesh):
            state, metrics = step(state, shd.global_batch(packed, mesh), key)
        results.append((float(metrics["loss"]), jax.tree.map(np.asarray, state.params)))
    (loss_1, params_1), (loss_4, params_4) = results
    assert np.isfinite(loss_1) and abs(loss_1 - loss_4) <= 1e-5
    for a, b in zip(jax.tree.leaves(params_1), jax.tree.leaves(params_4)):
        np.testing.assert_allclose(b, a, atol=1e-5)


GC_MODEL = BertConfig(
    vocab_size=VOCAB,
    hidden_size=32,
    num_layers=2,
    num_heads=4,
    intermediate_size=48,
    hidden_dropout=0.0,  # GradCache draws a dropout key per chunk; without dropout it is exact
    add_pooler=False,
)


@pytest.mark.parametrize("devices", [1, 8])
def test_grad_cache_with_packing_equals_plain_packed_step(devices):
    """GradCache over packed rows (chunks of 8 rows, one from each of 8 shards) gives the plain
    packed step's loss and every parameter gradient."""
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from jina_jax.training.step import grad_cache_gradients

    objective = ContrastiveObjective(GC_MODEL)
    params = nn.meta.unbox(objective.init(jax.random.key(3)))
    _, packed = _both_batches(_records(n=16, k=2, seed=5), 2, row_multiple=8)
    rows = packed["ids"].shape[0]
    assert rows % 8 == 0 and rows >= 16  # at least two chunks
    rng = jax.random.key(9)
    plain = jax.jit(jax.value_and_grad(lambda p, b: objective(p, b, rng), has_aux=True))
    (loss_ref, _), grads_ref = plain(params, packed)

    mesh = shd.make_mesh({"data": devices}, devices=jax.devices()[:devices])
    axes = "data" if devices > 1 else None
    batch = {
        k: jax.device_put(v, NamedSharding(mesh, P(axes, *([None] * (v.ndim - 1)))))
        for k, v in packed.items()
    }
    cached = jax.jit(lambda p, b: grad_cache_gradients(objective, p, b, rng, 8, devices, axes))
    with jax.set_mesh(mesh):
        (loss, _), grads = cached(params, batch)
    assert abs(float(loss) - float(loss_ref)) <= 1e-5 * max(1.0, abs(float(loss_ref)))
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(grads_ref), jax.tree.leaves(grads)):
        np.testing.assert_allclose(
            np.asarray(b), np.asarray(a), atol=1e-5, err_msg=jax.tree_util.keystr(path)
        )


def test_packed_long_row_needs_no_square_mask():
    """A packed 8192-token row (40 texts) costs XLA the same temporary memory as one unpacked
    text of 8192 tokens: segment ids are compared per key chunk, so no [L, L] mask exists."""
    length = 8192
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_layers=1,
        num_heads=2,
        intermediate_size=32,
        attention_impl="chunked",
        attention_chunk_size=256,
        add_pooler=False,
    )
    from jina_jax.models import build_encoder

    encoder = build_encoder(config)
    params = jax.eval_shape(
        lambda: nn.meta.unbox(encoder.init(jax.random.key(0), jnp.ones((1, 8), jnp.int32)))
    )["params"]
    ids = jax.ShapeDtypeStruct((1, length), jnp.int32)

    def compiled(fn):
        return jax.jit(fn).lower(params, ids, ids, ids).compile()

    def loss(p, x, segments, positions, packed):
        kwargs = dict(segment_ids=segments, position_ids=positions) if packed else {}
        out = encoder.apply({"params": p}, x, None if packed else segments, **kwargs)
        return jnp.sum(out["last_hidden_state"] ** 2)

    packed = compiled(jax.grad(lambda p, x, s, q: loss(p, x, s, q, True)))
    unpacked = compiled(jax.grad(lambda p, x, s, q: loss(p, x, s, q, False)))
    packed_temp = packed.memory_analysis().temp_size_in_bytes
    unpacked_temp = unpacked.memory_analysis().temp_size_in_bytes
    assert packed_temp <= 1.1 * unpacked_temp, (packed_temp, unpacked_temp)
    # and no array of the compiled program has two sequence-length dimensions
    assert f"{length},{length}" not in packed.as_text()
