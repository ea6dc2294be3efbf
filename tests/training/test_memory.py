"""The fit verdict logged before step 1 (``training.memory``, ``loop._log_memory``)."""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp

from jina_jax.training.loop import _log_memory
from jina_jax.training.memory import GIB, MemoryUse, device_memory_limit, fits, verdict


def test_total_and_verdict_by_hand():
    use = MemoryUse(
        arguments=6 * GIB, outputs=6 * GIB, aliased=5 * GIB, temporaries=3 * GIB, code=0
    )
    assert use.total == 10 * GIB  # 6 + (6 - 5) + 3
    assert fits(use, 16 * GIB) and not fits(use, 8 * GIB) and fits(use, None)
    assert verdict(use, 16 * GIB) == "fits: 10.00 of 16.00 GiB per device, 38% headroom"
    assert verdict(use, 8 * GIB) == (
        "DOES NOT FIT: 10.00 GiB per device > 8.00 GiB, short by 2.00 GiB"
    )
    assert verdict(use, None) == "no HBM limit (CPU): fit not checked"


def test_memory_of_a_compiled_program_adds_up():
    """A program that keeps one 1 MiB float32 input and writes a 1 MiB output."""
    x = jax.ShapeDtypeStruct((512, 512), jnp.float32)
    compiled = jax.jit(lambda a: a * 2.0 + 1.0).lower(x).compile()
    use = MemoryUse.of(compiled)
    assert use.arguments == 512 * 512 * 4 and use.outputs == 512 * 512 * 4
    assert use.total == use.arguments + use.outputs - use.aliased + use.temporaries + use.code


def test_log_memory_on_cpu_says_no_limit(caplog):
    device = jax.devices()[0]
    assert device_memory_limit(device) is None
    compiled = jax.jit(lambda a: a + 1).lower(jax.ShapeDtypeStruct((8,), jnp.float32)).compile()
    with caplog.at_level(logging.INFO, logger="jina_jax.training.loop"):
        _log_memory(compiled, (("ids", (8,)),), device)
    assert "no HBM limit (CPU)" in caplog.text
    assert "arguments 0.00 GiB" in caplog.text
