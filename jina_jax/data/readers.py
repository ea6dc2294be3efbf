"""Readers: files on disk (or a hub name) -> PairRecord / NegationRecord / STSRecord / str.

Every reader is a generator that skips bad input instead of crashing a long build, and counts
what it skipped in a `ReadReport` (per-reason counts plus the first examples, each with
`file:line`). With `strict=True` the first bad line raises `BadRecordError` instead.

Accepted inputs
---------------
- JSON lines (`.jsonl`, `.json`, optionally gzipped: `.jsonl.gz`, `.json.gz`), one record per line,
  as in sentence-transformers' embedding-training-data. A line is either
  - a list `[query, positive]` or `[query, positive, neg1, neg2, ...]`, or
  - a dict. Pairs: query from `query | anchor | question | sentence1 | text1`, positive from
    `pos | positive | entailment | answer | sentence2 | text2 | document | passage`, negatives
    from `neg | negative | negatives | hard_negatives` (a string or a list; `pos` may also be a
    list, whose first item is taken). `{"set": [a, b, ...]}` (paraphrase groups) gives the pair
    `(a, b)`; `{"texts": [...]}` is read like a list.
  Negation rows: `anchor, entailment, negative` (dict keys or a list of three). STS rows:
  `sentence1, sentence2, score | label | similarity` (or a list of three), score a finite number.
- Parquet files, Arrow files and Hugging Face `datasets.save_to_disk` folders (`state.json` +
  `data-*.arrow`, or a `dataset_dict.json` folder with one subfolder per split), read with pyarrow;
  each row is a dict handled as above.
- A folder of such files (searched recursively; `.jsonl[.gz]`, `.json.gz`, `.parquet`, `.arrow`,
  not plain `.json`, which in folders is metadata). When some file paths name the split (a folder
  called `train`, or a file name starting with `train-`, `train_` or `train.`), only those are read.
- A hub name such as `jinaai/negation-dataset` when it is not a local path: through
  `datasets.load_dataset` when that package is installed, otherwise a `huggingface_hub` snapshot
  whose files are read as above. Needs a network connection.
- BEIR folders (`corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`) -> `BeirDataset`.
- Plain text for MLM (`read_texts`): one document per non-blank line (`unit="line"`), or
  blank-line separated paragraphs (`unit="paragraph"`, lines joined with "\\n").

One file at a time (what the Beam preparation reads on its workers): `file_rows` gives a file's
rows with their line numbers, local or remote (`gs://...`, through etils.epath), to be turned
into records by `row_to_pair` / `row_to_negation` / `row_to_sts` (which raise `SkipRow`);
`file_texts` gives a text file's documents.

Bad input (reason names as counted in the report): `invalid_utf8`, `malformed_json`, `too_long`
(a line or row over `max_chars` characters; such lines are never held whole in memory),
`missing_field`, `wrong_type`, `empty_text` (a text that is empty after stripping),
`invalid_text` (a string no encoder can take, such as a lone surrogate from a JSON escape), and
`unreadable_file` (truncated gzip, a broken parquet file, ...; the rest of that file is lost, the
lines before it are kept). Blank lines are not records and are passed over silently.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import gzip
import json
import logging
import math
import os
import pathlib
import re
import zlib
from collections.abc import Callable, Iterator
from typing import Any, Literal

from etils import epath

from jina_jax.data.records import NegationRecord, PairRecord, STSRecord
from jina_jax.errors import DataError

log = logging.getLogger(__name__)

DEFAULT_MAX_CHARS = 100_000
ARROW_SUFFIXES = (".parquet", ".arrow")
# Plain .json is left out of folder scans: there it is metadata (dataset_info.json, ...).
FOLDER_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz", *ARROW_SUFFIXES)
TEXT_SUFFIXES = (".txt", ".txt.gz")

RecordKind = Literal["pair", "negation", "sts"]

_QUERY_KEYS = ("query", "anchor", "question", "sentence1", "text1")
_POSITIVE_KEYS = (
    "pos",
    "positive",
    "entailment",
    "answer",
    "sentence2",
    "text2",
    "document",
    "passage",
)
_NEGATIVE_KEYS = ("neg", "negative", "negatives", "hard_negatives")
_SCORE_KEYS = ("score", "label", "similarity")


class BadRecordError(DataError):
    """Raised by a reader in strict mode; the message starts with `file:line`."""


class SkipRow(Exception):
    """A row that is not a record: `reason` is one of the reason names above."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason, detail)
        self.reason, self.detail = reason, detail


