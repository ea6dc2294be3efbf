"""Debian package descriptions from the apt index ``Translation-en``: short description ->
first paragraph of the long description (~61k records, ~33k distinct first paragraphs).

File format (lz4 frame compressed): records separated by blank lines; a record has
``Package: NAME``, ``Description-md5: ...`` and ``Description-en: SHORT`` followed by the long
description as continuation lines that start with a space. A continuation line `` .`` is a
paragraph break; lines starting with two spaces are preformatted (kept on their own line).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator

from jina_jax.data.sources import deb

APT_LISTS = pathlib.Path("/var/lib/apt/lists")
LICENSE = (
    "Debian package descriptions: each is part of its package's debian/control and under that "
    "package's license (Debian main: DFSG-free)"
)


@dataclasses.dataclass(frozen=True)
class PackageDescription:
    package: str
    short: str
    paragraphs: tuple[str, ...]  # the long description, one string per paragraph

    @property
    def long(self) -> str:
        return "\n".join(self.paragraphs)


def parse_translation(text: str) -> Iterator[PackageDescription]:
    """Records of a decompressed Translation-en file, in file order."""
    for chunk in re.split(r"\n[ \t]*\n", text):
        package, short, lines, in_description = "", "", [], False
        for line in chunk.split("\n"):
            if line.startswith("Package:"):
                package = line.partition(":")[2].strip()
                in_description = False
            elif line.startswith("Description-"):
                short = line.partition(":")[2].strip()
                in_description = True
            elif in_description and line.startswith(" "):
                lines.append(line)
            else:
                in_description = False
        if package and short:
            yield PackageDescription(package, short, _paragraphs(lines))


def _paragraphs(lines: list[str]) -> tuple[str, ...]:
    paragraphs, current = [], []
    for line in lines:
        if line.strip() == ".":
            paragraphs.append(current)
            current = []
        elif line.startswith("  "):  # preformatted: keep the line break
            current.append("\n" + line.strip())
        else:
            current.append(line.strip())
    paragraphs.append(current)
    out = []
    for words in paragraphs:
        text = re.sub(r" *\n *", "\n", " ".join(words)).strip()
        if text:
            out.append(text)
    return tuple(out)


def decompress_lz4(path: str | os.PathLike) -> str:
    """Text of an lz4-framed file, with the ``lz4`` package or else the ``lz4cat`` tool."""
    try:  # optional: the lz4 package, else the lz4cat tool
        import lz4.frame
    except ImportError:
        if shutil.which("lz4cat") is None:
            raise ImportError(
                "reading Translation-en needs the lz4 package (pip install lz4) or lz4cat "
                "(Debian package lz4)"
            ) from None
        data = subprocess.run(["lz4cat", str(path)], check=True, capture_output=True).stdout
    else:
        with lz4.frame.open(path, "rb") as f:
            data = f.read()
    return data.decode("utf-8", errors="replace")


def read_translations(paths: Iterable[str | os.PathLike]) -> Iterator[PackageDescription]:
    for path in paths:
        path = pathlib.Path(path)
        text = decompress_lz4(path) if path.suffix == ".lz4" else path.read_text("utf-8")
        yield from parse_translation(text)


def first_paragraph_pairs(
    descriptions: Iterable[PackageDescription],
) -> list[tuple[PackageDescription, str, str]]:
    """(record, short description, first paragraph), one per distinct first paragraph
    (compared case- and whitespace-insensitively; the first package in file order wins)."""
    seen, out = set(), []
    for record in descriptions:
        if not record.paragraphs:
            continue
        first = " ".join(record.paragraphs[0].split())
        key = first.casefold()
        if key in seen:
            continue
        seen.add(key)
        out.append((record, record.short, first))
    return out


def fetch_translations(cache_dir: str | os.PathLike) -> deb.FetchedSource:
    """Copies the ``*_i18n_Translation-en.lz4`` apt lists into ``cache_dir/translation-en``,
    running ``apt-get update -o Acquire::Languages=en`` first if there are none."""
    folder = pathlib.Path(cache_dir) / "translation-en"
    cached = deb.load_fetched(folder)
    if cached is not None:
        return cached
    lists = sorted(APT_LISTS.glob("*_i18n_Translation-en.lz4"))
    if not lists:
        deb.apt_update()
        lists = sorted(APT_LISTS.glob("*_i18n_Translation-en.lz4"))
    if not lists:
        raise FileNotFoundError(f"no Translation-en lists in {APT_LISTS} after apt-get update")
    root = folder / "root"
    root.mkdir(parents=True, exist_ok=True)
    versions = []
    for path in lists:
        shutil.copy2(path, root / path.name)
        release = path.name.split("_main_")[0] + "_InRelease"
        date = _release_date(APT_LISTS / release)
        versions.append(f"{path.name.split('_dists_')[-1].split('_main_')[0]} {date}".strip())
    return deb.save_fetched(
        folder,
        deb.FetchedSource(
            package="apt Translation-en",
            version="; ".join(versions),
            root=root,
            archive=", ".join(p.name for p in lists),
            license=LICENSE,
        ),
    )


def _release_date(path: pathlib.Path) -> str:
    if not path.is_file():
        return ""
    match = re.search(r"^Date:\s*(.+)$", path.read_text(errors="replace"), re.M)
    return match.group(1).strip() if match else ""
