"""Apache Beam transforms of the data preparation (``python -m jina_jax.data.prepare``).

Records travel keyed by their place in the input, ``(file index, line or row number)``: the
"earlier" of the in-process filters (first occurrence kept, a record dropped for a near-duplicate
before it) is the smaller position, so a Beam filter keeps exactly the records its in-process
class (``jina_jax.data.filters``) keeps on the same files read in the same order, whatever the
runner and its parallelism. Every decision is one of the plain functions of ``filters``; the
transforms here only route records to them (a GroupByKey on the dedup key, on LSH band keys, a
side input with the consistency sample's embeddings).

``apply_filter(stage, records, ...)`` turns a filter object (``ExactDedup``, ``NearDedup``,
``LanguageFilter``, ``ConsistencyFilter``, ``CrossEncoderFilter``) into its transform; it
returns the kept records and a one-element PCollection with the filter's ``FilterReport``.
``WriteShards`` puts tokenised records in their global order (sorted by a hash of their
normalised texts) and writes each shard from a worker.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam import pvalue
from apache_beam.utils import shared
from array_record.python.array_record_module import ArrayRecordWriter
from etils import epath

from jina_jax.data import filters, prepared, readers
from jina_jax.data.hashing import normalize_text
from jina_jax.data.records import PairRecord

Position = tuple[int, int]  # (input file index, line or row number): the input order
REMOVED = "removed"
SKIPPED = "skipped"
KEPT = "kept"
NUM_BUCKETS = 1 << 16  # sort buckets (by the first 2 bytes of a record's order hash)
BATCH = {"min_batch_size": 16, "max_batch_size": 1024}


# --------------------------------------------------------------------------------- models


class Lazy:
    """A model built on first use, once per process: ``Lazy(load_embedder, "all-MiniLM-L6-v2")``.

    What a Beam worker unpickles is the recipe (a picklable factory and its arguments), not the
    weights; every DoFn instance of a process shares the one model. Forwards ``embed`` (an
    embedder) and ``predict`` (a cross-encoder).
    """

    _models: dict[str, Any] = {}  # noqa: RUF012 (one cache per process, on purpose)
    _lock = threading.Lock()

    def __init__(self, factory: Callable[..., Any], *args, **kwargs):
        self.factory, self.args, self.kwargs = factory, args, kwargs
        self.token = uuid.uuid4().hex

    def get(self) -> Any:
        with Lazy._lock:
            model = Lazy._models.get(self.token)
            if model is None:
                model = Lazy._models[self.token] = self.factory(*self.args, **self.kwargs)
        return model

    def embed(self, texts, *, max_length=None):
        return self.get().embed(texts, max_length=max_length)

    def predict(self, pairs, **kwargs):
        return self.get().predict(pairs, **kwargs)

    def __repr__(self) -> str:
        return f"Lazy({getattr(self.factory, '__name__', self.factory)}, {self.args})"


# ---------------------------------------------------------------------------------- reading


class _Events(readers.ReadReport):
    """A ReadReport that keeps every skipped line, to be emitted as it happens."""

    def __init__(self):
        super().__init__()
        self.events: list[tuple[str, str, str]] = []

    def add_skip(self, where: str, reason: str, detail: str = "") -> None:
        self.events.append((where, reason, detail))


def _line_of(where: str) -> int:
    tail = where.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class _ReadFile(beam.DoFn):
    """(file index, path) -> ((file index, line), record); bad lines to SKIPPED as
    ``(file index, line, "file:line: reason: detail", reason)``."""

    def __init__(self, kind: str, unit: str, max_chars: int):
        self.kind, self.unit, self.max_chars = kind, unit, max_chars

    def process(self, element):
        index, path = element
        events = _Events()
        if self.kind == "texts":
            rows = readers.file_texts(path, unit=self.unit, report=events, max_chars=self.max_chars)
            for line, text in rows:
                yield from self._drain(index, events)
                yield (index, line), text
        else:
            for line, where, row in readers.file_rows(
                path, report=events, max_chars=self.max_chars
            ):
                yield from self._drain(index, events)
                try:
                    record = readers.row_to_pair(row)
                except readers.SkipRow as skip:
                    events.add_skip(where, skip.reason, skip.detail[:200])
                    continue
                yield (index, line), record
        yield from self._drain(index, events)

    @staticmethod
    def _drain(index: int, events: _Events):
        for where, reason, detail in events.events:
            message = f"{where}: {reason}" + (f": {detail}" if detail else "")
            yield pvalue.TaggedOutput(SKIPPED, (index, _line_of(where), message, reason))
        events.events.clear()


def read_files(files: beam.PCollection, *, kind: str, unit: str, max_chars: int):
    """(file index, path) -> (records keyed by position, skipped-line events)."""
    out = (
        files
        | "Spread" >> beam.Reshuffle()
        | "Parse"
        >> beam.ParDo(_ReadFile(kind, unit, max_chars))
        .with_output_types(Any)
        .with_outputs(SKIPPED, main=KEPT)
    )
    return out[KEPT], out[SKIPPED]


def _read_summary(_, num_records: int, reasons: list, examples: list) -> dict[str, Any]:
    examples = sorted(examples)
    return {
        "num_records": num_records,
        "skipped": dict(sorted(reasons)),
        "examples": [message for _, _, message, _ in examples],
    }


def read_report(records, skipped, max_examples: int = 20) -> beam.PCollection:
    """One dict: records read, skipped lines by reason, the first ``max_examples`` by position."""
    count = records | "CountRead" >> beam.combiners.Count.Globally()
    reasons = skipped | "Reasons" >> beam.Map(lambda e: e[3]) | beam.combiners.Count.PerElement()
    examples = skipped | "FirstSkipped" >> beam.combiners.Top.Smallest(max_examples)
    return (
        records.pipeline
        | "ReadReportOnce" >> beam.Create([None])
        | "ReadReport"
        >> beam.Map(
            _read_summary,
            pvalue.AsSingleton(count),
            pvalue.AsList(reasons),
            pvalue.AsSingleton(examples),
        )
    )


# ---------------------------------------------------------------------------------- filters


def _split(label: str, pcoll, dofn: beam.DoFn, *side_inputs):
    pardo = beam.ParDo(dofn, *side_inputs).with_output_types(Any)  # kept items or reasons
    out = pcoll | label >> pardo.with_outputs(REMOVED, main=KEPT)
    return out[KEPT], out[REMOVED]


def _verdicts(batch: Sequence[tuple[Position, Any]], reasons: Sequence[str | None]):
    for item, reason in zip(batch, reasons):
        if reason is None:
            yield item
        else:
            yield pvalue.TaggedOutput(REMOVED, reason)


def _make_report(_, n_out: int, reasons: list, note: str, *, name: str, dataset: str):
    n_in = n_out + sum(count for _, count in reasons)
    return filters.make_report(name, dataset, n_in, n_out, dict(reasons), note)


def filter_report(label: str, name: str, dataset: str, kept, removed, note=None):
    """A one-element PCollection: the FilterReport of a stage called ``name`` from its kept
    records and the reasons of its removed ones (and a one-element ``note``)."""
    n_out = kept | f"{label}/CountKept" >> beam.combiners.Count.Globally()
    reasons = removed | f"{label}/CountReasons" >> beam.combiners.Count.PerElement()
    if note is None:
        note = kept.pipeline | f"{label}/NoNote" >> beam.Create([""])
    return (
        kept.pipeline
        | f"{label}/Once" >> beam.Create([None])
        | f"{label}/Report"
        >> beam.Map(
            _make_report,
            pvalue.AsSingleton(n_out),
            pvalue.AsList(reasons),
            pvalue.AsSingleton(note),
            name=name,
            dataset=dataset,
        )
    )


class _ExactKeys(beam.DoFn):
    def process(self, item):
        reason = filters.exact_dedup_reason(item[1])
        if reason is not None:
            yield pvalue.TaggedOutput(REMOVED, reason)
        else:
            yield filters.exact_dedup_key(item[1]), item


class _FirstOfGroup(beam.DoFn):
    """A group of repeats: the earliest stays."""

    def process(self, group):
        _, members = group
        members = sorted(members, key=lambda item: item[0])
        yield members[0]
        for _ in members[1:]:
            yield pvalue.TaggedOutput(REMOVED, "duplicate")


def exact_dedup(label, stage: filters.ExactDedup, records, dataset):
    keyed, removed = _split(f"{label}/Keys", records, _ExactKeys())
    kept, repeats = _split(
        f"{label}/First", keyed | f"{label}/Group" >> beam.GroupByKey(), _FirstOfGroup()
    )
    removed = (removed, repeats) | f"{label}/Removed" >> beam.Flatten()
    return kept, filter_report(label, stage.name, dataset, kept, removed)


def _band_entries(item, threshold: float):
    position, signature = item
    for key in filters.lsh_band_keys(signature, threshold=threshold):
        yield key, (position, signature)


def _bucket_dropped(group, threshold: float):
    _, members = group
    members = list(members)
    if len(members) > 1:
        yield from filters.near_duplicates_in_bucket(members, threshold)


class _DropMarked(beam.DoFn):
    def process(self, joined):
        _, groups = joined
        for record in groups["record"]:
            if groups["dropped"]:
                yield pvalue.TaggedOutput(REMOVED, "near_duplicate")
            else:
                yield joined[0], record


def near_dedup(label, stage: filters.NearDedup, records, dataset):
    dropped = (
        records
        | f"{label}/Signatures" >> beam.Map(lambda item: (item[0], stage.signature(item[1])))
        | f"{label}/Bands" >> beam.FlatMap(_band_entries, threshold=stage.threshold)
        | f"{label}/Buckets" >> beam.GroupByKey()
        | f"{label}/Dropped" >> beam.FlatMap(_bucket_dropped, threshold=stage.threshold)
        | f"{label}/Distinct" >> beam.Distinct()
        | f"{label}/Mark" >> beam.Map(lambda position: (position, True))
    )
    joined = {"record": records, "dropped": dropped} | f"{label}/Join" >> beam.CoGroupByKey()
    kept, removed = _split(f"{label}/Apply", joined, _DropMarked())
    return kept, filter_report(label, stage.name, dataset, kept, removed)


class _Language(beam.DoFn):
    def __init__(self, stage: filters.LanguageFilter):
        self.stage = stage  # its identifier is built on first use, once per process

    def process(self, batch):
        yield from _verdicts(batch, self.stage.reasons([record for _, record in batch]))


def language(label, stage: filters.LanguageFilter, records, dataset):
    batches = records | f"{label}/Batch" >> beam.BatchElements(**BATCH)
    kept, removed = _split(f"{label}/Identify", batches, _Language(stage))
    return kept, filter_report(label, stage.name, dataset, kept, removed)


class _EmbedTexts(beam.DoFn):
    def __init__(self, stage: filters.ConsistencyFilter):
        self.stage = stage

    def process(self, texts):
        texts = list(texts)
        yield from zip(texts, self.stage.embed(texts))


class _Candidates:
    """The sample's embeddings, one copy per worker process (``beam.utils.shared``)."""

    def __init__(self, candidates: Iterable[tuple[str, np.ndarray]]):
        ordered = sorted(candidates, key=lambda item: item[0])
        self.index = {text: i for i, (text, _) in enumerate(ordered)}
        self.matrix = np.stack([vector for _, vector in ordered]) if ordered else None


