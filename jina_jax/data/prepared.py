"""Prepared datasets: cleaned, pre-tokenised records in array_record shards, read at random.

``python -m jina_jax.data.prepare`` (Apache Beam) writes them; training reads them through
``PreparedDataset``. One dataset is one folder (local or ``gs://``)::

    prepared.json    {"format": "jina_jax.prepared/1", "kind": "pairs" | "texts",
                      "num_records": N, "num_negatives": K, "sides": 2 + K (pairs) | 1 (texts),
                      "tokenizer": {"name", "vocab_size", "sha1"},
                      "max_lengths": {"query": .., "passage": ..} | {"text": ..},
                      "prefixes": {"query": .., "passage": ..} (applied before tokenising),
                      "shards": ["records-00000-of-00064.array_record", ...],
                      "records_per_chunk": 16 (array_record group size; records are read and
                                           drawn in blocks of this many, see MixtureSampler),
                      "lengths": "lengths.npy", "report": "filter_report.json"}
    filter_report.json   what reading and cleaning removed
    records-SSSSS-of-NNNNN.array_record   records in global order (sorted by a hash of their
                      texts, so consecutive records are a random sample), shard s a contiguous range;
                      each record msgpack {"ids": [int32 little-endian bytes per side],
                      "text": [str per side]}, sides query, positive, negative_1..K
    lengths.npy      uint16 [N, sides]: tokens of each side after truncation

``lengths.npy`` is small (4 bytes a pair) and memory-mapped: every host reads the token counts of
a whole global batch from it to agree on the batch's layout, then reads from the shards only the
records of its own rows.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import msgpack
import numpy as np
from array_record.python.array_record_module import ArrayRecordReader, ArrayRecordWriter
from etils import epath

from jina_jax.data.records import PairRecord
from jina_jax.errors import DataError

FORMAT = "jina_jax.prepared/1"
META_FILE = "prepared.json"
LENGTHS_FILE = "lengths.npy"
# 16 records per chunk. A reader holds every chunk's index entry in memory: with one record per
# chunk that is ~44 bytes a record (17 GB per host for 385 M pairs), with 16 ~3 bytes; reading
# one record then decompresses its chunk (on this machine 15 us a record read alone), so
# training draws whole chunks' worth of consecutive records (``MixtureSampler`` blocks: about
# 1.3 us a record).
RECORDS_PER_CHUNK = 16
WRITER_OPTIONS = f"group_size:{RECORDS_PER_CHUNK}"
READER_OPTIONS = "readahead_buffer_size:0"  # random access: no read-ahead
REPORT_FILE = "filter_report.json"


class CorruptShardError(DataError):
    """A shard of a prepared dataset could not be read; names the shard file."""


def tokenizer_identity(tokenizer) -> dict[str, Any]:
    """What a prepared dataset records of the tokenizer that made it: vocabulary size and a
    hash of the vocabulary, compared with the run's tokenizer before training."""
    vocab = sorted(tokenizer.hf.get_vocab().items())
    digest = hashlib.sha1(json.dumps(vocab).encode()).hexdigest()
    return {"vocab_size": tokenizer.vocab_size, "sha1": digest}


def is_prepared_folder(path: str | os.PathLike) -> bool:
    return (epath.Path(path) / META_FILE).exists()


def shard_name(index: int, count: int) -> str:
    return f"records-{index:05d}-of-{count:05d}.array_record"


def encode_record(ids: Sequence[np.ndarray], texts: Sequence[str]) -> bytes:
    return msgpack.packb(
        {"ids": [np.asarray(x, "<i4").tobytes() for x in ids], "text": list(texts)}
    )


def decode_ids(record: bytes) -> list[np.ndarray]:
    return [np.frombuffer(x, "<i4") for x in msgpack.unpackb(record)["ids"]]


def decode_texts(record: bytes) -> list[str]:
    return msgpack.unpackb(record)["text"]


