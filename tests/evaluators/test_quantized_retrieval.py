"""Quantised (int8, binary, rescoring) and per-dimension (Matryoshka) evaluation: codes, Hamming
distances and rankings worked out by hand; sentence-transformers' own ``quantize_embeddings``;
the evaluator's metrics against a brute-force numpy reference with trec_eval's tie order; the
real all-MiniLM-L6-v2 on the starter python_faq."""

from __future__ import annotations

import dataclasses
import math
import re
import types

import numpy as np
import pytest
from scipy import stats
from sentence_transformers.util import quantize_embeddings

from jina_jax.data.readers import BeirDataset
from jina_jax.data.records import NegationRecord, STSRecord
from jina_jax.embedders import TfidfEmbedder
from jina_jax.encoding import encode
from jina_jax.evaluators import (
    NegationEvaluator,
    RetrievalEvaluator,
    STSEvaluator,
    detail_tables,
    evaluation_options,
    make_evaluator,
    precision_table,
    results_table,
)
from jina_jax.evaluators.common import metric_name, split_metric_name, top_k_search
from jina_jax.evaluators.quantization import (
    binary_scores,
    dequantize_int8,
    hamming,
    index_bytes,
    int8_ranges,
    int8_scores,
    quantize_binary,
    quantize_int8,
    quantized_search,
)

# --------------------------------------------------------------------------- by hand

# Query: every dimension positive. Corpus (10 dims: the second packed byte is padded):
BINARY_QUERY = np.ones((1, 10), np.float32)
BINARY_CORPUS = np.array(
    [
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],  # c0: same signs: hamming 0
        [-1, -1, -1, 1, 1, 1, 1, 1, 1, 1],  # c1: 3 dims flipped
        [1, 1, 1, 1, 1, 1, 1, 1, 1, -1],  # c2: the last dim (in the padded byte) flipped
        [0, 1, 1, 1, 1, 1, 1, 1, 1, 1],  # c3: 0 is not > 0: bit 0, hamming 1 (ties with c2)
        [-1, -1, -1, -1, -1, -1, -1, -1, -1, -1],  # c4: all flipped: hamming 10
    ],
    np.float32,
) * np.float32(0.3)


def test_binary_codes_and_hamming_by_hand():
    packed = quantize_binary(BINARY_CORPUS)
    # bits -> bytes, most significant first; the last 6 bits of byte 2 are padding
    assert packed.tolist() == [[255, 192], [0b00011111, 192], [255, 128], [127, 192], [0, 0]]
    np.testing.assert_array_equal(packed, quantize_embeddings(BINARY_CORPUS, "ubinary"))
    query = quantize_binary(BINARY_QUERY)
    assert hamming(query, packed).tolist() == [[0, 3, 1, 1, 10]]
    assert binary_scores(query, packed, 10).tolist() == [[0, -3, -1, -1, -10]]
    # ranked by -hamming, the c2/c3 tie to the lower index, across chunk boundaries too
    chunks = [(0, packed[:2]), (2, packed[2:3]), (3, packed[3:])]
    for k in (5, 2):
        scores, index = top_k_search(
            query, chunks, k, score=lambda q, c: binary_scores(q, c, 10), block_size=1
        )
        assert index.tolist() == [[0, 2, 3, 1, 4][:k]] and scores.tolist() == [
            [0, -1, -1, -3, -10][:k]
        ]
    found = quantized_search(BINARY_QUERY, [(0, BINARY_CORPUS)], "binary", 3, rescore=5)
    assert found.index.tolist() == [[0, 2, 3]] and found.index_bytes == 5 * 2
    # rescoring: the float query . the candidate as +-1: 10, 4, 8, 8, -10
    rescored_scores, rescored_index = found.rescored
    assert rescored_index.tolist() == [[0, 2, 3]]
    np.testing.assert_allclose(rescored_scores, [[10, 8, 8]])


# int8: step = (max - min) / 255 is a power of two in both dimensions, so codes are exact:
# dim 0: [-1, -1 + 255/128], step 1/128; dim 1: [0, 255/256], step 1/256.
INT8_CORPUS = np.array(
    [[-1.0, 255 / 256], [255 / 128 - 1, 0.0], [0.0, 0.5], [0.5, 0.25]], np.float32
)
INT8_CODES = [[-128, 127], [127, -128], [0, 0], [64, -64]]


