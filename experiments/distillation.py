"""Distillation vs contrastive training for a small student (jina-embeddings-v5-text's finding:
embedding distillation, then task training, beats contrastive-only or distillation-only training
for small models).

    python -m experiments.distillation --out experiments/results/distillation

Three arms train the demo's earlier student (``configs/demo.py:small``, which the arm names
imply: JinaBERT 256 wide, 4 layers, word embeddings from all-MiniLM-L6-v2) for the same number of optimizer steps on the same starter
pair datasets, batch 64:

- ``contrastive``: InfoNCE over the batch for the whole budget;
- ``distill_only``: distillation from all-MiniLM-L6-v2 (cosine loss through a learnt projection
  of the student's embedding, Matryoshka 256/128/64) for the whole budget;
- ``distill_contrastive``: distillation, then InfoNCE (the demo's split of the budget).

Each arm is scored on the held-out retrieval sets (nDCG@10) and Lee STS (Spearman), with the
wall time of its training. The teacher's vectors are computed once and cached in the data
folder (``teacher_cache``); the arm that runs first pays for them, so ``--warm-teacher`` (on by
default) fills the cache before timing anything, and the times compare the training alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pathlib
import time

from experiments.common import REPO, markdown_table, setup, write_outputs

NAME = "distillation"
ARMS = ("contrastive", "distill_only", "distill_contrastive")
COLUMNS = (
    "retrieval:debian_descriptions",
    "retrieval:debian_faq",
    "retrieval:manpages",
    "retrieval:python_faq",
    "sts:lee_sts",
)


def demo_config(arg: str, data_dir: str, steps_scale: float):
    spec = importlib.util.spec_from_file_location("demo_config", REPO / "configs" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(arg)
    config.unlock()
    config.data.dir = data_dir
    config.evaluate.baselines = ()
    config.evals = {k: v for k, v in config.evals.items() if k != "negation"}
    for stage in ("distill", "pairs"):
        config[stage].steps = max(1, round(config[stage].steps * steps_scale))
        config[stage].checkpoint.every = config[stage].steps
    config.lock()
    return config


def scores_of(workdir: pathlib.Path, evals) -> dict[str, float]:
    """The trained model's headline metric x100 per held-out entry, keyed ``type:name``."""
    from jina_jax.evaluators import HEADLINE

    rows = json.loads((workdir / "evaluate" / "results.json").read_text())["ours"]
    return {
        f"{entry['type']}:{name}": 100 * float(rows[name][HEADLINE[entry["type"]]])
        for name, entry in evals.items()
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=pathlib.Path)
    parser.add_argument("--data-dir", default="data_cache/starter")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument(
        "--steps-scale", type=float, default=1.0, help="scale the demo's step budget"
    )
    args = parser.parse_args(argv)
    setup()
    from jina_jax.main import run

    started = time.perf_counter()
    data_dir = str(pathlib.Path(args.data_dir).absolute())
    results, configs = {}, {}
    for arm in args.arms.split(","):
        config = demo_config(arm, data_dir, args.steps_scale)
        configs[arm] = json.loads(config.to_json_best_effort())
        workdir = args.out / "runs" / arm
        t0 = time.perf_counter()
        summary = run(config, workdir)
        seconds = {
            stage: summary[stage].get("wall_seconds")
            for stage in ("distill", "pairs")
            if isinstance(summary.get(stage), dict)
        }
        results[arm] = {
            "scores": scores_of(workdir, config.evals),
            "steps": {s: int(config[s].steps) for s in config.stages if s in ("distill", "pairs")},
            "wall_seconds": round(time.perf_counter() - t0, 1),
            "stage_seconds": seconds,
        }
    rows = []
    for arm, result in results.items():
        scores = result["scores"]
        steps = " + ".join(f"{s} {n}" for s, n in result["steps"].items())
        mean = sum(scores[c] for c in COLUMNS[:4]) / 4
        rows.append([arm, steps, *(scores.get(c) for c in COLUMNS), mean, result["wall_seconds"]])
    headers = ["arm", "steps", *(c.split(":")[1] for c in COLUMNS), "retrieval mean", "wall s"]
    table = markdown_table(headers, rows, digits=1)
    means = {row[0]: row[-2] for row in rows}
    notes = []
    if set(ARMS) <= set(means):
        best = max(means, key=means.get)
        verdict = "reproduces" if best == "distill_contrastive" else "does not reproduce"
        notes.append(
            f"v5's finding (distillation then task training beats either alone for a small "
            f"model) {verdict} here: mean held-out nDCG@10 "
            + ", ".join(f"{arm} {means[arm]:.1f}" for arm in ARMS)
            + "."
        )
    notes.append(
        "nDCG@10 x100 on the held-out starter sets; Lee STS: Spearman x100. One seed per arm."
    )
    write_outputs(
        args.out,
        name=NAME,
        table=table,
        config={"arms": configs, "steps_scale": args.steps_scale},
        results=results,
        started=started,
        notes=notes,
    )


if __name__ == "__main__":
    main()
