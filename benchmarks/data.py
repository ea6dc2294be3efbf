"""Host data pipeline throughput: read -> clean (exact dedup + language) -> tokenize -> batch.

    python benchmarks/data.py                     # ~20k real-sentence pairs, generated
    python benchmarks/data.py --input pairs.jsonl.gz --near-dedup

The generated input pairs real English sentences (the docstrings of Python's standard library,
`jina_jax.data.stdlib_text`): each sentence with each of its next 14 neighbours, plus every 10th
pair repeated with changed case and spacing so that de-duplication has work to do. Prints a
markdown table and one JSON object with pairs/s per stage and end to end.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

if __package__ in (None, ""):  # run as a script from a checkout
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from jina_jax.data.filters import ExactDedup, LanguageFilter, NearDedup
from jina_jax.data.pipeline import PairBatches
from jina_jax.data.readers import ReadReport, read_pairs
from jina_jax.data.sampler import DatasetSpec
from jina_jax.data.stdlib_text import stdlib_sentences


def write_generated_pairs(path: pathlib.Path, num_pairs: int) -> int:
    sentences = stdlib_sentences(100_000)
    rows = []
    for offset in range(1, 1 + -(-num_pairs // len(sentences))):
        for i, sentence in enumerate(sentences):
            rows.append([sentence, sentences[(i + offset) % len(sentences)]])
    rows = rows[:num_pairs]
    repeats = [[" ".join(q.upper().split()), "  " + p] for q, p in rows[::10]]
    rows = rows + repeats
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return len(rows)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--input", type=pathlib.Path, help="a pair file (jsonl[.gz], parquet, ...)")
    parser.add_argument(
        "--pairs", type=int, default=20_000, help="pairs to generate without --input"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--query-max-length", type=int, default=64)
    parser.add_argument("--passage-max-length", type=int, default=128)
    parser.add_argument("--near-dedup", action="store_true", help="also run MinHash near-dedup")
    parser.add_argument("--prefetch", type=int, default=2, help="batches computed ahead")
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder (default: JinaBERT v2)")
    args = parser.parse_args(argv)

    from jina_jax.tokenization import jina_v2_tokenizer, load_tokenizer

    tokenizer = load_tokenizer(args.tokenizer) if args.tokenizer else jina_v2_tokenizer()
    stages: list[dict] = []

    def timed(name: str, n_in: int, fn):
        start = time.perf_counter()
        out = fn()
        seconds = time.perf_counter() - start
        stages.append(
            {
                "stage": name,
                "pairs_in": n_in,
                "seconds": round(seconds, 3),
                "pairs_per_s": round(n_in / seconds, 1) if seconds else None,
            }
        )
        return out

    with tempfile.TemporaryDirectory() as scratch:
        path = args.input
        if path is None:
            path = pathlib.Path(scratch) / "pairs.jsonl.gz"
            write_generated_pairs(path, args.pairs)
        report = ReadReport()
        records = timed("read", 0, lambda: list(read_pairs(path, report=report)))
        stages[-1]["pairs_in"] = len(records)
        stages[-1]["pairs_per_s"] = round(len(records) / stages[-1]["seconds"], 1)
        n_read = len(records)
        filters = [ExactDedup(), LanguageFilter()] + ([NearDedup()] if args.near_dedup else [])
        reports = []
        for stage in filters:
            n_in = len(records)
            records, filter_report = timed(
                stage.name, n_in, lambda s=stage, r=records: s(r, "bench")
            )
            reports.append(filter_report)
        spec = DatasetSpec("bench", batch_size=args.batch_size)
        batches = PairBatches(
            {"bench": records},
            [spec],
            tokenizer,
            args.query_max_length,
            args.passage_max_length,
            seed=0,
        )
        steps = len(records) // args.batch_size

        def run_batches():
            shapes = set()
            with batches.iterator(prefetch=args.prefetch) as iterator:
                for _ in range(steps):
                    batch = next(iterator)
                    shapes.add(batch["ids"].shape)
            return shapes

        shapes = timed("tokenize+batch", steps * args.batch_size, run_batches)

    total = sum(stage["seconds"] for stage in stages)
    result = {
        "input": str(args.input) if args.input else f"generated ({n_read} pairs of real sentences)",
        "pairs_read": n_read,
        "read_skipped": report.num_skipped,
        "pairs_kept": len(records),
        "removed": {r.name: r.n_removed for r in reports},
        "batch_shapes": sorted(shapes),
        "stages": stages,
        "end_to_end_pairs_per_s": round(n_read / total, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}",
    }
    print("| stage | pairs in | seconds | pairs/s |")
    print("|---|---:|---:|---:|")
    for stage in stages:
        print(
            f"| {stage['stage']} | {stage['pairs_in']} | {stage['seconds']:.2f} | {stage['pairs_per_s']:,.0f} |"
        )
    print(f"| **end to end** | {n_read} | {total:.2f} | {result['end_to_end_pairs_per_s']:,.0f} |")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
