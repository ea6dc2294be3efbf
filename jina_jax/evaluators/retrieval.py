"""Retrieval on a BEIR-style set with any embedder (dense or sparse rows): nDCG@10, MAP@10 and
recall@100 (MTEB's retrieval metrics; nDCG@10 is its main score), computed by trec_eval
through ir-measures."""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Any

import ir_measures
import numpy as np
from ir_measures import AP, R, nDCG
from scipy import sparse

from jina_jax.data.hashing import stable_sample
from jina_jax.data.readers import BeirDataset, read_beir
from jina_jax.encoding import chunk_windows, late_chunking
from jina_jax.evaluators.common import (
    FLOAT32,
    as_embedder,
    check_dims,
    dot,
    embed,
    embed_chunks,
    evaluation_dims,
    fit,
    load_starter,
    metric_name,
    top_k_search,
    truncate,
)
from jina_jax.evaluators.quantization import check_precisions, index_bytes, quantized_search

# Our metric names (MTEB's) -> ir-measures measures; AP@k is trec_eval's map_cut.k.
MEASURES = {"ndcg_at_10": nDCG @ 10, "map_at_10": AP @ 10, "recall_at_100": R @ 100}


def load_beir(dataset: Any, data_dir: str | os.PathLike | None = None, split: str = "test"):
    """A ``BeirDataset`` from itself, a BEIR folder path, or a starter eval-set name."""
    if isinstance(dataset, BeirDataset):
        return dataset
    path = pathlib.Path(str(dataset))
    if (path / "corpus.jsonl").exists() or (path / "corpus.jsonl.gz").exists():
        return read_beir(path, split=split)
    starter = load_starter(data_dir)
    if str(dataset) not in starter.beir_folders:
        raise ValueError(
            f"unknown retrieval set {dataset!r}: not a BEIR folder, and the starter has "
            f"{sorted(starter.beir_folders)}"
        )
    return read_beir(starter.beir_folders[str(dataset)], split=split)


def trec_metrics(
    qrels: dict[str, dict[str, int]],
    run: dict[str, dict[str, float]],
    measures: dict[str, Any] = MEASURES,
) -> dict[str, float]:
    """Mean over the queries of ``qrels`` that have a relevant document (trec_eval via
    ir-measures' pytrec_eval provider; a judged query missing from ``run`` counts as 0)."""
    judged = {q: docs for q, docs in qrels.items() if any(r > 0 for r in docs.values())}
    full_run = {q: run.get(q) or {"__none__": 0.0} for q in judged}
    provider = ir_measures.pytrec_eval
    by_measure = provider.calc_aggregate(list(measures.values()), judged, full_run)
    return {name: float(by_measure[m]) for name, m in measures.items()}


def trec_per_query(
    qrels: dict[str, dict[str, int]],
    run: dict[str, dict[str, float]],
    measure: Any = MEASURES["ndcg_at_10"],
) -> dict[str, float]:
    """{query: value} of one measure over the queries ``trec_metrics`` averages (the same
    judged queries, a missing one scoring 0), from ir-measures' ``iter_calc``; their mean is
    ``trec_metrics``' value. For paired comparisons across models (bootstrap over queries)."""
    judged = {q: docs for q, docs in qrels.items() if any(r > 0 for r in docs.values())}
    full_run = {q: run.get(q) or {"__none__": 0.0} for q in judged}
    values = {
        m.query_id: float(m.value)
        for m in ir_measures.pytrec_eval.iter_calc([measure], judged, full_run)
    }
    return {q: values.get(q, 0.0) for q in judged}


