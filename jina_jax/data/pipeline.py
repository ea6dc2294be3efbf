"""Host-side batches: records -> tokenised texts laid out in rows, addressed by step.

One batch schema for every stage (``layout_texts``):

    ids, segments, positions   int32 [R, L]  token ids; 1 + the text's index in the batch on its
                                             tokens (0 = padding); the token's position in its text
    lengths                    int32 [N]     tokens of each text, in text order

Packed (``pack=True``) rows hold several texts each (first-fit decreasing), unpacked rows one
text each; the encoder keeps attention within a text either way, so each text's embedding is the
one it gets alone. Contrastive batches (``tokenize_pairs``) order their texts as the queries, the
positives, then the hard negatives (row-major per query), and split ``lengths`` into
``query_lengths [B]`` and ``docs_lengths [B (1 + K)]`` so that B and K are static shapes. MLM
batches (``MLMBatches``) hold one document per row and add ``labels [R, L]``.

``PairBatches.batch_at(step)`` and ``MLMBatches.batch_at(step)`` are pure functions of the step
(see ``jina_jax.data.sampler``), so a training run resumes from ``{"step": n}`` alone and gets the
same batches as if it had never stopped. ``BatchIterator`` walks the steps, computing a few ahead
in a background thread (tokenisation runs in Rust and releases the GIL).

Shapes: packed rows are ``L = max length`` long and their count is rounded up by ``row_bucket``;
unpacked rows are padded to a power-of-two bucket (``jina_jax.data.buckets``). A run thus sees a
handful of shapes and XLA compiles a handful of programs. Row counts are multiples of the batch
shards, and with several hosts every host gets the same number of rows (each host lays out the
global batch and keeps its own contiguous slice; multi-host jit needs equal local shapes).
"""

from __future__ import annotations

import collections
import concurrent.futures
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from jina_jax.data.buckets import bucket_for, bucket_lengths
from jina_jax.data.masking import whole_word_mask
from jina_jax.data.records import PairRecord
from jina_jax.data.sampler import DatasetSpec, MixtureSampler, as_spec_dict

Batch = dict[str, Any]


