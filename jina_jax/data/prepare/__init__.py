"""``python -m jina_jax.data.prepare``: raw pairs / triplets / texts -> a prepared dataset
(``jina_jax.data.prepared``: cleaned, tokenised array_record shards) and a filter report, as an
Apache Beam pipeline: DirectRunner on this machine, Dataflow / Flink / Spark by pipeline options.

Steps (``prepare``), each a Beam transform (``jina_jax.data.beam_transforms``):

1. read every input file (jsonl[.gz], parquet, Arrow, HF ``save_to_disk`` folders; or ``.txt``
   for texts), local or ``gs://``, with the readers' row parsing: bad lines are counted by
   reason and the first ones named ``file:line``; the run goes on;
2. the filters, in the order given, each the Beam form of a filter object of
   ``jina_jax.data.filters`` with the same decisions (keyed by input position, so "the first
   occurrence" is the one earliest in the files, as in one process);
3. tokenise (prefixes first) with the run's tokenizer and max lengths;
4. sort by a hash of the normalised texts (the order depends on the data alone), cut into
   ``num_shards`` contiguous ranges, each written by a worker; then ``lengths.npy``, the report
   and ``prepared.json`` last.

Everything is written into a hidden sibling folder that is renamed to ``out`` when the pipeline
has succeeded: a failed run leaves no ``out``, and an existing ``out`` is replaced only with
``overwrite``.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import json
import os
from collections.abc import Callable, Sequence
from typing import Any, Literal

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState
from etils import epath

from jina_jax.data import beam_transforms as bt
from jina_jax.data import filters as filters_lib
from jina_jax.data import prepared, readers
from jina_jax.data.prepared import tokenizer_identity

Kind = Literal["pairs", "texts"]
DEFAULT_RUNNER = "--runner=DirectRunner"  # Beam's default (Prism) downloads a binary


@dataclasses.dataclass
class PrepareResult:
    folder: epath.Path
    report: dict[str, Any]

    def summary(self) -> str:
        """The read report, the filter table, truncation counts and where the data went."""
        read = self.report["read"]
        reasons = ", ".join(f"{k}: {v}" for k, v in read["skipped"].items()) or "-"
        skipped = sum(read["skipped"].values())
        lines = [f"read {read['num_records']} records, skipped {skipped} lines ({reasons})"]
        lines += [f"  {example}" for example in read["examples"]]
        reports = [filters_lib.FilterReport(**r) for r in self.report["filters"]]
        if reports:
            lines += ["", filters_lib.format_filter_report(reports), ""]
        truncated = ", ".join(f"{k}: {v}" for k, v in self.report["truncated"].items()) or "none"
        lines.append(f"texts truncated at the max lengths: {truncated}")
        lines.append(
            f"wrote {self.report['num_records']} records ({self.report['num_negatives']} negatives "
            f"each) to {self.folder}"
        )
        return "\n".join(lines)


# ----------------------------------------------------------------------------------- inputs


def expand_inputs(patterns: Sequence[str], *, kind: Kind, split: str | None) -> list[str]:
    """Input files in reading order: each pattern (a file, a folder, a glob; local or remote)
    in turn, its files sorted. A folder is read as ``jina_jax.data.readers`` reads one. A
    pattern that matches no file is an error."""
    files: dict[str, None] = {}
    for pattern in patterns:
        found = _expand(str(pattern), kind, split)
        if not found:
            raise FileNotFoundError(f"{pattern}: no input files (give a file, a folder or a glob)")
        files.update(dict.fromkeys(found))
    return list(files)


def _in_folder(folder: str, paths: list[str], kind: Kind, split: str | None) -> list[str]:
    suffixes = readers.TEXT_SUFFIXES if kind == "texts" else readers.FOLDER_SUFFIXES
    paths = sorted(p for p in paths if p.endswith(suffixes))
    if split is not None and kind != "texts":
        relative = {p: epath.Path(p[len(folder) :].lstrip("/")) for p in paths}
        named = [p for p in paths if readers.names_split(relative[p], split)]
        paths = named or paths
    return paths


def _expand(pattern: str, kind: Kind, split: str | None) -> list[str]:
    if "://" not in pattern:
        out = []
        for match in sorted(glob.glob(pattern, recursive=True)):
            if os.path.isdir(match):
                found = (
                    readers.text_files(match)
                    if kind == "texts"
                    else readers.record_files(match, split)
                )
                out += [str(p) for p in found]
            elif os.path.isfile(match):
                out.append(match)
        return out
    if not any(char in pattern for char in "*?["):  # a remote file, or a folder
        matched = _match(pattern)
        if matched:
            return matched
        folder = pattern.rstrip("/")
        return _in_folder(folder, _match(folder + "/**"), kind, split)
    return sorted(_match(pattern))


def _match(pattern: str) -> list[str]:
    try:
        return [m.path for m in FileSystems.match([pattern])[0].metadata_list]
    except Exception:  # BeamIOError: nothing there
        return []


def pipeline_options(beam_args: Sequence[str]) -> PipelineOptions:
    """Beam's options from the command line, with ``--runner=DirectRunner`` unless a runner
    is named."""
    args = list(beam_args)
    if not any(arg == "--runner" or arg.startswith("--runner=") for arg in args):
        args.insert(0, DEFAULT_RUNNER)
    return PipelineOptions(args)


# --------------------------------------------------------------------------------- pipeline


def _fewer_negatives(item, num_negatives: int):
    if len(item[1].negatives) < num_negatives:
        yield pvalue.TaggedOutput(bt.REMOVED, f"fewer than {num_negatives} negatives")
    else:
        yield item


def _min_negatives(counts) -> int:
    return min(counts, default=0)


def _meta(num_records: int, num_negatives: int, **fields) -> dict[str, Any]:
    return prepared.prepared_meta(num_records=num_records, num_negatives=num_negatives, **fields)


def _assemble_report(_, read, reports, truncated, *, dataset: str, inputs: list[str]):
    return {
        "dataset": dataset,
        "inputs": inputs,
        "read": read,
        "filters": [dataclasses.asdict(report) for _, report in sorted(reports)],
        "truncated": dict(sorted(truncated)),
    }


def prepare(
    inputs: Sequence[str],
    out: str | os.PathLike,
    *,
    tokenizer,
    tokenizer_name: str,
    kind: Kind = "pairs",
    filters: Sequence[Any] = (),
    dataset: str | None = None,
    num_shards: int = 64,
    query_max_length: int = 64,
    passage_max_length: int = 512,
    max_length: int = 512,
    query_prefix: str = "",
    passage_prefix: str = "",
    num_negatives: int | None = None,
    split: str | None = "train",
    unit: Literal["line", "paragraph"] = "line",
    max_chars: int = readers.DEFAULT_MAX_CHARS,
    overwrite: bool = False,
    beam_args: Sequence[str] = (),
    fault: Callable[[int], None] | None = None,
) -> PrepareResult:
    """Runs the Beam pipeline: ``inputs`` (files, folders, globs) -> prepared dataset ``out``.

    ``filters``: filter objects of ``jina_jax.data.filters`` (ExactDedup, NearDedup,
    LanguageFilter, ConsistencyFilter, CrossEncoderFilter), applied in order; an embedder or
    cross-encoder in them travels to the workers pickled (wrap a real model in
    ``beam_transforms.Lazy`` so that each worker loads it once). ``num_negatives``: keep the
    first K negatives and drop records with fewer (reported as the ``negatives`` filter);
    None: K = the fewest any record has after filtering. ``beam_args``: Beam pipeline options
    (``--runner=DataflowRunner --project=... --region=...``, ``--direct_num_workers=2``);
    DirectRunner by default. ``fault(shard)`` runs before each shard is written (tests).
    """
    if kind not in ("pairs", "texts"):
        raise ValueError(f"kind must be 'pairs' or 'texts', got {kind!r}")
    if kind == "texts":
        if query_prefix or passage_prefix:
            raise ValueError("prefixes apply to pairs; texts are tokenised as they are")
        for stage in filters:
            if isinstance(stage, filters_lib.ConsistencyFilter | filters_lib.CrossEncoderFilter):
                raise ValueError(f"the {stage.name} filter needs pairs, not texts")
    lengths = [max_length] if kind == "texts" else [query_max_length, passage_max_length]
    if not all(0 < n < 1 << 16 for n in lengths):
        raise ValueError(f"max lengths {lengths} must be in [1, 65535] (lengths.npy is uint16)")
    if num_shards < 1:
        raise ValueError(f"num_shards must be positive, got {num_shards}")
    files = expand_inputs(inputs, kind=kind, split=split)
    out = epath.Path(out)
    dataset = dataset or out.name
    max_lengths = (
        {"text": max_length}
        if kind == "texts"
        else {"query": query_max_length, "passage": passage_max_length}
    )
    prefixes = {} if kind == "texts" else {"query": query_prefix, "passage": passage_prefix}
    options = pipeline_options(beam_args)
    staging = prepared.staging_folder(out, overwrite)
    try:
        pipeline = beam.Pipeline(options=options)
        records, skipped = bt.read_files(
            pipeline | "Files" >> beam.Create(list(enumerate(files))),
            kind=kind,
            unit=unit,
            max_chars=max_chars,
        )
        read = bt.read_report(records, skipped)
        reports = []
        if kind == "pairs" and num_negatives is not None:
            out_ = records | "Negatives" >> beam.FlatMap(
                _fewer_negatives, num_negatives
            ).with_output_types(Any).with_outputs(bt.REMOVED, main=bt.KEPT)
            records = out_[bt.KEPT]
            removed = out_[bt.REMOVED]
            reports.append(bt.filter_report("negatives", "negatives", dataset, records, removed))
        for i, stage in enumerate(filters):
            records, report = bt.apply_filter(
                stage, records, dataset=dataset, label=f"{i}_{stage.name}"
            )
            reports.append(report)
        if kind == "texts":
            k = pipeline | "NoNegatives" >> beam.Create([0])
        elif num_negatives is not None:
            k = pipeline | "FixedNegatives" >> beam.Create([num_negatives])
        else:
            k = (
                records
                | "CountNegatives" >> beam.Map(lambda item: len(item[1].negatives))
                | "FewestNegatives" >> beam.CombineGlobally(_min_negatives)
            )
        tokenized = (
            records
            | "BatchTokenize" >> beam.BatchElements(**bt.BATCH)
            | "Tokenize"
            >> beam.ParDo(
                bt.Tokenize(tokenizer, kind, max_lengths, prefixes), pvalue.AsSingleton(k)
            )
            .with_output_types(Any)
            .with_outputs("truncated", main=bt.KEPT)
        )
        truncated = tokenized["truncated"] | "Truncated" >> beam.CombinePerKey(sum)
        sides = k | "Sides" >> beam.Map(lambda n: 1 if kind == "texts" else 2 + n)
        written, _ = bt.write_shards(
            tokenized[bt.KEPT],
            staging=str(staging),
            num_shards=num_shards,
            num_sides=pvalue.AsSingleton(sides),
            fault=fault,
        )
        indexed = (
            bt.indexed(reports, "Reports") if reports else pipeline | "NoReports" >> beam.Create([])
        )
        report = (
            pipeline
            | "ReportOnce" >> beam.Create([None])
            | "Report"
            >> beam.Map(
                _assemble_report,
                pvalue.AsSingleton(read),
                pvalue.AsList(indexed),
                pvalue.AsList(truncated),
                dataset=dataset,
                inputs=files,
            )
        )
        meta = functools.partial(
            _meta,
            kind=kind,
            tokenizer={"name": tokenizer_name, **tokenizer_identity(tokenizer)},
            max_lengths=max_lengths,
            num_shards=num_shards,
            prefixes=prefixes,
        )
        _ = (
            pipeline
            | "FinalizeOnce" >> beam.Create([None])
            | "Finalize"
            >> beam.ParDo(
                bt.Finalize(str(staging), meta),
                pvalue.AsList(written),
                pvalue.AsSingleton(k),
                pvalue.AsSingleton(report),
            )
        )
        result = pipeline.run()
        state = result.wait_until_finish()
        if state != PipelineState.DONE:
            raise RuntimeError(f"the Beam pipeline ended in state {state}; {out} not written")
        if not (staging / prepared.META_FILE).exists():
            raise RuntimeError(f"the pipeline finished without writing {prepared.META_FILE}")
        folder = prepared.publish(staging, out)
    except BaseException:
        if staging.exists():
            staging.rmtree()
        raise
    return PrepareResult(folder, json.loads((folder / prepared.REPORT_FILE).read_text()))
