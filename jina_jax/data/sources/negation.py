"""Negation triplets (as in the negation data of jina-embeddings v1, Günther et al. 2023) from
real text: for a WordNet word A with an antonym B, anchor = A's WordNet definition,
entailment = the GCIDE sense of A sharing the most words with the anchor, negative = B's
WordNet definition, kept only when that definition negates (starts with "not", "lacking",
"without" or "no"). About 700 triplets.

A usage note at the start of a WordNet definition, as in "(usually followed by `to') having
the necessary means", is dropped first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from jina_jax.data.records import NegationRecord
from jina_jax.data.sources.wordnet import Synset, SynsetKey, antonym_pairs

NEGATING = re.compile(r"^(?:not|lacking|without|no)\b", re.I)
STOPWORDS = frozenset(
    "a an the of or and to in on for by with as at from that which is be being been are was "
    "it its this these those any some such one who whom whose into than so".split()
)


def plain_definition(synset: Synset) -> str:
    return re.sub(r"^(?:\([^)]*\)\s*)+", "", synset.definition).strip()


def content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if w not in STOPWORDS}


def best_sense(anchor: str, senses: list[str]) -> tuple[str, int]:
    """The sense with the most content words in common with ``anchor`` (the first on ties)
    and that overlap."""
    words = content_words(anchor)
    best, overlap = "", -1
    for sense in senses:
        shared = len(words & content_words(sense))
        if shared > overlap:
            best, overlap = sense, shared
    return best, overlap


def negation_triplets(
    synsets: Mapping[SynsetKey, Synset],
    gcide: Mapping[str, list[str]],
    min_overlap: int = 1,
) -> list[tuple[str, str, NegationRecord]]:
    """(word A, antonym B, triplet), one per distinct (anchor, negative), in WordNet order.
    ``gcide`` maps lower-cased headwords to senses (``gcide.read_definitions``)."""
    out, seen = [], set()
    for word, synset, antonym, antonym_synset in antonym_pairs(synsets):
        anchor, negative = plain_definition(synset), plain_definition(antonym_synset)
        if not anchor or not negative or not NEGATING.match(negative):
            continue
        if (anchor, negative) in seen:
            continue
        entailment, overlap = best_sense(anchor, gcide.get(word.lower(), []))
        if overlap < min_overlap or entailment.lower() == anchor.lower():
            continue
        seen.add((anchor, negative))
        out.append((word, antonym, NegationRecord(anchor, entailment, negative)))
    return out
