"""The training loop of one stage: sharded init or exact resume, an ahead-of-time compiled step,
checkpoints that hold the train state and the data position, metrics, and fault handling.

Stage folder::

    checkpoints/<step>/{params, opt_state, meta, data}   orbax, async, keep-N
    metrics.jsonl, tensorboard/                          scalars every ``log_every`` steps
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
import time
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from ml_collections import ConfigDict
from tqdm.auto import tqdm

from jina_jax import sharding as shd
from jina_jax.metrics import MetricWriter, peak_flops
from jina_jax.optim import make_optimizer
from jina_jax.train import TrainState, make_grad_cache_step, make_train_step

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    pass


class CheckpointMismatchError(ValueError):
    pass


class CheckpointSaveError(RuntimeError):
    pass


@dataclasses.dataclass
class StageResult:
    step: int
    params: Any  # host numpy tree
    metrics: dict[str, float]
    resumed_from: int | None


def merge_params(fresh, loaded, *, prefix: str = "") -> tuple[Any, list[str]]:
    """``fresh`` with every leaf that ``loaded`` has at the same path and shape; returns the names
    left at their fresh initialisation (e.g. a pooler that an MLM checkpoint lacks)."""
    fresh_flat = jax.tree_util.tree_flatten_with_path(fresh)[0]
    treedef = jax.tree_util.tree_structure(fresh)
    leaves, untouched = [], []
    for path, value in fresh_flat:
        node = loaded
        for key in path:
            node = node.get(key.key) if isinstance(node, dict) else None
            if node is None:
                break
        if node is not None and np.shape(node) == np.shape(value):
            leaves.append(np.asarray(node, dtype=np.asarray(value).dtype))
        else:
            leaves.append(value)
            untouched.append(prefix + jax.tree_util.keystr(path))
    return jax.tree_util.tree_unflatten(treedef, leaves), untouched


def _device_batch(batch: dict, mesh, rules) -> tuple[dict, str]:
    dataset = str(batch.get("dataset", ""))
    arrays = {k: v for k, v in batch.items() if isinstance(v, np.ndarray) and v.ndim >= 1}
    out = shd.global_batch(arrays, mesh, rules)
    if "in_batch_negatives" in batch:
        out["in_batch_negatives"] = jnp.asarray(bool(batch["in_batch_negatives"]))
    return out, dataset


def _signature(batch: dict) -> tuple:
    return tuple(sorted((k, tuple(v.shape)) for k, v in batch.items()))


def config_differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """``key: was X, now Y`` for every leaf that differs between two nested dicts."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: was {a!r}, now {b!r}")
    return out


def jit_train_step(step_fn, state: TrainState):
    """``jax.jit`` of a train step whose output state keeps the input state's shardings, so the
    next call hits the same compiled program (unpinned outputs can come back laid out
    differently and trigger a second compilation)."""
    state_sharding = jax.tree.map(lambda x: x.sharding, state)
    return jax.jit(step_fn, donate_argnums=(0,), out_shardings=(state_sharding, None))


def init_state(objective, tx, mesh, rules, key, init_params=None) -> TrainState:
    """A train state created directly on its devices: parameters are initialised by
    ``jit(init, out_shardings=...)`` from their logical axis names, then overwritten by
    ``init_params`` (host numpy) where those have the same path and shape."""
    boxed_shapes = jax.eval_shape(objective.init, key)
    param_sharding = shd.param_shardings(boxed_shapes, mesh, rules)
    with jax.set_mesh(mesh):
        params = jax.jit(lambda k: nn.meta.unbox(objective.init(k)), out_shardings=param_sharding)(
            jax.random.fold_in(key, 1)
        )
    if init_params is not None:
        merged, untouched = merge_params(jax.tree.map(np.asarray, params), init_params)
        if untouched:
            log.info("freshly initialised (not in the starting weights): %s", ", ".join(untouched))
        params = jax.device_put(merged, param_sharding)
    with jax.set_mesh(mesh):
        opt_state = jax.jit(tx.init)(params)
    state = TrainState(step=jnp.asarray(0, jnp.int32), params=params, opt_state=opt_state)
    return _on_mesh(state, mesh)


