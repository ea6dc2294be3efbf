"""Sequence lengths rounded up to a few buckets, so that XLA compiles a handful of programs: the
training pipeline's (powers of two) and the finer inference ladder of ``jina_jax.encode``."""

from __future__ import annotations

from collections.abc import Sequence

MIN_BUCKET = 16


def bucket_lengths(max_length: int) -> list[int]:
    """Power-of-two lengths (16, 32, 64, ... max_length): the training pipeline's buckets."""
    buckets, n = [], MIN_BUCKET
    while n < max_length:
        buckets.append(n)
        n *= 2
    return [*buckets, max_length]


def encode_buckets(max_length: int, steps_per_octave: int = 4) -> list[int]:
    """Inference buckets: multiples of 16 up to ``16 * 2 * steps_per_octave`` (128), then
    ``steps_per_octave`` evenly spaced lengths per doubling (160, 192, 224, 256, 320, ...), capped
    at ``max_length``. Finer than ``bucket_lengths``: inference has no optimizer state to
    recompile, and padding waste costs every text."""
    buckets, n = [], MIN_BUCKET
    while n < max_length:
        buckets.append(n)
        octave = 1 << (n.bit_length() - 1)  # largest power of two <= n
        n += max(MIN_BUCKET, octave // steps_per_octave)
    return [*buckets, max_length]


def bucket_for(length: int, buckets: Sequence[int]) -> int:
    for b in buckets:
        if length <= b:
            return b
    return buckets[-1]
