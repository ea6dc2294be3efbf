"""Run-to-run spread of a config's held-out scores: the same config trained with ``--seeds``
seeds (``config.seed``: parameter init, dropout, batch order), each model scored on the held-out
sets, reported as mean ± std next to the config's baselines, with a paired-bootstrap verdict
of the model against each baseline.

    python -m experiments.seed_spread --config configs/demo.py --out experiments/results/seed_spread_demo
    python -m experiments.seed_spread --config configs/minilm_finetune.py \\
        --out experiments/results/seed_spread_minilm_finetune

Only the config's training stages run (``--out/runs/seed<N>``; a rerun reuses a finished run);
the scoring is the evaluate stage's held-out set (``config_lib.heldout_evals``: nDCG@10 on four
retrieval sets at 256 tokens, Lee STS Spearman, the negation triplets' error rates), with the
per-query scores kept for the bootstrap. Baselines: ``config.evaluate.baselines`` (TF-IDF and
the teacher or the original model), scored once: they have no seed.
"""

from __future__ import annotations

import argparse
import pathlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from experiments.common import (
    HELD_OUT_RETRIEVAL,
    held_out_scores,
    load_config,
    markdown_table,
    setup,
    write_outputs,
)
from experiments.negation import negation_errors
from experiments.stats import format_interval, format_mean_std, paired_bootstrap, per_query_matrix

NAME = "seed_spread"
EVAL_MAX_LENGTH = 256  # config_lib.heldout_evals' retrieval entries
COLUMNS = [f"retrieval:{s}" for s in HELD_OUT_RETRIEVAL] + ["sts:lee_sts", "hard_error"]


def score(model, data_dir: str, per_query: dict | None = None) -> dict[str, float]:
    out = held_out_scores(model, data_dir=data_dir, max_length=EVAL_MAX_LENGTH, per_query=per_query)
    errors = negation_errors(model, data_dir, None)
    out["hard_error"] = errors["hard_error"]
    out["easy_error"] = errors["easy_error"]
    return out


def retrieval_mean(scores: Mapping[str, float]) -> float:
    return float(np.mean([scores[f"retrieval:{s}"] for s in HELD_OUT_RETRIEVAL]))


def spread_table(
    label: str, runs: Sequence[Mapping[str, float]], baselines: Mapping[str, Mapping[str, float]]
) -> str:
    """Mean ± std over seeds, then each seed, then each baseline (one row each)."""
    headers = ["model", *COLUMNS, "retrieval mean"]
    rows = [
        [f"{label}, {len(runs)} seeds"]
        + [format_mean_std([r[c] for r in runs]) for c in COLUMNS]
        + [format_mean_std([retrieval_mean(r) for r in runs])]
    ]
    rows += [
        [f"{label}, seed {i}", *(r[c] for c in COLUMNS), retrieval_mean(r)]
        for i, r in enumerate(runs)
    ]
    rows += [[name, *(s[c] for c in COLUMNS), retrieval_mean(s)] for name, s in baselines.items()]
    return markdown_table(headers, rows)


def against_baselines(
    runs: Sequence[Mapping[str, float]], baselines: Mapping[str, Mapping[str, float]]
) -> list[dict[str, Any]]:
    """The model (its seeds averaged per query) against each baseline over the pooled held-out
    retrieval queries: expected higher."""
    queries, ours = per_query_matrix(runs)
    out = []
    for name, theirs in baselines.items():
        _, base = per_query_matrix([theirs], queries)
        result = paired_bootstrap(base, ours, expected="higher")
        out.append({"baseline": name, **vars(result)})
    return out


def training_stages(config) -> tuple[str, ...]:
    from jina_jax.main import MODEL_STAGES

    stages = tuple(s for s in config.stages if s in MODEL_STAGES)
    if not stages:
        raise ValueError(f"the config's stages {tuple(config.stages)} train nothing")
    return stages


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{NAME}", description=__doc__)
    parser.add_argument("--config", required=True, help="a config file, path.py[:arg]")
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data-dir", default=None, help="default: the config's data.dir")
    args = parser.parse_args(argv)
    setup()
    started = time.perf_counter()

    import jina_jax
    from jina_jax.embedders import TfidfEmbedder
    from jina_jax.loading import load_embedder
    from jina_jax.main import run

    runs, queries, seconds = [], [], []
    base_config = load_config(args.config)
    data_dir = args.data_dir or str(base_config.data.dir)
    stages = training_stages(base_config)
    for seed in range(args.seeds):
        config = load_config(args.config)
        config.seed = seed
        config.stages = stages
        if args.data_dir:
            config.data.dir = args.data_dir
        config.lock()
        workdir = args.out / "runs" / f"seed{seed}"
        begun = time.perf_counter()
        summaries = run(config, workdir)
        seconds.append(round(time.perf_counter() - begun, 1))
        per_query: dict[str, float] = {}
        scores = score(jina_jax.load_model(workdir / stages[-1]), data_dir, per_query)
        print(f"[seed {seed}] {scores}", flush=True)
        runs.append(
            {**scores, "train_seconds": sum(s.get("wall_seconds", 0) for s in summaries.values())}
        )
        queries.append(per_query)

    baselines, baseline_queries = {}, {}
    for name in base_config.evaluate.baselines:
        per_query = {}
        embedder = TfidfEmbedder() if name == "tfidf" else load_embedder(name)
        baselines[name] = score(embedder, data_dir, per_query)
        baseline_queries[name] = per_query
        print(f"[{name}] {baselines[name]}", flush=True)

    label = args.config.removeprefix("configs/")
    table = spread_table(label, runs, baselines)
    compared = against_baselines(queries, baseline_queries)
    verdicts = markdown_table(
        ["model vs", "nDCG@10 x100, ours - baseline [95% CI]", "ours higher?"],
        [
            [
                c["baseline"],
                format_interval(c),
                c["verdict"],
            ]
            for c in compared
        ],
    )
    notes = [
        "",
        f"`{args.config}` trained {args.seeds} times (config.seed = 0 .. {args.seeds - 1}: "
        f"parameter init, dropout, batch order), stages {', '.join(stages)}; training "
        f"{format_mean_std([r['train_seconds'] for r in runs], 0)} s per seed here. Scores x100: "
        "nDCG@10 on the held-out starter retrieval sets (documents at 256 tokens), Spearman on "
        "Lee 2005 STS, and the hard-negation error in % (lower is better); mean ± sample std "
        "over seeds. Baselines have no seed.",
        "",
        "Against each baseline: paired bootstrap over the "
        + (f"{compared[0]['queries']} " if compared else "")
        + "held-out retrieval queries of the four sets (each query's nDCG@10 averaged over "
        "seeds; 10,000 resamples, 95% interval).",
        "",
        verdicts,
    ]
    config = {k: (str(v) if isinstance(v, pathlib.Path) else v) for k, v in vars(args).items()}
    config["stages"] = list(stages)
    results = {
        "runs": runs,
        "baselines": baselines,
        "comparisons": compared,
        "per_query_ndcg_at_10": {"ours": queries, **baseline_queries},
    }
    write_outputs(
        args.out,
        name=NAME,
        table=table,
        config=config,
        results=results,
        started=started,
        notes=notes,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
