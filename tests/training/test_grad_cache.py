"""GradCache under data parallelism, read off the compiled per-device program: each chunk takes
``C / 8`` rows from every one of 8 batch shards, so a device runs the encoder on ``[C/8, L, H]``
activations, never ``[C, L, H]``, and its FLOPs and temporary memory are those of the plain step
at a batch of one chunk (plus one forward of a chunk: GradCache's first, gradient-free pass)."""

from __future__ import annotations

import re

import jax
import pytest

from jina_jax import aot, config_lib
from jina_jax import sharding as shd
from jina_jax.models import BertConfig
from jina_jax.training.loop import jit_train_step, make_step_fn
from jina_jax.training.memory import MemoryUse
from jina_jax.training.objectives import ContrastiveObjective
from jina_jax.training.optim import make_optimizer

SHARDS = 8
LENGTH, HIDDEN = 96, 80  # dims no other array of the program has
ROWS, CHUNK = 256, 64  # GradCache: 4 chunks of 64 rows, 8 rows per device per chunk
MODEL = BertConfig(
    vocab_size=90,
    hidden_size=HIDDEN,
    num_layers=2,
    num_heads=4,
    intermediate_size=96,
    max_position_embeddings=LENGTH,
    add_pooler=False,
)


def _compiled(rows: int, chunk: int, program: str = "step"):
    mesh = shd.make_mesh({"data": SHARDS}, jax.devices()[:SHARDS])
    rules = shd.DEFAULT_RULES
    objective = ContrastiveObjective(MODEL)
    tx, schedule = make_optimizer(config_lib.optimizer(1e-4, 0), 10)
    key = jax.random.key(0)
    pairs = rows // 2  # one query and one positive per row
    shapes = {
        "ids": (rows, LENGTH),
        "segments": (rows, LENGTH),
        "positions": (rows, LENGTH),
        "query_lengths": (pairs,),
        "docs_lengths": (pairs,),
    }
    batch = aot.abstract_batch(shapes, mesh, rules)
    state = aot.abstract_state(objective, tx, mesh, rules, key)
    abstract_key = jax.ShapeDtypeStruct(key.shape, key.dtype, sharding=shd.replicated(mesh))
    if program == "forward":  # the encoder alone, no gradient: GradCache's first pass

        def fn(state, batch, rng):
            return objective.embed(state.params, batch, rng, True)

        jitted = jax.jit(fn)
    else:
        jitted = jit_train_step(make_step_fn(objective, tx, schedule, chunk, mesh, rules), state)
    with jax.set_mesh(mesh):
        return jitted.lower(state, batch, abstract_key).compile()


@pytest.fixture(scope="module")
def programs():
    return {
        "grad_cache": _compiled(ROWS, CHUNK),
        "plain": _compiled(CHUNK, 0),
        "forward": _compiled(CHUNK, 0, "forward"),
    }


def _activation_rows(hlo: str) -> set[int]:
    """Row counts of the ``[rows, L, H]`` arrays in a per-device HLO module."""
    return {int(r) for r in re.findall(rf"\[(\d+),{LENGTH},{HIDDEN}\]", hlo)}


def test_each_device_encodes_chunk_over_shards_rows(programs):
    per_device = CHUNK // SHARDS
    assert _activation_rows(programs["plain"].as_text()) == {per_device}
    # a chunk handed whole to one device would show [64, 96, 80] (or the batch's [256, 96, 80])
    assert _activation_rows(programs["grad_cache"].as_text()) == {per_device}


def test_flops_equal_plain_step_at_one_chunk(programs):
    """cost_analysis counts each loop body once: GradCache's two loops over chunks are one
    gradient-free forward and one forward + backward of a chunk, i.e. the plain step at a batch
    of one chunk plus one forward."""
    flops = {name: aot.xla_flops(c) for name, c in programs.items()}
    expected = flops["plain"] + flops["forward"]
    assert abs(flops["grad_cache"] - expected) <= 0.1 * expected, flops


def test_temporaries_equal_plain_step_at_one_chunk(programs):
    temp = {n: MemoryUse.of(c).temporaries for n, c in programs.items() if n != "forward"}
    assert abs(temp["grad_cache"] - temp["plain"]) <= 0.1 * temp["plain"], temp