def _on_mesh(tree, mesh):
    """Every leaf committed to a sharding of ``mesh``: scalars such as the step or Adam's count
    are replicated over it. (An uncommitted leaf would come back committed from the first step
    and make the second step compile again.)"""
    from jax.sharding import NamedSharding

    def place(x):
        if isinstance(x.sharding, NamedSharding) and x.sharding.mesh == mesh and x.committed:
            return x
        return jax.device_put(
            x, shd.replicated(mesh) if not isinstance(x.sharding, NamedSharding) else x.sharding
        )

    return jax.tree.map(place, tree)


def train_stage(
    *,
    objective,
    batches,
    stage_cfg: ConfigDict,
    workdir: pathlib.Path,
    mesh,
    rules=shd.DEFAULT_RULES,
    seed: int = 0,
    init_params: Any | None = None,
    identity: dict | None = None,
    show_progress: bool = True,
    evaluate=None,
    prng_impl: str = "threefry2x32",
) -> StageResult:
    """Trains ``objective`` for ``stage_cfg.steps`` steps on ``batches.batch_at(step)``.

    Resumes from the latest checkpoint in ``workdir`` when there is one (refusing a checkpoint
    whose ``identity`` differs), else starts from ``init_params`` merged into a fresh init.
    """
    workdir = pathlib.Path(workdir).absolute()
    total_steps = int(stage_cfg.steps)
    tx, schedule = make_optimizer(stage_cfg.optimizer, total_steps)
    # Dropout keys. threefry2x32 gives the same masks under any sharding; "rbg" is several times
    # faster on one CPU device (see config_lib.base_config's prng_impl).
    key = jax.random.key(seed, impl=prng_impl)
    identity = json.loads(json.dumps(identity or {}, default=str))

    state = init_state(objective, tx, mesh, rules, key, init_params)

    options = ocp.CheckpointManagerOptions(
        max_to_keep=int(stage_cfg.checkpoint.get("keep", 3)),
        create=True,
        enable_async_checkpointing=bool(stage_cfg.checkpoint.get("async", True)),
    )
    manager = ocp.CheckpointManager(workdir / "checkpoints", options=options)
    resumed_from = manager.latest_step()
    if resumed_from is not None:
        meta = manager.restore(resumed_from, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))[
            "meta"
        ]
        problems = config_differences(meta.get("identity", {}), identity)
        if problems:
            manager.close()
            raise CheckpointMismatchError(
                f"{workdir / 'checkpoints'} holds a checkpoint of another config: "
                + "; ".join(problems)
                + ". Use a fresh --workdir or restore the original config."
            )
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state
        )
        restored = manager.restore(
            resumed_from,
            args=ocp.args.Composite(
                params=ocp.args.StandardRestore(abstract.params),
                opt_state=ocp.args.StandardRestore(abstract.opt_state),
                data=ocp.args.JsonRestore(),
            ),
        )
        state = _on_mesh(
            TrainState(
                step=jnp.asarray(resumed_from, jnp.int32),
                params=restored["params"],
                opt_state=restored["opt_state"],
            ),
            mesh,
        )
        if int(restored["data"]["step"]) != resumed_from:
            raise CheckpointMismatchError(
                f"checkpoint {resumed_from}: data position {restored['data']} does not match its step"
            )
        print(f"resuming from step {resumed_from} in {workdir}")

    def save(step: int, state: TrainState) -> None:
        manager.save(
            step,
            args=ocp.args.Composite(
                params=ocp.args.StandardSave(state.params),
                opt_state=ocp.args.StandardSave(state.opt_state),
                meta=ocp.args.JsonSave({"identity": identity, "step": step}),
                data=ocp.args.JsonSave({"step": step, **getattr(batches, "describe", dict)()}),
            ),
        )

    grad_cache = int(stage_cfg.get("grad_cache_chunk", 0) or 0)
    step_fn = (
        make_grad_cache_step(objective, tx, schedule, grad_cache)
        if grad_cache
        else make_train_step(objective, tx, schedule)
    )
    compiled: dict[tuple, Any] = {}
    peak = peak_flops() * mesh.size
    writer = MetricWriter(workdir, enabled=jax.process_index() == 0)
    log_every = int(stage_cfg.get("log_every", 10))
    save_every = int(stage_cfg.checkpoint.get("every", 100))

    start_step = int(state.step)
    pending: list[tuple[int, str, dict]] = []
    window_start, window_tokens, window_examples, window_flops = time.perf_counter(), 0, 0, 0.0
    last_metrics: dict[str, float] = {}
    bar = tqdm(
        total=total_steps,
        initial=start_step,
        desc=workdir.name,
        unit="step",
        disable=not show_progress or jax.process_index() != 0,
    )
    pending_save = None
    try:
        for step in range(start_step, total_steps):
            host_batch = batches.batch_at(step)
            batch, dataset = _device_batch(host_batch, mesh, rules)
            signature = _signature(batch)
            if signature not in compiled:
                jitted = jit_train_step(step_fn, state)
                with jax.set_mesh(mesh):
                    compiled[signature] = jitted.lower(state, batch, key).compile()
                _log_memory(compiled[signature], signature)
            state, metrics = compiled[signature](state, batch, key)
            pending.append((step, dataset, metrics))
            window_tokens += objective.tokens(host_batch)
            window_examples += objective.examples(host_batch)
            window_flops += objective.flops(host_batch)
            bar.update(1)
            done = step + 1
            if done % log_every == 0 or done == total_steps or done % save_every == 0:
                last_metrics = _drain(
                    pending,
                    window_start,
                    window_tokens,
                    window_examples,
                    window_flops,
                    peak,
                    writer,
                    done,
                )
                bar.set_postfix(loss=f"{last_metrics['loss']:.4f}")
                window_start, window_tokens, window_examples, window_flops = (
                    time.perf_counter(),
                    0,
                    0,
                    0.0,
                )
            if evaluate is not None:
                scores = evaluate(done, state.params, total_steps)
                if scores:
                    writer.write(done, scores)
                    last_metrics.update(scores)
            if done % save_every == 0 or done == total_steps:
                # Saves are async: a failed save shows up when we next wait on the manager.
                _finish_save(manager, pending_save, workdir)
                pending_save = done
                save(done, state)
        _finish_save(manager, pending_save, workdir)
    except NonFiniteLossError as e:
        _finish_save(manager, pending_save, workdir)
        raise NonFiniteLossError(
            f"{e}; the last good checkpoint (step {manager.latest_step()}) is kept in "
            f"{workdir / 'checkpoints'}"
        ) from None
    finally:
        bar.close()
        writer.close()
        manager.close()
    host_params = jax.tree.map(np.asarray, state.params)
    return StageResult(
        step=int(state.step), params=host_params, metrics=last_metrics, resumed_from=resumed_from
    )