class _Judge(beam.DoFn):
    """Batches of pairs -> verdicts against the sample's embeddings (a side input)."""

    def __init__(self, stage: filters.ConsistencyFilter):
        self.stage = stage
        self._shared = shared.Shared()
        self._candidates: _Candidates | None = None

    def process(self, batch, candidates):
        if self._candidates is None:  # one global window: the side input never changes
            self._candidates = self._shared.acquire(lambda: _Candidates(candidates))
        index, matrix = self._candidates.index, self._candidates.matrix
        if matrix is None:
            raise ValueError("consistency filter: the sample has no positives")
        reasons = filters.consistency_reasons(
            [filters.sides(record)[:2] for _, record in batch],
            self.stage.embed,
            index,
            matrix,
            top_k=self.stage.top_k,
            block_size=self.stage.block_size,
        )
        yield from _verdicts(batch, reasons)


def _cutoff(smallest: list[float], sample_size: int) -> float:
    if not sample_size or sample_size <= 0 or len(smallest) < sample_size:
        return math.inf
    return smallest[-1]


def consistency(label, stage: filters.ConsistencyFilter, records, dataset):
    """The stable sample (``filters.sample_cutoff``: the ``sample_size`` smallest distinct
    hash fractions), its positives embedded once and handed to every judge as a side input."""
    seed = stage.seed
    fractions = records | f"{label}/Fraction" >> beam.Map(
        lambda item: (filters.consistency_fraction(item[1], seed), item)
    )
    size = max(int(stage.sample_size or 0), 0)
    smallest = (
        fractions
        | f"{label}/Fractions" >> beam.Map(lambda fi: fi[0])
        | f"{label}/DistinctFractions" >> beam.Distinct()
        | f"{label}/Smallest" >> beam.combiners.Top.Smallest(max(size, 1))
    )
    cutoff = pvalue.AsSingleton(smallest | f"{label}/Cutoff" >> beam.Map(_cutoff, size))
    sample = fractions | f"{label}/Sample" >> beam.Filter(lambda fi, c: fi[0] <= c, cutoff)
    candidates = (
        sample
        | f"{label}/Positives" >> beam.Map(lambda fi: filters.sides(fi[1][1])[1])
        | f"{label}/DistinctPositives" >> beam.Distinct()
        | f"{label}/BatchPositives" >> beam.BatchElements(**BATCH)
        | f"{label}/EmbedPositives" >> beam.ParDo(_EmbedTexts(stage))
    )
    if stage.judge == "sample":
        judged = sample
        rest = fractions | f"{label}/Unjudged" >> beam.Filter(lambda fi, c: fi[0] > c, cutoff)
        rest = rest | f"{label}/UnjudgedRecords" >> beam.Map(lambda fi: fi[1])
    else:
        judged, rest = fractions, None
    kept, removed = _split(
        f"{label}/Judge",
        judged
        | f"{label}/JudgedRecords" >> beam.Map(lambda fi: fi[1])
        | f"{label}/BatchPairs" >> beam.BatchElements(**BATCH),
        _Judge(stage),
        pvalue.AsList(candidates),
    )
    n_judged = judged | f"{label}/CountJudged" >> beam.combiners.Count.Globally()
    n_all = records | f"{label}/CountAll" >> beam.combiners.Count.Globally()
    note = (
        records.pipeline
        | f"{label}/NoteOnce" >> beam.Create([None])
        | f"{label}/Note"
        >> beam.Map(
            lambda _, j, n: stage.judged_note(j, n),
            pvalue.AsSingleton(n_judged),
            pvalue.AsSingleton(n_all),
        )
    )
    if rest is not None:
        kept = (kept, rest) | f"{label}/Kept" >> beam.Flatten()
    return kept, filter_report(label, stage.name, dataset, kept, removed, note)


