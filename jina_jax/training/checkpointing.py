"""Checkpoints of a training stage (orbax): the train state, the data position and the run's
fingerprint, saved asynchronously and restored exactly.

    checkpoints/<step>/{params, opt_state, meta, data}

``meta`` holds the stage's fingerprint (the config values that decide what it produces) and the
step; a resume whose fingerprint differs is refused, naming the differing keys. ``data`` holds
the position of the input pipeline (its step: batches are a pure function of the step).
"""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from jina_jax import storage
from jina_jax.errors import CheckpointError, CheckpointMismatchError, TrainingError

CHECKPOINT_DIR = "checkpoints"
DAMAGED_DIR = "damaged_checkpoints"  # beside checkpoints/, so orbax never lists them


class CheckpointSaveError(TrainingError):
    pass


def _manager(directory, options: ocp.CheckpointManagerOptions) -> ocp.CheckpointManager:
    """A CheckpointManager of the items a stage saves, on a local folder or a bucket.

    On ``gs://`` the arrays are saved without OCDBT: one zarr array per leaf, one object per
    chunk. OCDBT keeps a manifest per process that TensorStore rewrites by read-modify-write,
    guarded by the object generation it read (``ifGenerationMatch``). Real GCS supports that;
    the emulator the tests run against (gcp-storage-emulator) neither returns an object's
    generation on reads (``x-goog-generation``) nor honours preconditions, and saving the
    manifest then fails ("Malformed StorageGeneration"), for some saves and not others. Plain
    zarr needs neither (each chunk object is written whole, once), so the format the tests
    exercise is the one a pod writes. Local folders keep orbax's default (OCDBT); restores read
    either format. The handlers are named so that ``item_metadata`` can read the params' shapes
    without a restore."""
    use_ocdbt = not storage.is_remote(directory)
    handlers = {
        "params": ocp.StandardCheckpointHandler(use_ocdbt=use_ocdbt),
        "opt_state": ocp.StandardCheckpointHandler(use_ocdbt=use_ocdbt),
        "meta": ocp.JsonCheckpointHandler(),
        "data": ocp.JsonCheckpointHandler(),
    }
    return ocp.CheckpointManager(directory, options=options, item_handlers=handlers)


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


class TrainCheckpointer:
    """Save / restore of a stage's train state under ``<stage folder>/checkpoints``."""

    def __init__(
        self,
        stage_dir: str | os.PathLike,
        *,
        fingerprint: dict,
        keep: int = 3,
        async_save: bool = True,
    ):
        self.directory = storage.as_path(stage_dir) / CHECKPOINT_DIR
        self.fingerprint = fingerprint
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=async_save
        )
        self.manager = _manager(self.directory, options)
        self._saving: int | None = None

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def check_fingerprint(self, step: int) -> None:
        """Refuses a checkpoint written by another config, naming the differing keys."""
        meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        problems = config_differences(meta["meta"].get("fingerprint", {}), self.fingerprint)
        if problems:
            raise CheckpointMismatchError(
                f"{self.directory} holds a checkpoint of another config: "
                + "; ".join(problems)
                + ". Use a fresh --workdir or restore the original config."
            )

    def restore(self, step: int, abstract_state):
        """``(params, opt_state)`` of ``step``, laid out as ``abstract_state`` (shapes and
        shardings of a ``TrainState``)."""
        self.check_fingerprint(step)
        restored = self.manager.restore(
            step,
            args=ocp.args.Composite(
                params=ocp.args.StandardRestore(abstract_state.params),
                opt_state=ocp.args.StandardRestore(abstract_state.opt_state),
                data=ocp.args.JsonRestore(),
            ),
        )
        if int(restored["data"]["step"]) != step:
            raise CheckpointError(
                f"checkpoint {step}: data position {restored['data']} does not match its step"
            )
        return restored["params"], restored["opt_state"]

    def restore_latest(self, abstract_state):
        """The newest intact checkpoint as ``(step, params, opt_state)``, or None when there is
        none. A checkpoint that cannot be read (a truncated or missing file, garbage metadata)
        is moved aside to ``<stage>/damaged_checkpoints/`` (never deleted), with a message, and
        the next older one is tried. A checkpoint of another config is refused, not skipped."""
        while (step := self.manager.latest_step()) is not None:
            try:
                params, opt_state = self.restore(step, abstract_state)
            except CheckpointMismatchError:
                raise
            except Exception as e:
                self._set_aside(step, e)
                continue
            return step, params, opt_state
        return None

    def _set_aside(self, step: int, error: Exception) -> None:
        source = self.directory / str(step)
        target = self.directory.parent / DAMAGED_DIR / f"{step}-{int(time.time())}"
        reason = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
        if jax.process_index() == 0:
            target.parent.mkdir(parents=True, exist_ok=True)
            source.rename(target)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"checkpoint {step} set aside")
        self.manager.reload()
        older = self.manager.latest_step()
        print(
            f"checkpoint {step} in {self.directory} is damaged ({type(error).__name__}: "
            f"{reason}); moved it to {target}; "
            + (f"trying checkpoint {older}" if older is not None else "no older checkpoint")
        )

    def save(self, step: int, state) -> None:
        """Starts an async save of ``step``; a failure of the previous save surfaces here."""
        self.wait()
        self._saving = step
        self.manager.save(
            step,
            args=ocp.args.Composite(
                params=ocp.args.StandardSave(state.params),
                opt_state=ocp.args.StandardSave(state.opt_state),
                meta=ocp.args.JsonSave({"fingerprint": self.fingerprint, "step": step}),
                data=ocp.args.JsonSave({"step": step}),
            ),
        )

    def wait(self) -> None:
        """Waits for the save in flight; a failed save names its step and the intact one."""
        try:
            self.manager.wait_until_finished()
        except Exception as e:
            raise CheckpointSaveError(
                f"saving the checkpoint of step {self._saving} failed ({e}); the checkpoint of "
                f"step {self.manager.latest_step()} in {self.directory} is intact"
            ) from e
        self._saving = None

    def close(self) -> None:
        self.manager.close()


