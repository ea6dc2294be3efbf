"""Runs evaluators on a model (an alias, a Hugging Face / sentence-transformers folder, e.g. an
export, or a training workdir stage folder) or on the TF-IDF baseline (``--model tfidf``).

    python -m jina_jax.evaluate --model all-MiniLM-L6-v2 --evals retrieval:python_faq,negation,sts
    python -m jina_jax.evaluate --model runs/demo/pairs --evals retrieval --out results.json
    python -m jina_jax.evaluate --model tfidf --evals retrieval,sts,negation

An eval is ``type`` or ``type:dataset``; the dataset is a starter name or a path. ``retrieval``
alone runs every starter retrieval set; the other types default to their offline starter task
(sts: lee_sts, negation / pair_classification: the held-out negation triplets, reranking:
debian_faq, classification: starter_domains, clustering: manpage_sections).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from collections.abc import Sequence
from typing import Any

from jina_jax.embedders import TfidfEmbedder
from jina_jax.errors import EXPECTED, report
from jina_jax.evaluators import EVALUATORS, run_evaluator
from jina_jax.evaluators.common import load_starter
from jina_jax.loading import load_embedder


def parse_evals(text: str, data_dir: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    """ "retrieval:python_faq,sts" -> [(label, type, arguments)]."""
    out = []
    for spec in (s.strip() for s in text.split(",")):
        if not spec:
            continue
        type_name, _, dataset = spec.partition(":")
        if type_name not in EVALUATORS:
            raise ValueError(
                f"unknown eval type {type_name!r} in {spec!r}; known: {sorted(EVALUATORS)}"
            )
        if type_name == "retrieval" and not dataset:
            for name in load_starter(data_dir).beir_folders:
                out.append((f"retrieval:{name}", type_name, {"dataset": name}))
            continue
        out.append((spec, type_name, {"dataset": dataset} if dataset else {}))
    if not out:
        raise ValueError("no evals given")
    return out


def format_results(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| eval | metric | value |", "|---|---|---:|"]
    for label, metrics in results.items():
        for name, value in metrics.items():
            shown = f"{value:.4f}" if isinstance(value, float) else str(value)
            lines.append(f"| {label} | {name} | {shown} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jina_jax.evaluate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--model", required=True, help="alias, HF folder, workdir stage folder, or tfidf"
    )
    parser.add_argument("--evals", default="retrieval,sts,negation", help="comma-separated")
    parser.add_argument("--data-dir", default=None, help="starter corpus (data_cache/starter)")
    parser.add_argument("--out", type=pathlib.Path, default=None, help="write results as JSON")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=None, help="default: the model's")
    args = parser.parse_args(argv)
    try:
        return _evaluate(args)
    except (*EXPECTED, ValueError) as e:
        return report("evaluate", e)


def _evaluate(args) -> int:
    evals = parse_evals(args.evals, args.data_dir)
    if args.model == "tfidf":
        embedder = TfidfEmbedder()
    else:
        embedder = load_embedder(args.model, batch_size=args.batch_size)
    common = {"data_dir": args.data_dir, "batch_size": args.batch_size}
    if args.max_length:
        common["max_length"] = args.max_length
    results, seconds = {}, {}
    for label, type_name, arguments in evals:
        start = time.perf_counter()
        results[label] = run_evaluator(type_name, embedder, **common, **arguments)
        seconds[label] = round(time.perf_counter() - start, 1)
        print(f"{label}: {results[label]} ({seconds[label]}s)", flush=True)
    print(format_results(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"model": args.model, "results": results, "seconds": seconds}
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
