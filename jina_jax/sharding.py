"""Device mesh and the one rules table from logical axis names to mesh axes.

Parameters carry logical names (``vocab, embed, mlp, heads, kv``; see ``models/layers.py``) and
batches the name ``batch``. ``config.sharding_rules`` maps each to mesh axes
(``data, fsdp, tensor``), so data parallel -> FSDP -> tensor parallel is a config change:

    data parallel:  mesh {data: -1}                 params replicated
    FSDP:           mesh {data: 1, fsdp: -1}        ``embed`` dims split over fsdp
    data x tensor:  mesh {data: -1, tensor: 2}      ``heads``/``mlp``/``vocab`` split over tensor
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

log = logging.getLogger(__name__)

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

# logical name -> mesh axis (or tuple of axes, or None = replicated)
DEFAULT_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    ("batch", ("data", "fsdp")),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv", None),
    ("layers", None),  # the stacked-layer axis of scan_layers models
)


def make_mesh(shape: dict[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A ``data x fsdp x tensor`` mesh; one axis may be -1 (all remaining devices)."""
    devices = list(jax.devices() if devices is None else devices)
    unknown = set(shape) - set(MESH_AXES)
    if unknown:
        raise ValueError(f"unknown mesh axes {sorted(unknown)}; mesh axes are {MESH_AXES}")
    sizes = [int(shape.get(name, 1)) for name in MESH_AXES]
    if sizes.count(-1) > 1:
        raise ValueError(f"at most one mesh axis may be -1, got {dict(zip(MESH_AXES, sizes))}")
    fixed = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if len(devices) % fixed:
            raise ValueError(f"{len(devices)} devices do not split into mesh {dict(shape)}")
        sizes[sizes.index(-1)] = len(devices) // fixed
    if math.prod(sizes) != len(devices):
        raise ValueError(
            f"mesh {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices, "
            f"there are {len(devices)}"
        )
    # Mesh() gives Auto axes: the GSPMD style, where the compiler propagates shardings.
    return Mesh(np.asarray(devices).reshape(sizes), MESH_AXES)


def _rules_dict(rules) -> dict[str, tuple[str, ...]]:
    out = {}
    for name, axes in rules:
        if axes is None:
            out[name] = ()
        elif isinstance(axes, str):
            out[name] = (axes,)
        else:
            out[name] = tuple(axes)
    return out


def spec_for(shape: Sequence[int], names: Sequence[str | None], mesh: Mesh, rules) -> P:
    """PartitionSpec for one array; a dimension the mesh axes do not divide is replicated."""
    table = _rules_dict(rules)
    used: set[str] = set()
    entries = []
    for dim, name in zip(shape, names):
        axes = tuple(a for a in table.get(name, ()) if mesh.shape[a] > 1 and a not in used)
        size = math.prod(mesh.shape[a] for a in axes)
        if axes and dim % size == 0:
            used.update(axes)
            entries.append(axes if len(axes) > 1 else axes[0])
        else:
            if axes:
                log.debug("replicating a dim of %d over %s (not divisible)", dim, axes)
            entries.append(None)
    return P(*entries)


def param_shardings(boxed_params, mesh: Mesh, rules=DEFAULT_RULES):
    """NamedShardings for a tree of ``nn.LogicallyPartitioned`` (or their abstract shapes)."""

    def one(leaf):
        if isinstance(leaf, nn.LogicallyPartitioned):
            return NamedSharding(mesh, spec_for(leaf.value.shape, leaf.names, mesh, rules))
        return NamedSharding(mesh, P())

    return jax.tree.map(one, boxed_params, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))


def batch_sharding(mesh: Mesh, rules=DEFAULT_RULES) -> NamedSharding:
    axes = tuple(a for a in _rules_dict(rules).get("batch", BATCH_AXES) if mesh.shape[a] > 1)
    return NamedSharding(mesh, P(axes if axes else None))


def batch_shards(mesh: Mesh, rules=DEFAULT_RULES) -> int:
    """How many ways the batch dimension is split (product of the batch axes' sizes)."""
    spec = batch_sharding(mesh, rules).spec[0]
    axes = () if spec is None else (spec if isinstance(spec, tuple) else (spec,))
    return int(np.prod([mesh.shape[a] for a in axes], dtype=np.int64))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def global_batch(local_batch: dict, mesh: Mesh, rules=DEFAULT_RULES) -> dict:
    """Host-local numpy arrays -> global jax.Arrays sharded over the batch axes.

    Each host passes its own slice of the global batch (per-host data loading); on one host this
    is the whole batch. Scalars and strings are left to the caller.
    """
    sharding = batch_sharding(mesh, rules)
    out = {}
    for key, value in local_batch.items():
        if isinstance(value, np.ndarray) and value.ndim >= 1:
            spec = P(sharding.spec[0], *([None] * (value.ndim - 1)))
            out[key] = jax.make_array_from_process_local_data(NamedSharding(mesh, spec), value)
        else:
            out[key] = value
    return out