def test_int8_codes_scores_and_dequantisation_by_hand():
    ranges = int8_ranges([INT8_CORPUS[:1], INT8_CORPUS[1:]])
    np.testing.assert_array_equal(ranges, [[-1, 0], [255 / 128 - 1, 255 / 256]])
    codes = quantize_int8(INT8_CORPUS, ranges)
    assert codes.dtype == np.int8 and codes.tolist() == INT8_CODES
    np.testing.assert_array_equal(codes, quantize_embeddings(INT8_CORPUS, "int8", ranges=ranges))
    # queries take the corpus ranges, clipped: 2.0 -> 127, -1.0 -> -128
    queries = np.array([[0.5, 0.5], [2.0, -1.0]], np.float32)
    assert quantize_int8(queries, ranges).tolist() == [[64, 0], [127, -128]]
    assert int8_scores(quantize_int8(queries, ranges), codes).tolist() == [
        [64 * -128, 64 * 127, 0, 64 * 64],
        [127 * -128 + -128 * 127, 127 * 127 + 128 * 128, 0, 127 * 64 + 128 * 64],
    ]
    np.testing.assert_array_equal(dequantize_int8(codes, ranges), INT8_CORPUS)  # level edges
    found = quantized_search(queries, [(0, INT8_CORPUS[:3]), (3, INT8_CORPUS[3:])], "int8", 4,
                             rescore=2, block_size=1)  # fmt: skip
    assert found.index.tolist() == [[1, 3, 2, 0], [1, 3, 2, 0]] and found.index_bytes == 4 * 2
    # rescoring the top 2 (c1, c3) with the float query: q0: 0.49609375 vs 0.375
    scores, index = found.rescored
    assert index.tolist() == [[1, 3], [1, 3]]
    np.testing.assert_allclose(scores[0], [0.5 * (255 / 128 - 1), 0.5 * 0.5 + 0.5 * 0.25])


def test_index_bytes_by_hand():
    assert index_bytes(175, 384, "float32") == 175 * 384 * 4 == 268_800
    assert index_bytes(175, 384, "int8") == 67_200
    assert index_bytes(175, 384, "binary") == 8_400
    assert index_bytes(3, 10, "binary") == 6  # 10 bits take 2 bytes
    with pytest.raises(ValueError, match="unknown precision"):
        index_bytes(1, 8, "int4")


def test_integer_top_k_breaks_ties_by_index_like_a_stable_sort():
    rng = np.random.default_rng(3)
    scores = rng.integers(-3, 3, size=(9, 40))  # many ties

    def lookup(q, c):  # the queries and chunks are row/column ids into ``scores``
        return scores[q[:, 0]][:, c[:, 0]]

    ids = np.arange(40)[:, None]
    chunks = [(s, ids[s : s + 7]) for s in range(0, 40, 7)]
    got_scores, got_index = top_k_search(
        np.arange(9)[:, None], chunks, 11, score=lookup, block_size=4
    )
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :11]
    np.testing.assert_array_equal(got_index, expected)
    np.testing.assert_array_equal(got_scores, np.take_along_axis(scores, expected, 1))


# --------------------------------------------------------------------------- brute force


class TableEmbedder:
    """Texts are keys of a table of vectors (the evaluator only sees ``embed``)."""

    name = "table"

    def __init__(self, vectors):
        self.vectors = vectors

    def embed(self, texts, *, max_length=None):
        return np.stack([self.vectors[t] for t in texts])


