"""TPU steps compiled ahead of time on this CPU machine (``jina_jax.aot``): per-chip memory,
model FLOPs, roofline step time and whether each fits, for configs x stages x topologies.

    python benchmarks/aot_tpu.py --parts grad_cache,compile_time,attention,matrix \\
        [--configs v2_small,v2_base,v2_large,v1_base] [--topologies v4-8,v4-32,v5e-16,v5e-256,v5p-8]
        [--cache benchmarks/results/aot_tpu.jsonl] [--results benchmarks/RESULTS.md]

Parts:
  grad_cache    v2-base pairs at global batch 4,096 / 16,384 / 65,536 pairs, GradCache chunk 512
                rows, on v4-8 and v5e-16, and the plain step at a batch of 512 rows: per-chip
                temporaries must stay flat in the global batch.
  compile_time  v2-base pairs on v4-8 with and without ``scan_layers`` (seconds to compile).
  attention     v2-base pairs at 512 tokens on v5e-16, and a v2-base encoder forward of 8192-token
                rows, with attention_impl dense / chunked / flash.
  matrix        every training stage of each config on each topology.

Each compile runs in its own subprocess (one at a time: they take minutes on 2 cores) and its
result is appended to ``--cache`` (JSON lines), so an interrupted run resumes; the markdown
section of RESULTS.md is rewritten from the cache and the whole cache is printed as JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import re
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
GIB = 2**30
SECTION = "## TPU, compiled ahead of time on this CPU machine"


def _apply(config, overrides: dict) -> None:
    """``{"pairs.grad_cache_chunk": 512, "pairs.batch_size": 4096, ...}`` onto a config;
    ``<stage>.batch_size`` sets every dataset of a contrastive stage."""
    for dotted, value in overrides.items():
        *path, leaf = dotted.split(".")
        node = config
        for key in path:
            node = node[key]
        if leaf == "batch_size" and "datasets" in node:
            for ds in node.datasets.values():
                ds.batch_size = value
        else:
            node[leaf] = value


def measure_step(job: dict) -> dict:
    """In the child: compile one stage's step and return ``StageReport.as_json()``."""
    import importlib.util

    from jina_jax import aot

    spec = importlib.util.spec_from_file_location("cfg", ROOT / "configs" / f"{job['config']}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(job.get("arg"))
    _apply(config, job.get("overrides", {}))
    try:
        report = aot.compile_stage(config, job["stage"], aot.parse_topology(job["topology"]))
    except aot.DoesNotFit as e:  # XLA:TPU refused it: its temporaries alone exceed the HBM
        return {
            "fits": False,
            "does_not_fit": e.shortfall(),
            "required_temp_bytes": e.required,
            "available_bytes": e.available,
        }
    return report.as_json()


def measure_forward(job: dict) -> dict:
    """In the child: one encoder forward over ``rows x length`` tokens (a long-document encode),
    rows sharded over the chips, for one attention implementation."""
    import dataclasses

    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from jina_jax import aot, config_lib
    from jina_jax import sharding as shd
    from jina_jax.models import build_encoder, init_params
    from jina_jax.training.memory import MemoryUse

    config = config_lib.jina_v2_config(job.get("size", "base"), set())
    model = dataclasses.replace(
        aot.model_config(config), attention_impl=job["impl"], add_pooler=False
    )
    topology = aot.parse_topology(job["topology"])
    mesh = shd.make_mesh({"data": -1}, topology.devices())
    rows, length = job["rows"], job["length"]
    boxed = jax.eval_shape(lambda: init_params(model, jax.random.key(0)))
    params = jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
        nn.meta.unbox(boxed),
        shd.param_shardings(boxed, mesh),
    )
    ids = jax.ShapeDtypeStruct((rows, length), jnp.int32, sharding=NamedSharding(mesh, P("data")))
    encoder = build_encoder(model)

    def forward(p, x):
        return encoder.apply({"params": p}, x, jnp.ones_like(x))["last_hidden_state"]

    start = time.perf_counter()
    with jax.set_mesh(mesh):
        compiled = jax.jit(forward).lower(params, ids).compile()
    seconds = time.perf_counter() - start
    use = MemoryUse.of(compiled)
    flops = aot.xla_flops(compiled)
    return {
        "temp_bytes": use.temporaries,
        "total_bytes": use.total,
        "xla_flops_per_chip": flops,
        "model_flops": float(
            __import__("jina_jax.models", fromlist=["forward_flops"]).forward_flops(
                model, rows, length
            )
        ),
        "compile_seconds": round(seconds, 1),
        "chips": mesh.size,
        "square_arrays": f"{length},{length}" in compiled.as_text(),
    }


