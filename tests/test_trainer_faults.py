"""Faults inside a stage: a NaN loss stops the run naming the step, a full disk fails the save
loudly, and in both cases the last good checkpoint stays readable and unchanged."""

from __future__ import annotations

import pathlib
import subprocess
import uuid

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jina_jax import checkpoints, config_lib
from jina_jax import sharding as shd
from jina_jax.data.pipeline import contrastive_batch
from jina_jax.models import BertConfig
from jina_jax.training.checkpointing import CheckpointSaveError
from jina_jax.training.loop import NonFiniteLossError, train_stage
from jina_jax.training.objectives import ContrastiveObjective

TINY = BertConfig(
    vocab_size=64, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, add_pooler=False
)
SENTINEL = 63


class RandomPairs:
    """Random token batches; step ``poison_step`` carries a sentinel token."""

    def __init__(self, poison_step: int | None = None):
        self.poison_step = poison_step

    def batch_at(self, step):
        rng = np.random.default_rng(step)
        q = rng.integers(1, SENTINEL, (4, 8)).astype(np.int32)
        if step == self.poison_step:
            q[0, 0] = SENTINEL
        p = rng.integers(1, SENTINEL, (4, 8)).astype(np.int32)
        return contrastive_batch(q, p, max_length=8, pad_id=0, pack=False)


class PoisonedObjective(ContrastiveObjective):
    """The real objective, whose loss turns NaN on a batch that carries the sentinel token."""

    def __call__(self, params, batch, rng, train=True):
        loss, metrics = super().__call__(params, batch, rng, train)
        poisoned = jnp.any(batch["ids"] == SENTINEL)
        return jnp.where(poisoned, jnp.nan, loss), metrics


def _stage_cfg(steps):
    cfg = config_lib.contrastive_block("pairs")
    cfg.update(steps=steps, log_every=1)
    cfg.optimizer.update(lr=1e-3, warmup_steps=0, schedule="constant")
    cfg.checkpoint.update(every=2, keep=5)
    return cfg


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    mesh = shd.make_mesh({"data": 1}, devices=jax.devices()[:1])
    objective = PoisonedObjective(TINY)
    with pytest.raises(
        NonFiniteLossError, match=r"non-finite loss at step 5 .*last good checkpoint \(step 4\)"
    ):
        train_stage(
            objective=objective,
            batches=RandomPairs(poison_step=4),
            stage_cfg=_stage_cfg(8),
            workdir=tmp_path,
            mesh=mesh,
            show_progress=False,
        )
    params, step = checkpoints.restore_params(tmp_path)
    assert step == 4
    # the kept checkpoint equals a clean run of 4 steps
    clean = train_stage(
        objective=objective,
        batches=RandomPairs(),
        stage_cfg=_stage_cfg(4),
        workdir=tmp_path / "clean",
        mesh=mesh,
        show_progress=False,
    )
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(clean.params)):
        np.testing.assert_array_equal(a, b)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(params))


@pytest.fixture()
def small_disk(tmp_path):
    """A 9 MB tmpfs: room for one checkpoint of the tiny model, not two."""
    mount = pathlib.Path(f"/tmp/jina-jax-tinyfs-{uuid.uuid4().hex[:8]}")
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=9m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        mount.rmdir()
        pytest.fail(f"this test needs root to mount a small tmpfs: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)
    mount.rmdir()


def test_full_disk_fails_save_and_keeps_previous_checkpoint(small_disk):
    mesh = shd.make_mesh({"data": 1}, devices=jax.devices()[:1])
    config = BertConfig(
        **{**TINY.__dict__, "vocab_size": 50_000, "hidden_size": 32}
    )  # a checkpoint is ~6 MB
    objective = ContrastiveObjective(config)
    with pytest.raises(
        CheckpointSaveError,
        match=r"checkpoint of step 4 failed .*No space left.*checkpoint of step 2 .* intact",
    ):
        train_stage(
            objective=objective,
            batches=RandomPairs(),
            stage_cfg=_stage_cfg(6),
            workdir=small_disk / "run",
            mesh=mesh,
            show_progress=False,
        )
    params, step = checkpoints.restore_params(small_disk / "run")
    assert step == 2
    assert params["embeddings"]["word_embeddings"]["embedding"].shape == (50_000, 32)
