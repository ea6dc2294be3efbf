"""The encode path: order, bucketing, truncation, bad input — checked against per-text runs."""

from __future__ import annotations

import numpy as np
import pytest

import jina_jax
from jina_jax.data.buckets import bucket_for, bucket_lengths
from jina_jax.encoding import embed_fn


@pytest.fixture(scope="module")
def minilm():
    return jina_jax.load_model("all-MiniLM-L6-v2")


def test_buckets():
    assert bucket_lengths(512) == [16, 32, 64, 128, 256, 512]
    assert bucket_lengths(100) == [16, 32, 64, 100]
    assert bucket_for(17, bucket_lengths(512)) == 32
    assert bucket_for(16, bucket_lengths(512)) == 16


def test_order_and_padding_do_not_change_embeddings(minilm, real_sentences):
    texts = real_sentences[:40]
    batched, stats = jina_jax.encode(minilm, texts, batch_size=16, return_stats=True)
    # few compiled shapes: lengths snap to buckets; rows are the batch size except in the last,
    # partial batch (40 = 16 + 16 + 8), which is padded only to a power of two
    assert len(stats["shapes"]) <= 3 and all(s[0] in (16, 8) for s in stats["shapes"])
    assert stats["batches"] == 3 and min(s[0] for s in stats["shapes"]) == 8
    # reference: each text alone, unpadded, through the same encoder
    run = embed_fn(minilm.config, minilm.pooling)
    ids, _ = minilm.tokenizer.encode_batch(texts, 512)
    for i in (0, 7, 39):
        single = np.asarray(
            run(minilm.params, ids[i][None], np.ones((1, len(ids[i])), np.int32))[0]
        )
        single = single / np.linalg.norm(single)
        np.testing.assert_allclose(batched[i], single[0], atol=2e-5)


def test_over_long_texts_are_truncated_and_counted(minilm, real_sentences):
    long_text = " ".join(real_sentences[:200])  # thousands of tokens
    out, stats = jina_jax.encode(
        minilm, [long_text, "short text", long_text[:50]], max_length=64, return_stats=True
    )
    assert stats["truncated"] == 1
    assert out.shape == (3, 384) and np.all(np.isfinite(out))
    # the truncated text embeds as its first 64 tokens
    ids, _ = minilm.tokenizer.encode_batch([long_text], 64)
    assert len(ids[0]) == 64
    head = minilm.tokenizer.hf.decode(ids[0][1:-1])
    np.testing.assert_allclose(out[0], jina_jax.encode(minilm, [head], max_length=64)[0], atol=1e-4)


def test_bad_text_lists(minilm):
    with pytest.raises(ValueError, match="empty list"):
        jina_jax.encode(minilm, [])
    with pytest.raises(TypeError, match="single string"):
        jina_jax.encode(minilm, "a sentence")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        jina_jax.encode(minilm, ["ok", None])
    with pytest.raises(ValueError, match="exceeds the 512 positions"):
        jina_jax.encode(minilm, ["ok"], max_length=1024)
