"""Cleaned records <-> TFDS datasets stored as array_record, with no TensorFlow anywhere.

`write_tfds` builds a TFDS dataset folder (dataset_info.json, features.json and
`<name>-<split>.array_record-*` shards) through a small `GeneratorBasedBuilder` with
`file_format="array_record"`. `load_tfds` reads it back with `builder.as_data_source()`: a
random-access sequence of records that `PairBatches`/`MLMBatches` index by step, or that
`grain_loader` feeds to a grain `DataLoader` (seeded index sampler, per-host shards, iterator
state via `get_state()`/`set_state()`).

Why not `tfds.dataset_builders.store_as_tfds_dataset`: its builder checks `isinstance(x,
tf.data.Dataset)`, which imports TensorFlow, and TFDS builders defined in a package look up their
code path through `importlib_resources`, which is not installed here; the builder below avoids
both.

Writes are atomic: the dataset is built in a hidden temporary folder next to the target and
renamed into place at the end, so an interrupted build leaves an existing dataset untouched.
"""

from __future__ import annotations

import itertools
import os
import pathlib
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from jina_jax.data.records import NegationRecord, PairRecord, STSRecord

VERSION = "1.0.0"
Record = PairRecord | NegationRecord | STSRecord | str

# record type -> (kind, text fields); negatives and score are handled specially below.
_KINDS = {
    PairRecord: ("pair", ("query", "positive")),
    NegationRecord: ("negation", ("anchor", "entailment", "negative")),
    STSRecord: ("sts", ("sentence1", "sentence2")),
    str: ("text", ("text",)),
}


def _features(record_type: type):
    # optional: tensorflow-datasets (heavy to import) only for TFDS folders
    import tensorflow_datasets as tfds

    _, fields = _KINDS[record_type]
    spec: dict[str, Any] = {field: tfds.features.Text() for field in fields}
    if record_type is PairRecord:
        spec["negatives"] = tfds.features.Sequence(tfds.features.Text())
    if record_type is STSRecord:
        # Plain float features are stored as float32 (tf.train.Example); raw bytes keep all 64 bits.
        spec["score"] = tfds.features.Tensor(
            shape=(), dtype=np.float64, encoding=tfds.features.Encoding.BYTES
        )
    return tfds.features.FeaturesDict(spec)


def _example(record: Record) -> dict[str, Any]:
    if isinstance(record, str):
        return {"text": record}
    example = {field: getattr(record, field) for field in _KINDS[type(record)][1]}
    if isinstance(record, PairRecord):
        example["negatives"] = list(record.negatives)
    if isinstance(record, STSRecord):
        example["score"] = float(record.score)
    return example


def _record_type_of(feature_names: Iterable[str]) -> type:
    names = set(feature_names)
    for record_type, (_, fields) in _KINDS.items():
        extra = {"negatives"} if record_type is PairRecord else set()
        extra |= {"score"} if record_type is STSRecord else set()
        if names == set(fields) | extra:
            return record_type
    raise ValueError(f"features {sorted(names)} match no record type")


def _decode(record_type: type, example: Mapping[str, Any]) -> Record:
    def text(value) -> str:
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)

    if record_type is str:
        return text(example["text"])
    values = {field: text(example[field]) for field in _KINDS[record_type][1]}
    if record_type is PairRecord:
        return PairRecord(negatives=tuple(text(n) for n in example["negatives"]), **values)
    if record_type is STSRecord:
        return STSRecord(score=float(example["score"]), **values)
    return record_type(**values)


def _builder_class():
    # optional: tensorflow-datasets (heavy to import) only for TFDS folders
    import tensorflow_datasets as tfds

    class RecordsBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        """Stores in-memory / streamed records; one instance per build."""

        VERSION = tfds.core.Version(VERSION)

        def __init__(self, *, name: str, features, splits: Mapping[str, Iterable], **kwargs):
            self.name = name
            self._feature_spec = features
            self._split_examples = splits
            super().__init__(**kwargs)

        # TFDS would look for a checksums file next to our code via importlib_resources.
        @tfds.core.utils.classproperty
        @classmethod
        def code_path(cls):
            return None

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                description="jina_jax records",
                features=self._feature_spec,
                disable_shuffling=True,  # keep the records in the order they were written
            )

        def _split_generators(self, dl_manager):
            del dl_manager
            return {
                split: enumerate(_example(r) for r in records)
                for split, records in self._split_examples.items()
            }

        def _generate_examples(self):  # replaced by the generators above
            raise NotImplementedError

    return RecordsBuilder


