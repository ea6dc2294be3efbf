"""Quantised embeddings for retrieval (SPEC §7), as sentence-transformers' ``quantize_embeddings``
and ``semantic_search_faiss`` define them:

- **binary**: the sign bit of each dimension (``x > 0``), packed 8 to a byte (``np.packbits``);
  scored by Hamming distance (a higher score is a smaller distance: score = -hamming);
- **int8**: per-dimension scalar quantisation: the range [min, max] of each dimension over the
  calibration embeddings (the corpus) is cut into 256 levels, ``floor((x - min) / step) - 128``
  clipped to [-128, 127] with ``step = (max - min) / 255``; queries are quantised with the same
  ranges and scored by integer dot products;
- **rescoring**: the top ``rescore`` candidates by the quantised score are re-ranked by the
  float32 query dotted with the candidate's quantised vector as floats (binary as ±1, int8
  dequantised: ``(q + 128) * step + min``). ±1 ranks as sentence-transformers' 0/1 unpacked
  bits do (the scores differ by ``2 s - sum(query)``, the same for every candidate).

The corpus index takes N x D x 4 bytes in float32, N x D in int8 and N x ceil(D / 8) binary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

from jina_jax.evaluators.common import top_k_search

PRECISIONS = ("float32", "int8", "binary")
# Rescoring gathers [rows, rescore, D] candidate vectors at a time: at most this many values.
RESCORE_BLOCK_VALUES = 1 << 22


def check_precisions(precisions, rescore: int) -> tuple[tuple[str, ...], int]:
    """(``precisions`` as a tuple (one name alone allowed), ``rescore``), checked: distinct
    known precisions, at least one; ``rescore`` an int >= 0, and > 0 only with int8 or binary
    (it re-ranks their candidates)."""
    precisions = (precisions,) if isinstance(precisions, str) else tuple(precisions)
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown or not precisions or len(set(precisions)) != len(precisions):
        raise ValueError(
            f"precisions must list distinct precisions of {PRECISIONS}, got {precisions!r}"
        )
    if isinstance(rescore, bool) or not isinstance(rescore, int) or rescore < 0:
        raise ValueError(f"rescore must be an integer >= 0, got {rescore!r}")
    if rescore and set(precisions) == {"float32"}:
        raise ValueError(
            "rescore re-ranks int8 / binary candidates: add int8 or binary to precisions"
        )
    return precisions, rescore


def index_bytes(num_vectors: int, dim: int, precision: str) -> int:
    """Memory of a flat index of ``num_vectors`` ``dim``-dimensional vectors."""
    per_vector = {"float32": dim * 4, "int8": dim, "binary": -(-dim // 8)}
    if precision not in per_vector:
        raise ValueError(f"unknown precision {precision!r}; known: {PRECISIONS}")
    return num_vectors * per_vector[precision]


def int8_ranges(vectors: Iterable[np.ndarray]) -> np.ndarray:
    """[2, D] float32: the per-dimension minimum and maximum over the rows of all ``vectors``
    (arrays [n, D], e.g. the corpus chunk by chunk)."""
    low = high = None
    for chunk in vectors:
        if chunk.shape[0] == 0:
            continue
        low = chunk.min(0) if low is None else np.minimum(low, chunk.min(0))
        high = chunk.max(0) if high is None else np.maximum(high, chunk.max(0))
    if low is None:
        raise ValueError("int8 quantisation needs at least one embedding to calibrate its ranges")
    return np.stack([low, high]).astype(np.float32)


def _steps(ranges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ranges = np.asarray(ranges, np.float32)
    steps = (ranges[1] - ranges[0]) / 255
    return ranges[0], np.where(steps == 0, 1, steps).astype(np.float32)


def quantize_int8(vectors: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """int8 [N, D]: ``quantize_embeddings(vectors, "int8", ranges=ranges)``."""
    starts, steps = _steps(ranges)
    levels = np.clip(np.floor((vectors - starts) / steps), 0, 255)
    return (levels - 128).astype(np.int8)


def dequantize_int8(quantized: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """float64 [..., D]: the value each int8 level stands for (its bucket's lower edge)."""
    starts, steps = _steps(ranges)
    return (quantized.astype(np.float64) + 128) * steps + starts


def quantize_binary(vectors: np.ndarray) -> np.ndarray:
    """uint8 [N, ceil(D / 8)]: the sign bits ``vectors > 0``, packed (``np.packbits``; the last
    byte is padded with zero bits, which never differ)."""
    return np.packbits(np.asarray(vectors) > 0, axis=-1)


def binary_signs(packed: np.ndarray, dim: int) -> np.ndarray:
    """float32 [..., dim]: +1 where the bit is set, -1 where not."""
    bits = np.unpackbits(packed, axis=-1, count=dim)
    return bits.astype(np.float32) * 2 - 1


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """int64 [A, B]: Hamming distances between packed rows (XOR, popcount). Brute force: for
    small inputs and checks; the search computes the same numbers with a matrix product."""
    return np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(-1, dtype=np.int64)


def int8_scores(queries: np.ndarray, chunk: np.ndarray) -> np.ndarray:
    """int64 [b, C]: integer dot products of int8 rows. Computed as a float64 matrix product,
    which is exact here (each |product| <= 2**14, sums far below 2**53) and runs on BLAS."""
    return (queries.astype(np.float64) @ chunk.astype(np.float64).T).astype(np.int64)


def binary_scores(queries: np.ndarray, chunk: np.ndarray, dim: int) -> np.ndarray:
    """int64 [b, C]: -Hamming distance between packed rows of ``dim`` bits. Computed from ±1
    vectors: their dot product is ``dim - 2 * hamming`` (exact in float32 for dim < 2**24)."""
    agreement = binary_signs(queries, dim) @ binary_signs(chunk, dim).T
    return ((agreement - dim) / 2).astype(np.int64)


@dataclasses.dataclass
class QuantizedSearch:
    """The result of ``quantized_search``: top-k (scores [Q, k], corpus indices [Q, k]) by the
    quantised score, the same after rescoring (None when ``rescore`` is 0), and the bytes of
    the quantised corpus index."""

    scores: np.ndarray
    index: np.ndarray
    rescored: tuple[np.ndarray, np.ndarray] | None
    index_bytes: int


def quantized_search(
    queries: np.ndarray,
    corpus_chunks: Sequence[tuple[int, np.ndarray]],
    precision: str,
    k: int,
    *,
    rescore: int = 0,
    block_size: int = 1024,
) -> QuantizedSearch:
    """Exact top-``k`` search of float32 ``queries`` [Q, D] in a corpus quantised to
    ``precision`` ("int8": ranges calibrated on the corpus; "binary"), blockwise
    (``top_k_search``: at most a [block_size, C] score matrix at once). ``corpus_chunks``:
    (offset, float32 [C, D]) in order, offsets 0, C1, C1 + C2, ... (read twice for int8: once to
    calibrate, once to quantise). Ties in the quantised score go to the lower corpus index.

    ``rescore`` > 0: the top ``rescore`` candidates are re-ranked by the float32 query dotted
    with their quantised vectors as floats, and the best ``min(k, rescore)`` of them kept."""
    if precision not in ("int8", "binary"):
        raise ValueError(f"quantized_search takes int8 or binary, got {precision!r}")
    dim = queries.shape[1]
    expected = 0
    for offset, chunk in corpus_chunks:
        if offset != expected:
            raise ValueError(f"corpus chunks must be consecutive: offset {offset}, not {expected}")
        expected += chunk.shape[0]
    if precision == "int8":
        ranges = int8_ranges(chunk for _, chunk in corpus_chunks)
        quantized = [(o, quantize_int8(c, ranges)) for o, c in corpus_chunks]
        quantized_queries = quantize_int8(queries, ranges)
        score = int8_scores
    else:
        ranges = None
        quantized = [(o, quantize_binary(c)) for o, c in corpus_chunks]
        quantized_queries = quantize_binary(queries)

        def score(q, c):
            return binary_scores(q, c, dim)

    depth = max(k, rescore)
    scores, index = top_k_search(
        quantized_queries, quantized, depth, block_size=block_size, score=score
    )
    size = index_bytes(expected, dim, precision)
    if not rescore:
        return QuantizedSearch(scores[:, :k], index[:, :k], None, size)
    corpus = np.concatenate([c for _, c in quantized])

    def as_floats(rows):
        if precision == "int8":
            return dequantize_int8(rows, ranges)
        return binary_signs(rows, dim)

    rescored = _rescore(queries, corpus, index[:, :rescore], as_floats, min(k, rescore))
    return QuantizedSearch(scores[:, :k], index[:, :k], rescored, size)


def _rescore(queries, corpus, candidates, as_floats, keep):
    """Re-ranks each query's ``candidates`` [Q, R] (in quantised order) by the float query
    dotted with ``as_floats(corpus[candidate])`` in float64; ties keep the quantised order.
    Returns (scores [Q, keep] float64, indices [Q, keep])."""
    num_queries, depth = candidates.shape
    rows = max(1, RESCORE_BLOCK_VALUES // max(1, depth * queries.shape[1]))
    all_scores, all_index = [], []
    for start in range(0, num_queries, rows):
        block = candidates[start : start + rows]
        vectors = as_floats(corpus[block])  # [b, R, D]
        scores = np.einsum("bd,brd->br", queries[start : start + rows].astype(np.float64), vectors)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :keep]
        all_scores.append(np.take_along_axis(scores, order, 1))
        all_index.append(np.take_along_axis(block, order, 1))
    if not all_scores:
        return np.empty((0, keep)), np.empty((0, keep), np.int64)
    return np.concatenate(all_scores), np.concatenate(all_index)
