"""Held-out splits of the starter corpus: evaluation sets chosen by a stable hash of the
normalised query text (``jina_jax.data.hashing``), so they do not depend on file order, run or
machine, and ``HeldoutFilter``, which keeps every text of an evaluation set out of training."""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import re
from collections.abc import Iterable
from typing import Any

from jina_jax.data import filters
from jina_jax.data.hashing import normalize_text, stable_fraction
from jina_jax.data.records import NegationRecord, PairRecord, STSRecord
from jina_jax.data.starter.config import StarterConfig


def is_heldout(text: str, salt: str, fraction: float) -> bool:
    return stable_fraction(text, salt) < fraction


def heldout_key(text: str) -> str:
    """What "the same text" means for keeping evaluation data out of training: case and
    whitespace folded, and a leading parenthetical usage note (WordNet's "(usually followed by
    `to')") dropped, since the negation anchors are definitions stripped of it."""
    return normalize_text(re.sub(r"^\s*(?:\([^)]*\)\s*)+", "", text))


def text_id(prefix: str, text: str) -> str:
    return f"{prefix}{hashlib.sha1(text.encode()).hexdigest()[:12]}"


@dataclasses.dataclass
class Splits:
    """Training candidates and evaluation sets, before cleaning."""

    pairs: dict[str, list[PairRecord]]
    mlm: dict[str, list[tuple[str, tuple[str, ...]]]]  # (document, texts it contains)
    negation_train: list[NegationRecord]
    beir: dict[str, tuple[dict[str, str], dict[str, str], dict[str, str]]]
    negation_test: list[NegationRecord]
    sts: dict[str, list[STSRecord]]

    def eval_texts(self) -> set[str]:
        """Normalised texts of every evaluation file."""
        texts = set()
        for queries, corpus, _ in self.beir.values():
            texts.update(queries.values(), corpus.values())
        for r in self.negation_test:
            texts.update((r.anchor, r.entailment, r.negative))
        for records in self.sts.values():
            for r in records:
                texts.update((r.sentence1, r.sentence2))
        return {heldout_key(t) for t in texts}


def _unique_counts(texts: Iterable[str]) -> collections.Counter:
    return collections.Counter(normalize_text(t) for t in texts)


def _retrieval_split(rows, query_of, doc_of, salt, fraction, id_of=None):
    """Held-out rows (their query unique in the dataset and hashed below ``fraction``) as a
    BEIR triple, and the remaining rows."""
    counts = _unique_counts(query_of(r) for r in rows)
    queries, corpus, qrels, rest = {}, {}, {}, []
    for row in rows:
        query, doc = query_of(row), doc_of(row)
        if counts[normalize_text(query)] == 1 and is_heldout(query, salt, fraction):
            doc_id = id_of(row) if id_of else text_id("d", doc)
            queries[f"q-{doc_id}"], corpus[doc_id] = query, doc
            qrels[f"q-{doc_id}"] = doc_id
        else:
            rest.append(row)
    return (queries, corpus, qrels), rest


def make_splits(extracted: dict[str, Any], config: StarterConfig) -> Splits:
    """Training candidates and evaluation sets from the extracted records of every source."""
    min_words = config.min_body_words
    pairs: dict[str, list[PairRecord]] = {}
    mlm: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    beir = {}

    rows = [r for r in extracted["debian_descriptions"] if len(r[2].split()) >= min_words]
    beir["debian_descriptions"], rest = _retrieval_split(
        rows, lambda r: r[1], lambda r: r[2], "debian_descriptions", config.heldout_descriptions
    )
    pairs["debian_descriptions"] = [PairRecord(r[1], r[2]) for r in rest]
    mlm["debian_descriptions"] = [(r[3], (r[1], r[2])) for r in rest]

    rows = [r for r in extracted["manpages"] if len(r[2].split()) >= min_words]
    beir["manpages"], rest = _retrieval_split(
        rows, lambda r: r[1], lambda r: r[2], "manpages", config.heldout_manpages, lambda r: r[0]
    )
    pairs["manpages"] = [PairRecord(r[1], r[2]) for r in rest]
    mlm["manpages"] = [(r[2], (r[1], r[2])) for r in rest]

    wn = extracted["wordnet"]
    for name in ("wordnet_synonyms", "wordnet_definitions", "wordnet_examples"):
        pairs[name] = [PairRecord(q, p) for q, p in wn[name]]

    bible = extracted["bible"]
    pairs["bible_paraphrase"] = [PairRecord(kjv, web) for _, kjv, web in bible]
    chapters: dict[str, list[list[str]]] = {}
    for ref, kjv, web in bible:
        chapters.setdefault(ref.rsplit(".", 1)[0], [[], []])
        chapters[ref.rsplit(".", 1)[0]][0].append(kjv)
        chapters[ref.rsplit(".", 1)[0]][1].append(web)
    mlm["bible"] = [(" ".join(v), ()) for both in chapters.values() for v in both]

    faq = [r for r in extracted["python_docs"] if r[4] and r[3].strip()]
    queries, corpus, qrels = {}, {}, {}
    for path, _, heading, body, _ in faq:
        doc_id = text_id("d", path + heading)
        queries[f"q-{doc_id}"], corpus[doc_id], qrels[f"q-{doc_id}"] = heading, body, doc_id
    beir["python_faq"] = (queries, corpus, qrels)
    sections = [r for r in extracted["python_docs"] if not r[4] and len(r[3].split()) >= min_words]
    heading_counts = _unique_counts(r[2] for r in sections)
    pairs["python_docs"] = [
        PairRecord(
            heading
            if heading_counts[normalize_text(heading)] == 1 or heading == title
            else f"{heading} ({title})",
            body,
        )
        for _, title, heading, body, _ in sections
    ]
    mlm["python_docs"] = [(r[3], (r[3],)) for r in sections]

    queries, corpus, qrels = {}, {}, {}
    for number, question, answer in extracted["debian_faq"]:
        doc_id = f"faq-{number}"
        queries[f"q-{doc_id}"], corpus[doc_id], qrels[f"q-{doc_id}"] = question, answer, doc_id
    beir["debian_faq"] = (queries, corpus, qrels)

    negation_train, negation_test = [], []
    for _, _, anchor, entailment, negative in wn["negation"]:
        record = NegationRecord(anchor, entailment, negative)
        held = is_heldout(anchor, "negation", config.negation_test)
        (negation_test if held else negation_train).append(record)

    sts = {"lee_sts": [STSRecord(a, b, float(s)) for a, b, s in extracted["lee"]]}
    return Splits(pairs, mlm, negation_train, beir, negation_test, sts)


@dataclasses.dataclass
class HeldoutFilter:
    """Drops records that share a text (``heldout_key``) with an evaluation file."""

    eval_texts: set[str]
    name: str = "heldout"

    def __call__(self, records, dataset: str = ""):
        records = list(records)
        kept = [
            r
            for r in records
            if not any(heldout_key(t) in self.eval_texts for t in filters.sides(r))
        ]
        removed = {"text in an evaluation split": len(records) - len(kept)}
        report = filters.FilterReport(self.name, dataset, len(records), len(kept), removed)
        return kept, report
