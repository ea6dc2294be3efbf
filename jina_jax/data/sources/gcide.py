"""GCIDE (Webster 1913 plus later additions), Debian ``dict-gcide``: headword -> senses.

dictd format: ``gcide.index`` lines are ``headword<TAB>offset<TAB>length``, offset and length
base-64 numbers over ``A-Za-z0-9+/`` (most significant digit first); ``gcide.dict.dz`` is
dictzip, which plain gzip reads; an entry is the bytes ``[offset, offset + length)``. Several
index lines can point at one entry (inflections, phrases); ``00-database-*`` lines are metadata.

An entry starts with a header ``Able \\A"ble\\, a. [etymology]`` that may wrap over several
lines, then either numbered senses (``   1. text`` ... each closed by a source tag such as
``[1913 Webster]``) or one unnumbered definition. Quotations are indented further, and blocks
starting ``Note:``, ``Syn:`` or ``{phrase}`` are not senses of the headword.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import pathlib
import re
from collections.abc import Iterator

from jina_jax.data.sources import deb

PACKAGE = "dict-gcide"
LICENSE = "GCIDE: GPL-2+ (GNU Collaborative International Dictionary of English)"
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUE = {ch: i for i, ch in enumerate(B64)}


@dataclasses.dataclass(frozen=True)
class GcideEntry:
    headword: str
    senses: tuple[str, ...]


def decode_b64_number(text: str) -> int:
    value = 0
    for ch in text:
        value = value * 64 + _B64_VALUE[ch]
    return value


def read_index(path: str | os.PathLike) -> list[tuple[str, int, int]]:
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 3 or fields[0].startswith("00-database"):
                continue
            out.append((fields[0], decode_b64_number(fields[1]), decode_b64_number(fields[2])))
    return out


_SOURCE_TAG = re.compile(
    r"\[(?:\d{4} Webster|Webster[^\]]*|WordNet[^\]]*|PJC|Century[^\]]*|[A-Z]{2,4})\]"
)
_SENSE_START = re.compile(r"^\s{0,6}(\d+)\.\s+")


def _depth(line: str) -> int:
    return line.count("[") - line.count("]") + line.count("(") - line.count(")")


def _clean_sense(text: str) -> str:
    text = _SOURCE_TAG.sub(" ", text)
    text = re.sub(r"\s--[A-Z][^\n]*$", "", " ".join(text.split()))  # "--Chaucer." attributions
    text = re.sub(r"\[[^\]]*\]", " ", text)  # labels such as [Obs.] and [R.]
    text = text.replace("{", "").replace("}", "")
    text = re.sub(r"^(?:\([^)]*\)\s*)+", "", " ".join(text.split()))  # "(Bot.)" domain labels
    return text.strip(" ;,")


def parse_entry(text: str) -> GcideEntry:
    """Headword and senses of one dictd entry."""
    lines = text.strip("\n").split("\n")
    headword = re.split(r"\s*\\|,", lines[0], maxsplit=1)[0].strip()
    # The header is the first line plus the lines that continue it: inside an open bracket,
    # after a line ending in "," or "\\" (more headwords / a pronunciation follow), or starting
    # with "[" (etymology).
    depth, body_start = _depth(lines[0]), 1
    while body_start < len(lines) and lines[body_start].strip():
        line, previous = lines[body_start], lines[body_start - 1].rstrip()
        if depth <= 0 and not line.lstrip().startswith("[") and not previous.endswith((",", "\\")):
            break
        depth += _depth(line)
        body_start += 1
    blocks, current = [], []
    for line in lines[body_start:]:
        if line.strip():
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    senses: list[str] = []
    for block in blocks:
        first = block[0]
        indent = len(first) - len(first.lstrip())
        stripped = first.strip()
        if indent >= 8 or stripped.startswith(("Note:", "Syn:", "{", "--", "Usage:")):
            continue  # quotation, note, synonym list, or a phrase defined under the headword
        parts, sense = [], []
        for line in block:
            if _SENSE_START.match(line) and sense:
                parts.append(sense)
                sense = []
            sense.append(_SENSE_START.sub("", line) if not sense else line)
        parts.append(sense)
        for part in parts:
            cleaned = _clean_sense(" ".join(part))
            if len(cleaned.split()) >= 2:
                senses.append(cleaned)
    return GcideEntry(headword, tuple(senses))


def read_entries(
    index_path: str | os.PathLike, dict_path: str | os.PathLike
) -> Iterator[GcideEntry]:
    """Every distinct entry once, in index order."""
    with gzip.open(dict_path, "rb") as f:
        data = f.read()
    seen = set()
    for _, offset, length in read_index(index_path):
        if (offset, length) in seen:
            continue
        seen.add((offset, length))
        yield parse_entry(data[offset : offset + length].decode("utf-8", errors="replace"))


def read_definitions(
    index_path: str | os.PathLike, dict_path: str | os.PathLike
) -> dict[str, list[str]]:
    """Lower-cased headword -> its senses, over all entries of that headword (e.g. the noun and
    the verb), in index order."""
    out: dict[str, list[str]] = {}
    for entry in read_entries(index_path, dict_path):
        if entry.senses:
            out.setdefault(entry.headword.lower(), []).extend(entry.senses)
    return out


def fetch_gcide(cache_dir: str | os.PathLike) -> deb.FetchedSource:
    return deb.fetch_deb(PACKAGE, cache_dir, LICENSE)


def gcide_files(source: deb.FetchedSource) -> tuple[pathlib.Path, pathlib.Path]:
    folder = source.root / "usr/share/dictd"
    return folder / "gcide.index", folder / "gcide.dict.dz"