@dataclasses.dataclass
class RetrievalEvaluator:
    """Encodes the queries, then the corpus chunk by chunk (``corpus_chunk_size`` texts at a
    time), keeps each query's ``top_k`` documents (cosine) and scores the run against qrels.

    ``dataset``: a starter eval-set name (python_faq, debian_faq, manpages,
    debian_descriptions), a BEIR folder, or a loaded ``BeirDataset``. ``max_queries`` takes a
    stable sample of the judged queries (the corpus stays whole). A fitted embedder (TF-IDF) is
    fitted on the corpus documents only.

    ``chunking``: ``"none"`` embeds each document (truncated to ``max_length``); ``"naive"``
    and ``"late"`` cut every whole document into chunks (``chunk_by``: ``"sentences"`` or
    ``"tokens"``, ``chunk_tokens`` each; ``jina_jax.encoding.chunk_windows``) and score a
    document by its best chunk. Naive chunking embeds each chunk on its own, with any
    embedder; late chunking (``jina_jax.encoding.late_chunking``) pools each chunk from one
    pass of ``embedder.model`` over its window of ``max_length`` tokens, so chunks see their
    context (an embedder without ``.model``, e.g. TF-IDF, cannot). Chunks are cut with the
    tokenizer of ``chunk_model`` (a ``Model``; default: ``embedder.model``), so an embedder
    without a model can be scored naive-chunked on the same chunks as a model. Chunk vectors
    are held in memory.

    Quantised and per-dimension (Matryoshka) retrieval (``chunking="none"``, dense embedders):
    ``precisions`` lists the corpus precisions to search ("float32", "int8", "binary";
    ``jina_jax.evaluators.quantization`` defines them: int8 ranges are calibrated on the corpus,
    binary is scored by Hamming distance); ``rescore`` > 0 also re-ranks the top ``rescore``
    candidates of int8 / binary with the float32 query vectors (the run then holds
    ``min(top_k, rescore)`` documents). ``dims`` adds truncations: embeddings cut to their
    first d dimensions and L2-renormalised (embedded once, at full size); None (the default)
    takes the ``matryoshka_dims`` of the embedder's model (none for TF-IDF or a model trained
    without them), () none. Metric names (``common.metric_name``): full-size float32 keeps the
    plain names (``ndcg_at_10``, ``map_at_10``, ``recall_at_100``, ``index_bytes``); every
    other setting appends ``/dim_<d>`` (a truncation) and ``/<precision>`` (int8, binary,
    int8_rescore, binary_rescore), "/"-separated so that they are valid TensorBoard tags::

        ndcg_at_10/int8   ndcg_at_10/binary_rescore   ndcg_at_10/dim_256
        ndcg_at_10/dim_128/binary_rescore   index_bytes/binary   index_bytes/dim_128/int8

    ``index_bytes`` is the flat corpus index: N x D x 4 (float32), N x D (int8), N x ceil(D / 8)
    (binary); rescoring reads the same index (no entry of its own); ``embedding_dim`` is D.
    ``per_query`` adds ``per_query_ndcg_at_10``, {query id: nDCG@10} of the full-size float32
    run (``trec_per_query``; its mean is ``ndcg_at_10``), for paired bootstraps over queries;
    off by default, so that every other metric stays a number.
    With anything beyond full-size float32 the corpus embeddings are held in memory
    (N x D x 4 bytes) to be truncated and quantised; score matrices stay blockwise.
    ``jina_jax.evaluators.precision_table`` tabulates the results. Chunked retrieval is
    full-size float32 only (a model's own dims are then not evaluated).
    """

    headline = "ndcg_at_10"

    dataset: Any = "python_faq"
    data_dir: str | None = None
    split: str = "test"
    top_k: int = 100
    batch_size: int = 32
    max_length: int | None = None  # documents; default: the model's
    query_max_length: int | None = None  # default: max_length
    corpus_chunk_size: int = 16_384
    block_size: int = 1024
    max_queries: int | None = None
    chunking: str = "none"  # none | naive | late
    chunk_by: str = "sentences"  # sentences | tokens
    chunk_tokens: int = 64
    chunk_model: Any = None  # a Model whose tokenizer cuts chunks; default: embedder.model
    precisions: tuple[str, ...] = ("float32",)  # of float32, int8, binary
    rescore: int = 0  # re-rank this many int8 / binary candidates with float32 queries
    dims: tuple[int, ...] | None = None  # truncations; None: the model's Matryoshka dims
    per_query: bool = False  # also return per_query_ndcg_at_10: {query id: nDCG@10}

    def __post_init__(self):
        if self.chunking not in ("none", "naive", "late"):
            raise ValueError(f"chunking must be none, naive or late, got {self.chunking!r}")
        self.precisions, self.rescore = check_precisions(self.precisions, self.rescore)
        self.dims = check_dims(self.dims)
        if self.chunking != "none" and (self.precisions != (FLOAT32,) or self.dims):
            raise ValueError(
                "precisions and dims are evaluated without chunking (chunking='none'); got "
                f"chunking={self.chunking!r}, precisions={self.precisions!r}, dims={self.dims!r}"
            )

    def __call__(self, embedder) -> dict[str, Any]:
        data = load_beir(self.dataset, self.data_dir, self.split)
        query_ids = [
            q
            for q, docs in data.qrels.items()
            if q in data.queries and any(r > 0 for r in docs.values())
        ]
        query_ids = [query_ids[i] for i in stable_sample(query_ids, self.max_queries, "eval")]
        doc_ids = list(data.corpus)
        runs, sizes = self.search_all(
            embedder, [data.queries[q] for q in query_ids], [data.corpus[d] for d in doc_ids]
        )
        qrels = {q: data.qrels[q] for q in query_ids}
        metrics = {}
        for (dim, precision), run in runs.items():
            run = {
                query_ids[i]: {doc_ids[j]: score for j, score in hits.items()}
                for i, hits in enumerate(run)
            }
            scores = trec_metrics(qrels, run)
            metrics |= {metric_name(k, dim, precision): v for k, v in scores.items()}
            if self.per_query and (dim, precision) == (None, FLOAT32):
                per_query = trec_per_query(qrels, run)
        if self.per_query:
            metrics["per_query_ndcg_at_10"] = per_query
        return {**metrics, **sizes, "num_queries": len(query_ids), "num_documents": len(doc_ids)}

    def search(self, embedder, queries: list[str], documents: list[str]) -> list[dict[int, float]]:
        """Per query, {document index: cosine} of its ``top_k`` documents (full size, float32,
        whatever ``precisions`` and ``dims`` say). ``embedder``: an embedder or a jina_jax
        ``Model``."""
        plain = dataclasses.replace(self, precisions=(FLOAT32,), rescore=0, dims=())
        return plain.search_all(embedder, queries, documents)[0][None, FLOAT32]

    def search_all(
        self, embedder, queries: list[str], documents: list[str]
    ) -> tuple[dict[tuple[int | None, str], list[dict[int, float]]], dict[str, int]]:
        """({(dim, precision): run}, {name: int}): one run per setting (dim None: full size;
        precision: float32, int8, binary, int8_rescore or binary_rescore), each a list over the
        queries of {document index: score} of its ``top_k`` documents; and ``embedding_dim``
        and the ``index_bytes`` metrics (dense embedders, no chunking)."""
        embedder = as_embedder(embedder, batch_size=self.batch_size)
        model = self._model(embedder)  # before any work: late chunking without a model fails
        fit(embedder, documents)
        query_vectors = embed(
            embedder, queries, max_length=self.query_max_length or self.max_length
        )
        if self.chunking != "none":
            scores, index = self._search_chunks(embedder, model, query_vectors, documents)
            return {(None, FLOAT32): _as_run(scores, index)}, {}
        if sparse.issparse(query_vectors):
            if self.precisions != (FLOAT32,) or self.dims:
                raise ValueError(
                    f"embedder {getattr(embedder, 'name', type(embedder).__name__)!r} gives "
                    "sparse rows (TF-IDF): only full-size float32 retrieval applies "
                    f"(precisions=('float32',), dims=()); got precisions={self.precisions!r}, "
                    f"dims={self.dims!r}"
                )
            dims = ()
        else:
            dims = evaluation_dims(self.dims, embedder, query_vectors.shape[1])
        chunks = embed_chunks(
            embedder, documents, chunk_size=self.corpus_chunk_size, max_length=self.max_length
        )
        sizes = {}
        if not sparse.issparse(query_vectors):
            sizes["embedding_dim"] = query_vectors.shape[1]
        if self.precisions == (FLOAT32,) and not dims:  # streamed: no corpus matrix held
            scores, index = top_k_search(
                query_vectors, chunks, self.top_k, block_size=self.block_size
            )
            if sizes:
                sizes["index_bytes"] = index_bytes(len(documents), sizes["embedding_dim"], FLOAT32)
            return {(None, FLOAT32): _as_run(scores, index)}, sizes
        chunks = list(chunks)  # held: truncated and quantised once per setting
        runs = {}
        for dim in (None, *dims):
            queries_d = truncate(query_vectors, dim)
            chunks_d = [(offset, truncate(chunk, dim)) for offset, chunk in chunks]
            for precision in self.precisions:
                sizes[metric_name("index_bytes", dim, precision)] = index_bytes(
                    len(documents), queries_d.shape[1], precision
                )
                if precision == FLOAT32:
                    scores, index = top_k_search(
                        queries_d, chunks_d, self.top_k, block_size=self.block_size
                    )
                    runs[dim, precision] = _as_run(scores, index)
                    continue
                found = quantized_search(
                    queries_d,
                    chunks_d,
                    precision,
                    self.top_k,
                    rescore=self.rescore,
                    block_size=self.block_size,
                )
                runs[dim, precision] = _as_run(found.scores, found.index)
                if found.rescored is not None:
                    runs[dim, f"{precision}_rescore"] = _as_run(*found.rescored)
        return runs, sizes

    def _model(self, embedder):
        """The ``Model`` that cuts chunks (and, for late chunking, embeds them); None when
        chunking is off."""
        if self.chunking == "none":
            return None
        model = getattr(embedder, "model", None)
        if self.chunking == "late" and model is None:
            raise ValueError(
                f"late chunking needs token states, from embedder.model; embedder "
                f"{getattr(embedder, 'name', type(embedder).__name__)!r} has no .model"
            )
        model = model if self.chunking == "late" else self.chunk_model or model
        if model is None:
            raise ValueError(
                f"naive chunking cuts documents with a model's tokenizer; embedder "
                f"{getattr(embedder, 'name', type(embedder).__name__)!r} has no .model: set "
                "chunk_model"
            )
        return model

    def chunk_vectors(self, embedder, model, documents: list[str]) -> tuple[Any, np.ndarray]:
        """(L2-normalised chunk vectors [C, D], first chunk of each document [N]); a document's
        chunks are consecutive. ``model`` cuts the chunks (and embeds them, late chunking)."""
        windows = chunk_windows(
            model,
            documents,
            chunks=self.chunk_by,
            chunk_tokens=self.chunk_tokens,
            window_tokens=self.max_length,
        )
        counts = [sum(len(w.chunks) for w in doc) for doc in windows]
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        if self.chunking == "naive":
            texts = [
                documents[n][w.begin + b : w.begin + e]
                for n, doc in enumerate(windows)
                for w in doc
                for b, e in w.chunks
            ]
            return embed(embedder, texts, max_length=self.max_length), starts
        flat = [
            (documents[n][w.begin : w.end], w.chunks) for n, doc in enumerate(windows) for w in doc
        ]
        results = late_chunking(
            model,
            [text for text, _ in flat],
            chunks=[spans for _, spans in flat],
            max_length=self.max_length,
            normalize=True,
            batch_size=self.batch_size,
            show_progress=False,
        )
        return np.concatenate([r.embeddings for r in results]), starts

    def _search_chunks(self, embedder, model, query_vectors, documents):
        vectors, starts = self.chunk_vectors(embedder, model, documents)
        k = min(self.top_k, len(documents))
        all_scores, all_index = [], []
        for begin in range(0, query_vectors.shape[0], self.block_size):
            sims = dot(query_vectors[begin : begin + self.block_size], vectors)  # [b, C]
            per_doc = np.maximum.reduceat(sims, starts, axis=1)  # best chunk of each document
            index = np.argsort(-per_doc, axis=1, kind="stable")[:, :k]
            all_index.append(index)
            all_scores.append(np.take_along_axis(per_doc, index, axis=1))
        return np.concatenate(all_scores), np.concatenate(all_index)


def _as_run(scores: np.ndarray, index: np.ndarray) -> list[dict[int, float]]:
    return [
        {int(j): float(s) for j, s in zip(row_index, row_scores)}
        for row_index, row_scores in zip(index, scores.astype(np.float64))
    ]