class _CrossEncoder(beam.DoFn):
    def __init__(self, stage: filters.CrossEncoderFilter):
        self.stage = stage

    def setup(self):
        self._score = self.stage.scorer()

    def process(self, batch):
        reasons = filters.cross_encoder_reasons(
            [record for _, record in batch], self._score, margin=self.stage.margin
        )
        yield from _verdicts(batch, reasons)


def cross_encoder(label, stage: filters.CrossEncoderFilter, records, dataset):
    if not stage.available:  # as in-process: nothing removed, and the report says why
        note = records.pipeline | f"{label}/Skipped" >> beam.Create([stage.skipped_note])
        removed = records.pipeline | f"{label}/NoneRemoved" >> beam.Create([])
        return records, filter_report(label, stage.name, dataset, records, removed, note)
    batches = records | f"{label}/Batch" >> beam.BatchElements(**BATCH)
    kept, removed = _split(f"{label}/Score", batches, _CrossEncoder(stage))
    return kept, filter_report(label, stage.name, dataset, kept, removed)


_TRANSFORMS = {
    filters.ExactDedup: exact_dedup,
    filters.NearDedup: near_dedup,
    filters.LanguageFilter: language,
    filters.ConsistencyFilter: consistency,
    filters.CrossEncoderFilter: cross_encoder,
}