def write_tfds(
    records: Iterable[Record] | Mapping[str, Iterable[Record]],
    directory: str | os.PathLike,
    *,
    name: str = "records",
    split: str = "train",
    record_type: type | None = None,
    overwrite: bool = False,
) -> pathlib.Path:
    """Writes records (or {split: records}) as an array_record TFDS dataset in `directory`.

    All records must have one type (PairRecord, NegationRecord, STSRecord or str); it is taken
    from the first record unless `record_type` is given (needed for an empty dataset). Returns
    `directory`, which `load_tfds` and `tfds.builder_from_directory` read.
    """
    directory = pathlib.Path(directory)
    if directory.exists() and not overwrite:
        raise FileExistsError(f"{directory} exists; pass overwrite=True to replace it")
    splits = dict(records) if isinstance(records, Mapping) else {split: records}
    splits = {key: iter(value) for key, value in splits.items()}
    if record_type is None:
        for key, stream in splits.items():
            first = next(stream, None)
            if first is not None:
                record_type = type(first)
                splits[key] = itertools.chain([first], stream)
                break
    if record_type not in _KINDS:
        raise TypeError(f"cannot store {record_type}; pass record_type= for an empty dataset")
    splits = {key: _checked(stream, record_type) for key, stream in splits.items()}

    directory.parent.mkdir(parents=True, exist_ok=True)
    scratch = directory.parent / f".{directory.name}.building-{uuid.uuid4().hex[:8]}"
    try:
        builder = _builder_class()(
            name=name,
            features=_features(record_type),
            splits=splits,
            data_dir=str(scratch),
            file_format="array_record",
        )
        builder.download_and_prepare()
        built = pathlib.Path(builder.data_dir)
        if directory.exists():
            retired = directory.parent / f".{directory.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(directory, retired)
            os.rename(built, directory)
            shutil.rmtree(retired)
        else:
            os.rename(built, directory)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return directory


def _checked(records: Iterable[Record], record_type: type) -> Iterable[Record]:
    for record in records:
        if type(record) is not record_type:
            raise TypeError(
                f"mixed record types: {type(record).__name__} among {record_type.__name__}"
            )
        yield record


class TfdsRecords(Sequence):
    """Random-access view of one split: `records[i]` -> PairRecord / NegationRecord / STSRecord
    / str, decoded from the array_record data source."""

    def __init__(self, source, record_type: type):
        self.source = source  # tfds ArrayRecordDataSource: returns feature dicts
        self.record_type = record_type

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return self.__getitems__(list(range(*index.indices(len(self)))))
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"record {index} out of range [0, {len(self)})")
        return _decode(self.record_type, self.source[index])

    def __getitems__(self, indices: Sequence[int]) -> list[Record]:
        examples = self.source.__getitems__([int(i) for i in indices])
        return [_decode(self.record_type, example) for example in examples]


def load_tfds(directory: str | os.PathLike, split: str = "train") -> TfdsRecords:
    # optional: tensorflow-datasets (heavy to import) only for TFDS folders
    import tensorflow_datasets as tfds

    builder = tfds.builder_from_directory(str(directory))
    record_type = _record_type_of(builder.info.features.keys())
    return TfdsRecords(builder.as_data_source(split=split), record_type)


def grain_loader(
    records: TfdsRecords,
    *,
    batch_size: int,
    seed: int,
    batch_fn: Callable[[list[Record]], Any] = list,
    shuffle: bool = True,
    num_epochs: int | None = None,
    process_index: int = 0,
    process_count: int = 1,
):
    """A grain `DataLoader` over one TFDS split: seeded shuffling by grain's `IndexSampler`, the
    records sharded across hosts (`process_index` of `process_count`; each host reads its own
    records), `batch_size` records per host batch, then `batch_fn` (e.g. a partial of
    `jina_jax.data.pipeline.tokenize_pairs`). Its iterator's `get_state()`/`set_state()` save and
    restore the position. Runs in the calling process (grain workers would need picklable,
    module-level transforms); `BatchIterator(prefetch=...)` is the threaded alternative."""
    import grain.python as grain  # optional: grain only for this loader

    class Decode(grain.MapTransform):
        def map(self, example):
            return _decode(records.record_type, example)

    class ApplyBatchFn(grain.MapTransform):
        def map(self, batch):
            return batch_fn(batch)

    sampler = grain.IndexSampler(
        num_records=len(records),
        shard_options=grain.ShardOptions(process_index, process_count, drop_remainder=True),
        shuffle=shuffle,
        num_epochs=num_epochs,
        seed=seed,
    )
    return grain.DataLoader(
        data_source=records.source,
        sampler=sampler,
        operations=[
            Decode(),
            grain.Batch(batch_size, drop_remainder=True, batch_fn=list),
            ApplyBatchFn(),
        ],
        worker_count=0,
    )