class PreparedDataset(Sequence):
    """Random access to a prepared dataset: ``lengths`` up front, ``token_ids(indices)`` (one
    batched read) for training, ``dataset[i]`` / ``records(indices)`` as ``PairRecord``s."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = epath.Path(folder)
        meta_path = self.folder / META_FILE
        try:
            self.meta: dict[str, Any] = json.loads(meta_path.read_text())
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f"{self.folder}: not a prepared dataset (no {META_FILE})"
            ) from e
        except json.JSONDecodeError as e:
            raise ValueError(f"{meta_path}: invalid JSON ({e})") from e
        if self.meta.get("format") != FORMAT:
            raise ValueError(
                f"{meta_path}: format {self.meta.get('format')!r}, this jina_jax reads {FORMAT!r}; "
                "prepare the data again with python -m jina_jax.data.prepare"
            )
        self.shards = [str(self.folder / name) for name in self.meta["shards"]]
        lengths_path = self.folder / self.meta["lengths"]
        if os.path.exists(str(lengths_path)):  # local: memory-mapped, hosts touch their pages
            self.lengths = np.load(str(lengths_path), mmap_mode="r")
        else:  # remote (gs://): read once
            self.lengths = np.load(io.BytesIO(lengths_path.read_bytes()))
        # a plain ndarray view: fancy indexing a memmap costs several times more
        self._lengths = self.lengths.view(np.ndarray)
        # consecutive records drawn together by training (MixtureSampler blocks)
        self.block = int(self.meta.get("records_per_chunk", RECORDS_PER_CHUNK))
        if len(self.lengths) != self.meta["num_records"]:
            raise ValueError(
                f"{self.folder}: {LENGTHS_FILE} has {len(self.lengths)} rows, prepared.json says "
                f"{self.meta['num_records']} records"
            )
        # shard s holds records [starts[s], starts[s + 1]) (shard_bounds)
        chunk = int(self.meta.get("records_per_chunk", 1))
        self._starts = np.asarray(shard_bounds(len(self), len(self.shards), chunk)[:-1], np.int64)
        self._readers: dict[int, ArrayRecordReader] = {}

    def __len__(self) -> int:
        return int(self.meta["num_records"])

    def _reader(self, shard: int) -> ArrayRecordReader:
        reader = self._readers.get(shard)
        if reader is None:
            try:
                reader = ArrayRecordReader(self.shards[shard], READER_OPTIONS)
            except Exception as e:
                raise CorruptShardError(
                    f"{self.shards[shard]}: cannot open this shard ({e})"
                ) from e
            self._readers[shard] = reader
        return reader

    def _read(self, indices: Sequence[int]) -> list[bytes]:
        """One read per shard touched; records come back in the order of ``indices``."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"record index out of range [0, {len(self)})")
        shards = np.searchsorted(self._starts, indices, side="right") - 1
        out: list[bytes | None] = [None] * len(indices)
        for shard in np.unique(shards):
            where = np.flatnonzero(shards == shard)
            positions = (indices[where] - self._starts[shard]).tolist()
            try:
                records = self._reader(int(shard)).read(positions)
            except CorruptShardError:
                raise
            except Exception as e:
                raise CorruptShardError(
                    f"{self.shards[shard]}: cannot read records {positions[:5]} of this shard ({e})"
                ) from e
            for i, record in zip(where.tolist(), records):
                out[i] = record
        return out

    def lengths_at(self, indices: np.ndarray, sides: int) -> np.ndarray:
        """Token counts ``[len(indices), sides]`` (int64) of the first ``sides`` sides. Whole
        aligned blocks (what training draws) are gathered a block at a time."""
        indices = np.asarray(indices, np.int64)
        block = self.block
        if block > 1 and indices.size and indices.size % block == 0:
            starts = indices[::block]
            runs = starts[:, None] + np.arange(block)
            if not (starts % block).any() and np.array_equal(runs.ravel(), indices):
                whole = len(self) // block * block
                if starts[-1] < whole and starts.max() < whole:
                    table = self._lengths[:whole].reshape(whole // block, -1)
                    rows = table[starts // block].reshape(indices.size, -1)
                    return rows[:, :sides].astype(np.int64)
        return self._lengths[indices, :sides].astype(np.int64)

    def token_ids(self, indices: Sequence[int]) -> list[list[np.ndarray]]:
        """Token ids of each side of each record (query, positive, negatives)."""
        return [decode_ids(r) for r in self._read(indices)]

    def records(self, indices: Sequence[int]) -> list[PairRecord] | list[str]:
        """The records' texts: PairRecords, or the documents of a texts dataset."""
        if self.meta["kind"] == "texts":
            return [decode_texts(raw)[0] for raw in self._read(indices)]
        out = []
        for raw in self._read(indices):
            texts = decode_texts(raw)
            out.append(PairRecord(texts[0], texts[1], tuple(texts[2:])))
        return out

    def __getitems__(self, indices: Sequence[int]) -> list[PairRecord]:
        return self.records(indices)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.records(range(*index.indices(len(self))))
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self.records([index % len(self)])[0]

    def __getstate__(self):  # readers are per process; reopen after pickling
        return {**self.__dict__, "_readers": {}}


def shard_bounds(num_records: int, num_shards: int, chunk: int = RECORDS_PER_CHUNK) -> list[int]:
    """Shard s holds records [bounds[s], bounds[s + 1]): N s / S rounded down to a multiple of
    ``chunk``, so that every shard starts on a chunk boundary of the global order and a block
    of ``chunk`` records that training draws together (``MixtureSampler`` blocks) is one chunk
    of one shard. (Datasets written before ``records_per_chunk`` was recorded: ``chunk=1``.)"""
    return [num_records * s // num_shards // chunk * chunk for s in range(num_shards)] + [
        num_records
    ]


def prepared_meta(
    *,
    num_records: int,
    kind: str,
    num_negatives: int,
    tokenizer: dict[str, Any],
    max_lengths: dict[str, int],
    num_shards: int,
    prefixes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """prepared.json of a dataset (see the module docstring)."""
    return {
        "format": FORMAT,
        "kind": kind,
        "num_records": num_records,
        "num_negatives": num_negatives,
        "sides": 1 if kind == "texts" else 2 + num_negatives,
        "tokenizer": tokenizer,
        "max_lengths": max_lengths,
        "prefixes": dict(prefixes or {}),
        "shards": [shard_name(s, num_shards) for s in range(num_shards)],
        "records_per_chunk": RECORDS_PER_CHUNK,
        "lengths": LENGTHS_FILE,
        "report": REPORT_FILE,
    }


def staging_folder(folder: str | os.PathLike, overwrite: bool = False) -> epath.Path:
    """A new empty folder beside ``folder`` to assemble a dataset in (``publish`` moves it into
    place). Refuses an existing ``folder`` unless ``overwrite``."""
    folder = epath.Path(folder)
    if folder.exists() and not overwrite:
        raise FileExistsError(f"{folder} exists; pass overwrite=True (--overwrite) to replace it")
    staging = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    return staging


def publish(staging: epath.Path, folder: str | os.PathLike) -> epath.Path:
    """Renames a complete ``staging`` folder to ``folder``, replacing an existing one."""
    folder = epath.Path(folder)
    if folder.exists():
        old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
        folder.rename(old)
        staging.rename(folder)
        old.rmtree()
    else:
        staging.rename(folder)
    return folder


def write_prepared(
    folder: str | os.PathLike,
    records: Iterable[tuple[Sequence[np.ndarray], Sequence[str]]],
    *,
    num_records: int,
    kind: str,
    num_negatives: int,
    tokenizer: dict[str, Any],
    max_lengths: dict[str, int],
    num_shards: int = 64,
    prefixes: dict[str, str] | None = None,
    report: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> epath.Path:
    """Writes ``num_records`` records (token ids and texts per side) as a prepared dataset, one
    process, streaming (the Beam pipeline writes the same format in parallel). The folder is
    assembled beside ``folder`` and renamed into place, so a failed write leaves nothing half
    done and an existing dataset is replaced only with ``overwrite``."""
    meta = prepared_meta(
        num_records=num_records,
        kind=kind,
        num_negatives=num_negatives,
        tokenizer=tokenizer,
        max_lengths=max_lengths,
        num_shards=num_shards,
        prefixes=prefixes,
    )
    sides = meta["sides"]
    staging = staging_folder(folder, overwrite)
    try:
        lengths = np.zeros((num_records, sides), np.uint16)
        bounds = shard_bounds(num_records, num_shards)
        iterator = iter(records)
        index = 0
        for s, name in enumerate(meta["shards"]):
            writer = ArrayRecordWriter(str(staging / name), WRITER_OPTIONS)
            try:
                while index < bounds[s + 1]:
                    ids, texts = next(iterator)
                    if len(ids) != sides:
                        raise ValueError(f"record {index} has {len(ids)} sides, expected {sides}")
                    lengths[index] = [len(x) for x in ids]
                    writer.write(encode_record(ids, texts))
                    index += 1
            finally:
                writer.close()
        np.save(str(staging / LENGTHS_FILE), lengths)
        (staging / REPORT_FILE).write_text(json.dumps(report or {}, indent=2))
        (staging / META_FILE).write_text(json.dumps(meta, indent=2))
        return publish(staging, folder)
    except BaseException:
        if staging.exists():
            staging.rmtree()
        raise
