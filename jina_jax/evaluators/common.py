"""What every evaluator shares: embedding through the one encode path with bounded memory,
blockwise top-k search, and finding evaluation data by name in the starter corpus."""

from __future__ import annotations

import hashlib
import os
import pathlib
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

import jina_jax

DEFAULT_DATA_DIR = "data_cache/starter"
DATA_DIR_ENV = "JINA_JAX_DATA_DIR"


def data_dir_or_default(data_dir: str | os.PathLike | None) -> pathlib.Path:
    """``data_dir``, else ``$JINA_JAX_DATA_DIR``, else ``data_cache/starter`` in the working
    directory or, failing that, in the source checkout."""
    if data_dir or os.environ.get(DATA_DIR_ENV):
        return pathlib.Path(data_dir or os.environ[DATA_DIR_ENV])
    here = pathlib.Path(DEFAULT_DATA_DIR)
    checkout = pathlib.Path(jina_jax.__file__).resolve().parents[1] / DEFAULT_DATA_DIR
    return here if here.exists() or not checkout.exists() else checkout


def load_starter(data_dir: str | os.PathLike | None):
    from jina_jax.data.starter import load_starter as load

    return load(data_dir_or_default(data_dir))


def embed(
    model,
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int | None = None,
) -> np.ndarray:
    """L2-normalised embeddings [N, D] float32 (cosine similarity is a dot product)."""
    return jina_jax.encode(
        model,
        list(texts),
        batch_size=batch_size,
        max_length=max_length,
        normalize=True,
        show_progress=False,
    )


def embed_chunks(
    model,
    texts: Sequence[str],
    *,
    chunk_size: int = 16_384,
    batch_size: int = 32,
    max_length: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """(offset, embeddings [<=chunk_size, D]) per chunk of ``texts``: a corpus never has to be
    held as one matrix."""
    for start in range(0, len(texts), chunk_size):
        chunk = list(texts[start : start + chunk_size])
        yield start, embed(model, chunk, batch_size=batch_size, max_length=max_length)


def top_k_search(
    queries: np.ndarray,
    corpus_chunks: Iterable[tuple[int, np.ndarray]],
    k: int,
    *,
    block_size: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by dot product, one corpus chunk and one block of queries at a time.

    queries: [Q, D]; corpus_chunks: (offset, [C, D]) pairs. Returns (scores [Q, k'],
    indices [Q, k']) sorted by descending score, k' = min(k, corpus size). At most a
    [block_size, C] score matrix exists at once.
    """
    num_queries = len(queries)
    best_scores = np.full((num_queries, 0), -np.inf, np.float32)
    best_index = np.full((num_queries, 0), -1, np.int64)
    for offset, chunk in corpus_chunks:
        kk = min(k, len(chunk))
        chunk_scores = np.empty((num_queries, kk), np.float32)
        chunk_index = np.empty((num_queries, kk), np.int64)
        for start in range(0, num_queries, block_size):
            scores = queries[start : start + block_size] @ chunk.T  # [b, C]
            part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
            chunk_scores[start : start + block_size] = np.take_along_axis(scores, part, 1)
            chunk_index[start : start + block_size] = part + offset
        merged_scores = np.concatenate([best_scores, chunk_scores], axis=1)
        merged_index = np.concatenate([best_index, chunk_index], axis=1)
        keep = min(k, merged_scores.shape[1])
        part = np.argpartition(-merged_scores, keep - 1, axis=1)[:, :keep]
        best_scores = np.take_along_axis(merged_scores, part, 1)
        best_index = np.take_along_axis(merged_index, part, 1)
    order = np.argsort(-best_scores, axis=1, kind="stable")
    return np.take_along_axis(best_scores, order, 1), np.take_along_axis(best_index, order, 1)


def stable_subsample(keys: Sequence[str], size: int | None, salt: str = "eval") -> list[int]:
    """Indices of ``size`` items picked by a hash of their keys (every index when size is None
    or not smaller than len(keys)), in their original order; the same on every machine."""
    if not size or size >= len(keys):
        return list(range(len(keys)))

    def rank(i: int) -> bytes:
        return hashlib.sha1(f"{salt}\0{keys[i]}".encode()).digest()

    return sorted(sorted(range(len(keys)), key=rank)[:size])


def rounded(metrics: dict, digits: int = 6) -> dict:
    return {k: round(float(v), digits) if isinstance(v, float) else v for k, v in metrics.items()}