@dataclasses.dataclass
class ReadReport:
    """What a reader kept and skipped. One report may be shared by several reads."""

    max_examples: int = 20
    num_records: int = 0
    skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    examples: list[str] = dataclasses.field(default_factory=list)  # "file:line: reason: detail"

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def add_skip(self, where: str, reason: str, detail: str = "") -> None:
        self.skipped[reason] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(_message(where, reason, detail))

    def summary(self) -> str:
        reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.skipped.items()))
        lines = [f"{self.num_records} records read, {self.num_skipped} skipped ({reasons or '-'})"]
        lines += [f"  {example}" for example in self.examples]
        return "\n".join(lines)


def _message(where: str, reason: str, detail: str) -> str:
    return f"{where}: {reason}" + (f": {detail}" if detail else "")


class _Sink:
    """Routes a bad line to the report, or raises in strict mode."""

    def __init__(self, report: ReadReport | None, strict: bool):
        self.report = report if report is not None else ReadReport()
        self.strict = strict

    def skip(self, where: str, reason: str, detail: str = "") -> None:
        detail = detail[:200]
        if self.strict:
            raise BadRecordError(_message(where, reason, detail))
        self.report.add_skip(where, reason, detail)


# ------------------------------------------------------------------------------------ raw rows


def as_path(path: str | os.PathLike) -> pathlib.Path | epath.Path:
    """A local path as a pathlib.Path; a remote one (`gs://...`) as an etils epath.Path
    (`pathlib.Path("gs://b/x")` would silently become `gs:/b/x`)."""
    if "://" in str(path):
        return epath.Path(str(path))
    return pathlib.Path(path)


