"""Training metrics: a JSONL + TensorBoard writer, and the device peak that MFU divides model FLOPs
(``jina_jax.models.forward_flops``) by: a table for known accelerators, a one-off matmul
measurement on CPU."""

from __future__ import annotations

import functools
import os
import sys
import time

import jax
import jax.numpy as jnp

from jina_jax import storage


def _summary_writer_class():
    """tensorboardX's SummaryWriter, imported without torch: tensorboardX imports torch (about
    0.3 GB of memory and a second of start-up) only to accept torch tensors, and a training run
    logs Python floats. A torch import already done is left as it is."""
    blocked = "torch" not in sys.modules
    if blocked:
        sys.modules["torch"] = None  # makes `import torch` inside tensorboardX fail cleanly
    try:
        from tensorboardX import SummaryWriter
    finally:
        if blocked:
            del sys.modules["torch"]
    return SummaryWriter


SummaryWriter = _summary_writer_class()

# Dense bf16 peak FLOP/s per chip (vendor figures).
PEAK_FLOPS = {
    "TPU v2": 45e12,
    "TPU v3": 123e12,
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,
    "TPU v5e": 197e12,
    "TPU v5p": 459e12,
    "TPU v6 lite": 918e12,
    "TPU v6e": 918e12,
    "NVIDIA H100": 989e12,
    "NVIDIA H200": 989e12,
    "NVIDIA A100": 312e12,
    "NVIDIA L4": 121e12,
    "NVIDIA A10G": 70e12,
}


@functools.cache
def measured_cpu_peak(size: int = 1024, repeats: int = 5) -> float:
    """FLOP/s of a float32 ``size x size`` matmul on the default CPU device: our peak on CPU."""
    a = jnp.ones((size, size), jnp.float32)
    matmul = jax.jit(lambda x: x @ x)
    matmul(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def peak_flops(device: jax.Device | None = None) -> float:
    """Peak FLOP/s of one device: the table for accelerators, a measurement for CPUs."""
    device = device or jax.devices()[0]
    if device.platform == "cpu":
        # Every CPU "device" shares the same cores: the peak of the machine, split across them.
        return measured_cpu_peak() / max(len(jax.devices("cpu")), 1)
    kind = device.device_kind
    for name, flops in PEAK_FLOPS.items():
        if kind.startswith(name):
            return flops
    return float("nan")


class MetricWriter:
    """Writes scalars to ``metrics.jsonl`` and to TensorBoard (``tensorboard/``), in a local
    folder or a bucket (tensorboardX writes ``gs://`` through google-cloud-storage)."""

    def __init__(self, directory: str | os.PathLike, enabled: bool = True):
        self.directory = storage.as_path(directory)
        self.enabled = enabled
        self._tb = None
        self._jsonl = None
        if enabled:
            self._jsonl = storage.JsonLines(self.directory / "metrics.jsonl")
            self._tb = SummaryWriter(str(self.directory / "tensorboard"))

    def write(self, step: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
        self._jsonl.append(record)
        if self._tb is not None:
            for key, value in scalars.items():
                self._tb.add_scalar(key, float(value), int(step))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
