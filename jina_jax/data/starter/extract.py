"""The raw sources of the starter corpus (``jina_jax.data.sources``): fetched once into
``raw/``, parsed into JSON records, one cached extraction per source."""

from __future__ import annotations

import logging
import pathlib
import time
from collections.abc import Callable
from typing import Any

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
from jina_jax.data.starter.cache import StepCache, code_hash

log = logging.getLogger(__name__)


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


def extract_all(
    sources: dict[str, deb.FetchedSource], cache_dir: pathlib.Path, cache: StepCache
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Parsed records of every source (cached), and the cache keys they were made with."""
    out, keys = {}, {}
    for name, (packages, modules, extract) in EXTRACTORS.items():
        keys[name] = {
            "parsers": code_hash(modules),
            "sources": {p: [sources[p].version, sources[p].archive] for p in packages},
        }
        start = time.perf_counter()
        out[name] = cache.get(
            cache_dir / f"{name}.json.gz", keys[name], lambda extract=extract: extract(sources)
        )
        log.info("extracted %s in %.1fs", name, time.perf_counter() - start)
    return out, keys


def source_info(sources: dict[str, deb.FetchedSource]) -> dict[str, Any]:
    """Package, version, archive, license and copyright file of every source (the manifest's
    ``sources``)."""
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