@contextlib.contextmanager
def _open_binary(path: pathlib.Path | epath.Path):
    with path.open("rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        if gzipped or path.name.endswith(".gz"):
            with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                yield f
        else:
            yield raw


_READ_ERRORS = (OSError, EOFError, zlib.error)


_LINE_END = re.compile(rb"\r\n|\r|\n")


def _raw_lines(f, max_bytes: int) -> Iterator[bytes | None]:
    """The lines of a binary stream, each ending in ``\\n``, ``\\r\\n`` or a lone ``\\r`` (old
    Mac files), without their line end; None for a line longer than ``max_bytes``, whose bytes
    are dropped as they come, so memory stays bounded by a read block plus ``max_bytes``."""
    buffer, pos, skipping = b"", 0, False
    # read1: what is at hand, so that a stream cut short (a truncated gzip) still yields every
    # complete line before the cut
    read = getattr(f, "read1", f.read)
    while True:
        block = read(1 << 20)
        buffer, pos = buffer[pos:] + block, 0
        while True:
            end = _LINE_END.search(buffer, pos)
            # a "\r" at the very end of the block may be the first half of "\r\n"
            if end is None or (block and end.group() == b"\r" and end.end() == len(buffer)):
                break
            line, pos = buffer[pos : end.start()], end.end()
            if skipping:
                skipping = False
                yield None
            else:
                yield line if len(line) <= max_bytes else None
        if not block:
            rest = buffer[pos:]
            if skipping:
                yield None
            elif rest:
                yield rest if len(rest) <= max_bytes else None
            return
        if len(buffer) - pos > max_bytes:  # no line end within max_bytes: drop what we hold
            buffer, pos, skipping = b"", 0, True


def _bounded_lines(
    path: pathlib.Path | epath.Path, max_chars: int, sink: _Sink
) -> Iterator[tuple[int, str | None]]:
    """(line number, decoded line without its line end) per line; None for a skipped line.

    Lines end in ``\\n``, ``\\r\\n`` or a lone ``\\r``. Holds at most 4 * max_chars bytes of any
    line (UTF-8 needs at most 4 bytes a character), so a gigabyte line costs no more memory than
    a short one.
    """
    max_bytes = 4 * max_chars
    lineno = 0
    try:
        with _open_binary(path) as f:
            for raw in _raw_lines(f, max_bytes):
                lineno += 1
                where = f"{path}:{lineno}"
                if raw is None:
                    sink.skip(where, "too_long", f"more than {max_bytes} bytes")
                    yield lineno, None
                    continue
                try:
                    line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
                except UnicodeDecodeError as error:
                    sink.skip(where, "invalid_utf8", str(error))
                    yield lineno, None
                    continue
                if len(line) > max_chars:
                    sink.skip(where, "too_long", f"{len(line)} characters > {max_chars}")
                    yield lineno, None
                    continue
                yield lineno, line
    except _READ_ERRORS as error:
        sink.skip(f"{path}:{lineno + 1}", "unreadable_file", f"{type(error).__name__}: {error}")


def _jsonl_rows(
    path: pathlib.Path | epath.Path, max_chars: int, sink: _Sink
) -> Iterator[tuple[int, str, Any]]:
    for lineno, line in _bounded_lines(path, max_chars, sink):
        if line is None or not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        # ValueError covers JSONDecodeError and integers too long to convert
        except (ValueError, RecursionError) as error:
            sink.skip(where, "malformed_json", str(error))
            continue
        yield lineno, where, row


def _arrow_rows(
    path: pathlib.Path | epath.Path, max_chars: int, sink: _Sink
) -> Iterator[tuple[int, str, Any]]:
    """Rows of a parquet file, or of an Arrow IPC file/stream (what `save_to_disk` writes)."""
    # optional: pyarrow is needed for parquet/Arrow inputs only
    import pyarrow as pa
    import pyarrow.parquet as pq

    row = 0
    try:
        with contextlib.ExitStack() as stack:
            local = isinstance(path, pathlib.Path)
            source = path if local else stack.enter_context(path.open("rb"))
            if path.suffix == ".parquet":
                batches = pq.ParquetFile(source).iter_batches(batch_size=1024)
            else:
                batches = _arrow_ipc_batches(source, local, pa)
            for batch in batches:
                for item in batch.to_pylist():
                    row += 1
                    where = f"{path}:{row}"
                    size = sum(_text_size(value) for value in item.values())
                    if size > max_chars:
                        sink.skip(where, "too_long", f"{size} characters > {max_chars}")
                        continue
                    yield row, where, item
    except (*_READ_ERRORS, pa.ArrowException) as error:
        sink.skip(f"{path}:{row + 1}", "unreadable_file", f"{type(error).__name__}: {error}")


def _arrow_ipc_batches(source, local: bool, pa):
    # datasets writes the streaming format; a plain Arrow file has the random-access format.
    try:
        reader = pa.ipc.open_stream(pa.memory_map(str(source)) if local else source)
    except pa.ArrowInvalid:
        if not local:
            source.seek(0)
        reader = pa.ipc.open_file(pa.memory_map(str(source)) if local else source)
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)
        return
    yield from reader


def _text_size(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list | tuple):
        return sum(_text_size(item) for item in value)
    return 0


def _is_arrow(path: pathlib.Path) -> bool:
    return path.name.endswith(ARROW_SUFFIXES)


