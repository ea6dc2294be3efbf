"""The MTEB category table (the papers' main table): classification (CF, accuracy), clustering
(CL, V-measure), pair classification (PC, AP), reranking (RR, MAP), retrieval (RT, nDCG@10),
STS (Spearman) and summarization (SM, Spearman), and the average, for a list of models.

    python -m experiments.mteb_table --out experiments/results/mteb_table
    python -m experiments.mteb_table --out DIR --models all-MiniLM-L6-v2,runs/v2/pairs --via-mteb

Offline it runs local tasks built from the starter corpus (``LOCAL_TASKS``), one evaluator
each; ``--via-mteb`` sends the retrieval tasks through ``mteb.evaluate`` with the
``JinaJaxEncoder`` adapter instead of our evaluator (same numbers). Summarization has no
offline data and is left blank. ``--online`` runs the 56 tasks of the ``MTEB(eng, v1)``
benchmark through mteb (needs the hub); offline the table lists which it would run.
"""

from __future__ import annotations

import argparse
import pathlib
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from experiments.common import markdown_table, setup, write_outputs

NAME = "mteb_table"
CATEGORIES = ("CF", "CL", "PC", "RR", "RT", "STS", "SM")
MTEB_TYPES = {
    "CF": "Classification",
    "CL": "Clustering",
    "PC": "PairClassification",
    "RR": "Reranking",
    "RT": "Retrieval",
    "STS": "STS",
    "SM": "Summarization",
}
# category -> [(task label, evaluator type, arguments, main metric)]
LOCAL_TASKS: dict[str, list[tuple[str, str, dict[str, Any], str]]] = {
    "CF": [("starter_domains", "classification", {"dataset": "starter_domains"}, "accuracy")],
    "CL": [("manpage_sections", "clustering", {"dataset": "manpage_sections"}, "v_measure")],
    "PC": [("negation_pairs", "pair_classification", {"dataset": "negation"}, "ap")],
    "RR": [
        ("debian_faq_rerank", "reranking", {"dataset": "debian_faq"}, "map"),
        ("python_faq_rerank", "reranking", {"dataset": "python_faq"}, "map"),
    ],
    "RT": [
        (name, "retrieval", {"dataset": name}, "ndcg_at_10")
        for name in ("python_faq", "debian_faq", "manpages", "debian_descriptions")
    ],
    "STS": [("lee_sts", "sts", {"dataset": "lee_sts"}, "spearman")],
    "SM": [],
}
ONLINE_BENCHMARK = "MTEB(eng, v1)"


def online_task_names(benchmark: str = ONLINE_BENCHMARK) -> dict[str, list[str]]:
    """{category: [MTEB task names]} of the benchmark (task metadata ships with mteb)."""
    import mteb

    by_type: dict[str, list[str]] = {}
    for task in mteb.get_benchmark(benchmark).tasks:
        by_type.setdefault(task.metadata.type, []).append(task.metadata.name)
    return {c: by_type.get(t, []) for c, t in MTEB_TYPES.items()}


def run_online_tasks(model, task_names: Sequence[str]) -> dict[str, float]:
    """Main score of each MTEB task (downloads the data: needs the hub)."""
    import mteb

    from jina_jax.mteb_adapter import JinaJaxEncoder

    result = mteb.evaluate(
        JinaJaxEncoder(model), mteb.get_tasks(tasks=list(task_names)), cache=None
    )
    return {r.task_name: float(r.get_score()) for r in result.task_results}


def run_local_task(
    model, evaluator: str, arguments: dict, metric: str, *, data_dir, via_mteb: bool
):
    from jina_jax.evaluators import run_evaluator
    from jina_jax.evaluators.common import load_starter

    if via_mteb and evaluator == "retrieval":
        import mteb

        from jina_jax.mteb_adapter import JinaJaxEncoder, beir_retrieval_task

        folder = load_starter(data_dir).beir_folders[arguments["dataset"]]
        result = mteb.evaluate(
            JinaJaxEncoder(model),
            [beir_retrieval_task(folder)],
            cache=None,
            show_progress_bar=False,
        )
        return float(result.task_results[0].scores["test"][0][metric])
    return float(run_evaluator(evaluator, model, data_dir=data_dir, **arguments)[metric])


