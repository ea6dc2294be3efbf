"""The pod step, proven before renting the pod (MaxText's ``train_compile``): compiles the real
train step of every training stage of a config for a TPU topology, on this machine, and says
whether it fits the chips.

    python -m jina_jax.aot --config=configs/v2_base.py --topology=v5e-256
    python -m jina_jax.aot --config=configs/v2_large.py --topology=v4-32 --config.mesh.fsdp=16

For each stage: the sharded abstract train state (``eval_shape`` of init and optimizer, laid
out by the config's logical-axis rules on a mesh of the topology's abstract devices), the step
``make_step_fn`` builds (GradCache included) and a batch of the WORST-CASE shape of the config
(every text at its max length, rows rounded as the pipeline rounds them, the largest batch of
the stage's datasets), compiled ahead of time. It prints per chip HBM (arguments,
temporaries, outputs, total) against the chip's capacity, model FLOPs (analytic; XLA's count,
which sees a loop body once, beside it), the bytes of each collective in the optimized HLO and
the roofline step time. Exit status 1 names each stage that does not fit and by how much.

Topologies are named as Cloud TPU names them: ``v4-8`` (v4 and v5p names count TensorCores,
two per chip: v4-8 is 4 chips), ``v5e-16`` or ``v5litepod-16`` (chips), ``v5p-8``, ``v6e-64``;
or as ``get_topology_desc`` does, ``v5e:4x4``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
import time
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from absl import app, flags
from jax.experimental import topologies
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from ml_collections import ConfigDict

from jina_jax import config_lib
from jina_jax import sharding as shd
from jina_jax.data.pipeline import packed_row_count, row_bucket
from jina_jax.models import config_from_dict
from jina_jax.training.loop import jit_train_step, make_step_fn
from jina_jax.training.memory import GIB, MemoryUse
from jina_jax.training.optim import make_optimizer
from jina_jax.training.step import TrainState
from jina_jax.training.tasks import TASKS

FLAGS = flags.FLAGS
config_lib.define_config_flag()
flags.DEFINE_string("topology", None, "TPU topology: v4-8, v4-32, v5e-16, v5e-256, v5p-8, ...")
flags.DEFINE_list("stages", None, "Training stages to compile (default: every one the config has).")


# --------------------------------------------------------------------------- topologies


@dataclasses.dataclass(frozen=True)
class Chip:
    """Cloud TPU documentation: peak dense bf16 FLOP/s and HBM per chip."""

    kind: str  # get_topology_desc's name prefix
    peak_flops: float
    hbm_bytes: int
    cores_in_name: int  # TensorCores per chip that the accelerator name counts
    dims: int  # torus dimensions


CHIPS = {
    "v4": Chip("v4", 275e12, 32 * GIB, 2, 3),
    # 16 GB as the docs give it (SPEC.md §6); taking GB, not GiB, keeps the verdict on the
    # safe side.
    "v5e": Chip("v5e", 197e12, 16 * 10**9, 1, 2),
    "v5p": Chip("v5p", 459e12, 95 * GIB, 2, 3),
    "v6e": Chip("v6e", 918e12, 32 * GIB, 1, 2),
}
ALIASES = {"v5litepod": "v5e", "v5lite": "v5e", "v6lite": "v6e"}


@dataclasses.dataclass(frozen=True)
class Topology:
    name: str  # as the user wrote it
    chip: Chip
    shape: tuple[int, ...]  # chips along each torus dimension

    @property
    def chips(self) -> int:
        return math.prod(self.shape)

    @property
    def desc_name(self) -> str:
        return f"{self.chip.kind}:{'x'.join(map(str, self.shape))}"

    def devices(self) -> list:
        """The topology's abstract devices (compile-only; nothing runs on them)."""
        # No TPU is attached here; several processes may then load libtpu at once (tests,
        # benchmarks compiling side by side) instead of waiting on its single-process lock.
        os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
        kwargs: dict[str, Any] = {}
        if self.chip.kind == "v4":  # SPEC §6: v4 needs megacore and explicit host bounds
            kwargs = dict(
                chip_config_name="megacore",
                chips_per_host_bounds=(min(2, self.shape[0]), min(2, self.shape[1]), 1),
                num_slices=1,
                wrap=(False, False, False),
            )
        desc = topologies.get_topology_desc(topology_name=self.desc_name, platform="tpu", **kwargs)
        return list(desc.devices)