# --------------------------------------------------------------------------- the jobs

CONFIGS = ("v2_small", "v2_base", "v2_large", "v1_base")
TOPOLOGIES = ("v4-8", "v4-32", "v5e-16", "v5e-256", "v5p-8")
STAGES = {"v2": ("mlm", "pairs", "triplets"), "v1": ("pairs", "triplets")}


def jobs_for(part: str, configs, topologies) -> list[dict]:
    if part == "grad_cache":
        out = []
        for topology in ("v4-8", "v5e-16"):
            for batch in (4096, 16384, 65536):
                out.append(
                    dict(
                        part=part,
                        kind="step",
                        config="v2_base",
                        stage="pairs",
                        topology=topology,
                        overrides={"pairs.batch_size": batch, "pairs.grad_cache_chunk": 512},
                    )
                )
            # the plain step at a batch of one chunk: 448 pairs pack into 504 rows -> 512
            out.append(
                dict(
                    part=part,
                    kind="step",
                    config="v2_base",
                    stage="pairs",
                    topology=topology,
                    overrides={"pairs.batch_size": 448, "pairs.grad_cache_chunk": 0},
                )
            )
        return out
    if part == "compile_time":
        return [
            dict(
                part=part,
                kind="step",
                config="v2_base",
                stage="pairs",
                topology="v4-8",
                overrides={"model.scan_layers": scan},
            )
            for scan in (True, False)
        ]
    if part == "attention":
        out = [
            dict(
                part=part,
                kind="step",
                config="v2_base",
                stage="pairs",
                topology="v5e-16",
                overrides={"model.attention_impl": impl},
            )
            for impl in ("dense", "chunked", "flash")
        ]
        out += [
            dict(part=part, kind="forward", topology="v5e-16", rows=16, length=8192, impl=impl)
            for impl in ("chunked", "flash")
        ]
        return out
    if part == "matrix":
        jobs = [
            dict(part=part, kind="step", config=config, stage=stage, topology=topology)
            for config in configs
            for topology in topologies
            for stage in STAGES[config[:2]]
        ]
        # v4-8 and v5e-16 first (the configs must fit v4 and v5e chips), v2-base first
        first = ("v4-8", "v5e-16")
        return sorted(
            jobs,
            key=lambda j: (j["topology"] not in first, j["config"] != "v2_base", j["config"]),
        )
    raise ValueError(f"unknown part {part!r}")


def _key(job: dict) -> str:
    return json.dumps({k: v for k, v in job.items() if k != "part"}, sort_keys=True)


def run_job(job: dict, timeout: float) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(job)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        # the exception line, not libtpu's log lines (E0000 ...) that mention errors
        raised = [
            line
            for line in proc.stderr.splitlines()
            if re.match(r"[\w.]+(Error|Exception|DoesNotFit)\b", line)
        ]
        return {"error": (raised[-1] if raised else proc.stderr[-500:]).strip()}
    result = json.loads(lines[-1])
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    return result


# --------------------------------------------------------------------------- the report


def _gib(x) -> str:
    return f"{x / GIB:.2f}"


