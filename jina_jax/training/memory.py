"""Per-device memory of a compiled program and whether it fits the device (MaxText style): the
same verdict before step 1 of a run (``loop._log_memory``) and for a TPU topology compiled on
another machine (``jina_jax.aot``)."""

from __future__ import annotations

import dataclasses

import jax

GIB = 2**30


@dataclasses.dataclass(frozen=True)
class MemoryUse:
    """Bytes per device, from XLA's ``memory_analysis()`` of the compiled program."""

    arguments: int
    outputs: int
    aliased: int  # outputs written into donated arguments (counted once)
    temporaries: int
    code: int

    @property
    def total(self) -> int:
        """Peak bytes the program needs on one device: its live inputs, the outputs that do not
        reuse a donated input, the temporaries and the program itself."""
        return self.arguments + self.outputs - self.aliased + self.temporaries + self.code

    @classmethod
    def of(cls, compiled) -> MemoryUse | None:
        """None where the backend reports no memory analysis."""
        try:
            m = compiled.memory_analysis()
        except Exception:  # not every backend implements it
            return None
        if m is None:
            return None
        return cls(
            arguments=int(m.argument_size_in_bytes),
            outputs=int(m.output_size_in_bytes),
            aliased=int(getattr(m, "alias_size_in_bytes", 0) or 0),
            temporaries=int(m.temp_size_in_bytes),
            code=int(getattr(m, "generated_code_size_in_bytes", 0) or 0),
        )

    def summary(self) -> str:
        return (
            f"arguments {self.arguments / GIB:.2f} GiB, outputs {self.outputs / GIB:.2f} GiB "
            f"({self.aliased / GIB:.2f} GiB aliased to donated inputs), temporaries "
            f"{self.temporaries / GIB:.2f} GiB, code {self.code / 2**20:.1f} MiB: total "
            f"{self.total / GIB:.2f} GiB"
        )


def device_memory_limit(device: jax.Device) -> int | None:
    """Bytes an accelerator's allocator may hand out (``memory_stats()["bytes_limit"]``); None on
    CPU, which has no device memory limit of its own."""
    if device.platform == "cpu":
        return None
    try:
        stats = device.memory_stats() or {}
    except Exception:  # some runtimes do not report it
        return None
    limit = stats.get("bytes_limit")
    return int(limit) if limit else None


def fits(use: MemoryUse, capacity: int | None) -> bool:
    return capacity is None or use.total <= capacity


def verdict(use: MemoryUse, capacity: int | None) -> str:
    """One line: fits with how much headroom, or short by how many GiB."""
    if capacity is None:
        return "no HBM limit (CPU): fit not checked"
    headroom = capacity - use.total
    if headroom >= 0:
        return (
            f"fits: {use.total / GIB:.2f} of {capacity / GIB:.2f} GiB per device, "
            f"{headroom / capacity:.0%} headroom"
        )
    return (
        f"DOES NOT FIT: {use.total / GIB:.2f} GiB per device > {capacity / GIB:.2f} GiB, "
        f"short by {-headroom / GIB:.2f} GiB"
    )