def category_scores(task_scores: dict[str, float]) -> dict[str, float | None]:
    """Mean per category (None when it has no task) and the average over all tasks (MTEB's
    average is over tasks, not categories)."""
    out: dict[str, float | None] = {}
    for category in CATEGORIES:
        scores = [task_scores[label] for label, *_ in LOCAL_TASKS[category] if label in task_scores]
        out[category] = float(np.mean(scores)) if scores else None
    out["Average"] = float(np.mean(list(task_scores.values()))) if task_scores else None
    return out


def make_table(per_model: dict[str, dict[str, float]]) -> str:
    rows = []
    for model, task_scores in per_model.items():
        categories = category_scores(task_scores)
        rows.append([model, *(categories[c] for c in (*CATEGORIES, "Average"))])
    return markdown_table(["model", *CATEGORIES, "Average"], rows)


def task_table(per_model: dict[str, dict[str, float]]) -> str:
    labels = [(c, label) for c in CATEGORIES for label, *_ in LOCAL_TASKS[c]]
    rows = [
        [f"{c}: {label}", *(scores.get(label) for scores in per_model.values())]
        for c, label in labels
    ]
    return markdown_table(["task", *per_model], rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{NAME}", description=__doc__)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--models", default="all-MiniLM-L6-v2", help="comma-separated")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--categories", default=",".join(CATEGORIES))
    parser.add_argument("--via-mteb", action="store_true", help="retrieval through mteb.evaluate")
    parser.add_argument(
        "--online", action="store_true", help=f"run {ONLINE_BENCHMARK} (needs the hub)"
    )
    args = parser.parse_args(argv)
    setup()
    started = time.perf_counter()

    import jina_jax

    categories = [c for c in args.categories.split(",") if c]
    per_model: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    online = online_task_names()
    for name in [m for m in args.models.split(",") if m]:
        model = jina_jax.load_model(name)
        per_model[name] = {}
        for category in categories:
            for label, evaluator, arguments, metric in LOCAL_TASKS[category]:
                tick = time.perf_counter()
                score = run_local_task(
                    model,
                    evaluator,
                    arguments,
                    metric,
                    data_dir=args.data_dir,
                    via_mteb=args.via_mteb,
                )
                per_model[name][label] = 100 * score
                seconds[f"{name}/{label}"] = round(time.perf_counter() - tick, 1)
                print(f"[{name}] {category} {label}: {100 * score:.2f}", flush=True)
        if args.online:
            names = [t for c in categories for t in online[c]]
            per_model[f"{name} (MTEB online)"] = {
                k: 100 * v for k, v in run_online_tasks(model, names).items()
            }

    table = make_table(per_model)
    notes = [
        "Scores x100, offline stand-ins from the starter corpus (local task -> category):",
        "",
        task_table(per_model),
        "",
        "CF: logistic regression on which starter set a query comes from; CL: k-means of man "
        "page descriptions by section; PC: held-out negation triplets as pairs (anchor, "
        "entailment)=1 / (anchor, negative)=0, cosine AP; RR: each FAQ question's answer among "
        "its 20 TF-IDF-closest answers, MAP; RT: held-out starter BEIR sets, nDCG@10; STS: Lee "
        "2005 document similarity, Spearman; SM: no offline data. Average: over tasks.",
        f"{'Online' if args.online else 'Offline: with --online it would run'} "
        f"{ONLINE_BENCHMARK} ({sum(len(v) for v in online.values())} tasks): "
        + "; ".join(f"{c} ({len(online[c])}): {', '.join(online[c])}" for c in CATEGORIES),
    ]
    config = {k: (str(v) if isinstance(v, pathlib.Path) else v) for k, v in vars(args).items()}
    config["local_tasks"] = {
        c: [
            {"task": label, "evaluator": e, "arguments": a, "metric": m} for label, e, a, m in tasks
        ]
        for c, tasks in LOCAL_TASKS.items()
    }
    config["online_tasks"] = online
    write_outputs(
        args.out,
        name=NAME,
        table=table,
        config=config,
        results={
            "task_scores": per_model,
            "categories": {m: category_scores(s) for m, s in per_model.items()},
            "seconds": seconds,
        },
        started=started,
        notes=notes,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
