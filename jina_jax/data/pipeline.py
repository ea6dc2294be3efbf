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
from jina_jax.data.masking import IGNORE_INDEX, whole_word_mask
from jina_jax.data.prepared import tokenizer_identity
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
    *,
    num_rows: int | None = None,
    text_ids: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Several texts per row (first-fit decreasing): token id arrays -> ``ids``, ``segments``,
    ``positions`` ``[R, pack_length]`` int32 and ``lengths [N]``.

    ``segments`` holds ``1 + text_ids[i]`` (default ``1 + i``) on the tokens of text ``i`` and 0
    on padding; ``positions`` counts tokens within each text. The encoder keeps attention within
    a text and pooling sums per segment (``jina_jax.models.pooling.segment_pool``), so each
    text's embedding is the one it gets alone, while the padding an ordinary batch pads to its
    longest text is mostly gone. ``R`` is rounded up by ``row_bucket`` (few compiled shapes) to a
    multiple of ``row_multiple`` (the number of batch shards), unless ``num_rows`` fixes it (a
    host's share of a multi-host batch, ``packed_rows_bound``)."""
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
    for i in np.argsort(-lengths, kind="stable").tolist():
        length = lengths[i]
        fits = free[:used] >= length
        r = int(fits.argmax()) if used else 0  # the first row with room (argmax: first True)
        if not used or not fits[r]:
            r = used
            used += 1
        row_of[i], start_of[i] = r, pack_length - free[r]
        free[r] -= length
    if num_rows is None:
        num_rows = row_bucket(used, row_multiple, steps_per_octave)
    elif used > num_rows:  # packed_rows_bound is a theorem about FFD; this cannot happen
        raise AssertionError(f"first-fit decreasing used {used} rows, more than {num_rows}")
    text_ids = np.arange(len(rows)) if text_ids is None else np.asarray(text_ids)
    ids = np.full((num_rows, pack_length), pad_id, np.int32)
    segments = np.zeros((num_rows, pack_length), np.int32)
    positions = np.zeros((num_rows, pack_length), np.int32)
    # every token at once: token t of text i goes to row row_of[i], column start_of[i] + t
    firsts = np.cumsum(lengths) - lengths  # each text's first token in the concatenation
    within = np.arange(int(lengths.sum())) - np.repeat(firsts, lengths)
    where = np.repeat(row_of * pack_length + start_of, lengths) + within
    ids.reshape(-1)[where] = np.concatenate(rows)
    segments.reshape(-1)[where] = np.repeat(text_ids + 1, lengths)
    positions.reshape(-1)[where] = within
    return {
        "ids": ids,
        "segments": segments,
        "positions": positions,
        "lengths": lengths.astype(np.int32),
    }


def packed_rows_bound(lengths: np.ndarray, pack_length: int) -> np.ndarray:
    """An upper bound on the rows ``pack_sequences`` (first-fit decreasing) needs, for each row of
    ``lengths [H, T]`` (the text lengths of each host's share of a batch), from a few vectorised
    passes: what every host computes for every host, so that all agree on one row count
    without running anyone else's packing.

    The bound. Let ``f(t)`` bound the rows first-fit decreasing opens for the texts longer than
    ``t``. Texts longer than ``L/2`` pair with nothing: ``f(L/2)`` is their count. For thresholds
    ``t' < t``, look at the last row opened for the texts longer than ``t'``: either a text
    longer than ``t`` opened it (then there are at most ``f(t)`` rows), or a text of at most
    ``t`` tokens that fitted in no earlier row, so every earlier row holds more than ``L - t``
    tokens, and there are at most ``ceil(S / (L - t))`` rows (``S``: the tokens of the texts
    longer than ``t'``). Hence ``f(t') <= max(f(t), ceil(S_{>t'} / (L - t)))`` (just ``f(t)``
    when no text lies in ``(t', t]``), down to ``t' = 0`` over thresholds ``L/64`` apart: within a
    few rows of the packing itself on real data."""
    lengths = np.atleast_2d(np.asarray(lengths, dtype=np.int64))
    half = pack_length // 2
    step = max(1, pack_length // 64)
    edges = np.unique(np.concatenate([np.arange(0, half, step), [half]]))  # 0 = t_0 < .. = L/2
    # class j: lengths in (edges[j], edges[j + 1]]; the last class: longer than L/2
    num_classes = len(edges)
    # = searchsorted(edges, lengths, "left") - 1, by arithmetic (edges are `step` apart up to
    # the last one below L/2, then L/2)
    classes = np.where(lengths > half, num_classes - 1, (lengths - 1) // step)
    hosts = np.arange(lengths.shape[0])[:, None]
    flat = (hosts * num_classes + classes).ravel()
    size = lengths.shape[0] * num_classes
    counts = np.bincount(flat, minlength=size).reshape(-1, num_classes)
    tokens = np.bincount(flat, weights=lengths.ravel(), minlength=size).reshape(-1, num_classes)
    longer = np.cumsum(tokens[:, ::-1], axis=1)[:, ::-1]  # [:, j]: tokens of classes >= j
    bound = counts[:, -1]  # f(L/2)
    for j in range(num_classes - 2, -1, -1):  # texts longer than edges[j], at most edges[j + 1]
        rows = np.ceil(longer[:, j] / (pack_length - edges[j + 1])).astype(np.int64)
        # with no text of this class, none of them can have opened the last row
        bound = np.where(counts[:, j] > 0, np.maximum(bound, rows), bound)
    return bound


def one_per_row(
    rows: Sequence[np.ndarray],
    max_length: int,
    pad_id: int,
    row_multiple: int = 1,
    fixed_length: bool = False,
    *,
    length: int | None = None,
    text_ids: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """One text per row, in text order: the unpacked form of ``pack_sequences``'s output. ``L``
    is ``length`` if given, else the power-of-two bucket of the longest text (``max_length``
    when ``fixed_length``: one shape, one compilation); ``R`` is the text count rounded up to
    ``row_multiple`` (extra rows are all padding). Segment ids as in ``pack_sequences``."""
    if len(rows) == 0:
        raise ValueError("one_per_row: no texts to lay out")
    lengths = np.fromiter((len(row) for row in rows), dtype=np.int32, count=len(rows))
    if length is None:
        longest = int(lengths.max())
        length = max_length if fixed_length else bucket_for(longest, bucket_lengths(max_length))
    text_ids = np.arange(len(rows)) if text_ids is None else np.asarray(text_ids)
    num_rows = -(-len(rows) // row_multiple) * row_multiple
    ids = np.full((num_rows, length), pad_id, np.int32)
    segments = np.zeros((num_rows, length), np.int32)
    positions = np.zeros((num_rows, length), np.int32)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        segments[i, : len(row)] = text_ids[i] + 1
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


class BatchIterator:
    """Iterates `batch_at(step)` from a step on; `get_state()`/`set_state()` save and restore the
    position. With `prefetch > 0` that many future batches are computed in a background thread;
    none at or past `stop` (the stage's last step), whose work would be thrown away."""

    def __init__(
        self,
        batch_at: Callable[[int], Batch],
        step: int = 0,
        prefetch: int = 0,
        stop: int | None = None,
    ):
        self._batch_at = batch_at
        self.step = int(step)
        self._prefetch = int(prefetch)
        self._stop = stop
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
                if self._pending and self._stop is not None and ahead >= self._stop:
                    break
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


def is_prepared(source) -> bool:
    """A pre-tokenised random-access source (``jina_jax.data.prepared.PreparedDataset``): token
    counts of every record up front (``lengths``), token ids read per batch (``token_ids``)."""
    return hasattr(source, "lengths") and hasattr(source, "token_ids")


class PairBatches:
    """Pair / triplet batches for contrastive training, one dataset per batch.

    sources: name -> a random-access sequence of PairRecord (a list, ``load_tfds(...)``
    records), or a prepared (pre-tokenised) dataset (``is_prepared``). specs: a DatasetSpec per
    source.

    With several hosts, host ``h`` of ``H`` owns the records ``[h B/H, (h+1) B/H)`` of each
    global batch of ``B``: it reads and lays out only those (a prepared source is read for
    them alone; a raw source is tokenised whole, today's cost, since its lengths are not known
    in advance). Every host computes the same row count from the token counts of the global
    batch alone (``packed_rows_bound`` over every host's share), and its texts keep their
    global segment ids, so the hosts' rows together are one global batch of the same texts.
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
        targets=None,
    ):
        """``pack``: several texts per row (``pack_sequences``, rows of the larger max length
        tokens), else one per row; ``targets(dataset, size, indices, records) -> [n, 2, D]``:
        per-record target vectors of the query and the positive (a teacher's embeddings, for
        distillation), added to the batch as ``teacher`` for this host's records; ``row_multiple``: row counts are multiples of it (the batch
        shards of the mesh, times the GradCache chunk, so that rows split evenly over devices,
        hosts and chunks); ``row_steps_per_octave``: how finely packed row counts are bucketed
        (fewer: fewer compiled shapes, more padding rows)."""
        if pack and pad_to_max_length:
            raise ValueError("pack and pad_to_max_length exclude each other; choose one")
        self.pad_to_max_length = pad_to_max_length
        # every host gets the same number of rows, a multiple of its share of the batch shards
        self.pack, self.row_multiple = pack, math.lcm(row_multiple, process_count)
        self.row_steps_per_octave = row_steps_per_octave
        self.sources = dict(sources)
        self.specs = as_spec_dict(specs)
        self.tokenizer = tokenizer
        self.query_max_length = query_max_length
        self.passage_max_length = passage_max_length
        self.process_index, self.process_count = process_index, process_count
        self.targets = targets
        for name, source in self.sources.items():
            if is_prepared(source):
                self._check_prepared(name, source)
        self.sampler = MixtureSampler(
            {name: len(source) for name, source in self.sources.items()},
            self.specs,
            seed,
            process_index,
            process_count,
            # prepared records are drawn a chunk's worth at a time (MixtureSampler blocks)
            blocks={n: getattr(s, "block", 1) for n, s in self.sources.items() if is_prepared(s)},
        )

    def _check_prepared(self, name: str, source) -> None:
        """A prepared dataset was tokenised once, ahead of time: its tokenizer, truncation and
        prefixes must be the run's."""
        spec, meta = self.specs[name], source.meta
        want = {"query": self.query_max_length, "passage": self.passage_max_length}
        problems = []
        if meta.get("max_lengths") != want:
            problems.append(f"max lengths {meta.get('max_lengths')}, the stage uses {want}")
        theirs, ours = meta.get("tokenizer", {}), tokenizer_identity(self.tokenizer)
        if any(theirs.get(key) != ours[key] for key in ours):
            problems.append(f"tokenizer {theirs}, the run's is {ours}")
        if spec.num_negatives > meta.get("num_negatives", 0):
            problems.append(
                f"{meta.get('num_negatives', 0)} negatives per record, the stage needs "
                f"{spec.num_negatives}"
            )
        if spec.query_prefix or spec.passage_prefix:
            problems.append("prefixes are applied when preparing (--query-prefix/--passage-prefix)")
        if problems:
            raise ValueError(
                f"prepared dataset {name!r} ({getattr(source, 'folder', '?')}) does not fit this "
                f"run: {'; '.join(problems)}. Prepare it again with python -m "
                "jina_jax.data.prepare and the run's settings."
            )

    def records_at(self, step: int) -> tuple[DatasetSpec, list[PairRecord]]:
        """The global batch of `step`: its dataset's spec and its records."""
        name, indices = self.sampler.global_plan(step)
        return self.specs[name], take(self.sources[name], indices)

    def batch_at(self, step: int) -> Batch:
        name, indices = self.sampler.global_plan(step)
        spec, source = self.specs[name], self.sources[name]
        own = self._own(len(indices))
        records = None
        if is_prepared(source):
            sides = 2 + spec.num_negatives
            lengths = source.lengths_at(indices, sides)
            texts = [record[:sides] for record in source.token_ids(indices[own])]
        else:
            records = take(source, indices)
            lengths, texts = self._tokenize(spec, records, own)
        batch = self._lay_out(spec, lengths, texts)
        if self.targets is not None:  # per record [query, positive] vectors, this host's share
            mine = records[own] if records is not None else source.records(indices[own])
            batch["teacher"] = self.targets(name, len(source), indices[own], mine)
        return batch

    def _own(self, batch_size: int) -> slice:
        share = batch_size // self.process_count
        return slice(self.process_index * share, (self.process_index + 1) * share)

    def _tokenize(self, spec: DatasetSpec, records, own: slice):
        """Raw records -> token counts ``[B, 2 + K]`` of the global batch, and the token ids of
        this host's records (query, positive, negatives each)."""
        k = spec.num_negatives
        short = [i for i, record in enumerate(records) if len(record.negatives) < k]
        if short:
            raise ValueError(
                f"{spec.name}: {len(short)} records have fewer than {k} negatives "
                f"(first at batch row {short[0]}); filter the dataset or lower num_negatives"
            )
        queries = [spec.query_prefix + record.query for record in records]
        passages = [
            spec.passage_prefix + text
            for record in records
            for text in (record.positive, *record.negatives[:k])
        ]
        query_ids, _ = self.tokenizer.encode_batch(queries, self.query_max_length)
        passage_ids, _ = self.tokenizer.encode_batch(passages, self.passage_max_length)
        per_record = [
            [query_ids[i], *passage_ids[i * (1 + k) : (i + 1) * (1 + k)]]
            for i in range(len(records))
        ]
        lengths = np.asarray([[len(t) for t in record] for record in per_record], np.int64)
        return lengths, per_record[own]

    def _lay_out(self, spec: DatasetSpec, lengths: np.ndarray, texts) -> Batch:
        """This host's records (``texts``: token ids per side) as its rows of the global batch
        whose token counts are ``lengths [B, 2 + K]``."""
        batch_size, sides = lengths.shape
        k = sides - 2
        hosts, share = self.process_count, batch_size // self.process_count
        first = self.process_index * share
        records = np.arange(first, first + share)
        # Global text order: the B queries, the B positives, then B x K negatives (row-major).
        text_ids = np.concatenate(
            [
                records,
                batch_size + records,
                (2 * batch_size + records[:, None] * k + np.arange(k)).ravel(),
            ]
        )
        rows = [t[0] for t in texts] + [t[1] for t in texts]
        rows += [t[2 + n] for t in texts for n in range(k)]
        length = max(self.query_max_length, self.passage_max_length)
        pad_id, local_multiple = self.tokenizer.pad_id, self.row_multiple // hosts
        if self.pack:
            num_rows = None
            if hosts > 1:  # one row count for every host, from the global token counts alone
                shares = lengths.reshape(hosts, share * sides)
                bound = int(packed_rows_bound(shares, length).max())
                num_rows = row_bucket(bound, local_multiple, self.row_steps_per_octave)
            laid_out = pack_sequences(
                rows,
                length,
                pad_id,
                local_multiple,
                self.row_steps_per_octave,
                num_rows=num_rows,
                text_ids=text_ids,
            )
        else:  # one text per row, padded to the bucket of the global batch's longest text
            fixed = self.pad_to_max_length
            width = length if fixed else bucket_for(int(lengths.max()), bucket_lengths(length))
            laid_out = one_per_row(
                rows, length, pad_id, local_multiple, length=width, text_ids=text_ids
            )
        docs = np.concatenate([lengths[:, 1], lengths[:, 2:].ravel()]).astype(np.int32)
        docs_share = len(docs) // hosts
        return {
            "ids": laid_out["ids"],
            "segments": laid_out["segments"],
            "positions": laid_out["positions"],
            "query_lengths": lengths[first : first + share, 0].astype(np.int32),
            "docs_lengths": docs[self.process_index * docs_share :][:docs_share],
            "in_batch_negatives": np.bool_(spec.in_batch_negatives),
            "dataset": spec.name,
        }

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
    pre-tokenizer's words: whitespace- and punctuation-separated for BERT). Masking and the
    80/10/10 replacement are `jina_jax.data.masking.whole_word_mask`, seeded per document by
    (seed, step, its place in the global batch), so a document is masked the same way whatever
    the host count. Records are visited epoch-wise without replacement, as in `MixtureSampler`
    with a single dataset. One document per row; each host reads and tokenises only its own
    documents, so with several hosts rows are `max_length` long (no host knows the others'
    longest document); one host pads to the bucket of its longest.
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
        share = len(indices) // self.process_count
        first = self.process_index * share
        # A token is rarely under 2 characters: cutting a document at 16 x max_length characters
        # keeps every token the truncation keeps, without tokenising megabyte-long documents.
        limit = 16 * self.max_length
        texts = [text[:limit] for text in take(self.texts, indices[first : first + share])]
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
            self.row_multiple // self.process_count,
            fixed_length=self.process_count > 1,
            text_ids=np.arange(first, first + share),
        )
        ids = laid_out["ids"]
        masked = ids.copy()
        labels = np.full(ids.shape, IGNORE_INDEX, ids.dtype)
        for i, special in enumerate(encoded["special_tokens_mask"]):
            # each document masked alone, at full width, so that neither the host count nor the
            # batch's longest document changes its random draws
            n = len(special)
            row = np.full((1, self.max_length), self.tokenizer.pad_id, ids.dtype)
            row[0, :n] = ids[i, :n]
            starts = np.zeros((1, self.max_length), bool)
            starts[0, :n] = word_starts(encoded.word_ids(i))
            is_special = np.ones((1, self.max_length), bool)
            is_special[0, :n] = np.asarray(special, dtype=bool)
            rng = np.random.default_rng([self.seed, step, first + i, 0x4D4C4D])  # "MLM"
            row_masked, row_labels = whole_word_mask(
                row,
                starts,
                is_special,
                rng,
                mask_prob=self.mask_prob,
                mask_token_id=self.tokenizer.hf.mask_token_id,
                vocab_size=self.tokenizer.vocab_size,
            )
            masked[i, :n], labels[i, :n] = row_masked[0, :n], row_labels[0, :n]
        return {**laid_out, "ids": masked, "labels": labels}

    def iterator(self, step: int = 0, prefetch: int = 0) -> BatchIterator:
        return BatchIterator(self.batch_at, step, prefetch)

    def __iter__(self) -> BatchIterator:
        return self.iterator()
