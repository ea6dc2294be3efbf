"""Sequence length (the v2 paper's figure): long-document retrieval score against the token
limit documents are truncated to (128, 256, 512, ... up to the model's limit).

    python -m experiments.sequence_length --out experiments/results/sequence_length
    python -m experiments.sequence_length --out DIR --models all-MiniLM-L6-v2,runs/v2/pairs

Offline stand-in for NarrativeQA: one BEIR-style set from the starter's held-out man pages
(NAME summary -> DESCRIPTION), Python FAQ and Debian FAQ (question -> answer), all documents in
one corpus, queries kept only when their relevant document is longer than ``--min-doc-tokens``
(so that truncation can hide the answer). Queries are always embedded at
``--query-max-length``; only documents are truncated. Writes the set (``long_docs/``), a
table, and ``sequence_length.png``. Online (``--online``) the paper's long-document tasks
(NarrativeQA retrieval, BigPatent and WikiCities clustering) would run through mteb.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time
from collections.abc import Sequence
from typing import Any

from experiments.common import markdown_table, setup, write_outputs

NAME = "sequence_length"
SOURCES = ("manpages", "python_faq", "debian_faq")
ONLINE_TASKS = ("NarrativeQARetrieval", "BigPatentClustering", "WikiCitiesClustering")
DEFAULT_LIMITS = (64, 128, 256, 512, 1024, 2048, 4096, 8192)


def build_long_doc_set(
    data_dir, folder: pathlib.Path, tokenizer, *, min_doc_tokens: int, sources=SOURCES
) -> dict[str, Any]:
    """Writes the merged BEIR folder; returns its statistics."""
    from jina_jax.evaluators.common import load_starter

    starter = load_starter(data_dir)
    corpus, queries, qrels = {}, {}, {}
    for name in sources:
        data = starter.beir(name)
        corpus |= {f"{name}/{d}": text for d, text in data.corpus.items()}
        for q, judged in data.qrels.items():
            if q in data.queries:
                queries[f"{name}/{q}"] = data.queries[q]
                qrels[f"{name}/{q}"] = {f"{name}/{d}": r for d, r in judged.items()}
    ids = list(corpus)
    tokens, _ = tokenizer.encode_batch([corpus[d] for d in ids], 1_000_000)
    length = {d: len(t) for d, t in zip(ids, tokens)}
    kept = {
        q: judged
        for q, judged in qrels.items()
        if any(r > 0 and length.get(d, 0) > min_doc_tokens for d, r in judged.items())
    }
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as f:
        for d in ids:
            f.write(
                json.dumps({"_id": d, "title": "", "text": corpus[d]}, ensure_ascii=False) + "\n"
            )
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        for q in kept:
            f.write(json.dumps({"_id": q, "text": queries[q]}, ensure_ascii=False) + "\n")
    with open(folder / "qrels" / "test.tsv", "w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q, judged in kept.items():
            for d, r in judged.items():
                f.write(f"{q}\t{d}\t{r}\n")
    relevant = sorted(length[d] for judged in kept.values() for d in judged if d in length)
    return {
        "documents": len(ids),
        "queries": len(kept),
        "relevant_doc_tokens_median": relevant[len(relevant) // 2] if relevant else 0,
        "relevant_doc_tokens_max": relevant[-1] if relevant else 0,
        "corpus_tokens_max": max(length.values()),
    }


def model_limit(model) -> int:
    return int(model.config.max_length)


def limits_for(model, limits: Sequence[int]) -> list[int]:
    return [n for n in limits if n <= model_limit(model)]


def make_table(results: dict[str, dict[int, float]]) -> str:
    limits = sorted({n for scores in results.values() for n in scores})
    rows = [[model, *(scores.get(n) for n in limits)] for model, scores in results.items()]
    return markdown_table(["model \\ max tokens", *map(str, limits)], rows)


def plot(results: dict[str, dict[int, float]], path: pathlib.Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for model, scores in results.items():
        limits = sorted(scores)
        ax.plot(limits, [scores[n] for n in limits], marker="o", label=model)
    ax.set_xscale("log", base=2)
    all_limits = sorted({n for s in results.values() for n in s})
    ax.set_xticks(all_limits, [str(n) for n in all_limits])
    ax.set_xlabel("document truncation limit (tokens)")
    ax.set_ylabel("nDCG@10 x100")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{NAME}", description=__doc__)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--models", default="all-MiniLM-L6-v2", help="comma-separated")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--limits", default=",".join(map(str, DEFAULT_LIMITS)))
    parser.add_argument("--min-doc-tokens", type=int, default=256)
    parser.add_argument("--query-max-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--online", action="store_true", help=f"also run {', '.join(ONLINE_TASKS)}")
    args = parser.parse_args(argv)
    setup()
    started = time.perf_counter()

    import jina_jax
    from jina_jax.evaluators import run_evaluator

    limits = [int(n) for n in args.limits.split(",") if n]
    folder = args.out / "long_docs"
    results: dict[str, dict[int, float]] = {}
    stats: dict[str, Any] = {}
    details: dict[str, Any] = {}
    for name in [m for m in args.models.split(",") if m]:
        model = jina_jax.load_model(name)
        if not stats:
            stats = build_long_doc_set(
                args.data_dir, folder, model.tokenizer, min_doc_tokens=args.min_doc_tokens
            )
            print(f"long-document set: {stats}", flush=True)
        results[name], details[name] = {}, {}
        for limit in limits_for(model, limits):
            metrics = run_evaluator(
                "retrieval",
                model,
                dataset=str(folder),
                max_length=limit,
                query_max_length=args.query_max_length,
                batch_size=args.batch_size,
            )
            results[name][limit] = 100 * metrics["ndcg_at_10"]
            details[name][limit] = metrics
            print(f"[{name}] {limit} tokens: nDCG@10 {results[name][limit]:.2f}", flush=True)
        skipped = [n for n in limits if n > model_limit(model)]
        if skipped:
            print(f"[{name}] position limit {model_limit(model)}: skipped {skipped}", flush=True)

    online_note = "Offline: would also run " + ", ".join(ONLINE_TASKS) + " with --online."
    if args.online:
        from experiments.mteb_table import run_online_tasks

        for name in results:
            details[name]["online"] = run_online_tasks(jina_jax.load_model(name), ONLINE_TASKS)
        online_note = "Online tasks in results.json."
    plot(results, args.out / "sequence_length.png", "Long-document retrieval (starter)")
    table = make_table(results)
    notes = [
        f"nDCG@10 x100 on the starter long-document set: {stats['queries']} queries whose "
        f"relevant document has more than {args.min_doc_tokens} tokens (median "
        f"{stats['relevant_doc_tokens_median']}, max {stats['relevant_doc_tokens_max']}), "
        f"{stats['documents']} documents ({', '.join(SOURCES)}). Documents truncated at each "
        f"limit, queries at {args.query_max_length}. Limits above a model's position limit "
        "are left out (absolute positions: 512 for all-MiniLM-L6-v2, which was trained at 256; "
        "ALiBi JinaBERT: 8192).",
        "Plot: sequence_length.png.",
        online_note,
    ]
    config = {k: (str(v) if isinstance(v, pathlib.Path) else v) for k, v in vars(args).items()}
    config["long_doc_set"] = stats
    config["online_tasks"] = list(ONLINE_TASKS)
    write_outputs(
        args.out,
        name=NAME,
        table=table,
        config=config,
        results={"ndcg_at_10": results, "details": details},
        started=started,
        notes=notes,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