def apply_filter(stage, records: beam.PCollection, *, dataset: str, label: str):
    """A filter object of ``jina_jax.data.filters`` as Beam transforms over ``(position,
    record)``: returns (kept, one-element PCollection of its FilterReport)."""
    for cls, transform in _TRANSFORMS.items():
        if isinstance(stage, cls):
            return transform(label, stage, records, dataset)
    raise TypeError(
        f"no Beam transform for filter {type(stage).__name__}; known: "
        + ", ".join(cls.__name__ for cls in _TRANSFORMS)
    )


# --------------------------------------------------------------------- order and shards


def order_key(texts: Sequence[str]) -> bytes:
    """A record's place in the global order: sha1 of its normalised texts (after filtering),
    so the order depends on the data alone, not on the runner or its parallelism."""
    normalised = [normalize_text(text) for text in texts]
    return hashlib.sha1(json.dumps(normalised).encode()).digest()


def record_texts(record, num_negatives: int) -> list[str]:
    """The sides a prepared record keeps: query, positive, the first K negatives; or the text."""
    if isinstance(record, str):
        return [record]
    if not isinstance(record, PairRecord):
        raise TypeError(f"prepare takes PairRecord or str records, got {type(record).__name__}")
    return [record.query, record.positive, *record.negatives[:num_negatives]]


