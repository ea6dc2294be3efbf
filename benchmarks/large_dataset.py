"""Peak memory of training from a 10 M-pair dataset: prepared shards vs the raw jsonl file.

    python benchmarks/input_pipeline.py ...            # builds data_cache/bench_pipeline (200k)
    python benchmarks/large_dataset.py --records 10000000 [--steps 30] [--out FILE]

Builds (once) the synthetic dataset of ``benchmarks/input_pipeline.py`` at 10 M pairs (real
starter sentences recombined) in both forms, then in fresh processes:
- "prepared": ``jina_jax.main.run`` trains the ``v2_small.py:local`` model on it for ``--steps``
  pair steps (global batch 64, packed, 64 / 512 tokens), one host; peak RSS of that process;
- "raw": the same pairs as one jsonl file through the raw path (read whole into memory, as a
  host must before its first batch; ``config.data.max_raw_mb`` lifted for the measurement);
  peak RSS after loading, no training.
Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import subprocess
import sys
import tempfile
import time


def train_prepared(folder: pathlib.Path, steps: int, batch: int = 32) -> dict:
    from ml_collections import ConfigDict

    from jina_jax import config_lib
    from jina_jax.main import quiet_libraries, run

    config = config_lib.jina_v2_config("small", {"local"})
    config.unlock()
    config.stages = ("pairs",)
    config.pairs.datasets = ConfigDict(
        {"synthetic": config_lib.dataset(str(folder / "prepared"), batch_size=batch)}
    )
    config.pairs.update(steps=steps, query_max_length=64, passage_max_length=512, log_every=10)
    config.pairs.checkpoint.update(every=steps)
    config.lock()
    quiet_libraries()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        result = run(config, workdir)["pairs"]
    return {
        "path": "prepared",
        "steps": result["steps"],
        "seconds": round(time.perf_counter() - started, 1),
        "loss": result.get("loss"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def load_raw(folder: pathlib.Path) -> dict:
    from jina_jax.data.catalog import pair_source_from_path

    started = time.perf_counter()
    records = pair_source_from_path(str(folder / "raw.jsonl"), max_raw_mb=0)
    return {
        "path": "raw",
        "records": len(records),
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="data_cache/bench_10m")
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--paths", default="prepared,raw")
    parser.add_argument("--out", default=None)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    folder = pathlib.Path(args.data)
    if args.one:
        row = train_prepared(folder, args.steps) if args.one == "prepared" else load_raw(folder)
        print(json.dumps(row))
        return 0
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    from input_pipeline import build_data

    build_data(folder, args.records, seed=1)
    rows = []
    for path in args.paths.split(","):
        cmd = [sys.executable, __file__, "--data", str(folder), "--steps", str(args.steps)]
        result = subprocess.run(cmd + ["--one", path], capture_output=True, text=True)
        if result.returncode:
            rows.append({"path": path, "error": result.stderr.strip().splitlines()[-1]})
        else:
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    document = {
        "benchmark": "large_dataset",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "records": args.records,
        "rows": rows,
    }
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(document, indent=2))
    print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
