"""Runs evaluators on a model (an alias, a Hugging Face / sentence-transformers folder, e.g. an
export, or a training workdir stage folder) or on the TF-IDF baseline (``--model tfidf``).

    python -m jina_jax.evaluate --model all-MiniLM-L6-v2 --evals retrieval:python_faq,negation,sts
    python -m jina_jax.evaluate --model runs/demo/pairs --evals retrieval --out results.json
    python -m jina_jax.evaluate --model tfidf --evals retrieval,sts,negation
    python -m jina_jax.evaluate --model all-MiniLM-L6-v2 --evals retrieval:python_faq,sts \
        --precisions float32,int8,binary --rescore 100 --dims 256,128,64

An eval is ``type`` or ``type:dataset``; the dataset is a starter name or a path. ``retrieval``
alone runs every starter retrieval set; the other types default to their offline starter task
(sts: lee_sts, negation / pair_classification: the held-out negation triplets, reranking:
debian_faq, classification: starter_domains, clustering: manpage_sections).

``--precisions`` / ``--rescore`` (retrieval) and ``--dims`` (retrieval, sts, negation; default:
the model's own Matryoshka dims) score quantised indexes and truncated embeddings of a dense
model, as the 'evaluate' stage's ``config.evaluate`` does (``evaluation_options``); each such
result also prints as a table of sizes x precisions.
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
from jina_jax.evaluators import (
    EVALUATORS,
    HEADLINE,
    evaluation_options,
    has_variants,
    precision_table,
    run_evaluator,
)
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
    parser.add_argument(
        "--precisions", default="float32", help="retrieval indexes: of float32,int8,binary"
    )
    parser.add_argument(
        "--rescore", type=int, default=0, help="re-rank this many int8/binary candidates"
    )
    parser.add_argument(
        "--dims",
        default=None,
        help="truncations, e.g. 256,128 ('none': none; default: the model's Matryoshka dims)",
    )
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
    entries = {label: {"type": type_name, **arguments} for label, type_name, arguments in evals}
    entries = evaluation_options(entries, embedder, **_options(args, embedder))
    results, seconds = {}, {}
    for label, entry in entries.items():
        start = time.perf_counter()
        arguments = {k: v for k, v in entry.items() if k != "type"}
        results[label] = run_evaluator(entry["type"], embedder, **common, **arguments)
        seconds[label] = round(time.perf_counter() - start, 1)
        print(f"{label}: {results[label]} ({seconds[label]}s)", flush=True)
    print(format_results(results))
    for label, entry in entries.items():
        metric = HEADLINE[entry["type"]]
        if has_variants(results[label], metric):
            print(f"\n{label}:\n{precision_table(results[label], metric)}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"model": args.model, "results": results, "seconds": seconds}
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


def _options(args, embedder) -> dict[str, Any]:
    """``evaluation_options``' keywords from the command line."""
    precisions = tuple(p.strip() for p in args.precisions.split(",") if p.strip())
    if args.dims is None:
        dims = getattr(getattr(embedder, "model", None), "matryoshka_dims", ())
    elif args.dims.strip().lower() == "none":
        dims = ()
    else:
        try:
            dims = tuple(int(d) for d in args.dims.split(",") if d.strip())
        except ValueError:
            raise ValueError(f"--dims {args.dims!r}: comma-separated integers, or none") from None
    return {"precisions": precisions, "rescore": args.rescore, "dims": dims}


if __name__ == "__main__":
    sys.exit(main())