def _normalised(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def random_case():
    rng = np.random.default_rng(0)
    num_queries, num_docs, dim = 15, 60, 24
    queries = _normalised(rng.normal(size=(num_queries, dim)))
    # documents near some query, so retrieval is not noise
    docs = _normalised(
        queries[rng.integers(num_queries, size=num_docs)] + rng.normal(size=(num_docs, dim))
    )
    relevance = np.zeros((num_queries, num_docs), np.int64)
    for q in range(num_queries):
        close = np.argsort(-(docs @ queries[q]))[:8]
        chosen = close[rng.random(8) < 0.6]
        relevance[q, chosen] = rng.integers(1, 3, size=chosen.size)
        relevance[q, close[0]] = 2
        relevance[q, rng.integers(num_docs)] = 1  # and one anywhere
    qids, dids = [f"q{i:02d}" for i in range(num_queries)], [f"d{j:03d}" for j in range(num_docs)]
    data = BeirDataset(
        corpus={d: d for d in dids},
        queries={q: q for q in qids},
        qrels={q: {d: int(r) for d, r in zip(dids, row) if r} for q, row in zip(qids, relevance)},
    )
    embedder = TableEmbedder({**dict(zip(qids, queries)), **dict(zip(dids, docs))})
    return data, embedder, queries, docs, relevance


def _reference_metrics(scores, relevance, top_k):
    """nDCG@10 and recall@100 of runs keeping each query's ``top_k`` documents by score (ties:
    lower index), ordered as trec_eval orders them (score descending, then docno descending)."""
    ndcg, recall = [], []
    for row, rel in zip(scores, relevance):
        kept = np.lexsort((np.arange(len(row)), -row))[:top_k]
        ranked = kept[np.lexsort((-kept, -row[kept]))]
        gains = rel[ranked[:10]]
        dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
        ideal = sorted(rel[rel > 0], reverse=True)[:10]
        ndcg.append(dcg / sum(g / math.log2(i + 2) for i, g in enumerate(ideal)))
        recall.append(np.sum(rel[ranked[:100]] > 0) / np.sum(rel > 0))
    return float(np.mean(ndcg)), float(np.mean(recall))


def _reference_scores(queries, docs, dim):
    """{suffix part: [Q, N] scores} from numpy and sentence-transformers' quantize_embeddings,
    not from jina_jax.evaluators.quantization."""
    q, d = queries, docs
    if dim < queries.shape[1]:
        q, d = _normalised(q[:, :dim]), _normalised(d[:, :dim])
    ranges = np.stack([d.min(0), d.max(0)])
    q8 = quantize_embeddings(q, "int8", ranges=ranges).astype(np.int64)
    d8 = quantize_embeddings(d, "int8", ranges=ranges).astype(np.int64)
    steps = (ranges[1] - ranges[0]) / np.float32(255)
    dequantised = (d8 + 128) * steps.astype(np.float64) + ranges[0]
    q_bits, d_bits = q > 0, d > 0
    return {
        "": q @ d.T,
        "int8": q8 @ d8.T,
        "int8_rescore": q.astype(np.float64) @ dequantised.T,
        "binary": -(q_bits[:, None, :] != d_bits[None, :, :]).sum(-1),
        # sentence-transformers rescores with 0/1 bits: ranks as +-1 does
        "binary_rescore": q.astype(np.float64) @ d_bits.T.astype(np.float64),
    }


def _name(metric, dim=None, precision=""):
    """Spelt out here, not built with jina_jax's metric_name."""
    return "/".join([metric, *([f"dim_{dim}"] if dim else []), *([precision] if precision else [])])


def test_quantised_and_truncated_metrics_match_brute_force(random_case):
    data, embedder, queries, docs, relevance = random_case
    top_k = 20
    evaluator = RetrievalEvaluator(
        dataset=data,
        top_k=top_k,
        precisions=("float32", "int8", "binary"),
        rescore=len(docs),  # the whole corpus: rescoring is the exact float ranking
        dims=(16, 7),
        corpus_chunk_size=17,
        block_size=4,
    )
    got = evaluator(embedder)
    plain = RetrievalEvaluator(dataset=data, top_k=top_k, corpus_chunk_size=17, block_size=4)(
        embedder
    )
    for key in ("ndcg_at_10", "map_at_10", "recall_at_100", "index_bytes"):
        assert got[key] == plain[key]  # full-size float32 is what it was
    for dim in (24, 16, 7):
        at = None if dim == 24 else dim
        for part, scores in _reference_scores(queries, docs, dim).items():
            ndcg, recall = _reference_metrics(scores, relevance, top_k)
            name = _name("ndcg_at_10", at, part)
            assert got[name] == pytest.approx(ndcg, abs=1e-12), name
            name = _name("recall_at_100", at, part)
            assert got[name] == pytest.approx(recall, abs=1e-12), name
        assert got[_name("index_bytes", at)] == 60 * dim * 4
        assert got[_name("index_bytes", at, "int8")] == 60 * dim
        assert got[_name("index_bytes", at, "binary")] == 60 * math.ceil(dim / 8)
    assert "ndcg_at_10/dim_16/int8_rescore" in got  # the names, spelt out once
    assert got["embedding_dim"] == 24 and got["num_documents"] == 60
    # 3 sizes x (float32, int8, int8_rescore, binary, binary_rescore) = 15
    assert sum(k.startswith("ndcg_at_10") for k in got) == 15


def test_rescored_runs_hold_the_rescored_scores(random_case):
    data, embedder, queries, docs, _ = random_case
    evaluator = RetrievalEvaluator(dataset=data, precisions=("binary",), rescore=60, top_k=5)
    runs, sizes = evaluator.search_all(embedder, list(data.queries), list(data.corpus))
    assert set(runs) == {(None, "binary"), (None, "binary_rescore")}
    assert "index_bytes" not in sizes and sizes["index_bytes/binary"] == 60 * 3
    reference = _reference_scores(queries, docs, 24)
    for q, hits in enumerate(runs[None, "binary_rescore"]):
        # +-1 scores are 2 * (0/1 scores) - sum(query)
        expected = 2 * reference["binary_rescore"][q] - queries[q].sum()
        best = np.argsort(-expected)[:5]
        assert list(hits) == best.tolist()
        np.testing.assert_allclose(list(hits.values()), expected[best], rtol=1e-5, atol=1e-6)
    for q, hits in enumerate(runs[None, "binary"]):
        np.testing.assert_array_equal(
            list(hits.values()), np.sort(reference["binary"][q])[::-1][:5]
        )
    # fewer rescored candidates than top_k: the run holds the rescored ones
    evaluator = RetrievalEvaluator(dataset=data, precisions=("int8",), rescore=3, top_k=5)
    runs, _ = evaluator.search_all(embedder, list(data.queries), list(data.corpus))
    assert {len(h) for h in runs[None, "int8"]} == {5}
    assert {len(h) for h in runs[None, "int8_rescore"]} == {3}


def test_default_dims_are_the_models_matryoshka_dims(random_case):
    data, embedder = random_case[:2]
    with_dims = TableEmbedder(embedder.vectors)
    with_dims.model = types.SimpleNamespace(matryoshka_dims=(7, 24, 16))  # 24: the full width
    got = RetrievalEvaluator(dataset=data, precisions=("float32", "binary"))(with_dims)
    explicit = RetrievalEvaluator(dataset=data, precisions=("float32", "binary"), dims=(16, 7))
    assert got == explicit(embedder)  # whose numbers the brute-force test checks
    assert "ndcg_at_10/dim_7/binary" in got and "ndcg_at_10/dim_24" not in got
    assert not any("dim_" in k for k in RetrievalEvaluator(dataset=data, dims=())(with_dims))


def test_options_are_checked():
    with pytest.raises(ValueError, match="distinct precisions"):
        RetrievalEvaluator(precisions=("int8", "int8"))
    with pytest.raises(ValueError, match="distinct precisions"):
        RetrievalEvaluator(precisions=("float32", "int4"))
    with pytest.raises(ValueError, match="add int8 or binary"):
        RetrievalEvaluator(rescore=10)
    with pytest.raises(ValueError, match="rescore must be"):
        RetrievalEvaluator(precisions="binary", rescore=-1)
    with pytest.raises(ValueError, match="chunking='none'"):
        RetrievalEvaluator(chunking="naive", dims=(64,))
    with pytest.raises(ValueError, match="positive integers"):
        STSEvaluator(dims=(0,))
    assert RetrievalEvaluator(precisions="binary", dims=64).dims == (64,)


def test_sparse_embedders_only_do_float32(random_case):
    data = random_case[0]
    with pytest.raises(ValueError, match=r"sparse rows \(TF-IDF\): only full-size float32"):
        RetrievalEvaluator(dataset=data, precisions=("float32", "binary"))(TfidfEmbedder())
    records = [
        STSRecord("a cat sat", "a cat sits", 4.0),
        STSRecord("a dog ran", "stocks fell", 0.5),
    ]
    with pytest.raises(ValueError, match="sparse rows"):
        STSEvaluator(dataset=records, dims=(4,))(TfidfEmbedder())


def test_truncation_too_large_is_an_error(random_case):
    data, embedder = random_case[:2]
    with pytest.raises(ValueError, match="cannot truncate 24-dim embeddings to 32"):
        RetrievalEvaluator(dataset=data, dims=(32,))(embedder)


# --------------------------------------------------------------------------- tables


def test_metric_names_by_hand():
    assert metric_name("ndcg_at_10") == "ndcg_at_10"
    assert metric_name("ndcg_at_10", 256, "binary_rescore") == "ndcg_at_10/dim_256/binary_rescore"
    assert metric_name("index_bytes", None, "int8") == "index_bytes/int8"
    assert metric_name("spearman", 64) == "spearman/dim_64"
    for name in ("ndcg_at_10", "ndcg_at_10/dim_256/binary_rescore", "index_bytes/int8"):
        assert metric_name(*split_metric_name(name)) == name
        # TensorBoard (tensorboardX) keeps a tag made of these characters as it is
        assert re.fullmatch(r"[-/\w.]+", name)
    assert split_metric_name("spearman/dim_64") == ("spearman", 64, "float32")


def test_precision_table_by_hand():
    metrics = {
        "ndcg_at_10": 0.8, "ndcg_at_10/int8": 0.76, "ndcg_at_10/int8_rescore": 0.8,
        "ndcg_at_10/binary": 0.6, "ndcg_at_10/dim_128": 0.4,
        "ndcg_at_10/dim_128/binary_rescore": 0.2, "recall_at_100/dim_128": 0.9,
        "embedding_dim": 384, "index_bytes": 4000, "index_bytes/dim_128/binary": 16,
        "num_queries": 5,
    }  # fmt: skip
    assert precision_table(metrics).splitlines() == [
        "| dims (ndcg_at_10) | float32 | int8 | int8_rescore | binary | binary_rescore "
        "| bytes float32 | bytes binary |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        "| 384 (full) | 0.8000 (100.0%) | 0.7600 (95.0%) | 0.8000 (100.0%) | 0.6000 (75.0%) | - "
        "| 4,000 | - |",
        "| 128 | 0.4000 (50.0%) | - | - | - | 0.2000 (25.0%) | - | 16 |",
    ]
    # an STS result: one column
    assert precision_table({"spearman": 0.5, "spearman/dim_64": 0.25}, "spearman").splitlines() == [
        "| dims (spearman) | float32 |",
        "|---|---:|",
        "| full | 0.5000 (100.0%) |",
        "| 64 | 0.2500 (50.0%) |",
    ]
    # the results table still shows the full-size float32 headline; the details a section per
    # entry and model with variants
    rows = {"m": {"faq": metrics, "sts": {"spearman": 0.5}}, "tfidf": {"faq": {"ndcg_at_10": 0.7}}}
    entries = {"faq": {"type": "retrieval"}, "sts": {"type": "sts"}}
    assert "| m | 0.8000 | 0.5000 |" in results_table(rows, entries)
    details = detail_tables(rows, entries)
    assert details.startswith("### faq: m\n\n| dims (ndcg_at_10) |") and details.count("###") == 1


class _Dense:
    """An embedder with a model of a given width (what evaluation_options reads)."""

    def __init__(self, dim, matryoshka_dims=()):
        self.model = types.SimpleNamespace(dim=dim, matryoshka_dims=matryoshka_dims)


def test_evaluation_options_by_hand():
    entries = {
        "faq": {"type": "retrieval", "dataset": "python_faq", "every": 0},
        "chunked": {"type": "retrieval", "chunking": "late"},
        "own": {"type": "retrieval", "precisions": ("binary",), "dims": ()},
        "plain": {"type": "retrieval", "precisions": ("float32",)},
        "sts": {"type": "sts"},
        "clusters": {"type": "clustering"},
    }
    options = dict(precisions=("float32", "int8"), rescore=50, dims=(512, 256, 64))
    got = evaluation_options(entries, _Dense(384), **options)
    assert got == {
        "faq": {
            "type": "retrieval", "dataset": "python_faq", "every": 0,
            "dims": (256, 64), "precisions": ("float32", "int8"), "rescore": 50,
        },
        "chunked": {"type": "retrieval", "chunking": "late"},
        "own": {"type": "retrieval", "precisions": ("binary",), "dims": (), "rescore": 50},
        "plain": {"type": "retrieval", "precisions": ("float32",), "dims": (256, 64)},
        "sts": {"type": "sts", "dims": (256, 64)},
        "clusters": {"type": "clustering"},
    }  # fmt: skip
    assert entries["faq"] == {"type": "retrieval", "dataset": "python_faq", "every": 0}
    # TF-IDF: no model, no width: untouched
    assert evaluation_options(entries, TfidfEmbedder(), **options) == entries
    for entry in got.values():  # the evaluators accept every combination filled in
        make_evaluator(
            entry["type"], **{k: v for k, v in entry.items() if k not in ("type", "every")}
        )


# --------------------------------------------------------------------------- the real model

STS_PAIRS = [
    ("A man is playing a guitar.", "A person plays the guitar.", 4.8),
    ("A woman is slicing onions.", "Someone is cutting an onion.", 4.5),
    ("The cat sleeps on the sofa.", "A dog runs in the park.", 0.6),
    ("Install the package with apt.", "Use apt to install the package.", 4.9),
    ("The stock market fell today.", "It rained all afternoon.", 0.2),
    ("Python lists are mutable.", "You can change a Python list.", 4.0),
    ("He drove to work.", "She cooked dinner.", 0.8),
    ("The kernel manages memory.", "Memory is managed by the kernel.", 4.7),
]
NEGATIONS = [
    ("A man is playing a guitar.", "A person plays the guitar.", "A man is not playing a guitar."),
    ("The door is open.", "The door has been opened.", "The door is not open."),
    ("She likes coffee.", "She enjoys coffee.", "She does not like coffee."),
    ("The file was deleted.", "Someone removed the file.", "The file was not deleted."),
]


def _cut(vectors, dim):
    head = vectors[:, :dim]
    return head / np.linalg.norm(head, axis=1, keepdims=True)


def test_sts_and_negation_truncation_equal_truncating_the_embeddings(minilm):
    records = [STSRecord(*p) for p in STS_PAIRS]
    got = STSEvaluator(dataset=records, dims=(128, 32))(minilm)
    first = encode(minilm, [p[0] for p in STS_PAIRS], normalize=True)
    second = encode(minilm, [p[1] for p in STS_PAIRS], normalize=True)
    human = [p[2] for p in STS_PAIRS]
    for dim in (128, 32):
        cosine = np.sum(_cut(first, dim) * _cut(second, dim), axis=1)
        assert got[f"spearman/dim_{dim}"] == pytest.approx(stats.spearmanr(cosine, human).statistic)
        assert got[f"pearson/dim_{dim}"] == pytest.approx(
            stats.pearsonr(cosine, human).statistic, abs=1e-5
        )
    # by default, the model's own Matryoshka dims
    matryoshka = dataclasses.replace(minilm, matryoshka_dims=(128, 32))
    assert STSEvaluator(dataset=records)(matryoshka) == pytest.approx(got)
    assert not any("dim_" in k for k in STSEvaluator(dataset=records)(minilm))
    got = NegationEvaluator(dataset=[NegationRecord(*t) for t in NEGATIONS], dims=(64,))(minilm)
    a, e, n = (
        _cut(encode(minilm, [t[i] for t in NEGATIONS], normalize=True), 64) for i in range(3)
    )
    positive = np.sum(a * e, axis=1)
    assert got["easy_error_rate/dim_64"] == 1 - np.mean(positive > np.sum(a * n, axis=1))
    assert got["hard_error_rate/dim_64"] == 1 - np.mean(positive > np.sum(e * n, axis=1))
    # per triplet (full size), for paired bootstraps
    records = [NegationRecord(*t) for t in NEGATIONS]
    full = NegationEvaluator(dataset=records, dims=(), per_triplet=True)(minilm)
    a, e, n = (encode(minilm, [t[i] for t in NEGATIONS], normalize=True) for i in range(3))
    expected = [int(not ok) for ok in np.sum(a * e, axis=1) > np.sum(e * n, axis=1)]
    assert full["per_triplet_hard_error"] == expected
    assert np.mean(expected) == full["hard_error_rate"]


@pytest.mark.slow
def test_minilm_python_faq_quantised_and_truncated(minilm, starter_dir):
    got = RetrievalEvaluator(
        dataset="python_faq",
        data_dir=str(starter_dir),
        max_length=128,  # a quicker test; every setting scores the same embeddings
        dims=(256, 128, 64),
        precisions=("float32", "int8", "binary"),
        rescore=100,
    )(minilm)
    print(precision_table(got))
    assert got["num_documents"] == 175 and got["embedding_dim"] == 384
    assert (got["index_bytes"], got["index_bytes/int8"], got["index_bytes/binary"]) == (
        175 * 384 * 4, 175 * 384, 175 * 48,
    )  # fmt: skip
    assert got["index_bytes/dim_64/binary"] == 175 * 8
    full = got["ndcg_at_10"]
    assert full > 0.8  # MiniLM on the Python FAQ
    for dims in ("", "dim_256/", "dim_128/", "dim_64/"):
        # int8 loses little; rescoring with float queries wins back what binary loses
        assert got[f"ndcg_at_10/{dims}int8"] > got[f"ndcg_at_10/{dims}binary"]
        assert got[f"ndcg_at_10/{dims}binary_rescore"] > got[f"ndcg_at_10/{dims}binary"]
    assert got["ndcg_at_10/int8"] > full - 0.03
    # MiniLM is not Matryoshka-trained: truncation costs nDCG
    assert full > got["ndcg_at_10/dim_256"] > got["ndcg_at_10/dim_128"] > got["ndcg_at_10/dim_64"]