class Tokenize(beam.DoFn):
    """Batches of (position, record) -> ``(sort key, ids per side, texts per side)``, prefixes
    applied first; the number of truncated texts per side kind goes to the ``truncated`` output.
    The sort key is ``(order_key, texts, position)``: ties only for identical texts."""

    def __init__(self, tokenizer, kind: str, max_lengths: dict[str, int], prefixes: dict):
        self.tokenizer, self.kind = tokenizer, kind
        self.max_lengths, self.prefixes = max_lengths, prefixes

    def process(self, batch, num_negatives: int):
        raw = [record_texts(record, num_negatives) for _, record in batch]
        if self.kind == "texts":
            texts = raw
            ids, cut = self.tokenizer.encode_batch([t[0] for t in texts], self.max_lengths["text"])
            per_record = [[x] for x in ids]
            truncated = {"text": cut}
        else:
            query, passage = self.prefixes.get("query", ""), self.prefixes.get("passage", "")
            texts = [[query + t[0], *(passage + x for x in t[1:])] for t in raw]
            q_ids, q_cut = self.tokenizer.encode_batch(
                [t[0] for t in texts], self.max_lengths["query"]
            )
            p_ids, p_cut = self.tokenizer.encode_batch(
                [x for t in texts for x in t[1:]], self.max_lengths["passage"]
            )
            per_record, start = [], 0
            for t, q in zip(texts, q_ids):
                per_record.append([q, *p_ids[start : start + len(t) - 1]])
                start += len(t) - 1
            truncated = {"query": q_cut, "passage": p_cut}
        for (position, _), original, text, ids in zip(batch, raw, texts, per_record):
            yield (order_key(original), tuple(text), position), ids, text
        for side, count in truncated.items():
            if count:
                yield pvalue.TaggedOutput("truncated", (side, count))


def _bucket(item) -> int:
    return int.from_bytes(item[0][0][:2], "big")


class _Rank(beam.DoFn):
    """One sort bucket -> its records' global ranks (bucket offset + rank in the bucket), keyed
    by the shard that holds each rank."""

    def __init__(self, num_shards: int):
        self.num_shards = num_shards
        self._offsets: dict[int, int] | None = None

    def process(self, group, counts: dict[int, int], num_records: int):
        if self._offsets is None:  # one global window: the side inputs never change
            self._offsets, total = {}, 0
            for bucket in sorted(counts):
                self._offsets[bucket] = total
                total += counts[bucket]
            self._bounds = np.asarray(prepared.shard_bounds(num_records, self.num_shards)[:-1])
        bucket, items = group
        items = sorted(items, key=lambda item: item[0])
        start = self._offsets[bucket]
        shards = np.searchsorted(self._bounds, np.arange(start, start + len(items)), "right") - 1
        for i, (shard, (_, ids, texts)) in enumerate(zip(shards.tolist(), items)):
            yield shard, (start + i, ids, texts)


@contextlib.contextmanager
def _local_file(dest: epath.Path):
    """A local path to write ``dest`` through: itself when local, else a temporary file that
    is copied to ``dest`` (array_record writes local files only)."""
    if "://" not in str(dest):
        yield str(dest)
        return
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, dest.name)
        yield local
        with open(local, "rb") as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out, 1 << 24)


def lengths_name(shard: int) -> str:
    return f"lengths-{shard:05d}.npy"


