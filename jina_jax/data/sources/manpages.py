"""Linux man pages (Debian ``manpages`` and ``manpages-dev`` only): the NAME line's one-line
summary -> the DESCRIPTION section as plain text (~1.1k pages).

Pages live in ``usr/share/man/man[1-8]/*.gz``; many files are symlinks or ``.so`` redirects to
another page and are skipped. ``.SH NAME`` holds ``names \\- summary``; ``.SH DESCRIPTION`` runs
to the next ``.SH``. The roff -> text conversion below covers the man(7) macros and escapes
these pages use; anything else is dropped.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import pathlib
import re
from collections.abc import Iterable

from jina_jax.data.sources import deb

PACKAGES = ("manpages", "manpages-dev")
LICENSE = "Linux man-pages: GPL-2+ / Linux-man-pages-copyleft and others per page"


@dataclasses.dataclass(frozen=True)
class ManPage:
    page: str  # file name without .gz, e.g. "open.2"
    names: str  # "open, openat, creat"
    summary: str  # "open and possibly create a file"
    description: str  # paragraphs separated by "\n"


_ESCAPES = {
    "-": "-", "e": "\\", "&": "", "|": "", "^": "", "%": "", "c": "", " ": " ", "~": " ",
    "0": " ", "/": "", ",": "", ":": "", "'": "'", "`": "`", ".": ".", "t": " ", "{": "",
    "}": "",
}  # fmt: skip
_NAMED = {
    "em": "—", "en": "–", "aq": "'", "dq": '"', "lq": "“", "rq": "”", "oq": "‘", "cq": "’",
    "bu": "•", "co": "©", "rg": "®", "tm": "™", "mu": "×", "di": "÷", "+-": "±", "<=": "≤",
    ">=": "≥", "!=": "≠", "->": "→", "<-": "←", "hy": "-", "ti": "~", "ha": "^", "rs": "\\",
    "sl": "/", "ga": "`", "aa": "´", "de": "°", "pl": "+", "mi": "-", "eq": "=", "**": "*",
    "ba": "|", "or": "|", "sq": "□", "dg": "†", "lh": "☜", "rh": "☞", "Fo": "«", "Fc": "»",
}  # fmt: skip
_ESCAPE_RE = re.compile(
    r"\\(?:f(?:\[[^\]]*\]|\(..|.)"  # font changes: drop
    r"|s[-+]?(?:\d|\(\d\d|\[[^\]]*\])"  # size changes: drop
    r"|\*(?:\[([^\]]*)\]|\((..)|(.))"  # strings, e.g. \*(lq
    r"|\[([^\]]*)\]"  # named characters \[em]
    r"|\((..)"  # named characters \(em
    r"|[hvwoDlLxNbkzZ]'[^']*'"  # motions and friends: drop
    r"|n(?:\(..|\[[^\]]*\]|.)"  # number registers: drop
    r"|(.))",
    re.S,
)
_STRINGS = {"lq": "“", "rq": "”", "R": "®", "Tm": "™"}
# Macros whose arguments are text; the value says whether the arguments alternate fonts
# (joined without spaces, as .BR does) or are one run of words (.B).
_FONT_MACROS = {
    "B": False, "I": False, "SM": False, "SB": False,
    "BR": True, "RB": True, "BI": True, "IB": True, "IR": True, "RI": True,
}  # fmt: skip
_BREAKS = {"PP", "P", "LP", "sp", "br", "TP", "TQ", "IP", "HP", "RS", "RE", "nf", "fi", "EX", "EE"}


def _unescape(text: str) -> str:
    def replace(m: re.Match) -> str:
        string = m.group(1) or m.group(2) or m.group(3)
        if string is not None:
            return _STRINGS.get(string, "")
        named = m.group(4) or m.group(5)
        if named is not None:
            if named.startswith("u") and len(named) == 5:
                return chr(int(named[1:], 16))
            return _NAMED.get(named, "")
        single = m.group(6)
        if single is not None:
            return _ESCAPES.get(single, single)
        return ""

    return _ESCAPE_RE.sub(replace, text)


def _args(rest: str) -> list[str]:
    """Macro arguments: split at spaces outside double quotes; ``""`` in quotes is a quote."""
    args, current, quoted, i = [], [], False, 0
    while i < len(rest):
        ch = rest[i]
        if ch == '"':
            if quoted and rest[i + 1 : i + 2] == '"':
                current.append('"')
                i += 1
            elif quoted or not current:
                quoted = not quoted
                if not quoted:
                    args.append("".join(current))
                    current = []
            else:
                current.append(ch)
        elif ch in " \t" and not quoted:
            if current:
                args.append("".join(current))
                current = []
        else:
            current.append(ch)
        i += 1
    if current:
        args.append("".join(current))
    return args


def roff_to_text(lines: Iterable[str]) -> str:
    """Plain text of man(7) source lines: paragraphs joined by "\\n", words by single spaces."""
    paragraphs: list[list[str]] = [[]]
    in_table = table_format = False

    def new_paragraph():
        if paragraphs[-1]:
            paragraphs.append([])

    for raw in lines:
        line = raw.rstrip("\n")
        if line.startswith(('.\\"', "'\\\"", '\\"')) or line.strip() in (".", "'"):
            continue
        if line.startswith((".TS", "'TS")):
            in_table, table_format = True, True
            new_paragraph()
            continue
        if line.startswith((".TE", "'TE")):
            in_table = False
            new_paragraph()
            continue
        if in_table:
            if table_format:  # option and format lines; the last ends with "."
                table_format = not line.rstrip().endswith(".")
                continue
            if line.strip() in ("_", "=") or line.startswith("."):
                continue
            line = line.replace("T{", "").replace("T}", "").replace("\t", " ")
            paragraphs[-1].append(_unescape(line))
            continue
        if line.startswith((".", "'")):
            macro, _, rest = line[1:].strip().partition(" ")
            if macro in _FONT_MACROS:
                args = _args(rest)
                joined = "".join(args) if _FONT_MACROS[macro] else " ".join(args)
                paragraphs[-1].append(_unescape(joined))
            elif macro in ("SS", "SH"):
                new_paragraph()
                paragraphs[-1].append(_unescape(" ".join(_args(rest))))
                new_paragraph()
            elif macro in ("IP", "TP", "TQ", "HP"):
                new_paragraph()
                args = _args(rest)
                if macro == "IP" and args:
                    paragraphs[-1].append(_unescape(args[0]))
            elif macro in ("UR", "MT"):
                pass  # the link text follows; the address is in the argument
            elif macro in ("UE", "ME"):
                paragraphs[-1].append(_unescape(" ".join(_args(rest))))
            elif macro in _BREAKS:
                new_paragraph()
            continue  # every other request (.TH, .ad, .in, .ft, .ne, ...) has no text
        paragraphs[-1].append(_unescape(line))
    out = []
    for words in paragraphs:
        text = " ".join(" ".join(words).split())
        # glue punctuation that a macro line put after a space: ".BR open ()" then "," etc.
        text = re.sub(r" ([,.;:)](?:\s|$))", r"\1", text)
        if text:
            out.append(text)
    return "\n".join(out)


def _join_continuations(source: str) -> list[str]:
    return source.replace("\\\n", "").split("\n")


def parse_man_page(source: str, page: str = "") -> ManPage | None:
    """The NAME summary and DESCRIPTION text of one page, or None for a ``.so`` redirect or a
    page without both sections."""
    lines = _join_continuations(source)
    content = [ln for ln in lines if ln.strip() and not ln.startswith(('.\\"', "'\\\""))]
    if not content or (content[0].startswith(".so ") and len(content) <= 2):
        return None
    sections: dict[str, list[str]] = {}
    current = None
    for line in lines:
        if line.startswith(".SH"):
            current = " ".join(_args(line[3:])).upper()
            sections.setdefault(current, [])
        elif current is not None:
            sections[current].append(line)
    if "NAME" not in sections or "DESCRIPTION" not in sections:
        return None
    name_line = roff_to_text(sections["NAME"]).replace("\n", " ")
    names, sep, summary = name_line.partition(" - ")
    if not sep:
        return None
    description = roff_to_text(sections["DESCRIPTION"])
    if not summary.strip() or not description:
        return None
    return ManPage(page=page, names=names.strip(), summary=summary.strip(), description=description)


def read_man_pages(roots: Iterable[str | os.PathLike]) -> list[ManPage]:
    """Pages under ``root/usr/share/man/man[1-8]/`` of each unpacked package, sorted by file
    name; symlinks and redirects are skipped."""
    pages = []
    for root in roots:
        for path in sorted(pathlib.Path(root).glob("usr/share/man/man[1-8]/*")):
            if path.is_symlink() or not path.is_file():
                continue
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            page = parse_man_page(
                raw.decode("utf-8", errors="replace"), path.name.removesuffix(".gz")
            )
            if page is not None:
                pages.append(page)
    return sorted(pages, key=lambda p: p.page)


def fetch_manpages(cache_dir: str | os.PathLike) -> list[deb.FetchedSource]:
    # manpages-dev's doc folder is a symlink into manpages', which holds the copyright file.
    licenses = {"manpages": LICENSE, "manpages-dev": f"{LICENSE} (copyright file in manpages)"}
    return [deb.fetch_deb(package, cache_dir, licenses[package]) for package in PACKAGES]
