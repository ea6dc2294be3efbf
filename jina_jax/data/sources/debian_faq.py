"""The Debian FAQ (Debian ``debian-faq``, ``usr/share/doc/debian/FAQ/debian-faq.en.txt.gz``):
question -> answer (~146).

Plain text rendered from DocBook: U+00A0 is replaced by spaces. The table of contents lists
every question first, so the body starts at the second occurrence of the first question.
Questions start at column 0 as ``N.M. Title`` or ``N.M.K. Title`` and may wrap onto further
unindented lines up to a blank line; the indented text after them, up to the next question or
``Chapter N.`` line, is the answer. Deeper numbered headings (``N.M.K.L.``) stay inside the
answer they belong to.
"""

from __future__ import annotations

import gzip
import os
import pathlib
import re

from jina_jax.data.sources import deb

PACKAGE = "debian-faq"
FAQ_PATH = "usr/share/doc/debian/FAQ/debian-faq.en.txt.gz"
LICENSE = "Debian FAQ: verbatim/modified copies permitted (Software in the Public Interest)"

_QUESTION = re.compile(r"^(\d+\.\d+(?:\.\d+)?)\.\s+(\S.*)$")
_CHAPTER = re.compile(r"^Chapter \d+\.")


def parse_debian_faq(text: str) -> list[tuple[str, str, str]]:
    """(number, question, answer) in document order; answers' paragraphs joined by "\\n"."""
    text = text.replace("\xa0", " ")
    lines = text.split("\n")
    first = next((i for i, ln in enumerate(lines) if _QUESTION.match(ln.strip())), None)
    if first is None:
        return []
    first_question = _QUESTION.match(lines[first].strip()).group(0)
    start = next(
        (i for i in range(first + 1, len(lines)) if lines[i].rstrip() == first_question), None
    )
    if start is None:
        return []
    out: list[tuple[str, str, str]] = []
    number, question, body, in_title = "", [], [], False
    for line in lines[start:]:
        match = _QUESTION.match(line) if line[:1].isdigit() else None
        if match or _CHAPTER.match(line):
            if number:
                out.append(_entry(number, question, body))
            number, question, body = (
                (match.group(1), [match.group(2)], []) if match else ("", [], [])
            )
            in_title = bool(match)
            continue
        if in_title:
            if line.strip() and not line[:1].isspace():
                question.append(line.strip())
                continue
            in_title = False
        body.append(line)
    if number:
        out.append(_entry(number, question, body))
    return [entry for entry in out if entry[1] and entry[2]]


def _entry(number: str, question: list[str], body: list[str]) -> tuple[str, str, str]:
    paragraphs = re.split(r"\n\s*\n", "\n".join(body))
    answer = "\n".join(" ".join(p.split()) for p in paragraphs if p.strip())
    return number, " ".join(" ".join(question).split()), answer


def read_debian_faq(path: str | os.PathLike) -> list[tuple[str, str, str]]:
    path = pathlib.Path(path)
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return parse_debian_faq(raw.decode("utf-8", errors="replace"))


def fetch_debian_faq(cache_dir: str | os.PathLike) -> deb.FetchedSource:
    return deb.fetch_deb(PACKAGE, cache_dir, LICENSE)