def checkpoint_manager(stage_dir: str | os.PathLike, *, create: bool = True, keep: int | None = 3):
    directory = storage.as_path(stage_dir) / CHECKPOINT_DIR
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create)
    return _manager(directory, options)


def latest_step(stage_dir: str | os.PathLike) -> int | None:
    if not (storage.as_path(stage_dir) / CHECKPOINT_DIR).exists():
        return None
    with checkpoint_manager(stage_dir, create=False) as manager:
        return manager.latest_step()


def save_params(stage_dir: str | os.PathLike, step: int, params) -> None:
    """Saves a bare ``params`` item (what ``convert`` writes; training adds more items)."""
    with checkpoint_manager(stage_dir) as manager:
        manager.save(step, args=ocp.args.Composite(params=ocp.args.StandardSave(params)))
        manager.wait_until_finished()


def restore_params(stage_dir: str | os.PathLike, step: int | None = None, abstract=None):
    """The ``params`` item of ``step`` (default: latest) as host numpy arrays, and the step.
    Without ``abstract`` the tree comes back as saved, onto one CPU device whatever devices
    saved it (a pod's checkpoint reads on a laptop); callers check shapes and name what
    differs (orbax's own message would not)."""
    with checkpoint_manager(stage_dir, create=False) as manager:
        step = manager.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{storage.as_path(stage_dir) / CHECKPOINT_DIR}: no checkpoint")
        if abstract is None:
            cpu = jax.sharding.SingleDeviceSharding(jax.local_devices(backend="cpu")[0])
            abstract = jax.tree.map(
                lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=cpu),
                manager.item_metadata(step)["params"],
            )
        restore = ocp.args.StandardRestore(abstract)
        restored = manager.restore(step, args=ocp.args.Composite(params=restore))
    return jax.tree.map(np.asarray, restored["params"]), step


def host_tree(tree) -> Any:
    return jax.tree.map(np.asarray, tree)


def saved_fingerprint(stage_dir: str | os.PathLike) -> dict | None:
    """The fingerprint recorded in the newest checkpoint whose metadata reads (damaged ones are
    left for ``restore_latest``), or None when the stage has no checkpoint. Writes nothing."""
    directory = storage.as_path(stage_dir) / CHECKPOINT_DIR
    if not directory.exists():
        return None
    manager = _manager(directory, ocp.CheckpointManagerOptions(create=False))
    try:
        for step in sorted(manager.all_steps(), reverse=True):
            try:
                meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
            except Exception:  # damaged: restore_latest will set it aside
                continue
            fingerprint = (
                meta["meta"].get("fingerprint") if isinstance(meta["meta"], dict) else None
            )
            if isinstance(fingerprint, dict):
                return fingerprint
    finally:
        manager.close()
    return None
