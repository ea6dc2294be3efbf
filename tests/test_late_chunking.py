"""Late chunking and long inputs: one pass over the whole document, then mean-pooled spans —
checked against hand computations on ``embed_fn``'s token states."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import numpy as np
import pytest

import jina_jax
from jina_jax.data.buckets import encode_buckets
from jina_jax.encoding import _plan_batches, embed_fn, late_chunking
from jina_jax.models import BertConfig, init_params
from jina_jax.tokenization import jina_v2_tokenizer


@pytest.fixture(scope="module")
def minilm():
    return jina_jax.load_model("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def document(real_sentences):
    return " ".join(real_sentences[:8])  # 8 real sentences, about 200 tokens


def hand_states(model, text: str) -> tuple[np.ndarray, list]:
    """Token states of ``text`` alone (no padding) and its offsets, through ``embed_fn``."""
    encoded = model.tokenizer.hf(text, return_offsets_mapping=True)
    ids = np.asarray(encoded["input_ids"], np.int32)[None]
    _, states = embed_fn(model.config, model.pooling)(model.params, ids, np.ones_like(ids))
    return np.asarray(states[0], np.float64), encoded["offset_mapping"]


def test_chunks_equal_mean_of_full_pass_states(minilm, document):
    result = late_chunking(minilm, document, normalize=False)
    states, _ = hand_states(minilm, document)
    expected = np.stack([states[begin:end].mean(0) for begin, end in result.token_spans])
    assert len(result.token_spans) >= 6 and result.embeddings.shape == (len(expected), 384)
    np.testing.assert_allclose(result.embeddings, expected, atol=2e-5)


def test_chunks_differ_from_separately_encoded_chunks(minilm, document):
    result = late_chunking(minilm, document, normalize=True)
    separate = jina_jax.encode(minilm, result.texts, normalize=True)
    cosines = np.sum(result.embeddings * separate, axis=1)
    # related (same text) but not the same: each late chunk also saw the rest of the document
    assert np.all(cosines > 0.3) and np.all(cosines < 0.99), cosines
    assert np.mean(cosines) < 0.95


def test_sentence_spans_cover_the_text(minilm, document):
    text = document + "\nA last line without a full stop"
    result = late_chunking(minilm, text)
    assert "".join(result.texts) == text
    starts = [begin for begin, _ in result.char_spans]
    ends = [end for _, end in result.char_spans]
    assert starts[0] == 0 and ends[-1] == len(text) and starts[1:] == ends[:-1]
    # token spans: contiguous, non-empty, covering every token but [CLS] and [SEP]
    ids = minilm.tokenizer.hf(text)["input_ids"]
    assert ids == minilm.tokenizer.encode_batch([text], 512)[0][0].tolist()  # same ids as encode
    n_tokens = len(ids)
    assert result.token_spans[0][0] == 1 and result.token_spans[-1][1] == n_tokens - 1
    assert all(a[1] == b[0] for a, b in zip(result.token_spans, result.token_spans[1:]))
    assert all(begin < end for begin, end in result.token_spans)
    # sentences end at ". " (and the line break), so each chunk text is one sentence
    assert [t.strip()[-1] for t in result.texts[:-1]] == ["."] * (len(result.texts) - 1)
    assert result.texts[-1] == "A last line without a full stop"


def test_token_count_and_character_spans(minilm, document):
    by_count = late_chunking(minilm, [document, "short text here"], chunks="tokens", chunk_tokens=7)
    lengths = [end - begin for begin, end in by_count[0].token_spans]
    assert set(lengths[:-1]) == {7} and 1 <= lengths[-1] <= 7
    assert by_count[1].token_spans == [(1, 4)] and by_count[1].texts == ["short text here"]
    # given character spans: tokens whose first character falls inside each span
    first, second = (0, document.index(".") + 1), (10, 60)
    result = late_chunking(minilm, document, chunks=[first, second], normalize=False)
    states, offsets = hand_states(minilm, document)
    for (begin, end), vector in zip((first, second), result.embeddings):
        inside = [i for i, (a, b) in enumerate(offsets) if b > a and begin <= a < end]
        np.testing.assert_allclose(vector, states[inside].mean(0), atol=2e-5)
    assert result.texts[0] == document[: first[1]]
    with pytest.raises(ValueError, match="holds no tokens"):
        late_chunking(minilm, document, chunks=[(5, 5)])


def tiny_jina_bert(**overrides) -> jina_jax.Model:
    config = BertConfig(
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        intermediate_size=64,
        **overrides,
    )
    params = nn.meta.unbox(init_params(config, jax.random.key(0)))
    return jina_jax.Model(config, params, jina_v2_tokenizer(), max_length=8192)


def test_long_input_auto_attention_is_chunked_and_equals_dense(real_sentences):
    # 3000 tokens with the chunk threshold lowered to 1024: "auto" must take the chunked path
    auto = tiny_jina_bert(attention_impl="auto", attention_chunk_threshold=1024)
    dense = dataclasses.replace(
        auto, config=dataclasses.replace(auto.config, attention_impl="dense")
    )
    text = " ".join(real_sentences)
    ids = np.asarray(auto.tokenizer.hf(text, truncation=True, max_length=3000)["input_ids"])
    assert len(ids) == 3000
    length = 3072  # the encode bucket of 3000 tokens
    assert length in encode_buckets(8192)
    batch = np.zeros((1, length), np.int32)
    batch[0, :3000] = ids
    mask = (batch > 0).astype(np.int32)
    jaxpr = {
        name: str(jax.make_jaxpr(embed_fn(m.config, "mean"))(m.params, batch, mask))
        for name, m in (("auto", auto), ("dense", dense))
    }
    assert "scan" in jaxpr["auto"] and "scan" not in jaxpr["dense"]
    # the encode path and late chunking agree between the two attention implementations
    np.testing.assert_allclose(
        jina_jax.encode(auto, [text], max_length=3000),
        jina_jax.encode(dense, [text], max_length=3000),
        atol=1e-4,
    )
    chunks_auto = late_chunking(auto, text, max_length=3000)
    chunks_dense = late_chunking(dense, text, max_length=3000)
    assert len(chunks_auto.token_spans) > 50 and chunks_auto.token_spans[-1][1] == 2999
    assert chunks_auto.char_spans[-1][1] < len(text)  # truncated: chunks cover the kept part
    np.testing.assert_allclose(chunks_auto.embeddings, chunks_dense.embeddings, atol=1e-4)


def test_long_inputs_get_fewer_rows_per_batch():
    lengths = np.array([8192, 3000, 300, 200, 20, 20, 20])
    plan = _plan_batches(lengths, 8192, batch_size=32, max_batch_tokens=4096)
    shapes = [(rows, length) for _, rows, length in plan]
    # an 8192-token document runs alone, 3000 -> bucket 3072 also alone; the short tail shares
    assert shapes[:2] == [(1, 8192), (1, 3072)]
    assert [list(idx) for idx, _, _ in plan[:2]] == [[0], [1]]
    assert sum(len(idx) for idx, _, _ in plan) == len(lengths)
    assert all(rows * length <= 8192 for rows, length in shapes)
    assert shapes[-1] == (8, 320)  # 5 short texts padded to 8 rows (a power of two), not 32
