"""What the experiments share: provenance (git revision, config), markdown tables, the held-out
scores, and a small fine-tuning run through ``jina_jax.main``."""

from __future__ import annotations

import json
import os
import pathlib
import platform
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from jina_jax.evaluators.common import data_dir_or_default

REPO = pathlib.Path(__file__).resolve().parents[1]
HELD_OUT_RETRIEVAL = ("python_faq", "debian_faq", "manpages", "debian_descriptions")


def setup() -> None:
    """Library chatter down (the experiments print their own lines). With ``JINA_JAX_XLA_CACHE``
    set to a folder, XLA's persistent compilation cache is on: every fine-tuning run of one model
    compiles the same train step, and the cache turns later compiles into a disk read. Opt-in,
    as in ``jina_jax.main``: the setting is process-wide, and multi-device CPU programs loaded
    from the cache deadlocked XLA's CPU collectives here."""
    import logging

    import jax

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cache = os.environ.get("JINA_JAX_XLA_CACHE")
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    for name in ("absl", "jina_jax.encoding", "orbax", "mteb", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)


def git_revision(repo: pathlib.Path = REPO) -> dict[str, Any]:
    """{"commit": HEAD, "dirty": uncommitted changes?} (read-only git commands)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.CalledProcessError) as error:
        return {"commit": None, "dirty": None, "error": str(error)}


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], digits: int = 2) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        return "-" if value is None else str(value)

    lines = ["| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_outputs(
    out: pathlib.Path,
    *,
    name: str,
    table: str,
    config: Mapping[str, Any],
    results: Any,
    started: float,
    notes: Sequence[str] = (),
) -> None:
    """results.md (table + notes), results.json, and config.json with the git revision, the
    command line and the wall time, all in ``out``; then the table and notes on the console."""
    out.mkdir(parents=True, exist_ok=True)
    seconds = round(time.perf_counter() - started, 1)
    revision = git_revision()
    provenance = {
        "experiment": name,
        "command": [pathlib.Path(sys.executable).name, "-m", f"experiments.{name}", *sys.argv[1:]],
        "git": revision,
        "wall_seconds": seconds,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    (out / "config.json").write_text(
        json.dumps({**provenance, "config": config}, indent=2, default=str) + "\n"
    )
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    dirty = " (uncommitted changes)" if revision.get("dirty") else ""
    body = [
        f"# {name}",
        "",
        table,
        "",
        *notes,
        "",
        f"git {revision.get('commit')}{dirty}; {seconds}s wall; settings in config.json.",
    ]
    (out / "results.md").write_text("\n".join(body).rstrip() + "\n")
    print(table)
    print("\n".join(notes))
    print(f"wrote {out / 'results.md'}")


def held_out_scores(
    model,
    *,
    data_dir: str | os.PathLike | None = None,
    retrieval_sets: Sequence[str] = HELD_OUT_RETRIEVAL,
    sts: bool = True,
    max_length: int | None = None,
    max_queries: int | None = None,
    per_query: dict[str, float] | None = None,
) -> dict[str, float]:
    """nDCG@10 on each held-out retrieval set (``retrieval:<name>``) and Lee Spearman
    (``sts:lee_sts``), both x100. ``per_query``, when given, is filled with every query's
    nDCG@10 x100 as ``"<set>/<query id>"`` (the queries of all sets, for a paired bootstrap)."""
    from jina_jax.evaluators import run_evaluator

    data_dir = str(data_dir_or_default(data_dir))
    scores = {}
    for name in retrieval_sets:
        metrics = run_evaluator(
            "retrieval",
            model,
            dataset=name,
            data_dir=data_dir,
            max_length=max_length,
            max_queries=max_queries,
            per_query=per_query is not None,
        )
        scores[f"retrieval:{name}"] = 100 * metrics["ndcg_at_10"]
        if per_query is not None:
            for query, value in metrics["per_query_ndcg_at_10"].items():
                per_query[f"{name}/{query}"] = 100 * value
    if sts:
        metrics = run_evaluator("sts", model, dataset="lee_sts", data_dir=data_dir)
        scores["sts:lee_sts"] = 100 * metrics["spearman"]
    return scores


def finetune(
    workdir: pathlib.Path,
    *,
    init_from: str,
    stage: str,
    datasets: Mapping[str, str],
    steps: int,
    lr: float,
    batch_size: int,
    num_negatives: int = 0,
    query_max_length: int = 32,
    passage_max_length: int = 64,
    warmup_steps: int | None = None,
    temperature: float = 0.05,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    matryoshka_dims: Sequence[int] = (),
) -> pathlib.Path:
    """Fine-tunes ``init_from`` for ``steps`` steps of the ``stage`` ("pairs": InfoNCE over
    in-batch negatives; "triplets": plus ``num_negatives`` hard negatives per query) on
    ``datasets`` (name -> source: a jsonl path or ``starter:...``), with the loss summed over
    ``matryoshka_dims`` prefixes when given; returns the stage folder, which
    ``jina_jax.load_model`` reads."""
    from ml_collections import ConfigDict

    from jina_jax import config_lib
    from jina_jax.main import run

    config = config_lib.base_config()
    config.seed = seed
    config.stages = [stage]
    config.init_from = init_from
    config.data.dir = str(pathlib.Path(data_dir_or_default(data_dir)).absolute())
    config.data.build_starter = False
    cfg = config[stage]
    cfg.steps = steps
    cfg.num_negatives = num_negatives
    cfg.query_max_length = query_max_length
    cfg.passage_max_length = passage_max_length
    cfg.temperature = temperature
    cfg.matryoshka_dims = tuple(matryoshka_dims)
    cfg.optimizer = config_lib.optimizer(lr, steps // 10 if warmup_steps is None else warmup_steps)
    cfg.log_every = max(1, steps // 5)
    cfg.checkpoint.every = steps  # one save, at the end
    cfg.datasets = ConfigDict(
        {
            name: config_lib.dataset(str(source), batch_size=batch_size)
            for name, source in datasets.items()
        }
    )
    config.lock()
    run(config, workdir)
    return workdir / stage


def load_config(spec: str):
    """The ConfigDict of a config file, ``path.py[:arg]`` (relative paths from the repository),
    unlocked for the experiment to change."""
    import importlib.util

    path, _, arg = spec.partition(":")
    file = pathlib.Path(path)
    if not file.is_absolute() and not file.exists():
        file = REPO / file
    loader = importlib.util.spec_from_file_location(f"config_{file.stem}", file)
    if loader is None or not file.is_file():
        raise FileNotFoundError(f"no config file {file}")
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    config = module.get_config(arg or None)
    config.unlock()
    return config


def write_jsonl(path: pathlib.Path, rows) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n
