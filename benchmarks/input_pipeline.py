"""Input pipeline cost per host as hosts are added: host 0 of N, simulated on this machine.

    python benchmarks/input_pipeline.py [--records 200000] [--steps 20] [--out FILE]

A synthetic pair dataset of real sentences recombined (queries: one starter-corpus sentence;
positives: 1-4 sentences joined; jina-v2 tokenizer, 64 / 512 tokens) is built once in two forms:
- "prepared": jina_jax's prepared format (array_record shards + token counts,
  ``jina_jax.data.prepared``), what ``python -m jina_jax.data.prepare`` writes;
- "raw": the same pairs as one jsonl file, read whole and tokenised per step (the path before
  prepared data; each host tokenises the global batch).

For each path, global batch (2,048 and 32,768 pairs) and host count N (1, 8, 32, 128), a fresh
process builds the batches of host 0 of N (``PairBatches(process_index=0, process_count=N)``,
packing on, rows of 512 tokens) for ``--steps`` steps after 10 warm-up steps (which open the
readers of the shards host 0 touches) and reports seconds per
step, real tokens per second on that host, scaling efficiency t(1) / (N t(N)) and its peak RSS.
Prints a table and, with ``--out``, a JSON document ``{"rows": [...]}``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import time

import numpy as np

QUERY_MAX, PASSAGE_MAX = 64, 512
BATCHES = (2048, 32768)
HOSTS = (1, 8, 32, 128)
WARMUP = 10  # steps before timing: a host opens each shard's reader on first touching it


def build_data(folder: pathlib.Path, records: int, seed: int = 0) -> None:
    """The synthetic dataset in both forms, unless it is already there."""
    from jina_jax.data.prepared import PreparedDataset, tokenizer_identity, write_prepared
    from jina_jax.data.starter import load_starter
    from jina_jax.tokenization import jina_v2_tokenizer

    prepared, raw = folder / "prepared", folder / "raw.jsonl"
    if (prepared / "prepared.json").exists() and raw.exists():
        data = PreparedDataset(prepared)
        # (rebuilt when written before shards started on chunk boundaries)
        if len(data) == records and "records_per_chunk" in data.meta:
            return
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = jina_v2_tokenizer()
    corpus = load_starter(os.environ.get("JINA_STARTER_DIR", "data_cache/starter"))
    sentences = []
    for name in corpus.pair_datasets:
        for record in corpus.pairs(name):
            sentences += [record.query, record.positive]
    sentences = [s for s in dict.fromkeys(sentences) if s.strip()][:60_000]
    pieces = tokenizer.hf(sentences, add_special_tokens=False)["input_ids"]
    cls, sep = tokenizer.hf.cls_token_id, tokenizer.hf.sep_token_id
    rng = np.random.default_rng(seed)

    def ids_of(parts, limit):
        body = [t for p in parts for t in pieces[p]][: limit - 2]
        return np.asarray([cls, *body, sep], np.int32)

    def rows():
        for _ in range(records):
            q = [int(rng.integers(len(sentences)))]
            d = rng.integers(len(sentences), size=int(rng.integers(1, 5))).tolist()
            texts = [" ".join(sentences[i] for i in q), " ".join(sentences[i] for i in d)]
            yield [ids_of(q, QUERY_MAX), ids_of(d, PASSAGE_MAX)], texts

    started = time.perf_counter()
    with open(raw, "w", encoding="utf-8") as f:

        def teed():
            for ids, texts in rows():
                f.write(json.dumps(texts) + "\n")
                yield ids, texts

        write_prepared(
            prepared,
            teed(),
            num_records=records,
            kind="pairs",
            num_negatives=0,
            tokenizer=tokenizer_identity(tokenizer),
            max_lengths={"query": QUERY_MAX, "passage": PASSAGE_MAX},
            overwrite=True,
        )
    print(f"built {records} pairs in {time.perf_counter() - started:.0f}s under {folder}")


def measure(folder: pathlib.Path, path: str, batch: int, hosts: int, steps: int) -> dict:
    """One (path, batch, hosts) point, in this process: host 0's batches."""
    from jina_jax.data.catalog import pair_source_from_path
    from jina_jax.data.pipeline import PairBatches
    from jina_jax.data.sampler import DatasetSpec
    from jina_jax.tokenization import jina_v2_tokenizer

    source = pair_source_from_path(
        str(folder / ("prepared" if path == "prepared" else "raw.jsonl"))
    )
    batches = PairBatches(
        {"synthetic": source},
        [DatasetSpec("synthetic", batch_size=batch)],
        jina_v2_tokenizer(),
        QUERY_MAX,
        PASSAGE_MAX,
        seed=0,
        process_index=0,
        process_count=hosts,
        pack=True,
        row_multiple=hosts,
    )
    # the steady state of a long run: readers open, pages touched (raw: one step, it has none)
    warmup = WARMUP if path == "prepared" else 1
    for step in range(warmup):
        batches.batch_at(step)
    tokens, started = 0, time.perf_counter()
    for step in range(warmup, warmup + steps):
        out = batches.batch_at(step)
        tokens += int((out["segments"] > 0).sum())
    seconds = (time.perf_counter() - started) / steps
    return {
        "path": path,
        "global_batch": batch,
        "hosts": hosts,
        "seconds_per_step": seconds,
        "tokens_per_s_per_host": tokens / steps / seconds,
        "rows_per_host": int(out["ids"].shape[0]),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="data_cache/bench_pipeline")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--paths", default="prepared,raw")
    parser.add_argument("--out", default=None)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # path,batch,hosts
    args = parser.parse_args(argv)
    folder = pathlib.Path(args.data)
    if args.one:
        path, batch, hosts = args.one.split(",")
        print(json.dumps(measure(folder, path, int(batch), int(hosts), args.steps)))
        return 0
    build_data(folder, args.records)
    rows = []
    for path in args.paths.split(","):
        for batch in BATCHES:
            for hosts in HOSTS:
                # raw at 32k pairs tokenises 65k texts per step: fewer steps
                steps = 2 if (path == "raw" and batch > 4096) else args.steps
                cmd = [sys.executable, __file__, "--data", str(folder), "--steps", str(steps)]
                cmd += ["--one", f"{path},{batch},{hosts}"]
                result = subprocess.run(cmd, capture_output=True, text=True, check=True)
                row = json.loads(result.stdout.strip().splitlines()[-1])
                base = next(
                    (
                        r
                        for r in rows
                        if (r["path"], r["global_batch"], r["hosts"]) == (path, batch, 1)
                    ),
                    row,
                )
                row["scaling_efficiency"] = base["seconds_per_step"] / (
                    hosts * row["seconds_per_step"]
                )
                rows.append(row)
                print(
                    f"{path:9s} B={batch:6d} hosts={hosts:4d} {row['seconds_per_step']:.4f} s/step "
                    f"{row['tokens_per_s_per_host'] / 1e6:.2f} M tok/s/host "
                    f"eff {row['scaling_efficiency']:.2f} rss {row['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
    document = {
        "benchmark": "input_pipeline",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "records": args.records,
        "query_max_length": QUERY_MAX,
        "passage_max_length": PASSAGE_MAX,
        "cpu_count": os.cpu_count(),
        "rows": rows,
    }
    print(
        "\n| path | global batch | hosts | s/step (host 0) | M real tokens/s/host | scaling eff. | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['path']} | {r['global_batch']} | {r['hosts']} | {r['seconds_per_step']:.4f} | "
            f"{r['tokens_per_s_per_host'] / 1e6:.2f} | {r['scaling_efficiency']:.2f} | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
