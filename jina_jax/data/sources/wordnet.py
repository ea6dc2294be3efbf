"""WordNet 3.0 (Debian ``wordnet-base``): synonym pairs, lemma -> definition, definition ->
example sentence, and antonym pointers for the negation triplets.

``usr/share/wordnet/data.{noun,verb,adj,adv}`` (latin-1). License lines start with two spaces.
A synset line is ``offset lexfile sstype w_cnt(2 hex digits) [word lex_id(hex)]*w_cnt
p_cnt(3 decimal digits) [symbol offset pos source/target(4 hex digits)]*p_cnt [frames] | gloss``.
Words use ``_`` for spaces and adjectives may carry a ``(a)``/``(p)``/``(ip)`` marker. In the
gloss, quoted parts are example sentences and the other ``;``-separated parts are definitions.
Pointer ``!`` is an antonym; source/target ``0000`` means the whole synset, otherwise the
1-based word numbers in the two synsets. Pointer pos ``a``/``s`` -> data.adj, ``n`` -> noun,
``v`` -> verb, ``r`` -> adv.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import pathlib
import re
from collections.abc import Iterable, Mapping

from jina_jax.data.sources import deb

PACKAGE = "wordnet-base"
LICENSE = "WordNet 3.0 license (Princeton University; BSD-like, keep the copyright notice)"
FILES = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}

SynsetKey = tuple[str, int]  # (file: noun/verb/adj/adv, byte offset)


@dataclasses.dataclass(frozen=True)
class Pointer:
    symbol: str
    target: SynsetKey
    source_word: int  # 1-based word number in this synset, 0 = the whole synset
    target_word: int


@dataclasses.dataclass(frozen=True)
class Synset:
    key: SynsetKey
    pos: str  # n, v, a, s, r
    words: tuple[str, ...]
    pointers: tuple[Pointer, ...]
    definitions: tuple[str, ...]
    examples: tuple[str, ...]

    @property
    def definition(self) -> str:
        return "; ".join(self.definitions)


def clean_word(word: str) -> str:
    return re.sub(r"\([a-z]+\)$", "", word).replace("_", " ")


def split_gloss(gloss: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(definitions, examples): the gloss splits at ``;`` outside quotes; a part that starts
    with a quote holds example sentences (an attribution after them is dropped), any other part
    is a definition (quotes inside it, as in ``(especially in the phrase "make headway")``,
    stay)."""
    parts, current, quoted = [], [], False
    for ch in gloss:
        if ch == '"':
            quoted = not quoted
        if ch == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    definitions, examples = [], []
    for part in (" ".join(p.split()) for p in parts):
        if part.startswith('"'):
            examples += [e.strip() for e in re.findall(r'"([^"]*)"', part) if e.strip()]
        elif part.strip(" ,:"):
            definitions.append(part.strip(" ,:"))
    return tuple(definitions), tuple(examples)


def parse_data_line(line: str, file: str) -> Synset | None:
    """One synset from a line of ``data.<file>``; None for license/comment lines."""
    if not line or line.startswith(" "):
        return None
    data, _, gloss = line.partition(" | ")
    fields = data.split()
    offset, pos, n_words = int(fields[0]), fields[2], int(fields[3], 16)
    words = tuple(clean_word(fields[4 + 2 * i]) for i in range(n_words))
    at = 4 + 2 * n_words
    n_pointers = int(fields[at])
    pointers = []
    for i in range(n_pointers):
        symbol, target, target_pos, source_target = fields[at + 1 + 4 * i : at + 5 + 4 * i]
        pointers.append(
            Pointer(
                symbol=symbol,
                target=(FILES[target_pos], int(target)),
                source_word=int(source_target[:2], 16),
                target_word=int(source_target[2:], 16),
            )
        )
    definitions, examples = split_gloss(gloss.strip())
    return Synset((file, offset), pos, words, tuple(pointers), definitions, examples)


def read_wordnet(dict_dir: str | os.PathLike) -> dict[SynsetKey, Synset]:
    """All synsets of ``dict_dir/data.{noun,verb,adj,adv}``, keyed by (file, offset)."""
    synsets = {}
    for file in ("noun", "verb", "adj", "adv"):
        with open(pathlib.Path(dict_dir) / f"data.{file}", encoding="latin-1") as f:
            for line in f:
                synset = parse_data_line(line.rstrip("\n"), file)
                if synset is not None:
                    synsets[synset.key] = synset
    return synsets


def synonym_pairs(synsets: Iterable[Synset], max_per_synset: int = 3) -> list[tuple[str, str]]:
    """(word, other word of the same synset); at most ``max_per_synset`` pairs per synset so
    that large synsets do not dominate."""
    out = []
    for synset in synsets:
        words = list(dict.fromkeys(synset.words))
        pairs = [(a, b) for a, b in itertools.combinations(words, 2) if a.lower() != b.lower()]
        out += pairs[:max_per_synset]
    return out


def definition_pairs(synsets: Iterable[Synset]) -> list[tuple[str, str]]:
    """(word, the synset's definition) for every word of every synset with a definition."""
    return [
        (word, synset.definition)
        for synset in synsets
        if synset.definitions
        for word in dict.fromkeys(synset.words)
    ]


def example_pairs(synsets: Iterable[Synset]) -> list[tuple[str, str]]:
    """(the synset's definition, one of its example sentences)."""
    return [
        (synset.definition, example)
        for synset in synsets
        if synset.definitions
        for example in synset.examples
    ]


def antonym_pairs(
    synsets: Mapping[SynsetKey, Synset],
) -> list[tuple[str, Synset, str, Synset]]:
    """(word A, A's synset, antonym B, B's synset) for every lexical ``!`` pointer."""
    out = []
    for synset in synsets.values():
        for pointer in synset.pointers:
            if pointer.symbol != "!" or pointer.target not in synsets:
                continue
            target = synsets[pointer.target]
            if not (0 < pointer.source_word <= len(synset.words)):
                continue
            if not (0 < pointer.target_word <= len(target.words)):
                continue
            out.append(
                (
                    synset.words[pointer.source_word - 1],
                    synset,
                    target.words[pointer.target_word - 1],
                    target,
                )
            )
    return out


def fetch_wordnet(cache_dir: str | os.PathLike) -> deb.FetchedSource:
    return deb.fetch_deb(PACKAGE, cache_dir, LICENSE)


def wordnet_dir(source: deb.FetchedSource) -> pathlib.Path:
    return source.root / "usr/share/wordnet"
