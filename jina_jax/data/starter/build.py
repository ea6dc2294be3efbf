"""``build_starter``: every step of a starter build, cached (see the package docstring for the
folder layout), and ``summary``, its counts and filter report as text."""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import pathlib
import time
from typing import Any

from jina_jax.data import filters
from jina_jax.data.sources import deb
from jina_jax.data.starter.cache import (
    StepCache,
    code_hash,
    read_json,
    write_beir,
    write_json,
    write_jsonl,
    write_texts,
)
from jina_jax.data.starter.cleaning import clean_pair_dataset
from jina_jax.data.starter.config import StarterConfig
from jina_jax.data.starter.corpus import PAIR_DATASETS
from jina_jax.data.starter.extract import extract_all, fetch_sources, source_info
from jina_jax.data.starter.splits import HeldoutFilter, heldout_key, make_splits

log = logging.getLogger(__name__)


def built_manifest(config: StarterConfig) -> dict[str, Any] | None:
    """The manifest of a complete build with ``config``'s settings in ``config.data_dir``; None
    when there is none or ``config.force`` is set."""
    manifest_path = pathlib.Path(config.data_dir) / "manifest.json"
    if config.force or not manifest_path.is_file():
        return None
    manifest = read_json(manifest_path)
    complete = all(pathlib.Path(f).exists() for f in manifest.get("files", {}).values())
    if complete and manifest.get("config") == json.loads(json.dumps(config.key())):
        log.info("%s is up to date", manifest_path)
        return manifest
    return None


def build_starter(config: StarterConfig, embedder: Any) -> dict[str, Any]:
    """Builds (or finds cached) everything under ``config.data_dir``; returns the manifest.

    ``embedder``: the auxiliary model of the consistency filter and the hard-negative mining,
    an object with ``embed(texts, *, max_length=None) -> [N, D]`` L2-normalised rows and a
    ``name`` (``jina_jax.loading.load_embedder(config.aux_model, ...)``, as the CLI makes it).
    It is only called for the steps that are not cached."""
    manifest = built_manifest(config)
    if manifest is not None:
        return manifest
    root = pathlib.Path(config.data_dir)
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
    language_filter: filters.LanguageFilter | None = None

    tick = time.perf_counter()
    cleaned, reports = {}, []
    for name in PAIR_DATASETS:
        key = {"config": config.key(), "extract": extract_keys, "filters": code_hash([filters])}

        def compute(name=name):
            nonlocal language_filter
            language_filter = language_filter or filters.LanguageFilter()
            start = time.perf_counter()
            out = clean_pair_dataset(
                name, splits.pairs[name], eval_texts, config, embedder, language_filter
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
        "sources": source_info(sources),
        "filter_reports": [dataclasses.asdict(r) for r in reports],
        "cache_hits": cache.hits,
    }
    write_json(root / "manifest.json", manifest)
    return manifest


def summary(manifest: dict[str, Any]) -> str:
    """The build's file counts, filter report and timings as Markdown."""
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