def record_files(folder: str | os.PathLike, split: str | None) -> list[pathlib.Path]:
    """The record files of a local folder, in reading order: a save_to_disk layout, or every
    known file inside it (only those naming `split` when some do)."""
    return _split_files(pathlib.Path(folder), split)


def _split_files(folder: pathlib.Path, split: str | None) -> list[pathlib.Path]:
    """The record files of a folder: a save_to_disk layout, or every known file inside it."""
    if (folder / "dataset_dict.json").is_file():
        splits = _json_file(folder / "dataset_dict.json", "splits")
        if split is None or split not in splits:
            raise ValueError(f"{folder} holds splits {splits}; pass split= one of them")
        return _split_files(folder / split, None)
    if (folder / "state.json").is_file():
        files = _json_file(folder / "state.json", "_data_files")
        try:
            return [folder / item["filename"] for item in files]
        except (TypeError, KeyError) as e:
            raise DataError(f"{folder / 'state.json'}: _data_files entries need a filename") from e
    files = sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and path.name.endswith(FOLDER_SUFFIXES) and not path.name.startswith(".")
    )
    if split is not None:
        named = [path for path in files if names_split(path.relative_to(folder), split)]
        if named:
            return named
    return files


def _json_file(path: pathlib.Path, key: str):
    """``key`` of a datasets metadata file; a broken file is an error naming it."""
    try:
        value = json.loads(path.read_text())
        return value[key]
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: invalid JSON ({e})") from e
    except (KeyError, TypeError) as e:
        raise DataError(f"{path}: no {key!r} field") from e


def names_split(relative: pathlib.PurePath, split: str) -> bool:
    """Whether a file path relative to its dataset folder names `split` (a folder called
    `train`, or a file name starting with `train-`, `train_` or `train.`)."""
    return split in relative.parts[:-1] or any(
        relative.name.startswith(split + sep) for sep in ("-", "_", ".")
    )


def _file_rows(
    path: pathlib.Path | epath.Path, max_chars: int, sink: _Sink
) -> Iterator[tuple[int, str, Any]]:
    if _is_arrow(path):
        return _arrow_rows(path, max_chars, sink)
    return _jsonl_rows(path, max_chars, sink)  # JSON lines by default, whatever the suffix


