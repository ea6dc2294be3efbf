"""What every evaluator shares: turning a ``Model`` into an embedder, fitting and calling an
embedder with bounded memory, similarities of dense or scipy-sparse rows, blockwise top-k
search, and finding evaluation data by name in the starter corpus."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from scipy import sparse

from jina_jax.data.starter import load_starter as _load_starter
from jina_jax.embedders import ModelEmbedder
from jina_jax.model import Model

DEFAULT_DATA_DIR = "data_cache/starter"
DATA_DIR_ENV = "JINA_JAX_DATA_DIR"
# The source checkout (the folder holding the jina_jax package).
CHECKOUT = pathlib.Path(__file__).resolve().parents[2]


def data_dir_or_default(data_dir: str | os.PathLike | None) -> pathlib.Path:
    """``data_dir``, else ``$JINA_JAX_DATA_DIR``, else ``data_cache/starter`` in the working
    directory or, failing that, in the source checkout."""
    if data_dir or os.environ.get(DATA_DIR_ENV):
        return pathlib.Path(data_dir or os.environ[DATA_DIR_ENV])
    here = pathlib.Path(DEFAULT_DATA_DIR)
    checkout = CHECKOUT / DEFAULT_DATA_DIR
    return here if here.exists() or not checkout.exists() else checkout


def load_starter(data_dir: str | os.PathLike | None):
    return _load_starter(data_dir_or_default(data_dir))


def as_embedder(embedder_or_model: Any, *, batch_size: int = 32):
    """An embedder as it is; a jina_jax ``Model`` wrapped in a ``ModelEmbedder`` that encodes
    ``batch_size`` texts per batch."""
    if isinstance(embedder_or_model, Model):
        return ModelEmbedder(embedder_or_model, batch_size=batch_size)
    if not callable(getattr(embedder_or_model, "embed", None)):
        raise TypeError(
            f"expected an embedder (with .embed) or a jina_jax Model, got "
            f"{type(embedder_or_model).__name__}"
        )
    return embedder_or_model


def fit(embedder, texts: Sequence[str]) -> None:
    """Calls ``embedder.fit(texts)`` where the embedder has one (e.g. TF-IDF, which learns its
    vocabulary and document frequencies from the task's own texts)."""
    fit_texts = getattr(embedder, "fit", None)
    if fit_texts is not None:
        fit_texts(list(texts))


def embed(embedder, texts: Sequence[str], *, max_length: int | None = None) -> Any:
    """L2-normalised rows [N, D] (a numpy array, or a scipy sparse matrix for sparse
    embedders): cosine similarity is a dot product."""
    return embedder.embed(list(texts), max_length=max_length)


def embed_chunks(
    embedder,
    texts: Sequence[str],
    *,
    chunk_size: int = 16_384,
    max_length: int | None = None,
) -> Iterator[tuple[int, Any]]:
    """(offset, embeddings [<=chunk_size, D]) per chunk of ``texts``: a corpus never has to be
    held as one matrix."""
    for start in range(0, len(texts), chunk_size):
        chunk = list(texts[start : start + chunk_size])
        yield start, embed(embedder, chunk, max_length=max_length)


def row_dot(a, b) -> np.ndarray:
    """Row i of ``a`` dot row i of ``b``: [N] (cosines of L2-normalised rows); dense numpy or
    scipy sparse rows."""
    if sparse.issparse(a) or sparse.issparse(b):
        a, b = (x if sparse.issparse(x) else sparse.csr_matrix(x) for x in (a, b))
        return np.asarray(a.multiply(b).sum(axis=1)).ravel()
    return np.einsum("nd,nd->n", a, b)


def dot(a, b) -> np.ndarray:
    """``a @ b.T`` as a dense numpy array (dense numpy or scipy sparse rows)."""
    product = a @ b.T
    return product.toarray() if sparse.issparse(product) else np.asarray(product)


def check_dims(dims: Any) -> tuple[int, ...] | None:
    """``dims`` (an int or a sequence of ints) as a tuple of distinct positive ints; None stays
    None (the evaluators' default: the Matryoshka dims of the embedder's model)."""
    if dims is None:
        return None
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if any(isinstance(d, bool) or not isinstance(d, int | np.integer) or d < 1 for d in dims):
        raise ValueError(f"dims must be positive integers, got {dims!r}")
    if len(set(dims)) != len(dims):
        raise ValueError(f"dims must be distinct, got {dims!r}")
    return tuple(int(d) for d in dims)


def evaluation_dims(dims: tuple[int, ...] | None, embedder, width: int) -> tuple[int, ...]:
    """The truncations to score, largest first: ``dims``, or when None the ``matryoshka_dims``
    of ``embedder.model`` (none for an embedder without a model, e.g. TF-IDF). The full
    ``width`` is left out: its scores are the plain metrics."""
    if dims is None:
        dims = getattr(getattr(embedder, "model", None), "matryoshka_dims", ())
    return tuple(sorted((d for d in dims if d != width), reverse=True))


# Names of per-dimension and quantised metrics: the plain metric, then "dim_<d>" for a
# truncation, then the precision ("int8", "binary", "int8_rescore", "binary_rescore"), joined by
# "/"; full-size float32 keeps the plain name. "/" and "_" are what TensorBoard tags allow
# (training logs eval/<entry>/<name>), and "/" groups a metric's variants there.
FLOAT32 = "float32"


def metric_name(metric: str, dim: int | None = None, precision: str = FLOAT32) -> str:
    """The name of ``metric`` at ``dim`` dimensions (None: full size) and ``precision``::

    ndcg_at_10, 256, "binary_rescore"  ->  ndcg_at_10/dim_256/binary_rescore
    spearman, 128                      ->  spearman/dim_128
    index_bytes, None, "int8"          ->  index_bytes/int8
    ndcg_at_10                         ->  ndcg_at_10
    """
    parts = [metric]
    if dim is not None:
        parts.append(f"dim_{dim}")
    if precision != FLOAT32:
        parts.append(precision)
    return "/".join(parts)


def split_metric_name(name: str) -> tuple[str, int | None, str]:
    """The inverse of ``metric_name``: (metric, dim or None, precision)."""
    metric, *rest = name.split("/")
    dim = None
    if rest and rest[0].startswith("dim_") and rest[0][4:].isdigit():
        dim = int(rest.pop(0)[4:])
    precision = rest.pop(0) if rest else FLOAT32
    if rest:
        raise ValueError(f"not a metric name: {name!r}")
    return metric, dim, precision


def truncate(vectors: Any, dim: int | None) -> np.ndarray:
    """The first ``dim`` columns of dense rows, L2-renormalised (Matryoshka truncation; a zero
    row stays zero); ``dim`` None: the rows as they are. Sparse rows (TF-IDF) have no
    meaningful prefix and are refused."""
    if dim is None:
        return vectors
    if sparse.issparse(vectors):
        raise ValueError(
            "per-dimension (Matryoshka) evaluation truncates dense embeddings; this embedder "
            "gives sparse rows (e.g. TF-IDF), whose columns are vocabulary terms: drop dims"
        )
    vectors = np.asarray(vectors)
    if not 1 <= dim <= vectors.shape[1]:
        raise ValueError(f"cannot truncate {vectors.shape[1]}-dim embeddings to {dim} dims")
    head = vectors[:, :dim]
    norms = np.linalg.norm(head, axis=1, keepdims=True)
    return (head / np.maximum(norms, np.finfo(head.dtype).tiny)).astype(vectors.dtype)


def top_k_search(
    queries: Any,
    corpus_chunks: Iterable[tuple[int, Any]],
    k: int,
    *,
    block_size: int = 1024,
    score: Callable[[Any, Any], np.ndarray] = dot,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by ``score`` (default: dot product), one corpus chunk and one block of
    queries at a time.

    queries: [Q, D]; corpus_chunks: (offset, [C, D]) pairs; dense numpy or scipy sparse rows
    for ``dot``, anything ``score(query_block, chunk) -> [b, C]`` takes otherwise. Returns
    (scores [Q, k'], indices [Q, k']) sorted by descending score, k' = min(k, corpus size);
    scores keep the dtype of ``score``'s (float32 for float32 embeddings). Integer scores
    (Hamming, int8 dot products: many ties) break ties by the lower corpus index, so the kept
    set and its order are deterministic. At most a [block_size, C] score matrix exists at once.
    """
    num_queries = queries.shape[0]
    best_scores = np.full((num_queries, 0), -np.inf, np.float32)
    best_index = np.full((num_queries, 0), -1, np.int64)
    for offset, chunk in corpus_chunks:
        kk = min(k, chunk.shape[0])
        chunk_scores, chunk_index = None, np.empty((num_queries, kk), np.int64)
        for start in range(0, num_queries, block_size):
            scores = score(queries[start : start + block_size], chunk)  # [b, C]
            if chunk_scores is None:
                chunk_scores = np.empty((num_queries, kk), scores.dtype)
            part = _top_k_columns(scores, np.arange(offset, offset + chunk.shape[0]), kk)
            chunk_scores[start : start + block_size] = np.take_along_axis(scores, part, 1)
            chunk_index[start : start + block_size] = part + offset
        if chunk_scores is None:  # no queries
            chunk_scores = np.empty((0, kk), np.float32)
        if best_scores.shape[1] == 0 and np.issubdtype(chunk_scores.dtype, np.integer):
            best_scores = best_scores.astype(chunk_scores.dtype)
        merged_scores = np.concatenate([best_scores, chunk_scores], axis=1)
        merged_index = np.concatenate([best_index, chunk_index], axis=1)
        keep = min(k, merged_scores.shape[1])
        part = _top_k_columns(merged_scores, merged_index, keep)
        best_scores = np.take_along_axis(merged_scores, part, 1)
        best_index = np.take_along_axis(merged_index, part, 1)
    if np.issubdtype(best_scores.dtype, np.integer):
        order = np.argsort(-_tie_key(best_scores, best_index), axis=1, kind="stable")
    else:
        order = np.argsort(-best_scores, axis=1, kind="stable")
    return np.take_along_axis(best_scores, order, 1), np.take_along_axis(best_index, order, 1)


def _tie_key(scores: np.ndarray, index: np.ndarray) -> np.ndarray:
    """int64 keys ordering integer scores descending, then corpus index ascending (scores
    below 2**31 in magnitude, indices below 2**32)."""
    return scores.astype(np.int64) * (1 << 32) - index


def _top_k_columns(scores: np.ndarray, index: np.ndarray, k: int) -> np.ndarray:
    """Columns of the k best scores of each row (unordered); integer scores: ties by the lower
    ``index`` (a row [C] shared by all rows, or one per row [b, C])."""
    if np.issubdtype(scores.dtype, np.integer):
        scores = _tie_key(scores, index)
    return np.argpartition(-scores, k - 1, axis=1)[:, :k]


def rounded(metrics: dict, digits: int = 6) -> dict:
    return {k: round(float(v), digits) if isinstance(v, float) else v for k, v in metrics.items()}