def row_bucket(rows: int, multiple: int = 1, steps_per_octave: int = 8) -> int:
    """Packed row counts, rounded up to a short ladder so that few shapes compile: multiples of
    ``multiple`` up to ``steps_per_octave`` of them, then that many steps per doubling (at most
    ``1 / steps_per_octave`` padding rows). ``steps_per_octave`` is a power of two."""
    if steps_per_octave < 1 or steps_per_octave & (steps_per_octave - 1):
        raise ValueError(f"steps_per_octave must be a power of two, got {steps_per_octave}")
    units = max(1, -(-rows // multiple))
    if units > steps_per_octave:
        shift = (units - 1).bit_length() - steps_per_octave.bit_length()
        step = 1 << max(0, shift)
        units = -(-units // step) * step
    return units * multiple


def packed_row_count(length_counts: Mapping[int, int], pack_length: int) -> int:
    """Rows ``pack_sequences`` fills (before ``row_bucket``) with ``count`` texts of each
    ``length``, without building them: first-fit decreasing over groups of equal length, where
    first fit fills the open rows in order, then opens rows of ``pack_length // length`` texts.
    The worst-case batch shape of a config (``jina_jax.aot``) is this at every max length."""
    free: list[int] = []  # room left in each open row, in row order
    for length in sorted((n for n, c in length_counts.items() if c), reverse=True):
        if not 0 < length <= pack_length:
            raise ValueError(f"text length {length} outside 1..{pack_length}")
        left = length_counts[length]
        for r, room in enumerate(free):
            if not left:
                break
            take = min(left, room // length)
            free[r] -= take * length
            left -= take
        per_row = pack_length // length
        full, rest = divmod(left, per_row)
        free += [pack_length - per_row * length] * full
        if rest:
            free.append(pack_length - rest * length)
    return len(free)


def pack_sequences(
    rows: Sequence[np.ndarray],
    pack_length: int,
    pad_id: int,
    row_multiple: int = 1,
    steps_per_octave: int = 8,
) -> dict[str, np.ndarray]:
    """Several texts per row (first-fit decreasing): token id arrays -> ``ids``, ``segments``,
    ``positions`` ``[R, pack_length]`` int32 and ``lengths [N]``.

    ``segments`` holds ``1 + i`` on the tokens of text ``i`` and 0 on padding; ``positions``
    counts tokens within each text. The encoder keeps attention within a text and pooling sums
    per segment (``jina_jax.models.pooling.segment_pool``), so each text's embedding is the one
    it gets alone, while the padding an ordinary batch pads to its longest text is mostly gone.
    ``R`` is rounded up by ``row_bucket`` (few compiled shapes) to a multiple of
    ``row_multiple`` (the number of batch shards)."""
    lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
    if len(rows) == 0:
        raise ValueError("pack_sequences: no texts to pack")
    if lengths.max() > pack_length:
        i = int(lengths.argmax())
        raise ValueError(
            f"text {i} has {lengths[i]} tokens, more than the pack length {pack_length}"
        )
    free = np.full(len(rows), pack_length, dtype=np.int64)  # room left in each row
    used = 0
    row_of = np.empty(len(rows), dtype=np.int64)
    start_of = np.empty(len(rows), dtype=np.int64)
    for i in np.argsort(-lengths, kind="stable"):
        fits = np.flatnonzero(free[:used] >= lengths[i])
        r = int(fits[0]) if fits.size else used
        used = max(used, r + 1)
        row_of[i], start_of[i] = r, pack_length - free[r]
        free[r] -= lengths[i]
    num_rows = row_bucket(used, row_multiple, steps_per_octave)
    ids = np.full((num_rows, pack_length), pad_id, np.int32)
    segments = np.zeros((num_rows, pack_length), np.int32)
    positions = np.zeros((num_rows, pack_length), np.int32)
    for i, row in enumerate(rows):
        r, begin, end = row_of[i], start_of[i], start_of[i] + lengths[i]
        ids[r, begin:end] = row
        segments[r, begin:end] = i + 1
        positions[r, begin:end] = np.arange(lengths[i])
    return {
        "ids": ids,
        "segments": segments,
        "positions": positions,
        "lengths": lengths.astype(np.int32),
    }


def one_per_row(
    rows: Sequence[np.ndarray],
    max_length: int,
    pad_id: int,
    row_multiple: int = 1,
    fixed_length: bool = False,
) -> dict[str, np.ndarray]:
    """One text per row, in text order: the unpacked form of ``pack_sequences``'s output. ``L``
    is the power-of-two bucket of the longest text (``max_length`` when ``fixed_length``: one
    shape, one compilation); ``R`` is the text count rounded up to ``row_multiple`` (extra rows
    are all padding)."""
    if len(rows) == 0:
        raise ValueError("one_per_row: no texts to lay out")
    lengths = np.fromiter((len(row) for row in rows), dtype=np.int32, count=len(rows))
    length = (
        max_length if fixed_length else bucket_for(int(lengths.max()), bucket_lengths(max_length))
    )
    num_rows = -(-len(rows) // row_multiple) * row_multiple
    ids = np.full((num_rows, length), pad_id, np.int32)
    segments = np.zeros((num_rows, length), np.int32)
    positions = np.zeros((num_rows, length), np.int32)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        segments[i, : len(row)] = i + 1
        positions[i, : len(row)] = np.arange(len(row))
    return {"ids": ids, "segments": segments, "positions": positions, "lengths": lengths}


def layout_texts(
    rows: Sequence[np.ndarray],
    max_length: int,
    pad_id: int,
    *,
    pack: bool,
    row_multiple: int = 1,
    row_steps_per_octave: int = 8,
    fixed_length: bool = False,
) -> dict[str, np.ndarray]:
    """Token id arrays -> the batch schema (``ids, segments, positions [R, L]``, ``lengths
    [N]``): packed several to a row of ``max_length`` tokens, or one per row."""
    if pack:
        if fixed_length:
            raise ValueError("packed rows are always max_length long; fixed_length is for unpacked")
        return pack_sequences(rows, max_length, pad_id, row_multiple, row_steps_per_octave)
    return one_per_row(rows, max_length, pad_id, row_multiple, fixed_length)


def tokenize_pairs(
    records: Sequence[PairRecord],
    spec: DatasetSpec,
    tokenizer,
    query_max_length: int,
    passage_max_length: int,
    *,
    pack: bool = True,
    pad_to_max_length: bool = False,
    row_multiple: int = 1,
    row_steps_per_octave: int = 8,
) -> Batch:
    """One dataset's records -> a contrastive batch: queries (truncated to
    ``query_max_length``), positives and, when ``spec.num_negatives`` K > 0, the first K
    negatives of each record (``passage_max_length``), laid out by ``layout_texts`` in that text
    order, with ``query_lengths [B]`` and ``docs_lengths [B (1 + K)]``. Records must carry at
    least K negatives. ``pad_to_max_length`` (unpacked only) pads every row to the larger max
    length: one shape, one compilation (small models on CPU)."""
    k = spec.num_negatives
    if k:
        short = [i for i, record in enumerate(records) if len(record.negatives) < k]
        if short:
            raise ValueError(
                f"{spec.name}: {len(short)} records have fewer than {k} negatives "
                f"(first at batch row {short[0]}); filter the dataset or lower num_negatives"
            )
    queries = [spec.query_prefix + record.query for record in records]
    passages = [spec.passage_prefix + record.positive for record in records]
    passages += [spec.passage_prefix + n for record in records for n in record.negatives[:k]]
    query_ids, _ = tokenizer.encode_batch(queries, query_max_length)
    passage_ids, _ = tokenizer.encode_batch(passages, passage_max_length)
    return contrastive_batch(
        query_ids,
        passage_ids,
        max_length=max(query_max_length, passage_max_length),
        pad_id=tokenizer.pad_id,
        pack=pack,
        row_multiple=row_multiple,
        row_steps_per_octave=row_steps_per_octave,
        fixed_length=pad_to_max_length,
        in_batch_negatives=spec.in_batch_negatives,
        dataset=spec.name,
    )


def contrastive_batch(
    query_ids: Sequence[np.ndarray],
    doc_ids: Sequence[np.ndarray],
    *,
    max_length: int,
    pad_id: int,
    pack: bool,
    row_multiple: int = 1,
    row_steps_per_octave: int = 8,
    fixed_length: bool = False,
    in_batch_negatives: bool = True,
    dataset: str = "",
) -> Batch:
    """Token ids of B queries and of their documents (B positives, then B x K hard negatives,
    row-major) -> a contrastive batch of the one schema."""
    laid_out = layout_texts(
        list(query_ids) + list(doc_ids),
        max_length,
        pad_id,
        pack=pack,
        row_multiple=row_multiple,
        row_steps_per_octave=row_steps_per_octave,
        fixed_length=fixed_length,
    )
    lengths = laid_out.pop("lengths")
    return {
        **laid_out,
        "query_lengths": lengths[: len(query_ids)],
        "docs_lengths": lengths[len(query_ids) :],
        "in_batch_negatives": np.bool_(in_batch_negatives),
        "dataset": dataset,
    }


def take(source: Sequence, indices: np.ndarray) -> list:
    """source[i] for each index; one batched read where the source has `__getitems__` (the
    array_record sources do, and read many records faster that way)."""
    getitems = getattr(source, "__getitems__", None)
    if getitems is not None:
        return list(getitems([int(i) for i in indices]))
    return [source[int(i)] for i in indices]


def _host_rows(batch: Batch, process_index: int, process_count: int) -> Batch:
    out = {}
    for key, value in batch.items():
        if isinstance(value, np.ndarray) and value.ndim:
            local = len(value) // process_count
            value = value[process_index * local : (process_index + 1) * local]
        out[key] = value
    return out


class BatchIterator:
    """Iterates `batch_at(step)` from a step on; `get_state()`/`set_state()` save and restore the
    position. With `prefetch > 0` that many future batches are computed in a background thread."""

    def __init__(self, batch_at: Callable[[int], Batch], step: int = 0, prefetch: int = 0):
        self._batch_at = batch_at
        self.step = int(step)
        self._prefetch = int(prefetch)
        self._pool = (
            concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="batches")
            if prefetch > 0
            else None
        )
        self._pending: collections.deque = collections.deque()  # futures for step, step+1, ...

    def __iter__(self):
        return self

    def __next__(self) -> Batch:
        if self._pool is None:
            batch = self._batch_at(self.step)
        else:
            while len(self._pending) <= self._prefetch:
                ahead = self.step + len(self._pending)
                self._pending.append(self._pool.submit(self._batch_at, ahead))
            batch = self._pending.popleft().result()
        self.step += 1
        return batch

    def get_state(self) -> dict[str, int]:
        """The step of the next batch (batches computed ahead do not count)."""
        return {"step": self.step}

    def set_state(self, state: Mapping[str, int]) -> None:
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self.step = int(state["step"])

    def close(self) -> None:
        self.set_state({"step": self.step})
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class PairBatches:
    """Pair / triplet batches for contrastive training, one dataset per batch.

    sources: name -> random-access sequence of PairRecord (a list, or `load_tfds(...)` records).
    specs: a DatasetSpec per source. Each host gets `batch_size // process_count` rows of every
    global batch (its contiguous slice).
    """

    def __init__(
        self,
        sources: Mapping[str, Sequence[PairRecord]],
        specs: Sequence[DatasetSpec] | Mapping[str, DatasetSpec],
        tokenizer,
        query_max_length: int,
        passage_max_length: int,
        seed: int,
        process_index: int = 0,
        process_count: int = 1,
        pad_to_max_length: bool = False,
        pack: bool = True,
        row_multiple: int = 1,
        row_steps_per_octave: int = 8,
    ):
        """``pack``: several texts per row (``pack_sequences``, rows of the larger max length
        tokens), else one per row; ``row_multiple``: row counts are multiples of it (the batch
        shards of the mesh, times the GradCache chunk, so that rows split evenly over devices,
        hosts and chunks); ``row_steps_per_octave``: how finely packed row counts are bucketed
        (fewer: fewer compiled shapes, more padding rows)."""
        if pack and pad_to_max_length:
            raise ValueError("pack and pad_to_max_length exclude each other; choose one")
        self.pad_to_max_length = pad_to_max_length
        # every host gets the same number of rows
        self.pack, self.row_multiple = pack, math.lcm(row_multiple, process_count)
        self.row_steps_per_octave = row_steps_per_octave
        self.sources = dict(sources)
        self.specs = as_spec_dict(specs)
        self.tokenizer = tokenizer
        self.query_max_length = query_max_length
        self.passage_max_length = passage_max_length
        self.process_index, self.process_count = process_index, process_count
        self.sampler = MixtureSampler(
            {name: len(source) for name, source in self.sources.items()},
            self.specs,
            seed,
            process_index,
            process_count,
        )

    def records_at(self, step: int) -> tuple[DatasetSpec, list[PairRecord]]:
        """The global batch of `step`: its dataset's spec and its records."""
        name, indices = self.sampler.global_plan(step)
        return self.specs[name], take(self.sources[name], indices)

    def batch_at(self, step: int) -> Batch:
        spec, records = self.records_at(step)
        batch = tokenize_pairs(
            records,
            spec,
            self.tokenizer,
            self.query_max_length,
            self.passage_max_length,
            pack=self.pack,
            pad_to_max_length=self.pad_to_max_length,
            row_multiple=self.row_multiple,
            row_steps_per_octave=self.row_steps_per_octave,
        )
        return _host_rows(batch, self.process_index, self.process_count)

    def iterator(self, step: int = 0, prefetch: int = 0) -> BatchIterator:
        return BatchIterator(self.batch_at, step, prefetch)

    def __iter__(self) -> BatchIterator:
        return self.iterator()


def word_starts(word_ids: Sequence[int | None]) -> np.ndarray:
    """bool [L]: True at the first token of each word (the fast tokenizer's `word_ids()`)."""
    out = np.zeros(len(word_ids), dtype=bool)
    previous = None
    for i, word in enumerate(word_ids):
        out[i] = word is not None and word != previous
        previous = word
    return out


class MLMBatches:
    """Masked-language-model batches with whole-word masking (jina-embeddings v2, stage 0).

    texts: random-access sequence of documents. Each is tokenised with the model's special tokens
    and truncated to `max_length`; words come from the fast tokenizer's `word_ids()` (its
    pre-tokenizer's words: whitespace- and punctuation-separated for BERT). Masking and the 80/10/10
    replacement are `jina_jax.data.masking.whole_word_mask`, seeded by (seed, step). Records are visited
    epoch-wise without replacement, as in `MixtureSampler` with a single dataset.
    """

    def __init__(
        self,
        texts: Sequence[str],
        tokenizer,
        max_length: int,
        batch_size: int,
        seed: int,
        mask_prob: float = 0.3,
        process_index: int = 0,
        process_count: int = 1,
        row_multiple: int = 1,
    ):
        if tokenizer.hf.mask_token_id is None:
            raise ValueError("MLM needs a tokenizer with a mask token")
        self.texts = texts
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.seed = seed
        self.mask_prob = mask_prob
        self.process_index, self.process_count = process_index, process_count
        self.row_multiple = math.lcm(row_multiple, process_count)
        spec = DatasetSpec("texts", batch_size=batch_size)
        self.sampler = MixtureSampler(
            {"texts": len(texts)}, [spec], seed, process_index, process_count
        )

    def batch_at(self, step: int) -> Batch:
        _, indices = self.sampler.global_plan(step)
        # A token is rarely under 2 characters: cutting a document at 16 x max_length characters
        # keeps every token the truncation keeps, without tokenising megabyte-long documents.
        limit = 16 * self.max_length
        texts = [text[:limit] for text in take(self.texts, indices)]
        encoded = self.tokenizer.hf(
            texts,
            add_special_tokens=True,
            truncation=True,
            max_length=self.max_length,
            return_special_tokens_mask=True,
        )
        laid_out = one_per_row(
            [np.asarray(row, np.int32) for row in encoded["input_ids"]],
            self.max_length,
            self.tokenizer.pad_id,
            self.row_multiple,
        )
        ids = laid_out["ids"]
        starts = np.zeros(ids.shape, dtype=bool)
        special = laid_out["segments"] == 0
        for i, row in enumerate(encoded["special_tokens_mask"]):
            starts[i, : len(row)] = word_starts(encoded.word_ids(i))
            special[i, : len(row)] |= np.asarray(row, dtype=bool)
        rng = np.random.default_rng([self.seed, step, 0x4D4C4D])  # "MLM": apart from sampling
        masked, labels = whole_word_mask(
            ids,
            starts,
            special,
            rng,
            mask_prob=self.mask_prob,
            mask_token_id=self.tokenizer.hf.mask_token_id,
            vocab_size=self.tokenizer.vocab_size,
        )
        batch = {**laid_out, "ids": masked, "labels": labels}
        return _host_rows(batch, self.process_index, self.process_count)

    def iterator(self, step: int = 0, prefetch: int = 0) -> BatchIterator:
        return BatchIterator(self.batch_at, step, prefetch)

    def __iter__(self) -> BatchIterator:
        return self.iterator()
