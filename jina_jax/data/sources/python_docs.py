"""The Python 3.11 documentation's reStructuredText sources (Debian ``python3.11-doc``,
``usr/share/doc/python3.11/html/_sources/**/*.rst.txt``): section heading -> section body
(~4k), and FAQ question -> answer (the headings ending in ``?`` in ``faq/*.rst.txt``, ~170).

A heading is a non-indented line followed by an underline of one repeated punctuation
character (``=``, ``-``, ``~``, ``^``, ``*``, ``"``, ``+``, ``#``) at least as long as the line
(an overline above it is allowed). A section body runs to the next heading of any level and is
turned into plain text: directives and their options, literal blocks, doctests and comments are
dropped; roles, links, inline literals and emphasis keep their text.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
from collections.abc import Iterable

from jina_jax.data.sources import deb

PACKAGE = "python3.11-doc"
LICENSE = "Python documentation: PSF License Agreement (Python Software Foundation)"
SOURCES = "usr/share/doc/python3.11/html/_sources"
UNDERLINE_CHARS = '=-~^*"+#'
# Directives whose content is prose worth keeping; every other directive block is dropped.
_PROSE_DIRECTIVES = {
    "note", "warning", "seealso", "versionadded", "versionchanged", "deprecated", "important",
    "tip", "attention", "caution", "hint", "impl-detail", "admonition", "topic", "rubric",
}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Section:
    path: str  # relative to the _sources folder, e.g. "faq/general.rst.txt"
    title: str  # the document's first heading
    heading: str
    body: str


def _is_underline(line: str, heading: str) -> bool:
    stripped = line.rstrip()
    return (
        len(stripped) >= max(len(heading.rstrip()), 2)
        and stripped[0] in UNDERLINE_CHARS
        and stripped == stripped[0] * len(stripped)
    )


def _is_heading_text(line: str) -> bool:
    text = line.strip()
    return bool(text) and not line[0].isspace() and any(ch.isalnum() for ch in text)


def split_sections(text: str, path: str = "") -> list[Section]:
    """Sections of one document in order; text before the first heading is dropped."""
    lines = text.split("\n")
    headings: list[tuple[int, str]] = []  # (line index of the heading text, heading)
    for i in range(len(lines) - 1):
        if _is_heading_text(lines[i]) and _is_underline(lines[i + 1], lines[i]):
            if i > 0 and lines[i - 1].strip() and not _is_underline(lines[i - 1], lines[i]):
                continue  # a paragraph line followed by a transition or table rule
            headings.append((i, inline_text(lines[i].strip())))
    sections = []
    title = headings[0][1] if headings else ""
    for k, (i, heading) in enumerate(headings):
        end = headings[k + 1][0] if k + 1 < len(headings) else len(lines)
        body_lines = lines[i + 2 : end]
        if k + 1 < len(headings) and end >= 1 and _is_underline(lines[end - 1], lines[end]):
            body_lines = lines[i + 2 : end - 1]  # the next heading's overline
        sections.append(Section(path, title, heading, rst_to_text(body_lines)))
    return sections


def inline_text(text: str) -> str:
    """Inline markup -> its text: roles, links, literals, emphasis, substitutions."""
    text = re.sub(r":[\w:+.-]+:`~?!?([^`<]*?)\s*(?:<[^>`]*>)?`", r"\1", text)  # :ref:`text <x>`
    text = re.sub(r"`([^`<]*?)\s*<[^>`]*>`__?", r"\1", text)  # `text <url>`_
    text = re.sub(r"``([^`]+)``", r"\1", text)
    text = re.sub(r"`([^`]+)`_{0,2}", r"\1", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"\1", text)
    text = re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"\1", text)
    text = re.sub(r"\|([^|\s][^|]*)\|", r"\1", text)
    return text.replace("\\ ", "").replace("\\", "")


def rst_to_text(lines: Iterable[str]) -> str:
    """Plain text of a section body: paragraphs joined by "\\n"."""
    paragraphs: list[str] = []
    current: list[str] = []
    skip_indent: int | None = None  # dropping an indented block deeper than this

    def flush():
        if current:
            paragraphs.append(" ".join(" ".join(current).split()))
            current.clear()

    literal_next = in_doctest = False
    for line in lines:
        indent = len(line) - len(line.lstrip())
        stripped = line.strip()
        if skip_indent is not None:
            if not stripped or indent > skip_indent:
                continue
            skip_indent = None
        if not stripped:
            flush()
            in_doctest = False
            continue
        if literal_next and indent > 0:
            skip_indent = indent - 1  # the literal block after "::"
            literal_next = False
            flush()
            continue
        literal_next = False
        directive = re.match(r"\.\.\s+([\w-]+(?::[\w-]+)?)::\s*(.*)", stripped)
        if stripped.startswith(".."):
            flush()
            name = directive.group(1) if directive else ""
            if name in _PROSE_DIRECTIVES:
                if directive.group(2) and name not in ("versionadded", "versionchanged"):
                    current.append(inline_text(directive.group(2)))
                continue  # its indented content is kept as ordinary text
            skip_indent = indent  # comments, targets, code and other directives
            continue
        if stripped.startswith(":") and re.match(r":[\w -]+:", stripped) and indent > 0:
            continue  # a directive option
        if stripped.startswith(">>>"):
            flush()
            in_doctest = True  # a doctest block runs to the next blank line
            continue
        if in_doctest:
            continue
        if stripped == "::":
            literal_next = True
            flush()
            continue
        if stripped.endswith("::"):
            literal_next = True
            stripped = stripped[:-1]
        if all(ch in UNDERLINE_CHARS + "|+ " for ch in stripped):
            continue  # transitions and table rules
        current.append(
            inline_text(stripped.lstrip("*-").strip() if stripped[:2] in ("* ", "- ") else stripped)
        )
    flush()
    return "\n".join(p for p in paragraphs if p)


def read_sections(sources_dir: str | os.PathLike) -> list[Section]:
    """Sections of every ``*.rst.txt`` below ``sources_dir``, files in sorted order."""
    root = pathlib.Path(sources_dir)
    out = []
    for path in sorted(root.rglob("*.rst.txt")):
        text = path.read_text(encoding="utf-8", errors="replace")
        out += split_sections(text, str(path.relative_to(root)))
    return out


def is_faq(section: Section) -> bool:
    return section.path.startswith("faq/") and section.heading.endswith("?")


def fetch_python_docs(cache_dir: str | os.PathLike) -> deb.FetchedSource:
    return deb.fetch_deb(PACKAGE, cache_dir, LICENSE)


def sources_dir(source: deb.FetchedSource) -> pathlib.Path:
    return source.root / SOURCES
