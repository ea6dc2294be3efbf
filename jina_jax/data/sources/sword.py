"""Bible verses from SWORD zText modules (Debian ``sword-text-kjv``: King James Version,
``sword-text-web``: World English Bible); the same verse in both gives a paraphrase pair (~31k).

Files: ``usr/share/sword/modules/texts/ztext/<module>/{ot,nt}.{bzs,bzv,bzz}``.
- ``.bzs``: 12-byte little-endian records ``<u32 offset, u32 size, u32 uncompressed_size>``,
  one per zlib-compressed block of ``.bzz``.
- ``.bzv``: 10-byte records ``<u32 block, u32 offset, u16 size>``, one per verse slot in the
  module's versification order; ``offset``/``size`` index the decompressed block; size 0 means
  an empty slot.
- Slots are laid out as: 0 module header, 1 testament heading, then per book a book-heading slot
  and per chapter a chapter-heading slot followed by the chapter's verses. Entries are UTF-8
  OSIS markup; a chapter-heading slot carries ``<chapter ... sID="Gen.1"/>``.

Alignment is by (book, chapter, verse), not by slot number: the KJV module uses the KJV
versification but the WEB module (engWEB2015eb) uses NRSVA, which adds the deuterocanonical books
and differs in a few chapters (3 John 1, Revelation 12), so slots drift apart after the first
difference. Chapters whose verse counts differ between the two are skipped. The WEB's last verse
(Revelation 22:21) has the whole glossary appended; the text is cut where the glossary begins.
"""

from __future__ import annotations

import os
import pathlib
import re
import struct
import zlib

from jina_jax.data.sources import deb

PACKAGES = {"sword-text-kjv": "engKJV2006eb", "sword-text-web": "engWEB2015eb"}
LICENSE = {
    "sword-text-kjv": "King James Version: public domain (outside the UK, Crown patent)",
    "sword-text-web": "World English Bible: public domain ('World English Bible' is a trademark)",
}
VerseRef = tuple[str, int, int]  # (OSIS book, chapter, verse)

_CHAPTER_START = re.compile(r'<chapter\b[^>]*\bsID="([^"]+)\.(\d+)"')


def read_ztext(module_dir: str | os.PathLike, testament: str) -> list[str]:
    """Raw entry of every slot of ``testament`` ("ot" or "nt"); "" for an empty slot."""
    folder = pathlib.Path(module_dir)
    bzs = (folder / f"{testament}.bzs").read_bytes()
    bzv = (folder / f"{testament}.bzv").read_bytes()
    bzz = (folder / f"{testament}.bzz").read_bytes()
    blocks = [struct.unpack_from("<III", bzs, i) for i in range(0, len(bzs) - 11, 12)]
    cache: dict[int, bytes] = {}
    entries = []
    for i in range(0, len(bzv) - 9, 10):
        block, offset, size = struct.unpack_from("<IIH", bzv, i)
        if size == 0:
            entries.append("")
            continue
        if block not in cache:
            start, length, _ = blocks[block]
            cache[block] = zlib.decompress(bzz[start : start + length])
        entries.append(cache[block][offset : offset + size].decode("utf-8", errors="replace"))
    return entries


def verse_refs(entries: list[str]) -> dict[int, VerseRef]:
    """slot -> (book, chapter, verse), numbering the slots after each chapter-heading slot.
    The slot before the first chapter of a book is that book's heading, not a verse."""
    refs: dict[int, VerseRef] = {}
    current: tuple[str, int] | None = None
    verse, last = 0, None
    for slot, entry in enumerate(entries):
        match = _CHAPTER_START.search(entry)
        # A heading slot holds markup only; a marker inside text is another work that the
        # module filed under a heading slot (the WEB puts Greek Daniel before Hosea 1).
        if match and not strip_osis(entry):
            book, chapter = match.group(1), int(match.group(2))
            if current is not None and current[0] != book and last is not None:
                refs.pop(last, None)  # the slot before was this book's heading, not a verse
            current, verse = (book, chapter), 0
            continue
        if current is None:
            continue
        verse += 1
        refs[slot] = (current[0], current[1], verse)
        last = slot
    return refs


def strip_osis(entry: str) -> str:
    """Plain text of an OSIS verse: footnotes, cross references and non-canonical titles go,
    other tags are unwrapped; the WEB glossary appended to the last verse is cut off."""
    glossary = re.search(r'<div\b[^>]*type="glossary"', entry)
    if glossary:
        entry = entry[: glossary.start()]
    entry = re.sub(r"<note\b[^>]*/>", " ", entry)
    entry = re.sub(r"<note\b.*?</note>", " ", entry, flags=re.S)
    entry = re.sub(r'<title\b(?![^>]*canonical="true")[^>]*>.*?</title>', " ", entry, flags=re.S)
    entry = re.sub(r"<speaker\b.*?</speaker>", " ", entry, flags=re.S)  # "Beloved" in Song
    entry = re.sub(r"<[^>]+>", "", entry)
    entry = entry.replace("¶", " ")
    return " ".join(entry.split())


def read_verses(module_dir: str | os.PathLike) -> dict[VerseRef, str]:
    """Every non-empty verse of a module, by reference, in canonical order."""
    verses: dict[VerseRef, str] = {}
    for testament in ("ot", "nt"):
        folder = pathlib.Path(module_dir)
        if not (folder / f"{testament}.bzv").exists():
            continue
        entries = read_ztext(folder, testament)
        for slot, ref in verse_refs(entries).items():
            text = strip_osis(entries[slot])
            if text:
                verses[ref] = text
    return verses


def aligned_verses(
    first: dict[VerseRef, str], second: dict[VerseRef, str]
) -> list[tuple[VerseRef, str, str]]:
    """(ref, first text, second text) for verses in both, skipping chapters whose last verse
    numbers differ (their verse numbers need not mean the same verse)."""
    counts_first: dict[tuple[str, int], int] = {}
    counts_second: dict[tuple[str, int], int] = {}
    for counts, verses in ((counts_first, first), (counts_second, second)):
        for book, chapter, verse in verses:
            counts[(book, chapter)] = max(counts.get((book, chapter), 0), verse)
    return [
        (ref, text, second[ref])
        for ref, text in first.items()
        if ref in second and counts_first[ref[:2]] == counts_second[ref[:2]]
    ]


def fetch_sword(cache_dir: str | os.PathLike) -> dict[str, deb.FetchedSource]:
    return {pkg: deb.fetch_deb(pkg, cache_dir, LICENSE[pkg]) for pkg in PACKAGES}


def module_dir(source: deb.FetchedSource) -> pathlib.Path:
    return source.root / "usr/share/sword/modules/texts/ztext" / PACKAGES[source.package]
