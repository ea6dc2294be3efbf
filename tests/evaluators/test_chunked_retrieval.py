"""Chunked retrieval (naive and late chunking): chunk windows by hand, and document scores
against sentence-transformers (torch) on the same weights: naive = best cosine over separately
encoded chunks; late = best cosine over means of the window's torch token states per chunk."""

from __future__ import annotations

import numpy as np
import pytest

import jina_jax
from jina_jax.encoding import WINDOW_MARGIN, chunk_windows
from jina_jax.evaluators.retrieval import RetrievalEvaluator


@pytest.fixture(scope="module")
def minilm():
    return jina_jax.load_model("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def st_model(minilm_dir):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_dir), device="cpu")
    model.max_seq_length = 128
    return model


def test_chunk_windows_by_hand(minilm):
    text = "The cat sat. It purred!\nDogs bark"
    (windows,) = chunk_windows(minilm, [text], chunks="sentences")
    assert len(windows) == 1 and (windows[0].begin, windows[0].end) == (0, len(text))
    chunks = [text[b:e] for b, e in windows[0].chunks]
    assert chunks == ["The cat sat. ", "It purred!\n", "Dogs bark"]


def test_chunk_windows_cover_long_documents(minilm, real_sentences):
    text = " ".join(real_sentences[:60])  # well over one 128-token window
    for how in ("sentences", "tokens"):
        (windows,) = chunk_windows(minilm, [text], chunks=how, chunk_tokens=20, window_tokens=128)
        assert len(windows) > 3
        assert "".join(text[w.begin : w.end] for w in windows) == text
        for w in windows:
            pieces = [text[w.begin + b : w.begin + e] for b, e in w.chunks]
            assert "".join(pieces) == text[w.begin : w.end]
            n_tokens = len(minilm.tokenizer.hf(text[w.begin : w.end])["input_ids"])
            assert n_tokens <= 128 - WINDOW_MARGIN + 4, n_tokens  # budget (+ cut-word slack)


def _torch_late_chunks(st_model, window_text, spans):
    """Chunk vectors from the torch model's token states over the whole window."""
    tokenizer = st_model.tokenizer
    encoded = tokenizer(window_text, return_offsets_mapping=True, return_special_tokens_mask=True)
    states = st_model.encode(window_text, output_value="token_embeddings").numpy()
    starts = np.array(
        [
            o[0] if not s else -1
            for o, s in zip(encoded["offset_mapping"], encoded["special_tokens_mask"])
        ]
    )
    vectors = []
    for begin, end in spans:
        inside = (starts >= begin) & (starts < end)
        vectors.append(states[inside].mean(0))
    vectors = np.stack(vectors)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.mark.parametrize("chunking", ["naive", "late"])
def test_chunked_document_scores_match_torch(minilm, st_model, real_sentences, chunking):
    documents = [
        " ".join(real_sentences[0:12]),  # longer than one 128-token window
        " ".join(real_sentences[12:15]),
        " ".join(real_sentences[15:19]),
    ]
    queries = [real_sentences[5], real_sentences[13], real_sentences[17]]
    evaluator = RetrievalEvaluator(
        chunking=chunking, chunk_by="sentences", max_length=128, top_k=3, batch_size=8
    )
    hits = evaluator.search(minilm, queries, documents)

    q = _unit(st_model.encode(queries))
    windows = chunk_windows(minilm, documents, chunks="sentences", window_tokens=128)
    assert len(windows[0]) >= 2
    expected = np.zeros((len(queries), len(documents)))
    for n, doc in enumerate(windows):
        vectors = []
        for w in doc:
            window_text = documents[n][w.begin : w.end]
            if chunking == "naive":
                vectors.append(_unit(st_model.encode([window_text[b:e] for b, e in w.chunks])))
            else:
                vectors.append(_torch_late_chunks(st_model, window_text, w.chunks))
        expected[:, n] = (q @ np.concatenate(vectors).T).max(axis=1)
    got = np.array([[hits[i][n] for n in range(len(documents))] for i in range(len(queries))])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert [max(h, key=h.get) for h in hits] == [0, 1, 2]  # each query finds its document
