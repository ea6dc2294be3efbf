"""Negation: easy / hard negation error rates before and after fine-tuning on negation triplets
(the v1 paper's table: all-MiniLM-L6-v2 8% -> 5% easy there), with held-out retrieval nDCG@10
before and after, which must not fall by more than ``--max-retrieval-drop`` points.

    python -m experiments.negation --out experiments/results/negation
    python -m experiments.negation --out DIR --models all-MiniLM-L6-v2,runs/v2/pairs --steps 40

Fine-tuning is the triplets stage (InfoNCE with the negative in the denominator, in-batch
negatives, temperature 0.05) from each model, on the starter's training negation triplets
(``starter:negation``; held-out triplets never enter training), optionally mixed with the
starter's mined retrieval triplets (``--mix``) so that retrieval is not forgotten. Few steps
at a small learning rate keep the retrieval score where it was.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import re
import time
from collections.abc import Sequence
from typing import Any

from experiments.common import (
    HELD_OUT_RETRIEVAL,
    finetune,
    held_out_scores,
    markdown_table,
    setup,
    write_outputs,
)
from experiments.stats import (
    NO,
    format_interval,
    format_mean_std,
    paired_bootstrap,
    per_query_matrix,
)

NAME = "negation"
PAPER = {"all-MiniLM-L6-v2": {"easy": (8.0, 5.0)}}  # the paper's easy error rates, %
ONLINE_DATASET = "jinaai/negation-dataset-v2"


def negation_errors(
    model,
    data_dir: str | None,
    max_length: int | None,
    per_triplet: bool = False,
    dataset: str = "test",
) -> dict[str, Any]:
    """Easy / hard error in %, and with ``per_triplet`` each triplet's hard error (0/1).
    ``dataset``: "test" (the starter's held-out triplets) or a jsonl / parquet file in the
    jinaai/negation-dataset layout (anchor, entailment, negative)."""
    from jina_jax.evaluators import run_evaluator

    metrics = run_evaluator(
        "negation",
        model,
        dataset=dataset,
        data_dir=data_dir,
        max_length=max_length,
        per_triplet=per_triplet,
    )
    out = {
        "easy_error": 100 * metrics["easy_error_rate"],
        "hard_error": 100 * metrics["hard_error_rate"],
        "num_triplets": metrics["num_triplets"],
    }
    if per_triplet:
        out["per_triplet_hard_error"] = metrics["per_triplet_hard_error"]
    return out


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def make_table(rows: Sequence[dict[str, Any]], retrieval_sets: Sequence[str]) -> str:
    """One row per model: easy/hard error before -> after, mean nDCG@10 before -> after, and
    each retrieval set; "after" is mean ± std over the fine-tuning seeds (``row["afters"]``)."""
    headers = [
        "model",
        "easy err. before",
        "easy err. after",
        "hard err. before",
        "hard err. after",
        "nDCG@10 before",
        "nDCG@10 after",
        "change",
    ]
    headers += [f"{name} before / after" for name in retrieval_sets]
    keys = [f"retrieval:{name}" for name in retrieval_sets]
    table = []
    for row in rows:
        before, afters = row["before"], row["afters"]
        mean_before = mean(before[k] for k in keys)
        means_after = [mean(after[k] for k in keys) for after in afters]
        table.append(
            [
                row["model"],
                before["easy_error"],
                format_mean_std([a["easy_error"] for a in afters], 2),
                before["hard_error"],
                format_mean_std([a["hard_error"] for a in afters], 2),
                mean_before,
                format_mean_std(means_after, 2),
                f"{mean(means_after) - mean_before:+.2f}",
                *(f"{before[k]:.2f} / {format_mean_std([a[k] for a in afters], 2)}" for k in keys),
            ]
        )
    return markdown_table(headers, table)


def check(
    rows: Sequence[dict[str, Any]], retrieval_sets: Sequence[str], max_drop: float
) -> list[str]:
    """Lines saying whether fine-tuning lowered the hard error and kept retrieval: the mean over
    seeds, on the mean of the sets and on every set, within ``max_drop`` nDCG@10 points."""
    lines = []
    keys = [f"retrieval:{name}" for name in retrieval_sets]
    for row in rows:
        afters = row["afters"]
        after = {k: mean(a[k] for a in afters) for k in [*keys, "hard_error"]}
        drops = {k: row["before"][k] - after[k] for k in keys}
        mean_drop = mean(drops.values())
        worst = max(drops, key=drops.get)
        kept = mean_drop <= max_drop and drops[worst] <= max_drop
        hard = after["hard_error"] < row["before"]["hard_error"]
        lines.append(
            f"- {row['model']}: hard-negation error {'fell' if hard else 'did NOT fall'} "
            f"({row['before']['hard_error']:.1f}% -> {after['hard_error']:.1f}%, mean of "
            f"{len(afters)} seeds); mean held-out nDCG@10 changed by {-mean_drop:+.2f} points, "
            f"the largest single-set change {-drops[worst]:+.2f} "
            f"({worst.removeprefix('retrieval:')}): "
            f"{'within' if kept else 'OUTSIDE'} the {max_drop}-point budget."
        )
    return lines


def comparisons(row: dict[str, Any]) -> list[dict[str, Any]]:
    """After (seeds averaged per item) against before, paired bootstrap: the hard error over
    the test triplets (the paper's direction: lower) and nDCG@10 over the pooled held-out
    retrieval queries (kept unless significantly lower)."""
    hard = paired_bootstrap(
        [row["before"]["per_triplet_hard_error"]],
        [a["per_triplet_hard_error"] for a in row["afters"]],
        expected="lower",
    )
    queries, before = per_query_matrix([row["before_queries"]])
    _, after = per_query_matrix(row["after_queries"], queries)
    retrieval = paired_bootstrap(before, after, expected="higher")
    kept = "no" if retrieval.verdict == NO else f"yes ({retrieval.verdict})"
    return [
        {
            "model": row["model"],
            "comparison": "hard-negation error, after - before (x100: points of %)",
            "paper": "lower (v1: fine-tuning on negation triplets lowers the error)",
            **vars(
                dataclasses.replace(
                    hard, difference=100 * hard.difference, low=100 * hard.low, high=100 * hard.high
                )
            ),
        },
        {
            "model": row["model"],
            "comparison": "held-out nDCG@10 x100, after - before",
            "paper": "not lower (retrieval kept)",
            **vars(retrieval),
            "verdict": kept,
        },
    ]


def comparison_table(compared: Sequence[dict[str, Any]]) -> str:
    return markdown_table(
        ["model", "comparison", "paper / goal", "difference [95% CI]", "same direction?"],
        [
            [
                c["model"],
                c["comparison"],
                c["paper"],
                format_interval(c),
                c["verdict"],
            ]
            for c in compared
        ],
    )


def online_test_set(out: pathlib.Path, name: str = ONLINE_DATASET, split: str = "test") -> str:
    """The paper's negation set from the hub (``datasets``; a connected machine), written to
    ``out/<name>.<split>.jsonl`` in the layout ``--test-set`` reads."""
    import json

    from datasets import load_dataset

    rows = load_dataset(name, split=split)
    path = out / f"{name.replace('/', '_')}.{split}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            triplet = {k: row[k] for k in ("anchor", "entailment", "negative")}
            f.write(json.dumps(triplet, ensure_ascii=False) + "\n")
    return str(path)


def short(scores: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in scores.items() if not k.startswith("per_")}


def slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", model.strip("/")).strip("_") or "model"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{NAME}", description=__doc__)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--models", default="all-MiniLM-L6-v2", help="comma-separated")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seeds", type=int, default=3, help="fine-tuning runs per model")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=32, help="training, both sides")
    parser.add_argument(
        "--mix", default="", help="extra triplet sources, e.g. starter:triplets/manpages"
    )
    parser.add_argument("--retrieval-sets", default=",".join(HELD_OUT_RETRIEVAL))
    parser.add_argument("--eval-max-length", type=int, default=None, help="default: the model's")
    parser.add_argument("--max-queries", type=int, default=None, help="per retrieval set")
    parser.add_argument("--max-retrieval-drop", type=float, default=1.0, help="nDCG@10 points")
    parser.add_argument(
        "--test-set",
        default="test",
        help="'test' (the starter's held-out triplets) or a jsonl/parquet file with anchor, "
        "entailment, negative (the jinaai/negation-dataset layout)",
    )
    parser.add_argument(
        "--online", action="store_true", help=f"test on {ONLINE_DATASET} (needs the hub)"
    )
    args = parser.parse_args(argv)
    setup()
    started = time.perf_counter()

    import jina_jax

    if args.online:
        args.test_set = online_test_set(args.out / "data")

    retrieval_sets = [s for s in args.retrieval_sets.split(",") if s]
    datasets = {"negation": "starter:negation"}
    datasets |= {f"mix{i}": source for i, source in enumerate(args.mix.split(",")) if source}
    rows = []
    for name in [m for m in args.models.split(",") if m]:

        def scores(model, per_query: dict) -> dict[str, Any]:
            out = negation_errors(
                model, args.data_dir, args.eval_max_length, True, dataset=args.test_set
            )
            out |= held_out_scores(
                model,
                data_dir=args.data_dir,
                retrieval_sets=retrieval_sets,
                sts=False,
                max_length=args.eval_max_length,
                max_queries=args.max_queries,
                per_query=per_query,
            )
            return out

        print(f"[{name}] scoring before fine-tuning", flush=True)
        before_queries: dict[str, float] = {}
        before = scores(jina_jax.load_model(name), before_queries)
        print(f"[{name}] before: {short(before)}", flush=True)
        afters, after_queries, model_dirs = [], [], []
        for seed in range(args.seeds):
            stage_dir = finetune(
                args.out / "runs" / f"{slug(name)}-seed{seed}",
                init_from=name,
                stage="triplets",
                datasets=datasets,
                steps=args.steps,
                lr=args.lr,
                batch_size=args.batch_size,
                num_negatives=1,
                query_max_length=args.max_length,
                passage_max_length=args.max_length,
                data_dir=args.data_dir,
                seed=seed,
            )
            queries: dict[str, float] = {}
            afters.append(scores(jina_jax.load_model(stage_dir), queries))
            after_queries.append(queries)
            model_dirs.append(str(stage_dir))
            print(f"[{name} seed {seed}] after: {short(afters[-1])}", flush=True)
        rows.append(
            {
                "model": name,
                "before": before,
                "afters": afters,
                "before_queries": before_queries,
                "after_queries": after_queries,
                "model_dirs": model_dirs,
            }
        )

    table = make_table(rows, retrieval_sets)
    compared = [c for row in rows for c in comparisons(row)]
    notes = [
        (
            "Error rates in % on the held-out starter negation triplets "
            f"({rows[0]['before']['num_triplets']} triplets: WordNet gloss / GCIDE definition / "
            "WordNet gloss of the antonym)"
            if args.test_set == "test"
            else f"Error rates in % on {args.test_set} ({rows[0]['before']['num_triplets']} "
            "triplets)"
        )
        + "; EasyNegation error = share with cos(a,e) <= cos(a,n), "
        "HardNegation error = share with cos(a,e) <= cos(e,n). nDCG@10 x100 on the held-out "
        f"starter retrieval sets ({', '.join(retrieval_sets)}); 'change' is the mean's change.",
        f"Paper (jinaai/negation-dataset, a different test set): all-MiniLM-L6-v2 easy error "
        f"{PAPER['all-MiniLM-L6-v2']['easy'][0]:.0f}% -> {PAPER['all-MiniLM-L6-v2']['easy'][1]:.0f}%.",
        "",
        *check(rows, retrieval_sets, args.max_retrieval_drop),
        "",
        f"After fine-tuning: mean ± std over {args.seeds} seeds (data order). Verdicts: paired "
        "bootstrap of after - before, over the test triplets (hard error, each triplet's 0/1 "
        "error averaged over seeds) and over the pooled held-out retrieval queries (10,000 "
        "resamples, 95% interval).",
        "",
        comparison_table(compared),
    ]
    config = {k: (str(v) if isinstance(v, pathlib.Path) else v) for k, v in vars(args).items()}
    config["training"] = {
        "stage": "triplets",
        "datasets": datasets,
        "num_negatives": 1,
        "loss": "infonce (negative in the q->p denominator) + reverse p->q, tau 0.05",
        "warmup_steps": args.steps // 10,
        "schedule": "linear decay",
    }
    write_outputs(
        args.out,
        name=NAME,
        table=table,
        config=config,
        results={"models": rows, "comparisons": compared},
        started=started,
        notes=notes,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
