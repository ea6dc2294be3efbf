"""The command lines of the public entry points and a tiny pairs config, for the fault tests."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]

CONFIG = """
from ml_collections import ConfigDict

from jina_jax import config_lib


def get_config(arg=None):
    c = config_lib.jina_v2_config("small", {{"local"}})
    c.unlock()
    c.stages = ("pairs",)
    c.model.update(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=32)
    c.pairs.datasets = ConfigDict({{"local": config_lib.dataset({pairs!r}, batch_size=8)}})
    c.pairs.update(steps=6, query_max_length=32, passage_max_length=32, log_every=2)
    c.pairs.grad_cache_chunk = 0
    # constant lr: a run resumed with more steps follows the same schedule as a straight one
    c.pairs.optimizer.update(lr=1e-3, warmup_steps=0, schedule="constant")
    c.pairs.checkpoint.update(every=2, keep=5)
    c.lock()
    return c
"""


def env() -> dict:
    return {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": str(REPO),
    }


def main_command(config: pathlib.Path, workdir: pathlib.Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "jina_jax.main",
        f"--config={config}",
        f"--workdir={workdir}",
        *(f"--config.{o}" for o in overrides),
    ]


def run(cmd: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env(), cwd=REPO, capture_output=True, text=True, timeout=timeout)


def last_lines(result: subprocess.CompletedProcess, n: int = 1) -> str:
    return "\n".join((result.stdout + result.stderr).strip().splitlines()[-n:])
