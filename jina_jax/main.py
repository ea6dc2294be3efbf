"""The main job: runs the stages a config lists, each in its own folder of the workdir.

    python -m jina_jax.main --config=configs/demo.py --workdir=runs/demo
    python -m jina_jax.main --config=configs/demo.py --workdir=runs/demo --config.sample_texts=64

Each stage writes ``<workdir>/<stage>/`` and, when it completes, ``<workdir>/<stage>/DONE``
(a JSON summary with the stage's fingerprint). A rerun with the same workdir skips completed
stages and says so; a completed stage of another config is refused, naming the differences.
The workdir may be a bucket (``--workdir=gs://bucket/run``); every file then goes there
(``jina_jax.storage``). Multi-host: process 0 writes config.json, DONE, model.json, the tokenizer,
metrics and exports, orbax coordinates the checkpoint writes of all processes, and every process
waits at the end of each stage until the stage's files are written.

Reading order: ``run`` (the loop over stages) at the bottom; above it ``STAGES``, the table of
what each stage name does; above that the stages themselves and the run context they share.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import logging
import os
import pathlib
import sys
import time
from collections.abc import Callable

import flax.linen as nn
import jax
import numpy as np
from absl import app, flags
from absl import logging as absl_logging
from etils import epath
from jax._src import distributed as jax_distributed  # the coordination client (barriers)
from jax.experimental import multihost_utils
from ml_collections import ConfigDict

from jina_jax import checkpoints, config_lib, storage, tokenization
from jina_jax.convert import convert
from jina_jax.data import catalog
from jina_jax.data.stdlib_text import stdlib_sentences
from jina_jax.embedders import ModelEmbedder, TfidfEmbedder
from jina_jax.encoding import encode
from jina_jax.errors import CheckpointMismatchError, WorkdirError, cli_errors
from jina_jax.evaluators import compare, detail_tables, is_due, results_table, run_evals
from jina_jax.hf.io import save_hf
from jina_jax.hf.local_models import resolve
from jina_jax.loading import load_embedder, load_model
from jina_jax.model import Model
from jina_jax.models import config_from_dict
from jina_jax.sharding import batch_shards, make_mesh
from jina_jax.training import word_init
from jina_jax.training.checkpointing import config_differences, restore_params, saved_fingerprint
from jina_jax.training.loop import train_stage
from jina_jax.training.tasks import TASKS

FLAGS = flags.FLAGS
config_lib.define_config_flag()
flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and exports go.")

log = logging.getLogger("jina_jax")

DONE_FILE = "DONE"


# --------------------------------------------------------------------------- run context


class Run:
    """What every stage of one run shares: config, workdir, mesh, base model and tokenizer.
    Built lazily so that stages which need none of it (export, verify) start fast."""

    def __init__(self, config: ConfigDict, workdir: epath.Path):
        self.config = config
        self.workdir = workdir

    @functools.cached_property
    def mesh(self):
        return make_mesh(dict(self.config.mesh))

    @property
    def rules(self):
        return [tuple(rule) for rule in self.config.sharding_rules]

    @functools.cached_property
    def base_model(self) -> Model:
        """``Model`` with params=None (random init), or the ``init_from`` weights; the config's
        model fields override either."""
        config = self.config
        overrides = config_lib.model_overrides(config)
        overrides.pop("arch", None)
        if config.init_from:
            model = load_model(config.init_from)
            model.config = dataclasses.replace(model.config, **overrides)
            return model
        tokenizer = self._tokenizer()
        fields = {"vocab_size": tokenizer.vocab_size, **config_lib.model_overrides(config)}
        return Model(
            config=config_from_dict(fields),
            params=None,
            tokenizer=tokenizer,
            pooling=config.pooling,
            normalize=config.normalize,
            max_length=config.max_length,
        )

    def _tokenizer(self):
        config = self.config
        if config.tokenizer == "jina_v2":
            return tokenization.jina_v2_tokenizer()
        if config.tokenizer == "sentencepiece":
            folder = self.workdir / "tokenizer"
            model_file = folder / "spiece.model"
            if _is_primary() and not model_file.exists():
                with storage.writing_dir(folder) as local:
                    texts = catalog.text_source(config.mlm.data, config.data)
                    tokenization.train_sentencepiece(
                        (texts[i] for i in range(min(len(texts), 200_000))),
                        local / "spiece",
                        vocab_size=config.tokenizer_vocab_size,
                    )
            _sync("sentencepiece tokenizer")
            with storage.local_copy(model_file) as local_file:
                return tokenization.sentencepiece_tokenizer(local_file)
        with storage.local_copy(resolve(config.tokenizer)) as local:
            return tokenization.load_tokenizer(local)


def _require(previous: epath.Path | None, stage: str) -> epath.Path:
    if previous is None:
        raise ValueError(
            f"stage {stage!r} needs a model: list 'import' (or a training stage) first"
        )
    return previous


# --------------------------------------------------------------------------- stages


def stage_import(run: Run, stage: str, previous: epath.Path | None) -> dict:
    """Imports ``config.init_from`` (an HF folder or local alias) as a step-0 checkpoint."""
    out = run.workdir / stage
    convert(run.config.init_from, out, overwrite=True)
    return {"from": str(run.config.init_from), "model_dir": str(out)}


def stage_train(run: Run, stage: str, previous: epath.Path | None) -> dict:
    """A training stage (``config.<stage>``, kind from ``jina_jax.training.tasks``), started
    from the previous model stage's weights, else ``init_from``'s, else a random init."""
    task = TASKS[stage](run.config, stage)
    base = run.base_model
    model_config = task.model_config(base.config)
    folder = run.workdir / stage
    # model.json and the tokenizer first: a stage stopped early still leaves a loadable folder.
    # It records the Matryoshka dims the stage trains (the evaluators and the export read them).
    dims = tuple(task.cfg.get("matryoshka_dims", ()))
    if _is_primary():
        checkpoints.write_model_spec(
            folder,
            dataclasses.replace(base, config=model_config, matryoshka_dims=dims),
            **task.spec_fields(),
        )
    if previous is not None:
        start, _ = restore_params(previous)
        start = checkpoints.encoder_params(start)  # a distillation stage's projection stays
    else:
        start = base.params
    reinit = tuple(task.cfg.reinit)
    if start is not None:
        start, known_fresh = task.starting_params(start)
        reinit += known_fresh
    task.prepare(load_embedder)
    try:
        objective = task.objective(model_config)
        if start is None and run.config.init_source_layers:
            start, reinit = _source_layers_start(run, objective, model_config)
        elif start is None and run.config.init_word_embeddings:
            start, reinit = _word_embedding_start(run, objective, model_config)
        return _train(run, task, objective, base, model_config, folder, start, reinit)
    finally:
        task.finish()


def _word_embedding_start(run: Run, objective, model_config) -> tuple[dict, tuple[str, ...]]:
    """A first stage's starting tree: ``init_word_embeddings``'s token table (matched by token,
    PCA-reduced to the model's width); every other parameter starts fresh."""
    source = run.config.init_word_embeddings
    shapes = nn.meta.unbox(jax.eval_shape(objective.init, jax.random.key(0)))
    _, leaf = word_init.find_table(shapes)
    table, matched = word_init.aligned_table(
        load_model(source), run.base_model.tokenizer, leaf.shape[1], seed=run.config.seed
    )
    print(
        f"word embeddings from {source}: {matched} of {len(table)} tokens matched, "
        f"reduced to width {leaf.shape[1]}"
    )
    return word_init.initial_params(shapes, table)


def _source_layers_start(run: Run, objective, model_config) -> tuple[dict, tuple[str, ...]]:
    """A first stage's starting tree: ``init_source_layers`` of ``init_word_embeddings``'s model
    (a BERT) copied into the student (``word_init.layer_params``); the rest starts fresh."""
    source_name, layers = run.config.init_word_embeddings, tuple(run.config.init_source_layers)
    source = load_model(source_name)
    if model_config.hidden_act != source.config.hidden_act:
        raise ValueError(
            f"init_source_layers: the student's hidden_act {model_config.hidden_act!r} differs "
            f"from {source_name}'s {source.config.hidden_act!r}"
        )
    shapes = nn.meta.unbox(jax.eval_shape(objective.init, jax.random.key(0)))
    tree, reinit, copied = word_init.layer_params(
        source, run.base_model.tokenizer, shapes, layers, seed=run.config.seed
    )
    dropped = [n for n in ("position_embeddings",) if n in source.params["embeddings"]]
    print(
        f"student started from {source_name}: its layers {list(layers)} -> student layers "
        f"0..{len(layers) - 1}; {len(copied)} tensors copied (embeddings, attention, LayerNorms, "
        f"feed-forward; BERT's gelu MLP as an exact GEGLU); dropped: {', '.join(dropped) or '-'} "
        "(the student has ALiBi)"
        if model_config.position_embedding_type == "alibi"
        else f"student started from {source_name}: layers {list(layers)}, {len(copied)} tensors"
    )
    return tree, reinit


def _train(run: Run, task, objective, base: Model, model_config, folder, start, reinit) -> dict:
    result = train_stage(
        objective=objective,
        batches=task.batches(base.tokenizer, run.mesh, run.rules),
        stage_cfg=task.cfg,
        workdir=folder,
        mesh=run.mesh,
        rules=run.rules,
        seed=run.config.seed,
        init_params=start,
        reinit=reinit,
        fingerprint=task.fingerprint(),
        grad_cache_chunk=task.grad_cache_chunk,
        evaluate=PeriodicEvals.of(
            run, dataclasses.replace(base, config=model_config), folder, task
        ),
        prng_impl=run.config.prng_impl,
    )
    summary = {"steps": result.step, "resumed_from": result.resumed_from, "model_dir": str(folder)}
    summary.update({k: round(v, 5) for k, v in result.metrics.items()})
    return summary


class PeriodicEvals:
    """The ``config.evals`` entries with ``every`` > 0 (the rest run only in the 'evaluate'
    stage), on the current weights during training, through the same evaluators as 'evaluate';
    results go to ``<stage>/evals.jsonl``. The training loop asks ``due`` first, so that it can
    stop at a non-finite step before evaluating it. A LoRA stage's evals embed through its
    ``eval_adapter`` (``config.lora.eval_adapter``; "" = the frozen base)."""

    def __init__(self, run: Run, model: Model, folder: epath.Path, evals: dict, task):
        self.run, self.model, self.evals, self.task = run, model, evals, task
        self.log_file = storage.JsonLines(folder / "evals.jsonl") if _is_primary() else None

    @classmethod
    def of(cls, run: Run, model: Model, folder: epath.Path, task) -> PeriodicEvals | None:
        evals = {n: dict(e) for n, e in run.config.evals.items() if e.get("every")}
        return cls(run, model, folder, evals, task) if evals else None

    def due(self, step: int, last_step: int) -> bool:
        return any(is_due(e.get("every"), step, last_step) for e in self.evals.values())

    def __call__(self, step: int, params, last_step: int) -> dict[str, float]:
        current = self.task.model_with(self.model, params)
        if self.task.eval_adapter is not None:
            current = ModelEmbedder(current, adapter=self.task.eval_adapter)
        data_dir = str(self.run.config.data.dir)
        results = run_evals(self.evals, current, step=step, last_step=last_step, data_dir=data_dir)
        if self.log_file is not None:
            self.log_file.append({"step": step, **results})
        return {
            f"eval/{n}/{k}": v
            for n, r in results.items()
            for k, v in r.items()
            if isinstance(v, int | float)
        }


def stage_encode(run: Run, stage: str, previous: epath.Path | None) -> dict:
    """Encodes real sentences with the latest model and saves the embeddings."""
    config = run.config
    out = run.workdir / stage
    model = load_model(_require(previous, stage))
    texts = stdlib_sentences(config.sample_texts)
    start = time.perf_counter()
    vectors, stats = encode(
        model,
        texts,
        batch_size=config.encode.batch_size,
        max_length=config.encode.max_length,
        return_stats=True,
    )
    seconds = time.perf_counter() - start
    if _is_primary():
        with (out / "embeddings.npy").open("wb") as f:
            np.save(f, vectors)
        (out / "texts.json").write_text(json.dumps(texts, indent=1))
    return {
        "texts": len(texts),
        "dim": int(vectors.shape[1]),
        "seconds": round(seconds, 2),
        "truncated": stats["truncated"],
        "embeddings": str(out / "embeddings.npy"),
    }


def stage_export(run: Run, stage: str, previous: epath.Path | None) -> dict:
    """Exports the latest model as one transformers + sentence-transformers folder (process 0).
    A model with task adapters (a LoRA stage) is exported as its base plus one PEFT folder per
    adapter (``adapters/<name>/``); ``python -m jina_jax.export --adapter NAME`` merges one
    instead."""
    out = run.workdir / stage / "model"
    summary = {"model_dir": str(out)}
    if _is_primary():
        model = checkpoints.load_model_from_workdir(_require(previous, stage))
        peft = model.adapters is not None
        save_hf(model, out, overwrite=True, auto_map=run.config.export.auto_map, peft=peft)
        if peft:
            summary["adapters"] = list(model.adapters.tasks)
    return summary


def stage_verify_export(run: Run, stage: str, previous) -> dict:
    """Reloads the export with sentence-transformers and compares it with jina_jax."""
    # optional: sentence-transformers (torch) is needed by this stage alone
    from sentence_transformers import SentenceTransformer

    export_dir = run.workdir / "export" / "model"
    texts = stdlib_sentences(run.config.sample_texts)
    ours = encode(load_model(export_dir), texts)
    with storage.local_copy(export_dir) as local:  # sentence-transformers reads local folders
        st = SentenceTransformer(str(local), device="cpu", trust_remote_code=True)
    ref = st.encode(texts, convert_to_numpy=True)
    cos = np.sum(ours * ref, 1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    if cos.min() < 0.9999:
        raise RuntimeError(f"export check failed: min cosine {cos.min():.6f} < 0.9999")
    return {"texts": len(texts), "min_cosine": float(cos.min()), "export": str(export_dir)}


def stage_evaluate(run: Run, stage: str, previous: epath.Path | None) -> dict:
    """Scores the latest model, and the baselines in ``config.evaluate.baselines`` ("tfidf", or
    any model path/alias), on every ``config.evals`` entry; writes results.json and a table.

    Dense models (ours and model baselines) are also scored at ``config.evaluate.precisions``
    (retrieval; ``rescore``) and at the truncations ``config.evaluate.dims`` plus, with
    ``model_dims``, our model's ``matryoshka_dims`` (retrieval, sts, negation), where an entry
    does not set its own; the table then gains one section per entry and model
    (``precision_table``), and results.json holds every metric (``ndcg_at_10/dim_256/int8``,
    ``index_bytes/binary``, ...). A model with task adapters is scored through ``config.lora.eval_adapter``."""
    config = run.config
    out = run.workdir / stage
    entries = {name: dict(entry) for name, entry in config.evals.items()}
    if not entries:
        raise ValueError("stage 'evaluate' needs config.evals entries")
    model_dir = _require(previous, stage)
    model = load_model(model_dir)
    # A LoRA stage's model: scored through config.lora.eval_adapter ("" = its frozen base).
    adapter = (config.lora.eval_adapter or None) if model.adapters is not None else None
    embedders = {"ours": ModelEmbedder(model, name=str(model_dir), adapter=adapter)}
    for name in config.evaluate.baselines:
        embedders[name] = TfidfEmbedder() if name == "tfidf" else load_embedder(name)
    dims = set(config.evaluate.dims)
    if config.evaluate.model_dims:
        dims |= set(embedders["ours"].model.matryoshka_dims)
    options = dict(
        precisions=tuple(config.evaluate.precisions),
        rescore=config.evaluate.rescore,
        dims=tuple(sorted(dims, reverse=True)),
    )
    rows = compare(entries, embedders, data_dir=str(config.data.dir), options=options)
    table = results_table(rows, entries)
    details = detail_tables(rows, entries)
    if details:
        table += "\n\n" + details
    if _is_primary():
        (out / "results.json").write_text(json.dumps(rows, indent=2))
        (out / "results.md").write_text(table + "\n")
    print(table)
    return {"results": str(out / "results.json"), "table": str(out / "results.md")}


# What each stage name does: (run, stage name, previous model folder) -> summary.
STAGES: dict[str, Callable] = {
    "import": stage_import,
    **{kind: stage_train for kind in TASKS},
    "encode": stage_encode,
    "evaluate": stage_evaluate,
    "export": stage_export,
    "verify_export": stage_verify_export,
}
# Stages whose folder holds a model that the next stage starts from.
MODEL_STAGES = {"import", *TASKS}


# --------------------------------------------------------------------------- the run


def enable_compilation_cache(directory: str | os.PathLike | None = None) -> None:
    """Persistent XLA cache: a rerun or a resumed run loads compiled programs from disk instead of
    compiling again. Off unless ``config.compilation_cache``: with several CPU devices, programs
    with collectives loaded from this cache deadlocked (devices at different collectives)."""
    directory = directory or os.environ.get(
        "JINA_JAX_COMPILATION_CACHE", pathlib.Path.home() / ".cache" / "jina_jax" / "xla"
    )
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def maybe_initialize_distributed(config: ConfigDict) -> None:
    """Multi-host: ``jax.distributed.initialize`` before any other JAX call."""
    dist = config.distributed
    if not dist.enabled:
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


def _is_primary() -> bool:
    """The process that writes the run's own files (all but the checkpoints)."""
    return jax.process_index() == 0


_SYNCS = itertools.count()


def _sync(name: str) -> None:
    """Multi-host: waits until every process gets here, so what process 0 wrote before is
    there for all. First at the coordination service's barrier (it waits as long as process 0's
    writes take, up to 10 minutes), then through the devices: the CPU collectives (gloo) give
    up on a peer that is more than 30 s late, which process 0 writing to a slow bucket can be."""
    if jax.process_count() > 1:
        client = jax_distributed.global_state.client
        if client is not None:
            client.wait_at_barrier(f"jina_jax {next(_SYNCS)}: {name}", 600_000)
        multihost_utils.sync_global_devices(name)


def _done(folder: epath.Path) -> dict | None:
    """A completed stage's summary; a DONE file that is not that is an error naming it."""
    marker = folder / DONE_FILE
    if not marker.exists():
        return None
    try:
        summary = storage.read_json(marker)
    except ValueError as e:
        raise WorkdirError(f"{e}; delete it (and redo the stage) or restore it") from e
    if not isinstance(summary, dict):
        raise WorkdirError(f"{marker}: not a stage summary; delete it and redo the stage")
    return summary


def _mark_done(folder: epath.Path, summary: dict) -> None:
    storage.write_text(folder / DONE_FILE, json.dumps(summary, indent=2, default=str))


def _ensure_data(config: ConfigDict) -> None:
    """Builds the starter corpus once, before the first stage, if a training stage reads it."""
    sources = [
        source
        for stage in config.stages
        if stage in TASKS
        for source in TASKS[stage](config, stage).sources()
    ]
    catalog.ensure_data(config.data, sources, embedder_factory=load_embedder)


def run(config: ConfigDict, workdir: str | os.PathLike) -> dict[str, dict]:
    """Runs ``config.stages`` in ``workdir`` (a local folder or ``gs://bucket/run``).

    Nothing is written before the run is accepted: the config is validated, the folder must be a
    jina_jax workdir (or new, or empty), no other run may hold it, and every stage already done
    or checkpointed must have been made with this config. Then process 0 takes the workdir's
    lock, writes config.json, and the stages run."""
    workdir = storage.as_path(workdir)
    config_lib.validate(config)
    maybe_initialize_distributed(config)
    context = Run(config, workdir)
    config_lib.validate(config, batch_shards=batch_shards(context.mesh, context.rules))
    if config.compilation_cache:
        enable_compilation_cache()
    # Every process checks the workdir before any writes to it: process 0's lock and marker,
    # seen half-made by a later process, would look like a folder that is not a workdir.
    storage.check_workdir(workdir)
    fingerprints = {stage: config_lib.stage_fingerprint(config, stage) for stage in config.stages}
    done = _check_earlier_work(config, workdir, fingerprints)
    _sync("workdir checked")
    lock = storage.WorkdirLock(workdir) if _is_primary() else None
    if lock is not None:
        lock.acquire()
    try:
        if _is_primary():
            storage.mark_workdir(workdir)
            storage.write_text(workdir / "config.json", config.to_json_best_effort(indent=2))
        _sync("workdir ready")
        _ensure_data(config)
        previous: epath.Path | None = None
        results: dict[str, dict] = {}
        for stage in config.stages:
            folder = workdir / stage
            summary = done.get(stage)
            if summary is not None:
                print(f"[{stage}] already complete in {folder}, skipping")
            else:
                print(f"[{stage}] running")
                folder.mkdir(parents=True, exist_ok=True)
                start = time.perf_counter()
                summary = STAGES[stage](context, stage, previous)
                summary["wall_seconds"] = round(time.perf_counter() - start, 1)
                summary["config"] = fingerprints[stage]
                if _is_primary():
                    _mark_done(folder, summary)
                _sync(f"stage {stage} done")
            results[stage] = summary
            if stage in MODEL_STAGES:
                previous = folder
    finally:
        if lock is not None:
            lock.release()
    _print_summary(results, workdir)
    return results


def _check_earlier_work(config: ConfigDict, workdir: epath.Path, fingerprints: dict) -> dict:
    """The summaries of the stages already complete; refuses (before anything is written) a
    completed stage, or the checkpoints of an interrupted one, made with another config."""
    done = {}
    for stage in config.stages:
        folder = workdir / stage
        summary = _done(folder)
        if summary is not None:
            problems = config_differences(summary.get("config", {}), fingerprints[stage])
            if problems:
                raise WorkdirError(
                    f"{folder} was completed with another config: "
                    + "; ".join(problems)
                    + ". Use a fresh --workdir, or delete that stage folder to redo it."
                )
            if stage in TASKS and summary.get("steps", 0) < config[stage].steps:
                print(
                    f"[{stage}] was completed at step {summary.get('steps')}; the config asks "
                    f"for {config[stage].steps}: continuing from its checkpoint"
                )
                continue
            done[stage] = summary
        elif stage in TASKS:
            saved = saved_fingerprint(folder)
            problems = [] if saved is None else config_differences(saved, fingerprints[stage])
            if problems:
                raise CheckpointMismatchError(
                    f"{folder / 'checkpoints'} holds a checkpoint of another config: "
                    + "; ".join(problems)
                    + ". Use a fresh --workdir or restore the original config."
                )
    return done


def _print_summary(results: dict[str, dict], workdir: epath.Path) -> None:
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
    if table and storage.as_path(table).exists():
        print(f"\nHeld-out evaluation ({table}):")
        print(storage.as_path(table).read_text(encoding="utf-8").strip())
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
    with cli_errors("jina_jax.main"):
        run(FLAGS.config, FLAGS.workdir)
    return 0


def quiet_libraries() -> None:
    """Our progress lines on the console; orbax/absl INFO chatter only at WARNING and above."""
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
        if len(message) > 1 and message[0] == message[-1] and message[0] in "'\"":
            message = message[1:-1]
        if isinstance(e, KeyError | AttributeError) and " " not in message.strip("'\""):
            # ml_collections names only the key when no known key is close to it
            key = message.strip("'\"")
            message = (
                f"unknown config key {key!r} (no close match); the keys a config has are listed "
                "in jina_jax/config_lib.py"
            )
        print(f"jina_jax.main: config error: {message}", file=sys.stderr)
        sys.exit(2)


def entry_point() -> None:
    app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
    entry_point()