def file_rows(
    path: str | os.PathLike,
    *,
    report: ReadReport | None = None,
    strict: bool = False,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> Iterator[tuple[int, str, Any]]:
    """`(line or row number, "file:line", row)` for each row of ONE file (JSON lines, parquet or
    Arrow), local or remote (`gs://...`); bad lines go to `report` as in `read_records`. Turn a
    row into a record with `row_to_pair` / `row_to_negation` / `row_to_sts` (they raise
    `SkipRow`)."""
    return _file_rows(as_path(path), max_chars, _Sink(report, strict))


def _rows(
    source: str | os.PathLike, split: str | None, max_chars: int, sink: _Sink
) -> Iterator[tuple[str, Any]]:
    path = pathlib.Path(source)
    if path.is_dir():
        for file in _split_files(path, split):
            yield from _rows(file, None, max_chars, sink)
    elif path.is_file():
        for _, where, row in _file_rows(path, max_chars, sink):
            yield where, row
    elif _looks_like_hub_name(str(source)):
        yield from _hub_rows(str(source), split or "train", max_chars, sink)
    else:
        raise FileNotFoundError(f"{source}: no such file or folder (nor a hub name owner/name)")


def _looks_like_hub_name(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def _hub_rows(name: str, split: str, max_chars: int, sink: _Sink) -> Iterator[tuple[str, Any]]:
    """Rows of a hub dataset. Needs a connection (or a hub cache); not used offline."""
    try:  # optional: Hugging Face `datasets`, for hub datasets on a connected machine
        import datasets
    except ImportError:
        datasets = None
    if datasets is not None:
        try:
            loaded = datasets.load_dataset(name, split=split)
        except Exception as error:  # offline mode, unknown repo, no network: all mean "not here"
            raise FileNotFoundError(
                f"{name} is not a local path and could not be loaded from the hub "
                f"({type(error).__name__}: {error}); download it and pass the folder instead"
            ) from error
        for i, item in enumerate(loaded, start=1):
            size = sum(_text_size(value) for value in item.values())
            if size > max_chars:
                sink.skip(f"{name}[{split}]:{i}", "too_long", f"{size} characters > {max_chars}")
                continue
            yield f"{name}[{split}]:{i}", item
        return
    try:
        import huggingface_hub

        folder = huggingface_hub.snapshot_download(repo_id=name, repo_type="dataset")
    except Exception as error:  # offline mode, unknown repo, no network: all mean "not here"
        raise FileNotFoundError(
            f"{name} is not a local path and could not be fetched from the hub "
            f"({type(error).__name__}: {error}); download it and pass the folder instead"
        ) from error
    yield from _rows(folder, split, max_chars, sink)


# -------------------------------------------------------------------------- rows -> records


def _text(value: Any, field: str) -> str:
    if value is None:
        raise SkipRow("missing_field", f"{field} is null")
    if not isinstance(value, str):
        raise SkipRow("wrong_type", f"{field} is {type(value).__name__}, not a string")
    if not value.strip():
        raise SkipRow("empty_text", f"{field} is empty")
    try:  # JSON escapes can spell a lone surrogate ("\\ud800"): not text anyone can encode
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise SkipRow(
            "invalid_text", f"{field} holds {error.reason} at character {error.start}"
        ) from None
    return value


def _first_key(row: dict, keys: tuple[str, ...], what: str) -> Any:
    for key in keys:
        if key in row:
            return row[key]
    raise SkipRow("missing_field", f"no {what} field (one of {', '.join(keys)})")


def _as_list(value: Any, field: str) -> list:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return list(value)
    if value is None:
        return []
    raise SkipRow("wrong_type", f"{field} is {type(value).__name__}")


def row_to_pair(row: Any) -> PairRecord:
    """One JSON / parquet row in any accepted pair layout -> PairRecord (raises _Skip)."""
    if isinstance(row, dict):
        if "set" in row or "texts" in row:
            items = _as_list(row.get("set", row.get("texts")), "set")
            return row_to_pair(items[:2] if "set" in row else items)
        query = _text(_first_key(row, _QUERY_KEYS, "query"), "query")
        positives = _as_list(_first_key(row, _POSITIVE_KEYS, "positive"), "positive")
        if not positives:
            raise SkipRow("missing_field", "positive list is empty")
        positive = _text(positives[0], "positive")
        negatives: list = []
        for key in _NEGATIVE_KEYS:
            if key in row:
                negatives = _as_list(row[key], key)
                break
        return PairRecord(
            query, positive, tuple(_text(n, f"negative {i}") for i, n in enumerate(negatives))
        )
    if isinstance(row, list):
        if len(row) < 2:
            raise SkipRow("missing_field", f"a list row needs at least 2 texts, got {len(row)}")
        texts = [_text(item, f"item {i}") for i, item in enumerate(row)]
        return PairRecord(texts[0], texts[1], tuple(texts[2:]))
    raise SkipRow("wrong_type", f"row is {type(row).__name__}, expected a list or an object")


def row_to_negation(row: Any) -> NegationRecord:
    fields = ("anchor", "entailment", "negative")
    if isinstance(row, dict):
        missing = [field for field in fields if field not in row]
        if missing:
            raise SkipRow("missing_field", f"no {', '.join(missing)}")
        return NegationRecord(*(_text(row[field], field) for field in fields))
    if isinstance(row, list):
        if len(row) != 3:
            raise SkipRow("missing_field", f"a list row needs 3 texts, got {len(row)}")
        return NegationRecord(*(_text(item, field) for item, field in zip(row, fields)))
    raise SkipRow("wrong_type", f"row is {type(row).__name__}, expected a list or an object")


def row_to_sts(row: Any) -> STSRecord:
    if isinstance(row, dict):
        for field in ("sentence1", "sentence2"):
            if field not in row:
                raise SkipRow("missing_field", f"no {field}")
        first, second = row["sentence1"], row["sentence2"]
        score = _first_key(row, _SCORE_KEYS, "score")
    elif isinstance(row, list):
        if len(row) != 3:
            raise SkipRow(
                "missing_field", f"a list row needs [s1, s2, score], got {len(row)} items"
            )
        first, second, score = row
    else:
        raise SkipRow("wrong_type", f"row is {type(row).__name__}, expected a list or an object")
    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise SkipRow("wrong_type", f"score {score!r} is not a finite number")
    return STSRecord(_text(first, "sentence1"), _text(second, "sentence2"), float(score))


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "pair": row_to_pair,
    "negation": row_to_negation,
    "sts": row_to_sts,
}


def read_records(
    source: str | os.PathLike,
    kind: RecordKind = "pair",
    *,
    split: str | None = "train",
    report: ReadReport | None = None,
    strict: bool = False,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> Iterator[PairRecord | NegationRecord | STSRecord]:
    """Records of one kind from a file, a folder or a hub name (see the module docstring)."""
    convert = _CONVERTERS[kind]
    sink = _Sink(report, strict)
    for where, row in _rows(source, split, max_chars, sink):
        try:
            record = convert(row)
        except SkipRow as skip:
            sink.skip(where, skip.reason, skip.detail)
            continue
        sink.report.num_records += 1
        yield record


def read_pairs(source: str | os.PathLike, **kwargs) -> Iterator[PairRecord]:
    return read_records(source, "pair", **kwargs)


def read_negations(source: str | os.PathLike, **kwargs) -> Iterator[NegationRecord]:
    return read_records(source, "negation", **kwargs)


def read_sts(source: str | os.PathLike, **kwargs) -> Iterator[STSRecord]:
    return read_records(source, "sts", **kwargs)


def read_texts(
    path: str | os.PathLike,
    *,
    unit: Literal["line", "paragraph"] = "line",
    report: ReadReport | None = None,
    strict: bool = False,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> Iterator[str]:
    """MLM documents from a text file (optionally gzipped) or every `.txt[.gz]` file in a folder.

    `unit="line"`: each non-blank line is a document (stripped). `unit="paragraph"`: runs of
    non-blank lines separated by blank lines are documents; a paragraph with a bad line (or over
    `max_chars` in total) is skipped whole and reported at its first line.
    """
    if unit not in ("line", "paragraph"):
        raise ValueError(f"unit must be 'line' or 'paragraph', got {unit!r}")
    path = pathlib.Path(path)
    if path.is_dir():
        for file in text_files(path):
            yield from read_texts(
                file, unit=unit, report=report, strict=strict, max_chars=max_chars
            )
        return
    if not path.is_file():
        raise FileNotFoundError(path)
    for _, text in file_texts(path, unit=unit, report=report, strict=strict, max_chars=max_chars):
        yield text


def text_files(folder: str | os.PathLike) -> list[pathlib.Path]:
    """The `.txt[.gz]` files of a local folder, in reading order."""
    return sorted(p for p in pathlib.Path(folder).rglob("*") if p.name.endswith(TEXT_SUFFIXES))


def file_texts(
    path: str | os.PathLike,
    *,
    unit: Literal["line", "paragraph"] = "line",
    report: ReadReport | None = None,
    strict: bool = False,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> Iterator[tuple[int, str]]:
    """`(first line number, document)` for each document of ONE text file, local or remote
    (`gs://...`), as `read_texts` reads it."""
    if unit not in ("line", "paragraph"):
        raise ValueError(f"unit must be 'line' or 'paragraph', got {unit!r}")
    path = as_path(path)
    sink = _Sink(report, strict)
    paragraph: list[str] = []
    start, bad = 0, False

    def flush() -> Iterator[tuple[int, str]]:
        if paragraph and not bad:
            text = "\n".join(paragraph)
            if len(text) > max_chars:
                sink.skip(f"{path}:{start}", "too_long", f"paragraph of {len(text)} characters")
            else:
                sink.report.num_records += 1
                yield start, text

    for lineno, line in _bounded_lines(path, max_chars, sink):
        if unit == "line":
            if line is not None and line.strip():
                sink.report.num_records += 1
                yield lineno, line.strip()
            continue
        if line is not None and not line.strip():
            yield from flush()
            paragraph, bad = [], False
            continue
        if not paragraph and not bad:
            start = lineno
        if line is None:
            bad = True  # already reported at its own line
        else:
            paragraph.append(line.strip())
    if unit == "paragraph":
        yield from flush()


# ------------------------------------------------------------------------------------- BEIR


@dataclasses.dataclass
class BeirDataset:
    """A BEIR retrieval folder in memory. Corpus texts are `title + " " + text` (as BEIR models
    encode them); ids are strings; `qrels[qid][docid]` is the integer relevance."""

    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    def pairs(self, min_relevance: int = 1) -> Iterator[PairRecord]:
        """(query, relevant document) pairs, e.g. for training or consistency checks."""
        for qid, docs in self.qrels.items():
            if qid not in self.queries:
                continue
            for docid, relevance in docs.items():
                if relevance >= min_relevance and docid in self.corpus:
                    yield PairRecord(self.queries[qid], self.corpus[docid])


def read_beir(
    folder: str | os.PathLike,
    split: str = "test",
    *,
    report: ReadReport | None = None,
    strict: bool = False,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> BeirDataset:
    folder = pathlib.Path(folder)
    sink = _Sink(report, strict)

    def read_jsonl(name: str, with_title: bool) -> dict[str, str]:
        out = {}
        path = folder / name
        if not path.exists() and (folder / f"{name}.gz").exists():
            path = folder / f"{name}.gz"
        for _, where, row in _jsonl_rows(path, max_chars, sink):
            try:
                if not isinstance(row, dict):
                    raise SkipRow("wrong_type", f"row is {type(row).__name__}, expected an object")
                if "_id" not in row or "text" not in row:
                    raise SkipRow("missing_field", "needs _id and text")
                title = (row.get("title") or "") if with_title else ""
                if not isinstance(title, str):
                    raise SkipRow("wrong_type", "title is not a string")
                text = _text((f"{title} " if title else "") + _text_or_empty(row["text"]), "text")
            except SkipRow as skip:
                sink.skip(where, skip.reason, skip.detail)
                continue
            out[str(row["_id"])] = text
            sink.report.num_records += 1
        return out

    corpus = read_jsonl("corpus.jsonl", with_title=True)
    queries = read_jsonl("queries.jsonl", with_title=False)
    qrels: dict[str, dict[str, int]] = {}
    qrels_path = folder / "qrels" / f"{split}.tsv"
    for lineno, line in _bounded_lines(qrels_path, max_chars, sink):
        if line is None or not line.strip():
            continue
        fields = line.split("\t")
        if lineno == 1 and fields[0].strip().lower() in ("query-id", "query_id", "qid"):
            continue
        where = f"{qrels_path}:{lineno}"
        if len(fields) < 3:
            sink.skip(where, "missing_field", "expected query-id<TAB>corpus-id<TAB>score")
            continue
        try:
            relevance = int(fields[-1])
        except ValueError:
            sink.skip(where, "wrong_type", f"score {fields[-1]!r} is not an integer")
            continue
        qrels.setdefault(fields[0], {})[fields[1]] = relevance
    return BeirDataset(corpus=corpus, queries=queries, qrels=qrels)


def _text_or_empty(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SkipRow("wrong_type", f"text is {type(value).__name__}")
    return value
