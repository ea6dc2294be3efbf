"""Dataset names in configs -> records.

A dataset ``source`` is one of:
- a dataset of the offline starter corpus in ``config.data.dir`` (built on first use when
  ``config.data.build_starter`` is set): ``starter:pairs/<name>``, ``starter:triplets/<name>``
  (one mined hard negative), ``starter:negation`` (anchor, entailment, negative), and for MLM
  ``starter:mlm`` (every text file) or ``starter:mlm/<name>``;
- a prepared dataset folder (``python -m jina_jax.data.prepare``: cleaned, pre-tokenised
  array_record shards; what pods train from: each host reads only its own records);
- a TFDS folder written by ``jina_jax.data.tfds_builder.write_tfds``;
- a local file or folder the readers understand (jsonl[.gz], parquet, HF ``datasets`` folder), or
  a hub dataset name on a connected machine. Such raw sources are read whole into memory on
  every host, so above ``config.data.max_raw_mb`` they are refused with a pointer to
  ``jina_jax.data.prepare``.
"""

from __future__ import annotations

import functools
import logging
import pathlib
from collections.abc import Sequence

from jina_jax.data import starter
from jina_jax.data.prepared import PreparedDataset, is_prepared_folder
from jina_jax.data.readers import ReadReport, read_pairs, read_texts
from jina_jax.data.records import PairRecord
from jina_jax.data.tfds_builder import load_tfds

log = logging.getLogger(__name__)

STARTER_PREFIX = "starter:"


def _data_dir(data_cfg) -> pathlib.Path:
    return pathlib.Path(data_cfg.dir)


def ensure_data(data_cfg, sources, embedder_factory=None) -> None:
    """Builds the starter corpus if one of ``sources`` is in it and it is not there yet.

    ``embedder_factory(model, batch_size=, max_length=)`` loads the build's auxiliary embedder
    (all-MiniLM-L6-v2 by default; ``jina_jax.loading.load_embedder``); called only when a build
    is needed.
    """
    if not any(str(s).startswith(STARTER_PREFIX) for s in sources):
        return
    directory = _data_dir(data_cfg)
    if (directory / "manifest.json").is_file():
        return
    if not data_cfg.build_starter or embedder_factory is None:
        raise FileNotFoundError(
            f"{directory}: no starter corpus; build it with python -m jina_jax.data.starter "
            f"--data-dir {directory} (or, with config.data.build_starter=True, give ensure_data "
            "an embedder_factory)"
        )
    limit = int(data_cfg.max_pairs_per_dataset) or None
    print(f"building the offline starter corpus in {directory} (once; a few minutes)")
    config = starter.StarterConfig(data_dir=directory, max_pairs_per_dataset=limit)
    aux = embedder_factory(
        config.aux_model, batch_size=config.aux_batch_size, max_length=config.aux_max_length
    )
    starter.build_starter(config, aux)


def _is_tfds_folder(path: pathlib.Path) -> bool:
    return path.is_dir() and any(path.rglob("dataset_info.json"))


@functools.lru_cache(maxsize=64)
def _pairs(source: str, data_dir: str, max_raw_mb: float) -> Sequence[PairRecord]:
    if source.startswith(STARTER_PREFIX):
        return _starter_pairs(pathlib.Path(data_dir), source.removeprefix(STARTER_PREFIX))
    return pair_source_from_path(source, max_raw_mb)


def pair_source_from_path(source: str, max_raw_mb: float = 0) -> Sequence[PairRecord]:
    """A prepared dataset or TFDS folder (random access, nothing loaded up front), else raw
    files read whole: refused above ``max_raw_mb`` megabytes (0: no limit)."""
    if is_prepared_folder(source):
        return PreparedDataset(source)
    path = pathlib.Path(source)
    if _is_tfds_folder(path):
        return load_tfds(path)
    size_mb = _size_mb(path)
    if max_raw_mb and size_mb > max_raw_mb:
        raise ValueError(
            f"{source} holds {size_mb:,.0f} MB of raw records, more than config.data.max_raw_mb="
            f"{max_raw_mb:g}: raw files are read whole into every host's memory. Prepare them once "
            f"with `python -m jina_jax.data.prepare --input '{source}' --output DIR` (Apache Beam; "
            "--runner=DataflowRunner runs it on Dataflow) and train from DIR."
        )
    report = ReadReport()
    records = tuple(read_pairs(source, report=report))
    if report.num_skipped:
        log.warning("%s: %s", source, report.summary())
    return records


def _size_mb(path: pathlib.Path) -> float:
    if path.is_file():
        return path.stat().st_size / 2**20
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20
    return 0.0  # a hub name: its size is not known here


def _starter_pairs(data_dir: pathlib.Path, name: str) -> tuple[PairRecord, ...]:
    corpus = starter.load_starter(data_dir)
    kind, _, part = name.partition("/")
    if kind == "negation" and not part:
        return tuple(
            PairRecord(r.anchor, r.entailment, (r.negative,)) for r in corpus.negations("train")
        )
    if kind == "pairs" and part in corpus.pair_datasets:
        return tuple(corpus.pairs(part))
    if kind == "triplets" and part in corpus.triplet_datasets:
        return tuple(corpus.triplets(part))
    known = [f"starter:pairs/{n}" for n in corpus.pair_datasets]
    known += [f"starter:triplets/{n}" for n in corpus.triplet_datasets] + ["starter:negation"]
    raise ValueError(f"unknown starter dataset 'starter:{name}'; known: {', '.join(known)}")


def pair_source(source: str, data_cfg, *, min_negatives: int = 0) -> Sequence[PairRecord]:
    records = _pairs(str(source), str(_data_dir(data_cfg)), float(data_cfg.max_raw_mb))
    if not len(records):
        raise ValueError(f"dataset {source!r} has no records")
    if min_negatives and len(records[0].negatives) < min_negatives:
        raise ValueError(
            f"dataset {source!r} has {len(records[0].negatives)} negatives per query; the stage "
            f"needs {min_negatives} (set num_negatives or pick a triplet dataset)"
        )
    return records


@functools.lru_cache(maxsize=16)
def _texts(source: str, data_dir: str) -> tuple[str, ...]:
    if not source.startswith(STARTER_PREFIX):
        report = ReadReport()
        texts = tuple(read_texts(source, report=report))
        if report.num_skipped:  # bad UTF-8, over-long lines: said, not silently dropped
            log.warning("%s: %s", source, report.summary())
            print(f"{source}: {report.summary()}")
        return texts
    files = starter.load_starter(data_dir).mlm_files
    name = source.removeprefix(STARTER_PREFIX)
    if name != "mlm":
        kind, _, part = name.partition("/")
        if kind != "mlm" or part not in files:
            known = ", ".join(["starter:mlm", *(f"starter:mlm/{n}" for n in files)])
            raise ValueError(f"unknown starter text set {source!r}; known: {known}")
        files = {part: files[part]}
    return tuple(text for path in files.values() for text in read_texts(path))


def text_source(source: str, data_cfg) -> Sequence[str]:
    texts = _texts(str(source), str(_data_dir(data_cfg)))
    if not texts:
        raise ValueError(f"text dataset {source!r} is empty")
    return texts
