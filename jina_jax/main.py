"""The main job: runs the stages a config lists, each in its own folder of the workdir.

    python -m jina_jax.main --config=configs/demo.py --workdir=runs/demo
    python -m jina_jax.main --config=configs/demo.py --workdir=runs/demo --config.sample_texts=64

Each stage writes ``<workdir>/<stage>/`` and, when it completes, ``<workdir>/<stage>/DONE``
(a JSON summary). A rerun with the same workdir skips completed stages and says so.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import pathlib
import sys
import time
from collections.abc import Callable

from absl import app, flags
from ml_collections import ConfigDict, config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file (path.py[:arg]).")
flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and exports go.")

log = logging.getLogger("jina_jax")

DONE_FILE = "DONE"


def stage_dir(workdir: pathlib.Path, stage: str) -> pathlib.Path:
    return workdir / stage


def _done(folder: pathlib.Path) -> dict | None:
    marker = folder / DONE_FILE
    return json.loads(marker.read_text()) if marker.exists() else None


def _mark_done(folder: pathlib.Path, summary: dict) -> None:
    tmp = folder / f".{DONE_FILE}.tmp"
    tmp.write_text(json.dumps(summary, indent=2, default=str))
    os.replace(tmp, folder / DONE_FILE)


# --------------------------------------------------------------------------- run context


class Run:
    """What every stage of one run shares: config, workdir, mesh, model config and tokenizer.
    Built lazily so that stages which need none of it (export, verify) start fast."""

    def __init__(self, config: ConfigDict, workdir: pathlib.Path):
        self.config = config
        self.workdir = workdir
        self._model = None

    @functools.cached_property
    def mesh(self):
        from jina_jax.sharding import make_mesh

        return make_mesh(dict(self.config.mesh))

    @property
    def rules(self):
        return [tuple(rule) for rule in self.config.sharding_rules]

    def base_model(self):
        """``Model`` with params=None (random init) or the ``init_from`` weights."""
        if self._model is None:
            self._model = _base_model(self.config, self.workdir)
        return self._model


def _base_model(config: ConfigDict, workdir: pathlib.Path):
    import dataclasses

    import jina_jax
    from jina_jax.model import Model
    from jina_jax.models import config_from_dict

    overrides = {k: v for k, v in config.model.to_dict().items() if k != "arch"}
    if config.init_from:
        model = jina_jax.load_model(config.init_from)
        model.config = dataclasses.replace(model.config, **overrides)
        return model
    tokenizer = _build_tokenizer(config, workdir)
    fields = {"vocab_size": tokenizer.vocab_size, **config.model.to_dict()}
    return Model(
        config=config_from_dict(fields),
        params=None,
        tokenizer=tokenizer,
        pooling=config.pooling,
        normalize=config.normalize,
        max_length=config.max_length,
    )


def _build_tokenizer(config: ConfigDict, workdir: pathlib.Path):
    from jina_jax import tokenization
    from jina_jax.hf.local_models import resolve

    name = config.tokenizer
    if name == "jina_v2":
        return tokenization.jina_v2_tokenizer()
    if name == "sentencepiece":
        from jina_jax.data import catalog

        folder = workdir / "tokenizer"
        model_file = folder / "spiece.model"
        if not model_file.exists():
            folder.mkdir(parents=True, exist_ok=True)
            texts = catalog.text_source(config.mlm.data, config.data)
            tokenization.train_sentencepiece(
                (texts[i] for i in range(min(len(texts), 200_000))),
                folder / "spiece",
                vocab_size=config.tokenizer_vocab_size,
            )
        return tokenization.sentencepiece_tokenizer(model_file)
    return tokenization.load_tokenizer(resolve(name))


# --------------------------------------------------------------------------- stages


def stage_import(run: Run, previous: pathlib.Path | None) -> dict:
    """Imports ``config.init_from`` (an HF folder or local alias) as a step-0 checkpoint."""
    from jina_jax.convert import convert

    out = stage_dir(run.workdir, "import")
    convert(run.config.init_from, out, overwrite=True)
    return {"from": str(run.config.init_from), "model_dir": str(out)}


def _starting_params(run: Run, previous: pathlib.Path | None):
    """Host params to start a training stage from: the previous stage's final weights, else the
    ``init_from`` import, else None (random init)."""
    from jina_jax import checkpoints

    if previous is not None:
        params, _ = checkpoints.restore_params(previous)
        return params.get("bert", params) if "cls" in params else params
    return run.base_model().params


def _periodic_evals(run: Run, base, model_config, folder: pathlib.Path):
    """``(step, params, last_step) -> metrics | None``: the ``config.evals`` entries due at
    ``step``, on the current weights, through the same evaluators as stage 'evaluate'."""
    import dataclasses

    from jina_jax.evaluators import is_due, run_evals

    # Entries with every > 0 run during training (and at its last step); the rest only in the
    # 'evaluate' stage.
    evals = {n: dict(e) for n, e in run.config.get("evals", {}).items() if e.get("every")}
    if not evals:
        return None

    def evaluate(step: int, params, last_step: int):
        if not any(is_due(e.get("every"), step, last_step) for e in evals.values()):
            return None
        model = dataclasses.replace(base, config=model_config, params=params)
        results = run_evals(
            evals, model, step=step, last_step=last_step, data_dir=str(run.config.data.dir)
        )
        with open(folder / "evals.jsonl", "a") as f:
            f.write(json.dumps({"step": step, **results}) + "\n")
        return {
            f"eval/{n}/{k}": v
            for n, r in results.items()
            for k, v in r.items()
            if isinstance(v, int | float)
        }

    return evaluate


def stage_train(kind: str) -> Callable:
    def run_stage(run: Run, previous: pathlib.Path | None) -> dict:
        import dataclasses

        import jax

        from jina_jax import checkpoints
        from jina_jax.data import catalog
        from jina_jax.data.pipeline import MLMBatches, PairBatches
        from jina_jax.data.sampler import DatasetSpec
        from jina_jax.models import config_to_dict
        from jina_jax.sharding import batch_shards
        from jina_jax.train import ContrastiveObjective, MLMObjective
        from jina_jax.trainer import train_stage

        config, cfg = run.config, run.config[kind]
        base = run.base_model()
        sources = [cfg.data] if kind == "mlm" else [ds.source for ds in cfg.datasets.values()]
        catalog.ensure_data(config.data, sources)
        folder = stage_dir(run.workdir, kind)
        process = dict(process_index=jax.process_index(), process_count=jax.process_count())
        if kind == "mlm":
            model_config = dataclasses.replace(base.config, add_pooler=False)
            objective = MLMObjective(model_config)
            batches = MLMBatches(
                catalog.text_source(cfg.data, config.data),
                base.tokenizer,
                cfg.max_length,
                cfg.batch_size,
                config.seed,
                mask_prob=cfg.mask_prob,
                **process,
            )
            identity = {"stage": kind, "model": config_to_dict(model_config), "data": cfg.data}
        else:
            model_config = base.config
            objective = ContrastiveObjective(
                model_config,
                pooling=base.pooling,
                loss=cfg.loss,
                temperature=cfg.temperature,
                margin=cfg.margin,
                triplet_weight=cfg.triplet_weight,
            )
            if not cfg.datasets:
                raise ValueError(f"config.{kind}.datasets is empty: name at least one dataset")
            if cfg.get("pack", False) and cfg.get("grad_cache_chunk", 0):
                raise ValueError(
                    f"config.{kind}: pack=True and grad_cache_chunk={cfg.grad_cache_chunk} "
                    "exclude each other (GradCache splits the batch by rows); turn one off"
                )
            specs, sources = [], {}
            for name, ds in cfg.datasets.items():
                sources[name] = catalog.pair_source(
                    ds.source, config.data, min_negatives=cfg.num_negatives
                )
                specs.append(
                    DatasetSpec(
                        name,
                        scale=ds.scale,
                        batch_size=ds.batch_size,
                        query_prefix=ds.query_prefix,
                        passage_prefix=ds.passage_prefix,
                        in_batch_negatives=ds.in_batch_negatives,
                        num_negatives=cfg.num_negatives,
                    )
                )
            batches = PairBatches(
                sources,
                specs,
                base.tokenizer,
                cfg.query_max_length,
                cfg.passage_max_length,
                config.seed,
                pad_to_max_length=cfg.get("pad_to_max_length", False),
                pack=cfg.get("pack", False),
                row_steps_per_octave=cfg.get("pack_row_steps", 8),
                row_multiple=batch_shards(run.mesh, run.rules),
                **process,
            )
            identity = {
                "stage": kind,
                "model": config_to_dict(model_config),
                "loss": cfg.loss,
                "temperature": cfg.temperature,
                "num_negatives": cfg.num_negatives,
                "datasets": {n: ds.source for n, ds in cfg.datasets.items()},
            }
        evaluate = None if kind == "mlm" else _periodic_evals(run, base, model_config, folder)
        result = train_stage(
            evaluate=evaluate,
            prng_impl=config.get("prng_impl", "threefry2x32"),
            objective=objective,
            batches=batches,
            stage_cfg=cfg,
            workdir=folder,
            mesh=run.mesh,
            rules=run.rules,
            seed=config.seed,
            init_params=_starting_params(run, previous),
            identity=identity,
        )
        spec_model = dataclasses.replace(base, config=model_config, params=None)
        checkpoints.write_model_spec(folder, spec_model)
        summary = {
            "steps": result.step,
            "resumed_from": result.resumed_from,
            "model_dir": str(folder),
        }
        summary.update({k: round(v, 5) for k, v in result.metrics.items()})
        return summary

    run_stage.__name__ = f"stage_{kind}"
    return run_stage


def stage_encode(run: Run, previous: pathlib.Path | None) -> dict:
    """Encodes real sentences with the latest model and saves the embeddings."""
    import numpy as np

    import jina_jax
    from jina_jax.data.stdlib_text import stdlib_sentences

    config = run.config
    out = stage_dir(run.workdir, "encode")
    model = jina_jax.load_model(_require(previous, "encode"))
    texts = stdlib_sentences(config.sample_texts)
    start = time.perf_counter()
    vectors, stats = jina_jax.encode(
        model,
        texts,
        batch_size=config.encode.batch_size,
        max_length=config.encode.max_length,
        return_stats=True,
    )
    seconds = time.perf_counter() - start
    np.save(out / "embeddings.npy", vectors)
    (out / "texts.json").write_text(json.dumps(texts, indent=1))
    return {
        "texts": len(texts),
        "dim": int(vectors.shape[1]),
        "seconds": round(seconds, 2),
        "truncated": stats["truncated"],
        "embeddings": str(out / "embeddings.npy"),
    }


def stage_export(run: Run, previous: pathlib.Path | None) -> dict:
    """Exports the latest model as one transformers + sentence-transformers folder."""
    from jina_jax.checkpoints import load_model_from_workdir
    from jina_jax.hf.io import save_hf

    model = load_model_from_workdir(_require(previous, "export"))
    auto_map = run.config.export.auto_map if "export" in run.config else "local"
    out = save_hf(
        model, stage_dir(run.workdir, "export") / "model", overwrite=True, auto_map=auto_map
    )
    return {"model_dir": str(out)}


def stage_verify_export(run: Run, previous) -> dict:
    """Reloads the export with sentence-transformers and compares it with jina_jax."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    import jina_jax
    from jina_jax.data.stdlib_text import stdlib_sentences

    export_dir = stage_dir(run.workdir, "export") / "model"
    texts = stdlib_sentences(run.config.get("sample_texts", 200))
    ours = jina_jax.encode(jina_jax.load_model(export_dir), texts)
    st = SentenceTransformer(str(export_dir), device="cpu", trust_remote_code=True)
    ref = st.encode(texts, convert_to_numpy=True)
    cos = np.sum(ours * ref, 1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    if cos.min() < 0.9999:
        raise RuntimeError(f"export check failed: min cosine {cos.min():.6f} < 0.9999")
    return {"texts": len(texts), "min_cosine": float(cos.min()), "export": str(export_dir)}


def stage_evaluate(run: Run, previous: pathlib.Path | None) -> dict:
    """Scores the latest model, and the baselines in ``config.evaluate.baselines`` ("tfidf", or
    any model path/alias), on every ``config.evals`` entry; writes results.json and a table."""
    from jina_jax.embedders import TfidfEmbedder
    from jina_jax.evaluators import compare, results_table
    from jina_jax.loading import load_embedder

    config = run.config
    out = stage_dir(run.workdir, "evaluate")
    entries = {name: dict(entry) for name, entry in config.evals.items()}
    if not entries:
        raise ValueError("stage 'evaluate' needs config.evals entries")
    embedders = {"ours": load_embedder(_require(previous, "evaluate"))}
    for name in config.evaluate.get("baselines", ()):
        embedders[name] = TfidfEmbedder() if name == "tfidf" else load_embedder(name)
    rows = compare(entries, embedders, data_dir=str(config.data.dir))
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    table = results_table(rows, entries)
    (out / "results.md").write_text(table + "\n")
    print(table)
    return {"results": str(out / "results.json"), "table": str(out / "results.md")}


STAGES: dict[str, Callable] = {
    "import": stage_import,
    "mlm": stage_train("mlm"),
    "pairs": stage_train("pairs"),
    "triplets": stage_train("triplets"),
    "encode": stage_encode,
    "evaluate": stage_evaluate,
    "export": stage_export,
    "verify_export": stage_verify_export,
}
# Stages whose folder holds a model that the next stage starts from.
MODEL_STAGES = {"import", "mlm", "pairs", "triplets"}


def _require(previous: pathlib.Path | None, stage: str) -> pathlib.Path:
    if previous is None:
        raise ValueError(
            f"stage {stage!r} needs a model: list 'import' (or a training stage) first"
        )
    return previous


def enable_compilation_cache(directory: str | os.PathLike | None = None) -> None:
    """Persistent XLA cache: a rerun or a resumed run loads compiled programs from disk instead of
    compiling again. Off unless ``config.compilation_cache``: with several CPU devices, programs
    with collectives loaded from this cache deadlocked (devices at different collectives)."""
    import jax

    directory = directory or os.environ.get(
        "JINA_JAX_COMPILATION_CACHE", pathlib.Path.home() / ".cache" / "jina_jax" / "xla"
    )
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def maybe_initialize_distributed(config: ConfigDict) -> None:
    """Multi-host: ``jax.distributed.initialize`` before any other JAX call."""
    import jax

    dist = config.get("distributed")
    if dist is None or not dist.enabled:
        return
    kwargs = {}
    if dist.coordinator_address:
        kwargs = dict(
            coordinator_address=dist.coordinator_address,
            num_processes=int(dist.num_processes),
            process_id=int(dist.process_id),
        )
    jax.distributed.initialize(**kwargs)
    log.info(
        "process %d of %d, %d local / %d global devices",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )


def run(config: ConfigDict, workdir: str | os.PathLike) -> dict[str, dict]:
    from jina_jax.trainer import config_differences

    workdir = pathlib.Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    unknown = [s for s in config.stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stages {unknown}; known: {sorted(STAGES)}")
    maybe_initialize_distributed(config)
    if config.get("compilation_cache", False):
        enable_compilation_cache()
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
    context = Run(config, workdir)
    previous: pathlib.Path | None = None
    results: dict[str, dict] = {}
    for stage in config.stages:
        folder = stage_dir(workdir, stage)
        summary = _done(folder)
        fingerprint = _fingerprint(config, stage)

        if summary is not None:
            problems = config_differences(summary.get("config", {}), fingerprint)
            if problems:
                raise ValueError(
                    f"{folder} was completed with another config: "
                    + "; ".join(problems)
                    + ". Use a fresh --workdir, or delete that stage folder to redo it."
                )
            print(f"[{stage}] already complete in {folder}, skipping")
        else:
            print(f"[{stage}] running")
            folder.mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            summary = STAGES[stage](context, previous)
            summary["wall_seconds"] = round(time.perf_counter() - start, 1)
            summary["config"] = fingerprint
            _mark_done(folder, summary)
        results[stage] = summary
        if stage in MODEL_STAGES:
            previous = folder
    _print_summary(results, workdir)
    return results


def _fingerprint(config: ConfigDict, stage: str) -> dict:
    """The parts of the config that decide what a stage produces."""
    keys = ["model", "tokenizer", "init_from", "seed", stage]
    out = {k: config[k] for k in keys if k in config}
    return json.loads(
        json.dumps(
            {k: v.to_dict() if isinstance(v, ConfigDict) else v for k, v in out.items()},
            default=str,
        )
    )


def _print_summary(results: dict[str, dict], workdir: pathlib.Path) -> None:
    """The closing lines: one row per stage (what it did, seconds, what it wrote), the held-out
    evaluation table when the run evaluated, and the other files of the workdir. Every stage's
    full summary stays in ``<stage>/DONE``."""
    print(f"\nResults ({workdir}):")
    print("| stage | result | seconds | wrote |")
    print("|---|---|---|---|")
    for stage, summary in results.items():
        if "steps" in summary:
            parts = [f"{summary['steps']} steps", f"loss {summary.get('loss', float('nan')):.4g}"]
            if "accuracy" in summary:
                what = "masked-token" if stage == "mlm" else "in-batch"
                parts.append(f"{what} accuracy {summary['accuracy']:.3f}")
            if summary.get("resumed_from") is not None:
                parts.append(f"resumed from step {summary['resumed_from']}")
            text, wrote = ", ".join(parts), summary.get("model_dir", "")
        elif "min_cosine" in summary:
            text = f"min cosine {summary['min_cosine']:.7f} over {summary.get('texts')} texts"
            text += f" (sentence-transformers reload of {summary.get('export', 'the export')})"
            wrote = ""
        else:
            text = "table below" if "table" in summary else ""
            wrote = summary.get("table") or summary.get("model_dir") or summary.get("out", "")
        print(f"| {stage} | {text} | {summary.get('wall_seconds', '')} | {wrote} |")
    table = results.get("evaluate", {}).get("table")
    if table and pathlib.Path(table).exists():
        print(f"\nHeld-out evaluation ({table}):")
        print(pathlib.Path(table).read_text(encoding="utf-8").strip())
    print(
        f"\nAlso in {workdir}: config.json; per stage DONE (full summary), metrics.jsonl, "
        "tensorboard/, checkpoints/ (training stages)."
    )


def main(argv) -> int:
    del argv
    if FLAGS.config is None or FLAGS.workdir is None:
        print(
            "usage: python -m jina_jax.main --config=configs/X.py[:arg] --workdir=DIR",
            file=sys.stderr,
        )
        return 2
    quiet_libraries()
    run(FLAGS.config, FLAGS.workdir)
    return 0


def quiet_libraries() -> None:
    """Our progress lines on the console; orbax/absl INFO chatter only at WARNING and above."""
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.INFO)
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs through absl
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")


def _parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing, where ``--config.x=y`` overrides are applied: a misspelt key or a value
    of the wrong type becomes one clear line instead of a traceback."""
    try:
        return FLAGS(argv)
    except (AttributeError, KeyError, TypeError, ValueError, flags.Error) as e:
        message = str(e).replace("\\n", " ").replace("\\'", "'")
        if len(message) > 1 and message[0] == message[-1] == "'":
            message = message[1:-1]
        print(f"jina_jax.main: config error: {message}", file=sys.stderr)
        sys.exit(2)


def entry_point() -> None:
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    entry_point()
