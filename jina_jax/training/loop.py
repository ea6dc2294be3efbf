"""The training loop of one stage: sharded init (or exact resume), an ahead-of-time compiled step,
batches built one step ahead, checkpoints, metrics, and fault handling.

Stage folder::

    checkpoints/<step>/{params, opt_state, meta, data}   orbax, async, keep-N
    metrics.jsonl, tensorboard/                          scalars every ``log_every`` steps
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from ml_collections import ConfigDict
from tqdm.auto import tqdm

from jina_jax import sharding as shd
from jina_jax import storage
from jina_jax.data.pipeline import BatchIterator
from jina_jax.errors import CheckpointMismatchError, TrainingError
from jina_jax.training import memory
from jina_jax.training.checkpointing import TrainCheckpointer
from jina_jax.training.metrics import MetricWriter, peak_flops
from jina_jax.training.optim import make_optimizer
from jina_jax.training.step import TrainState, make_grad_cache_step, make_train_step

log = logging.getLogger(__name__)


class NonFiniteLossError(TrainingError):
    pass


@dataclasses.dataclass
class StageResult:
    step: int
    params: Any  # host numpy tree
    metrics: dict[str, float]
    resumed_from: int | None


def _path_name(path) -> str:
    return "/".join(str(getattr(k, "key", k)) for k in path)


def merge_params(
    fresh, loaded, *, reinit: Sequence[str] = (), source: str = "the starting weights"
) -> tuple[Any, list[str]]:
    """``fresh`` (an initialised tree) with every leaf taken from ``loaded`` at the same path,
    except the leaves whose ``a/b/c`` path matches a ``reinit`` pattern (regular expressions,
    big_vision's ``dont_load``), which keep their fresh initialisation. A leaf that ``loaded``
    lacks, or holds in another shape, is an error naming it unless a pattern covers it.
    Returns the merged tree and the names left fresh."""
    patterns = [re.compile(p) for p in reinit]
    leaves, fresh_names, problems = [], [], []
    flat, treedef = jax.tree_util.tree_flatten_with_path(fresh)
    for path, value in flat:
        name = _path_name(path)
        if any(p.fullmatch(name) for p in patterns):
            leaves.append(value)
            fresh_names.append(name)
            continue
        node = loaded
        for key in path:
            node = node.get(key.key) if isinstance(node, dict) else None
            if node is None:
                break
        if node is None:
            problems.append(f"{name} is missing")
        elif np.shape(node) != np.shape(value):
            problems.append(f"{name} has shape {np.shape(node)}, the model needs {np.shape(value)}")
        else:
            leaves.append(np.asarray(node, dtype=np.asarray(value).dtype))
            continue
        leaves.append(value)
    if problems:
        raise CheckpointMismatchError(
            f"{source} do not fit the model: "
            + "; ".join(problems)
            + ". List the parameters to initialise afresh in the stage's `reinit` patterns."
        )
    return jax.tree_util.tree_unflatten(treedef, leaves), fresh_names


def jit_train_step(step_fn, state: TrainState):
    """``jax.jit`` of a train step whose output state keeps the input state's shardings, so the
    next call hits the same compiled program (unpinned outputs can come back laid out
    differently and trigger a second compilation)."""
    state_sharding = jax.tree.map(lambda x: x.sharding, state)
    return jax.jit(step_fn, donate_argnums=(0,), out_shardings=(state_sharding, None))


def init_state(
    objective, tx, mesh, rules, key, init_params=None, reinit: Sequence[str] = ()
) -> TrainState:
    """A train state created directly on its devices: parameters are initialised by
    ``jit(init, out_shardings=...)`` from their logical axis names, then overwritten by
    ``init_params`` (host numpy) as ``merge_params`` says."""
    boxed_shapes = jax.eval_shape(objective.init, key)
    param_sharding = shd.param_shardings(boxed_shapes, mesh, rules)
    with jax.set_mesh(mesh):
        params = jax.jit(lambda k: nn.meta.unbox(objective.init(k)), out_shardings=param_sharding)(
            jax.random.fold_in(key, 1)
        )
    if init_params is not None:
        merged, fresh = merge_params(jax.tree.map(np.asarray, params), init_params, reinit=reinit)
        if fresh:
            shown = ", ".join(fresh[:12]) + (
                f", ... ({len(fresh)} in all)" if len(fresh) > 12 else ""
            )
            print(f"initialised afresh (reinit patterns): {shown}")
        params = jax.device_put(merged, param_sharding)
    with jax.set_mesh(mesh):
        opt_state = jax.jit(tx.init)(params)
    state = TrainState(step=jnp.asarray(0, jnp.int32), params=params, opt_state=opt_state)
    return _on_mesh(state, mesh)


def _on_mesh(tree, mesh):
    """Every leaf committed to a sharding of ``mesh``: scalars such as the step or Adam's count
    are replicated over it. (An uncommitted leaf would come back committed from the first step
    and make the second step compile again.)"""

    def place(x):
        if isinstance(x.sharding, NamedSharding) and x.sharding.mesh == mesh and x.committed:
            return x
        return jax.device_put(
            x, shd.replicated(mesh) if not isinstance(x.sharding, NamedSharding) else x.sharding
        )

    return jax.tree.map(place, tree)


def _device_batch(batch: dict, mesh, rules) -> tuple[dict, str]:
    dataset = str(batch.get("dataset", ""))
    arrays = {k: v for k, v in batch.items() if isinstance(v, np.ndarray) and v.ndim >= 1}
    out = shd.global_batch(arrays, mesh, rules)
    for key, value in batch.items():  # per-batch scalars (in_batch_negatives, LoRA adapters)
        scalar = isinstance(value, np.ndarray) and value.ndim == 0
        if scalar or isinstance(value, bool | np.bool_ | np.integer | np.floating):
            out[key] = jnp.asarray(value)
    return out, dataset


def _signature(batch: dict) -> tuple:
    return tuple(sorted((k, tuple(v.shape)) for k, v in batch.items()))


def make_step_fn(objective, tx, schedule, grad_cache_chunk: int, mesh, rules):
    """The plain step, or the GradCache step with chunks spread over every batch shard."""
    if not grad_cache_chunk:
        return make_train_step(objective, tx, schedule)
    shards = shd.batch_shards(mesh, rules)
    axes = shd.batch_sharding(mesh, rules).spec[0]
    return make_grad_cache_step(objective, tx, schedule, grad_cache_chunk, shards, axes)


def train_stage(
    *,
    objective,
    batches,
    stage_cfg: ConfigDict,
    workdir: str | os.PathLike,
    mesh,
    rules=shd.DEFAULT_RULES,
    seed: int = 0,
    init_params: Any | None = None,
    reinit: Sequence[str] = (),
    fingerprint: dict | None = None,
    grad_cache_chunk: int = 0,
    show_progress: bool = True,
    evaluate=None,
    prng_impl: str = "threefry2x32",
) -> StageResult:
    """Trains ``objective`` for ``stage_cfg.steps`` steps on ``batches.batch_at(step)``.

    Resumes from the latest checkpoint in ``workdir`` when there is one (refusing a checkpoint
    whose ``fingerprint`` differs), else starts from ``init_params`` merged into a fresh init.
    ``grad_cache_chunk`` > 0: GradCache steps with chunks of that many rows.
    """
    workdir = storage.as_path(workdir)
    total_steps = int(stage_cfg.steps)
    tx, schedule = make_optimizer(stage_cfg.optimizer, total_steps, objective.optimizer_groups())
    # Dropout keys. threefry2x32 gives the same masks under any sharding; "rbg" is several times
    # faster on one CPU device (see config_lib's prng_impl).
    key = jax.random.key(seed, impl=prng_impl)
    state = init_state(objective, tx, mesh, rules, key, init_params, reinit)

    checkpointer = TrainCheckpointer(
        workdir,
        fingerprint=fingerprint or {},
        keep=int(stage_cfg.checkpoint.keep),
        async_save=bool(stage_cfg.checkpoint.async_save),
    )
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state
    )
    try:
        restored = checkpointer.restore_latest(abstract)
    except BaseException:
        checkpointer.close()
        raise
    resumed_from = None
    if restored is not None:
        resumed_from, params, opt_state = restored
        state = _on_mesh(TrainState(jnp.asarray(resumed_from, jnp.int32), params, opt_state), mesh)
        print(f"resuming from step {resumed_from} in {workdir}")

    step_fn = make_step_fn(objective, tx, schedule, grad_cache_chunk, mesh, rules)
    compiled: dict[tuple, Any] = {}
    peak = peak_flops() * mesh.size
    writer = MetricWriter(workdir, enabled=jax.process_index() == 0)
    log_every = int(stage_cfg.log_every)
    save_every = int(stage_cfg.checkpoint.every)

    start_step = int(state.step)
    pending: list[tuple[int, str, dict]] = []
    window = _Window()
    last_metrics: dict[str, float] = {}
    bar = tqdm(
        total=total_steps,
        initial=start_step,
        desc=workdir.name,
        unit="step",
        disable=not show_progress or jax.process_index() != 0,
    )
    # Batch k + 1 is built on a host thread while the devices run step k.
    batch_iter = BatchIterator(
        batches.batch_at, start_step, prefetch=int(stage_cfg.prefetch), stop=total_steps
    )
    try:
        for step in range(start_step, total_steps):
            host_batch = next(batch_iter)
            batch, dataset = _device_batch(host_batch, mesh, rules)
            signature = _signature(batch)
            if signature not in compiled:
                jitted = jit_train_step(step_fn, state)
                with jax.set_mesh(mesh):
                    compiled[signature] = jitted.lower(state, batch, key).compile()
                _log_memory(compiled[signature], signature, mesh.devices.flat[0])
            state, metrics = compiled[signature](state, batch, key)
            pending.append((step, dataset, metrics))
            window.add(objective, host_batch)
            bar.update(1)
            done = step + 1
            if done % log_every == 0 or done == total_steps or done % save_every == 0:
                last_metrics = _drain(pending, window, peak, writer, done)
                bar.set_postfix(loss=f"{last_metrics['loss']:.4f}")
                window = _Window()
            if evaluate is not None and evaluate.due(done, total_steps):
                if pending:  # never evaluate (and log) weights of a step that went non-finite
                    last_metrics = _drain(pending, window, peak, writer, done)
                    window = _Window()
                scores = evaluate(done, state.params, total_steps)
                writer.write(done, scores)
                last_metrics.update(scores)
            if done % save_every == 0 or done == total_steps:
                checkpointer.save(done, state)
        checkpointer.wait()
    except NonFiniteLossError as e:
        checkpointer.wait()
        good = checkpointer.latest_step()
        kept = (
            f"the last good checkpoint (step {good}) is kept in {checkpointer.directory}"
            if good is not None
            else "no checkpoint was written before it"
        )
        raise NonFiniteLossError(f"{e}; {kept}") from None
    finally:
        batch_iter.close()
        bar.close()
        writer.close()
        checkpointer.close()
    host_params = jax.tree.map(np.asarray, state.params)
    return StageResult(
        step=int(state.step), params=host_params, metrics=last_metrics, resumed_from=resumed_from
    )


@dataclasses.dataclass
class _Window:
    """Work done since the last log line, for tokens/s, examples/s and MFU."""

    start: float = dataclasses.field(default_factory=time.perf_counter)
    tokens: int = 0
    examples: int = 0
    flops: float = 0.0

    def add(self, objective, host_batch) -> None:
        self.tokens += objective.tokens(host_batch)
        self.examples += objective.examples(host_batch)
        self.flops += objective.flops(host_batch)


def _drain(pending, window: _Window, peak, writer, step) -> dict:
    """Fetches the metrics of the steps since the last log; stops at the first non-finite one."""
    for s, dataset, metrics in pending:
        if not bool(metrics["ok"]):
            raise NonFiniteLossError(
                f"non-finite loss at step {s + 1} (dataset {dataset or '?'}): "
                f"loss={float(metrics['loss'])}, grad_norm={float(metrics['grad_norm'])}"
            )
    seconds = max(time.perf_counter() - window.start, 1e-9)
    n = len(pending)
    latest = {k: float(v) for k, v in pending[-1][2].items() if k != "ok"}
    mean_loss = float(np.mean([float(m["loss"]) for _, _, m in pending]))
    scalars = {
        **latest,
        "loss_mean": mean_loss,
        "tokens_per_s": window.tokens / seconds,
        "examples_per_s": window.examples / seconds,
        "steps_per_s": n / seconds,
        "mfu": window.flops / seconds / peak if peak == peak else float("nan"),
    }
    writer.write(step, scalars)
    pending.clear()
    return scalars


def _log_memory(compiled, signature, device: jax.Device) -> None:
    """XLA's per-device memory of the compiled step, and whether it fits ``device`` (MaxText
    logs the same before step 1): a step that does not fit is a warning naming the shortfall."""
    use = memory.MemoryUse.of(compiled)
    if use is None:
        log.info("compiled step for %s (no memory analysis on this backend)", signature)
        return
    capacity = memory.device_memory_limit(device)
    line = memory.verdict(use, capacity)
    level = logging.INFO if memory.fits(use, capacity) else logging.WARNING
    log.log(
        level, "compiled step for %s; memory per device: %s; %s", signature, use.summary(), line
    )
