"""``jina_jax.aot``: the real step compiled for a TPU topology on this CPU machine (libtpu's
compiler, abstract devices), its fit verdict, and the CLI's exit status."""

from __future__ import annotations

import math
import os
import pathlib
import subprocess
import sys

import flax.linen as nn
import jax
import pytest

from jina_jax import aot, config_lib
from jina_jax.models import forward_flops
from jina_jax.training.objectives import ContrastiveObjective

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("name", "desc", "chips"),
    [
        ("v4-8", "v4:2x2x1", 4),  # v4 names count TensorCores: 2 per chip
        ("v4-32", "v4:2x2x4", 16),
        ("v5e-16", "v5e:4x4", 16),
        ("v5litepod-256", "v5e:16x16", 256),
        ("v5e-8", "v5e:2x4", 8),
        ("v5p-8", "v5p:2x2x1", 4),
        ("v5p-128", "v5p:4x4x4", 64),
        ("v6e-64", "v6e:8x8", 64),
        ("v5e:2x2", "v5e:2x2", 4),
    ],
)
def test_topology_names(name, desc, chips):
    topology = aot.parse_topology(name)
    assert (topology.desc_name, topology.chips) == (desc, chips)


def test_unknown_topology_is_an_error():
    with pytest.raises(ValueError, match="unknown TPU topology 'tpu-9'"):
        aot.parse_topology("tpu-9")
    with pytest.raises(ValueError, match="count 2 cores per chip"):
        aot.parse_topology("v4-9")


def test_collective_bytes_by_hand():
    hlo = """
  %all-reduce.1 = f32[768,3072]{1,0} all-reduce(f32[768,3072]{1,0} %p), channel_id=1
  %ag-start = (bf16[8,64]{1,0}, bf16[32,64]{1,0}) all-gather-start(bf16[8,64]{1,0} %x)
  %ag-done = bf16[32,64]{1,0} all-gather-done((bf16[8,64]{1,0}, bf16[32,64]{1,0}) %ag-start)
  %rs = (f32[16]{0}, s32[4]{0}) reduce-scatter(f32[64]{0} %a, s32[16]{0} %b), dimensions={0}
  %cp = f32[] collective-permute(f32[] %c), source_target_pairs={{0,1}}
"""
    out = aot.collective_bytes(hlo)
    assert out["all-reduce"] == {"count": 1, "bytes": 768 * 3072 * 4}
    assert out["all-gather"] == {"count": 1, "bytes": 32 * 64 * 2}  # counted at -done only
    assert out["reduce-scatter"] == {"count": 1, "bytes": 16 * 4 + 4 * 4}
    assert out["collective-permute"] == {"count": 1, "bytes": 4}
    assert out["all-to-all"] == {"count": 0, "bytes": 0}


def test_local_pairs_step_fits_a_v5e_4_slice():
    """v2_small:local's pairs step (packed GradCache, chunks of 8 rows) for 4 v5e chips:
    worst-case rows and FLOPs by hand, and argument bytes as the state and the batch shard add
    up (data parallel: parameters and both Adam moments replicated on every chip)."""
    config = config_lib.jina_v2_config("small", {"local"})  # configs/v2_small.py:local
    report = aot.compile_stage(config, "pairs", aot.parse_topology("v5e-4"))
    # 16 pairs (the :local cap), queries of 32 tokens and positives of 128 in 128-token rows:
    # 16 rows of one positive + 16 / 4 rows of four queries = 20 rows, rounded up to a multiple
    # of lcm(4 batch shards, chunk of 8) = 8: 24 rows, three GradCache chunks.
    assert report.batch["ids"] == (24, 128) and report.grad_cache_chunk == 8
    objective = ContrastiveObjective(aot.model_config(config))
    assert report.model_flops == 3 * forward_flops(objective.model, 24, 128)
    params = jax.eval_shape(objective.init, jax.random.key(0))
    param_bytes = sum(math.prod(p.shape) * 4 for p in jax.tree.leaves(nn.meta.unbox(params)))
    batch_bytes = 3 * (24 // 4) * 128 * 4 + 2 * (16 // 4) * 4  # ids/segments/positions, lengths
    expected_arguments = 3 * param_bytes + batch_bytes
    assert abs(report.memory.arguments - expected_arguments) <= 0.01 * expected_arguments
    m = report.memory
    assert m.total == m.arguments + m.outputs - m.aliased + m.temporaries + m.code
    assert m.aliased >= 3 * param_bytes  # the donated state is updated in place
    assert report.fits and report.capacity == 16 * 10**9
    assert report.roofline_seconds == report.model_flops / (4 * 197e12)
    assert report.collectives["all-reduce"]["count"] >= 1  # the data-parallel gradient sum


def _run_cli(*flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run(
        [sys.executable, "-m", "jina_jax.aot", "--config=configs/v2_small.py:local", *flags],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )


def test_cli_exits_1_naming_the_stage_that_does_not_fit():
    """100,000 pairs in one batch without GradCache cannot fit a v5e chip (XLA:TPU refuses
    the compile: its temporaries alone exceed the HBM)."""
    proc = _run_cli(
        "--topology=v5e-4",
        "--stages=pairs",
        "--config.pairs.grad_cache_chunk=0",
        "--config.pairs.datasets.manpages.batch_size=100000",
    )
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "stage pairs does not fit v5e-4" in proc.stderr
    assert "short by" in proc.stderr
    assert "| fits | NO" in proc.stdout