def render(entries: list[dict]) -> str:
    lines = [
        SECTION,
        "",
        f"`python benchmarks/aot_tpu.py` ({entries[-1]['date'] if entries else ''}; machine: "
        f"{platform.machine()}, {os.cpu_count()} cores, compiles one at a time; jax "
        f"{entries[-1].get('jax', '') if entries else ''}, libtpu "
        f"{entries[-1].get('libtpu', '') if entries else ''}). Every number comes from the "
        "compiled TPU program (`memory_analysis()`, optimized HLO) for the worst-case batch of "
        "the config (every text at its max length). Total = arguments + outputs not aliased "
        "to donated inputs + temporaries + code. Model FLOPs are analytic (3 x forward over "
        "every row); roofline = model FLOPs / (chips x peak bf16). v5e capacity is 16 GB (the "
        "docs' figure, 14.90 GiB).",
        "",
    ]

    def step_rows(part):
        return [e for e in entries if e["job"]["part"] == part and e["job"]["kind"] == "step"]

    gc = step_rows("grad_cache")
    if gc:
        lines += [
            "### GradCache: per-chip memory flat in the global batch (v2-base pairs, 512 tokens)",
            "",
            "| topology | global batch (pairs) | rows x 512 | GradCache chunk | temporaries GiB "
            "| total GiB | temp / plain step at one chunk |",
            "|---|---|---|---|---|---|---|",
        ]
        for topology in ("v4-8", "v5e-16"):
            rows = [e for e in gc if e["job"]["topology"] == topology and "temp_bytes" in e["r"]]
            plain = [e for e in rows if e["job"]["overrides"]["pairs.grad_cache_chunk"] == 0]
            base = plain[0]["r"]["temp_bytes"] if plain else None
            for e in sorted(rows, key=lambda e: e["job"]["overrides"]["pairs.batch_size"]):
                r, o = e["r"], e["job"]["overrides"]
                ratio = f"{r['temp_bytes'] / base:.2f}" if base else "-"
                lines.append(
                    f"| {topology} | {o['pairs.batch_size']} | {r['batch']['ids'][0]} | "
                    f"{o['pairs.grad_cache_chunk'] or 'off (plain)'} | {_gib(r['temp_bytes'])} | "
                    f"{_gib(r['total_bytes'])} | {ratio} |"
                )
        lines.append("")
    ct = step_rows("compile_time")
    if ct:
        lines += [
            "### Compile time of the v2-base pairs step for v4-8 (GradCache chunk 512)",
            "",
            "| scan_layers | compile s | total GiB per chip |",
            "|---|---|---|",
        ]
        for e in ct:
            r = e["r"]
            if "temp_bytes" not in r:
                why = r.get("error") or r.get("does_not_fit", "")
                lines.append(f"| {e['job']['overrides']['model.scan_layers']} | {why} | |")
                continue
            lines.append(
                f"| {e['job']['overrides']['model.scan_layers']} | {r['compile_seconds']} | "
                f"{_gib(r['total_bytes'])} |"
            )
        lines.append("")
    att = [e for e in entries if e["job"]["part"] == "attention"]
    if att:
        lines += [
            "### Attention paths on TPU (v5e-16)",
            "",
            "| program | attention | temporaries GiB per chip | total GiB | XLA FLOPs per chip "
            "| model FLOPs | an [L, L] array in the HLO |",
            "|---|---|---|---|---|---|---|",
        ]
        for e in att:
            r, job = e["r"], e["job"]
            if job["kind"] == "step":
                what, impl = (
                    "v2-base pairs step, 512 tokens",
                    job["overrides"]["model.attention_impl"],
                )
            else:
                what, impl = f"v2-base forward, {job['rows']} x {job['length']} tokens", job["impl"]
            if "temp_bytes" not in r:
                why = r.get("error") or r.get("does_not_fit", "")
                lines.append(f"| {what} | {impl} | failed: {why[:160]} | | | | |")
                continue
            xla = r.get("xla_flops_per_chip", r.get("xla_flops"))
            lines.append(
                f"| {what} | {impl} | {_gib(r['temp_bytes'])} | {_gib(r['total_bytes'])} | "
                f"{xla:.3e} | {r['model_flops']:.3e} | {r.get('square_arrays', '-')} |"
            )
        lines.append("")
    matrix = step_rows("matrix")
    if matrix:
        lines += [
            "### Configs x stages x topologies (worst-case batch, the configs as they are)",
            "",
            "| config | stage | topology | mesh | rows x L | GiB per chip / capacity | headroom "
            "| model TFLOPs/step | roofline ms | fits | compile s |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for e in matrix:
            r, job = e["r"], e["job"]
            head = f"| {job['config']} | {job['stage']} | {job['topology']} |"
            if "does_not_fit" in r:
                need = r["required_temp_bytes"]
                lines.append(
                    f"{head} | | > {_gib(r['available_bytes'])} (temporaries {_gib(need)}) | "
                    "< 0 | | | NO (XLA:TPU refused it) | |"
                    if need
                    else f"{head} | | {r['does_not_fit'][:100]} | | | | NO | |"
                )
                continue
            if "error" in r:
                lines.append(f"{head} | | failed: {r['error'][:100]} | | | | | |")
                continue
            mesh = "x".join(str(v) for v in r["mesh"].values())
            lines.append(
                f"{head} {mesh} | {r['batch']['ids'][0]} x {r['batch']['ids'][1]} | "
                f"{_gib(r['total_bytes'])} / {_gib(r['capacity_bytes'])} | {r['headroom']:.0%} | "
                f"{r['model_flops'] / 1e12:.1f} | {r['roofline_seconds'] * 1e3:.1f} | "
                f"{'yes' if r['fits'] else 'NO'} | {r['compile_seconds']} |"
            )
        lines.append("")
    lines += NOTES
    missing = [e for e in entries if "error" in e["r"]]
    if missing:
        lines.append(f"{len(missing)} compiles failed or timed out (listed in the tables).")
        lines.append("")
    return "\n".join(lines)


# What the tables do not say by themselves (2026-12-02 run).
NOTES = [
    "Notes:",
    "- Compile seconds are wall time on a 2-core machine shared with other jobs (load average "
    "4-15 during these runs), so they are upper bounds; compare them within a table only. The "
    "two compile-time rows ran side by side at load 4-6, with the code of commit 5d22e4b (before "
    "the streamed InfoNCE and the sharded GradCache text embeddings, hence their totals differ "
    "from the other tables).",
    "- GradCache: temporaries stay flat in the global batch because the InfoNCE similarities "
    "are streamed in column blocks (never [B, B]) and the text embeddings are split over the "
    "batch shards; what still grows with the batch is the [N, D] text embeddings per chip "
    "(N / chips x 768 x 4 bytes) and the loop's trip count (model FLOPs).",
    "- v2-base MLM on v4-8 with scan_layers=True fails to compile: XLA:TPU runs out of VMEM "
    "(16.66 of 16 MiB scoped, register spills in a fusion of the scanned, rematerialised layer's "
    "backward); LIBTPU_INIT_ARGS=--xla_tpu_scoped_vmem_limit_kib=32768 did not change it. "
    "With --config.model.scan_layers=False it compiles and fits: 5.42 of 32 GiB per chip (83% "
    "headroom; compiled in 1606 s by hand, `python -m jina_jax.aot --config=configs/v2_base.py "
    "--topology=v4-8 --stages=mlm --config.model.scan_layers=False`). The same scanned step "
    "compiles for v5e.",
    "- v2-large pairs with GradCache chunks of 512 rows (before the config change to 256) left "
    "10% headroom on v4-8 (28.89 of 32 GiB) and 26% on v5e-16 (11.03 of 14.90 GiB).",
    "- Not compiled (time): the v4-32, v5e-256 and v5p-8 columns of the matrix, v2-small's "
    "pairs/triplets (v4-8) and all three stages on v5e-16 (v2-small is v2-base with fewer, "
    "narrower layers at the same batch), v2-large's pairs after the chunk change on other "
    "topologies.",
    "- Collective bytes count each HLO instruction once (a collective inside a loop body, e.g. "
    "GradCache's per-chunk reduce-scatter, runs once per chunk).",
    "- XLA's FLOPs are per chip and count a loop body once: GradCache's two loops over chunks "
    "and the scanned layers (one layer body) make them far below the model FLOPs.",
    "",
]


def write_results(path: pathlib.Path, section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if SECTION in text:
        start = text.index(SECTION)
        after = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + ("\n" + text[after + 1 :] if after != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="grad_cache,compile_time,attention,matrix")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--topologies", default=",".join(TOPOLOGIES))
    parser.add_argument("--stages", default="", help="matrix: only these stages (default: all)")
    parser.add_argument(
        "--cache",
        default=str(ROOT / "benchmarks/results/aot_tpu.jsonl"),
        help="JSON-lines caches, comma-separated: results are appended to the first",
    )
    parser.add_argument("--results", default=str(ROOT / "benchmarks/RESULTS.md"))
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--only-render", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        job = json.loads(args.child)
        result = measure_forward(job) if job["kind"] == "forward" else measure_step(job)
        print(json.dumps(result))
        return
    # new results go to the first cache; all of them are read (runs side by side use their own)
    caches = [pathlib.Path(c) for c in args.cache.split(",")]
    cache = caches[0]
    cache.parent.mkdir(parents=True, exist_ok=True)
    entries = [
        json.loads(line)
        for path in caches
        if path.exists()
        for line in path.read_text().splitlines()
    ]
    done = {_key(e["job"]) for e in entries if "error" not in e["r"]}
    if not args.only_render:
        import importlib.metadata as md

        versions = {}
        for name in ("jax", "libtpu"):
            try:
                versions[name] = md.version(name)
            except md.PackageNotFoundError:
                versions[name] = "?"
        for part in args.parts.split(","):
            for job in jobs_for(part, args.configs.split(","), args.topologies.split(",")):
                if args.stages and job.get("stage") not in args.stages.split(","):
                    continue
                if _key(job) in done:
                    continue
                print(f"compiling {_key(job)} ...", file=sys.stderr, flush=True)
                result = run_job(job, args.timeout)
                entry = {
                    "job": job,
                    "r": result,
                    "date": datetime.date.today().isoformat(),
                    **versions,
                }
                entries = [e for e in entries if _key(e["job"]) != _key(job)] + [entry]
                with cache.open("a") as f:
                    f.write(json.dumps(entry) + "\n")
                print(json.dumps(entry), file=sys.stderr, flush=True)
    # the latest entry per job, in job order
    latest = {}
    for e in entries:
        latest[_key(e["job"])] = e
    entries = list(latest.values())
    write_results(pathlib.Path(args.results), render(entries))
    print(json.dumps(entries, indent=1))


if __name__ == "__main__":
    main()