def _torus(chips: int, dims: int) -> tuple[int, ...]:
    """The usual slice shape of ``chips`` chips: 2D ``a x b`` with ``a <= b`` as square as
    powers of two allow (v5e-16 -> 4x4, v5e-32 -> 4x8); 3D from 2x2x1 up, doubling the
    smallest dimension, the last of equals first (8 -> 2x2x2, 16 -> 2x2x4, 64 -> 4x4x4)."""
    if chips < 1 or chips & (chips - 1):
        raise ValueError(f"{chips} chips: slice sizes are powers of two")
    if dims == 2:
        a = 1 << ((chips.bit_length() - 1) // 2)
        return (a, chips // a)
    if chips < 4:
        return (1, chips, 1)
    shape = [2, 2, 1]  # one host's chips
    while math.prod(shape) < chips:
        smallest = min(shape)
        shape[max(i for i, d in enumerate(shape) if d == smallest)] *= 2
    return tuple(shape)


def parse_topology(name: str) -> Topology:
    """``v4-8`` / ``v5e-16`` / ``v5litepod-16`` / ``v5p-8`` / ``v6e-64``, or ``v5e:4x4``."""
    text = name.strip().lower()
    explicit = re.fullmatch(r"([a-z0-9]+):(\d+(?:x\d+)*)", text)
    if explicit:
        kind = ALIASES.get(explicit[1], explicit[1])
        if kind not in CHIPS:
            raise ValueError(f"unknown TPU generation {explicit[1]!r}; known: {sorted(CHIPS)}")
        return Topology(name, CHIPS[kind], tuple(int(d) for d in explicit[2].split("x")))
    match = re.fullmatch(r"([a-z0-9]+)-(\d+)", text)
    if not match or ALIASES.get(match[1], match[1]) not in CHIPS:
        raise ValueError(
            f"unknown TPU topology {name!r}: use v4-8, v4-32, v5e-16, v5litepod-256, v5p-8, "
            "v6e-64, ... (or v5e:4x4)"
        )
    chip = CHIPS[ALIASES.get(match[1], match[1])]
    count = int(match[2])
    if count % chip.cores_in_name:
        raise ValueError(f"{name}: {chip.kind} names count {chip.cores_in_name} cores per chip")
    return Topology(name, chip, _torus(count // chip.cores_in_name, chip.dims))


# --------------------------------------------------------------------------- abstract inputs


def model_config(config: ConfigDict):
    """The encoder config the run would build (``main.Run.base_model`` without a tokenizer:
    the config must give ``model.vocab_size``, or the architecture default is used)."""
    return config_from_dict(config_lib.model_overrides(config))


def _abstract(tree, shardings):
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings
    )


def abstract_state(objective, tx, mesh, rules, key) -> TrainState:
    """The train state ``loop.init_state`` would create, as sharded ``ShapeDtypeStruct``s:
    parameters laid out by their logical axis names, the optimizer state as ``jit(tx.init)``
    lays it out from them."""
    boxed = jax.eval_shape(objective.init, key)
    params = _abstract(nn.meta.unbox(boxed), shd.param_shardings(boxed, mesh, rules))
    with jax.set_mesh(mesh):
        init = jax.jit(tx.init).lower(params).compile()
    opt_state = _abstract(jax.eval_shape(tx.init, params), init.output_shardings)
    step = jax.ShapeDtypeStruct((), jnp.int32, sharding=shd.replicated(mesh))
    return TrainState(step=step, params=params, opt_state=opt_state)


def worst_case_shapes(config: ConfigDict, stage: str, row_multiple: int) -> dict[str, tuple]:
    """Shapes of the largest batch the stage's pipeline can produce: every text at its max
    length, the largest dataset batch, rows rounded up as ``PairBatches``/``MLMBatches`` round
    them (``row_multiple``: the batch shards, times the GradCache chunk)."""
    cfg = config[stage]
    if stage == "mlm":
        rows = -(-int(cfg.batch_size) // row_multiple) * row_multiple
        grid = (rows, int(cfg.max_length))
        return {k: grid for k in ("ids", "segments", "positions", "labels")}
    if not cfg.datasets:
        raise ValueError(f"config.{stage}.datasets is empty: no batch size to compile for")
    b = max(int(ds.batch_size) for ds in cfg.datasets.values())
    k = int(cfg.num_negatives)
    q, p = int(cfg.query_max_length), int(cfg.passage_max_length)
    length = max(q, p)
    if cfg.pack:
        used = packed_row_count({q: b, p: b * (1 + k)} if q != p else {q: b * (2 + k)}, length)
        rows = row_bucket(used, row_multiple, int(cfg.pack_row_steps))
    else:
        rows = -(-b * (2 + k) // row_multiple) * row_multiple
    grid = (rows, length)
    shapes = {
        "ids": grid,
        "segments": grid,
        "positions": grid,
        "query_lengths": (b,),
        "docs_lengths": (b * (1 + k),),
    }
    if stage == "lora":  # the adapters of the batch's two sides: int32 scalars
        shapes.update(query_adapter=(), passage_adapter=())
    return shapes


def abstract_batch(shapes: dict[str, tuple], mesh, rules) -> dict:
    """int32 ``ShapeDtypeStruct``s sharded as ``sharding.global_batch`` shards a host batch (a
    per-text length array the batch shards do not divide is replicated)."""
    axes = shd.batch_sharding(mesh, rules).spec[0]
    shards = shd.batch_shards(mesh, rules)
    out = {}
    for key, shape in shapes.items():
        if not shape:  # a per-batch scalar
            out[key] = jax.ShapeDtypeStruct((), jnp.int32, sharding=shd.replicated(mesh))
            continue
        spec = P(axes, *([None] * (len(shape) - 1))) if shape[0] % shards == 0 else P()
        out[key] = jax.ShapeDtypeStruct(shape, jnp.int32, sharding=NamedSharding(mesh, spec))
    if "query_lengths" in shapes:
        out["in_batch_negatives"] = jax.ShapeDtypeStruct(
            (), jnp.bool_, sharding=shd.replicated(mesh)
        )
    return out


# --------------------------------------------------------------------------- the compiled step

COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
_DTYPE_BYTES = {
    "pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2,
    "s32": 4, "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16,
}  # fmt: skip
_COLLECTIVE = re.compile(
    r"=\s*(?P<shape>.*?)\s+(?P<op>" + "|".join(COLLECTIVES) + r")(?P<suffix>-start|-done)?\("
)
_ARRAY = re.compile(r"\b([a-z]+\d*)\[([\d,]*)\]")


def collective_bytes(hlo_text: str) -> dict[str, dict[str, int]]:
    """Per collective kind in an optimized HLO module: how many instructions and the bytes of
    their results (per device). Async pairs count once, at ``-done``. A collective inside a loop
    body counts once, like XLA's cost analysis."""
    out = {kind: {"count": 0, "bytes": 0} for kind in COLLECTIVES}
    for match in _COLLECTIVE.finditer(hlo_text):
        if match["suffix"] == "-start":
            continue
        size = 0
        for dtype, dims in _ARRAY.findall(match["shape"]):
            elements = math.prod(int(d) for d in dims.split(",") if d) if dims else 1
            size += elements * _DTYPE_BYTES.get(dtype, 0)
        out[match["op"]]["count"] += 1
        out[match["op"]]["bytes"] += size
    return out


def xla_flops(compiled) -> float:
    try:
        cost = compiled.cost_analysis()
    except Exception:  # not every backend implements it
        return float("nan")
    if isinstance(cost, list | tuple):
        cost = cost[0] if cost else {}
    return float((cost or {}).get("flops", float("nan")))


_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


class DoesNotFit(Exception):
    """The TPU compiler itself refused the program: its temporaries alone exceed the chip's
    HBM (XLA:TPU fails the compile rather than report a memory analysis)."""

    def __init__(self, stage: str, topology: str, message: str):
        self.stage, self.topology = stage, topology
        # "... HLO temporaries (215.73G) exceeds available HBM (15.75G)"
        sizes = re.findall(r"\(([\d.]+)([KMGT]?)\)", message)
        self.required = self.available = None
        if len(sizes) >= 2:
            self.required, self.available = (float(v) * _UNITS[u] for v, u in sizes[:2])
        self.message = message.strip().splitlines()[0]
        super().__init__(self.shortfall())

    def shortfall(self) -> str:
        if self.required is None:
            return f"stage {self.stage} does not fit {self.topology}: {self.message}"
        return (
            f"stage {self.stage} does not fit {self.topology}: the compiler needs "
            f"{self.required / GIB:.2f} GiB of temporaries per chip > {self.available / GIB:.2f} "
            f"GiB available, short by at least {(self.required - self.available) / GIB:.2f} GiB "
            "(XLA:TPU refused to compile it)"
        )


@dataclasses.dataclass
class StageReport:
    stage: str
    topology: str
    chips: int
    mesh: dict[str, int]
    batch: dict[str, tuple]  # worst-case shapes
    grad_cache_chunk: int
    memory: MemoryUse
    capacity: int  # HBM bytes per chip
    model_flops: float  # per step, analytic (3 x forward over every row)
    xla_flops: float  # XLA's cost analysis of the program (a loop body counted once)
    collectives: dict[str, dict[str, int]]
    peak_flops: float  # per chip
    compile_seconds: float

    @property
    def fits(self) -> bool:
        return self.memory.total <= self.capacity

    @property
    def headroom(self) -> float:
        return 1.0 - self.memory.total / self.capacity

    @property
    def roofline_seconds(self) -> float:
        """Lower bound on the step time: model FLOPs at every chip's peak."""
        return self.model_flops / (self.chips * self.peak_flops)

    def as_json(self) -> dict:
        m = self.memory
        return {
            "stage": self.stage,
            "topology": self.topology,
            "chips": self.chips,
            "mesh": self.mesh,
            "batch": {k: list(v) for k, v in self.batch.items()},
            "grad_cache_chunk": self.grad_cache_chunk,
            "argument_bytes": m.arguments,
            "output_bytes": m.outputs,
            "alias_bytes": m.aliased,
            "temp_bytes": m.temporaries,
            "code_bytes": m.code,
            "total_bytes": m.total,
            "capacity_bytes": self.capacity,
            "fits": self.fits,
            "headroom": round(self.headroom, 4),
            "model_flops": self.model_flops,
            "xla_flops": self.xla_flops,
            "roofline_seconds": self.roofline_seconds,
            "collectives": self.collectives,
            "compile_seconds": round(self.compile_seconds, 1),
        }


def compile_stage(config: ConfigDict, stage: str, topology: Topology, devices=None) -> StageReport:
    """Compiles ``stage``'s train step for ``topology`` and reads what the compiler says."""
    task = TASKS[stage](config, stage)
    objective = task.objective(task.model_config(model_config(config)))
    rules = [tuple(rule) for rule in config.sharding_rules]
    mesh = shd.make_mesh(dict(config.mesh), topology.devices() if devices is None else devices)
    cfg = task.cfg
    tx, schedule = make_optimizer(cfg.optimizer, int(cfg.steps), objective.optimizer_groups())
    key = jax.random.key(int(config.seed), impl=config.prng_impl)
    abstract_key = jax.ShapeDtypeStruct(key.shape, key.dtype, sharding=shd.replicated(mesh))
    state = abstract_state(objective, tx, mesh, rules, key)
    chunk = int(cfg.get("grad_cache_chunk", 0))
    row_multiple = math.lcm(shd.batch_shards(mesh, rules), chunk or 1)
    shapes = worst_case_shapes(config, stage, row_multiple)
    batch = abstract_batch(shapes, mesh, rules)
    step = jit_train_step(make_step_fn(objective, tx, schedule, chunk, mesh, rules), state)
    start = time.perf_counter()
    with jax.set_mesh(mesh):
        lowered = step.lower(state, batch, abstract_key)
        try:
            compiled = lowered.compile()
        except jax.errors.JaxRuntimeError as e:
            # HBM only: running out of VMEM (on-chip scratch) is a compiler failure, not a fit
            if re.search(r"memory space hbm|available HBM", str(e), re.IGNORECASE):
                raise DoesNotFit(stage, topology.name, str(e)) from None
            raise
    seconds = time.perf_counter() - start
    use = MemoryUse.of(compiled)
    if use is None:
        raise RuntimeError(f"{topology.name}: the compiled step reports no memory analysis")
    return StageReport(
        stage=stage,
        topology=topology.name,
        chips=mesh.size,
        mesh=dict(mesh.shape),
        batch=shapes,
        grad_cache_chunk=chunk,
        memory=use,
        capacity=topology.chip.hbm_bytes,
        model_flops=float(objective.flops(batch)),
        xla_flops=xla_flops(compiled),
        collectives=collective_bytes(compiled.as_text()),
        peak_flops=topology.chip.peak_flops,
        compile_seconds=seconds,
    )


def training_stages(config: ConfigDict) -> list[str]:
    return [stage for stage in config.stages if stage in TASKS]


def format_report(report: StageReport) -> str:
    m, gib = report.memory, GIB
    batch = report.batch["ids"]
    lines = [
        f"## {report.stage} on {report.topology} ({report.chips} chips, mesh {report.mesh}); "
        f"worst-case batch: rows x length {batch[0]} x {batch[1]}"
        + (
            f", {report.batch['query_lengths'][0]} queries"
            if "query_lengths" in report.batch
            else ""
        )
        + (f", GradCache chunk {report.grad_cache_chunk} rows" if report.grad_cache_chunk else "")
        + f"; compiled in {report.compile_seconds:.0f} s",
        "| per chip | GiB |",
        "|---|---|",
        f"| arguments | {m.arguments / gib:.2f} |",
        f"| temporaries | {m.temporaries / gib:.2f} |",
        f"| outputs (not aliased to donated inputs) | {(m.outputs - m.aliased) / gib:.2f} |",
        f"| total | {m.total / gib:.2f} |",
        f"| HBM capacity | {report.capacity / gib:.2f} |",
        f"| fits | {'yes' if report.fits else 'NO'} ({report.headroom:+.0%} headroom) |",
        f"model FLOPs per step {report.model_flops:.3e} (XLA cost analysis: {report.xla_flops:.3e},"
        " a loop body counted once); roofline step time "
        f"{report.roofline_seconds * 1e3:.1f} ms at {report.peak_flops / 1e12:.0f} TFLOP/s per chip",
        "collectives (result bytes per chip, each HLO instruction once): "
        + ", ".join(
            f"{kind} {c['count']} x = {c['bytes'] / 2**20:.1f} MiB"
            for kind, c in report.collectives.items()
            if c["count"]
        ),
    ]
    return "\n".join(lines)


def shortfalls(reports: list[StageReport]) -> list[str]:
    return [
        f"stage {r.stage} does not fit {r.topology}: {r.memory.total / GIB:.2f} GiB per chip > "
        f"{r.capacity / GIB:.2f} GiB, short by {(r.memory.total - r.capacity) / GIB:.2f} GiB"
        for r in reports
        if not r.fits
    ]


def run(config: ConfigDict, topology_name: str, stages: list[str] | None = None) -> int:
    topology = parse_topology(topology_name)
    stages = stages or training_stages(config)
    unknown = [s for s in stages if s not in TASKS or s not in config]
    if unknown:
        raise ValueError(f"not training stages of this config: {unknown}")
    if not stages:
        print("no training stage in config.stages; nothing to compile")
        return 0
    devices = topology.devices()
    reports, problems = [], []
    for stage in stages:
        print(f"compiling {stage} for {topology.name} ({topology.desc_name}) ...", flush=True)
        try:
            reports.append(compile_stage(config, stage, topology, devices))
        except DoesNotFit as e:
            print(f"## {stage} on {topology.name}\n| fits | NO (the compiler ran out of HBM) |")
            problems.append(e.shortfall())
            continue
        print(format_report(reports[-1]), flush=True)
    problems += shortfalls(reports)
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


def main(argv) -> int:
    del argv
    if FLAGS.config is None or FLAGS.topology is None:
        print(
            "usage: python -m jina_jax.aot --config=configs/X.py[:arg] --topology=v5e-16",
            file=sys.stderr,
        )
        return 2
    if "JAX_PLATFORMS" not in os.environ:
        # The program runs nowhere: keep the host on CPU even on a TPU VM, whose chips may be
        # busy training.
        jax.config.update("jax_platforms", "cpu")
    return run(FLAGS.config, FLAGS.topology, FLAGS.stages)


def _parse_flags(argv: list[str]) -> list[str]:
    try:
        return FLAGS(argv)
    except (AttributeError, KeyError, TypeError, ValueError, flags.Error) as e:
        print(f"jina_jax.aot: config error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