class _WriteShard(beam.DoFn):
    """Shard s: its records sorted by rank (checked to be exactly ranks [N s / S, N (s+1) / S))
    -> ``records-SSSSS-of-NNNNN.array_record`` and ``lengths-SSSSS.npy`` in the staging folder;
    emits ``(s, records written)``. ``fault(shard)`` is a test hook."""

    def __init__(self, staging: str, num_shards: int, fault: Callable[[int], None] | None):
        self.staging, self.num_shards, self.fault = staging, num_shards, fault

    def process(self, group, num_records: int, num_sides: int):
        shard, parts = group
        items = sorted(parts["records"], key=lambda item: item[0])
        bounds = prepared.shard_bounds(num_records, self.num_shards)
        ranks = [rank for rank, _, _ in items]
        if ranks != list(range(bounds[shard], bounds[shard + 1])):
            raise AssertionError(f"shard {shard}: ranks {ranks[:5]}... do not fill its range")
        if self.fault is not None:
            self.fault(shard)
        folder = epath.Path(self.staging)
        lengths = np.zeros((len(items), num_sides), np.uint16)
        name = prepared.shard_name(shard, self.num_shards)
        with _local_file(folder / name) as path:
            writer = ArrayRecordWriter(path, prepared.WRITER_OPTIONS)
            try:
                for i, (_, ids, texts) in enumerate(items):
                    if len(ids) != num_sides:
                        raise ValueError(f"record {ranks[i]} has {len(ids)} sides, not {num_sides}")
                    lengths[i] = [len(x) for x in ids]
                    writer.write(prepared.encode_record(ids, texts))
            finally:
                writer.close()
        with (folder / lengths_name(shard)).open("wb") as f:
            np.save(f, lengths)
        yield shard, len(items)


def write_shards(
    tokenized: beam.PCollection,
    *,
    staging: str,
    num_shards: int,
    num_sides,
    fault: Callable[[int], None] | None = None,
):
    """Sorted, sharded, written: returns ``(shard, records)`` for every shard (empty ones too)
    and the total count (a singleton PCollection)."""
    num_records = tokenized | "CountRecords" >> beam.combiners.Count.Globally()
    counts = (
        tokenized
        | "BucketOnes" >> beam.Map(lambda item: (_bucket(item), 1))
        | "BucketCounts" >> beam.CombinePerKey(sum)
    )
    ranked = (
        tokenized
        | "ByBucket" >> beam.Map(lambda item: (_bucket(item), item))
        | "GroupBuckets" >> beam.GroupByKey()
        | "Rank"
        >> beam.ParDo(_Rank(num_shards), pvalue.AsDict(counts), pvalue.AsSingleton(num_records))
    )
    every_shard = (
        tokenized.pipeline
        | "ShardIds" >> beam.Create(range(num_shards))
        | "ShardKeys" >> beam.Map(lambda s: (s, None))
    )
    written = (
        {"records": ranked, "shard": every_shard}
        | "GroupShards" >> beam.CoGroupByKey()
        | "WriteShard"
        >> beam.ParDo(
            _WriteShard(staging, num_shards, fault),
            pvalue.AsSingleton(num_records),
            num_sides,
        )
    )
    return written, num_records


class Finalize(beam.DoFn):
    """After every shard: ``lengths.npy`` (the shards' lengths in order), the filter report and
    ``prepared.json`` (written last) in the staging folder."""

    def __init__(self, staging: str, meta: Callable[[int, int], dict[str, Any]]):
        self.staging, self.meta = staging, meta

    def process(self, _, shards: list, num_negatives: int, report: dict[str, Any]):
        folder = epath.Path(self.staging)
        shards = sorted(shards)
        meta = self.meta(sum(count for _, count in shards), num_negatives)
        if [s for s, _ in shards] != list(range(len(meta["shards"]))):
            raise AssertionError(f"shards written: {[s for s, _ in shards]}")
        parts = []
        for shard, _ in shards:
            path = folder / lengths_name(shard)
            with path.open("rb") as f:
                parts.append(np.load(f))
        lengths = np.concatenate(parts) if parts else np.zeros((0, meta["sides"]), np.uint16)
        with (folder / prepared.LENGTHS_FILE).open("wb") as f:
            np.save(f, lengths.astype(np.uint16))
        for shard, _ in shards:
            (folder / lengths_name(shard)).unlink()
        report = {**report, "num_records": meta["num_records"], "num_negatives": num_negatives}
        (folder / prepared.REPORT_FILE).write_text(json.dumps(report, indent=2))
        (folder / prepared.META_FILE).write_text(json.dumps(meta, indent=2))
        yield meta["num_records"]


def indexed(pcolls: Iterable[beam.PCollection], label: str) -> beam.PCollection:
    """One PCollection of ``(i, element)`` from the i-th of several (e.g. the filter reports)."""
    tagged = [
        pcoll | f"{label}/Tag{i}" >> beam.Map(lambda x, i=i: (i, x))
        for i, pcoll in enumerate(pcolls)
    ]
    if not tagged:
        raise ValueError("nothing to index")
    return tagged | f"{label}/Flatten" >> beam.Flatten()
