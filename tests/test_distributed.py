"""Two processes x four CPU devices under jax.distributed (gloo collectives, per-host data
loading: each process packs only its records into rows, the row count agreed from the global
token counts) train exactly like one process with eight devices."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys

import pytest

JOB = pathlib.Path(__file__).parent / "jobs" / "distributed_step.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _last_json(text: str) -> dict:
    return json.loads([line for line in text.splitlines() if line.startswith("{")][-1])


@pytest.mark.slow
def test_two_processes_match_one():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    # the one-process reference runs alongside the pair (their imports and compiles overlap)
    single = subprocess.Popen(
        [sys.executable, str(JOB), "0", "1", "0", "8"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, str(JOB), str(i), "2", str(port), "4"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    single_out, single_err = single.communicate(timeout=600)
    assert single.returncode == 0, single_err[-3000:]
    reference = _last_json(single_out)
    result = _last_json(outs[0][0])
    assert result["processes"] == 2 and result["devices"] == 8
    assert result["local_rows"] == 8 and reference["local_rows"] == 16  # each host loads half
    for a, b in zip(result["losses"], reference["losses"]):
        assert abs(a - b) <= 1e-5 * max(1.0, abs(b)), (result["losses"], reference["losses"])
    assert abs(result["checksum"] - reference["checksum"]) <= 1e-4 * abs(reference["checksum"])