def _finish_save(manager, step: int | None, workdir: pathlib.Path) -> None:
    try:
        manager.wait_until_finished()
    except Exception as e:
        raise CheckpointSaveError(
            f"saving the checkpoint of step {step} failed ({e}); the checkpoint of step "
            f"{manager.latest_step()} in {workdir / 'checkpoints'} is intact"
        ) from e


def _drain(pending, window_start, tokens, examples, flops, peak, writer, step) -> dict:
    """Fetches the metrics of the steps since the last log; stops at the first non-finite one."""
    for s, dataset, metrics in pending:
        if not bool(metrics["ok"]):
            raise NonFiniteLossError(
                f"non-finite loss at step {s + 1} (dataset {dataset or '?'}): "
                f"loss={float(metrics['loss'])}, grad_norm={float(metrics['grad_norm'])}"
            )
    seconds = max(time.perf_counter() - window_start, 1e-9)
    n = len(pending)
    latest = {k: float(v) for k, v in pending[-1][2].items() if k != "ok"}
    mean_loss = float(np.mean([float(m["loss"]) for _, _, m in pending]))
    scalars = {
        **latest,
        "loss_mean": mean_loss,
        "tokens_per_s": tokens / seconds,
        "examples_per_s": examples / seconds,
        "steps_per_s": n / seconds,
        "mfu": flops / seconds / peak if peak == peak else float("nan"),
    }
    writer.write(step, scalars)
    pending.clear()
    return scalars


def _log_memory(compiled, signature) -> None:
    try:
        memory = compiled.memory_analysis()
    except Exception:  # not every backend reports it
        memory = None
    if memory is None:
        log.info("compiled step for %s (no memory analysis on this backend)", signature)
        return
    fields = (
        "argument_size_in_bytes",
        "output_size_in_bytes",
        "temp_size_in_bytes",
        "generated_code_size_in_bytes",
    )
    sizes = {f: getattr(memory, f, None) for f in fields}
    log.info(
        "compiled step for %s; memory: %s",
        signature,
        ", ".join(
            f"{k.removesuffix('_size_in_bytes')}={v / 2**20:.1f} MiB"
            for k, v in sizes.items()
            if v is not None
        ),
    )
