"""Long-document encode: peak memory and seconds for ONE document, chunked vs dense attention.

    python benchmarks/long_context.py [--archs small,base] [--lengths 512,2048,4096,8192]
                                      [--impls chunked,dense] [--chunk-size 512]
                                      [--memory-limit-gb 12] [--xla-flags FLAGS] [--out FILE]

Each configuration runs in a fresh subprocess, so peak RSS is its own: build a JinaBERT of the
v2-small / v2-base architecture with random float32 weights (made leaf by leaf on the host), then
``jina_jax.encode`` one real document (starter-corpus man pages) truncated to exactly L tokens,
twice (``cold_s``, ``warm_s``), after compiling the program (``compile_s``).

Memory: ``peak_rss_mb`` is the process's high-water mark (VmHWM) over init and both encode calls;
``rss_params_mb`` the RSS after imports and parameter init; ``xla_temp_mb`` XLA's own buffer
assignment for the encode program (``compiled.memory_analysis()``), read before running it.
``chunked`` forces the online-softmax path at every length, ``dense`` the ``[heads, L, L]`` one;
the models' default ``auto`` is dense up to 2048 tokens and chunked above.

A configuration whose estimated need (RSS + XLA temp) exceeds ``--memory-limit-gb`` is not run
(the machine is shared; an OOM kill could hit someone else's job) and is reported as failed with
the estimate; ``RLIMIT_AS`` (the limit + 4 GB of address-space slack) backs that up, and a run
that dies anyway is reported as failed with the memory it had reached.
Prints a JSON document and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def document(tokenizer, length: int) -> str:
    """Real text of at least ``length`` tokens: man pages from the starter corpus, or stdlib
    docstring sentences when the corpus is not built."""
    try:
        from jina_jax.data.starter import load_starter

        starter = load_starter(os.environ.get("JINA_STARTER_DIR", "data_cache/starter"))
        pieces = list(starter.texts("manpages"))
    except FileNotFoundError:
        from jina_jax.data.stdlib_text import stdlib_sentences

        pieces = stdlib_sentences(3000)
    text, n = "", 0
    while True:
        for piece in pieces:
            text += piece + "\n"
            n += len(piece) // 3  # cheap lower bound on tokens; checked exactly below
            if n > length:
                ids, _ = tokenizer.encode_batch([text], 10 * length)
                if len(ids[0]) > length:
                    return text


def host_random_params(config, seed: int = 0):
    """Random float32 parameters made leaf by leaf in numpy: N(0, 0.02) weights, unit LayerNorm
    scales, zero biases. Unlike a jitted ``init`` (whose RNG temporaries briefly double the
    ~550 MB of v2-base), this keeps the process peak at parameters + one leaf."""
    import flax.linen as nn
    import jax
    import numpy as np

    from jina_jax.models import init_params

    shapes = jax.eval_shape(lambda key: nn.meta.unbox(init_params(config, key)), jax.random.key(0))
    rng = np.random.default_rng(seed)

    def make(path, leaf):
        name = jax.tree_util.keystr(path)
        if name.endswith("['scale']"):
            return jax.numpy.ones(leaf.shape, leaf.dtype)
        if name.endswith("['bias']"):
            return jax.numpy.zeros(leaf.shape, leaf.dtype)
        return jax.numpy.asarray(0.02 * rng.standard_normal(leaf.shape, np.float32))

    return jax.tree_util.tree_map_with_path(make, shapes)


def reset_peak_rss() -> bool:
    """Resets VmHWM to the current RSS (Linux >= 4.0), so the next peak is the encode's own."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child(arch: str, length: int, impl: str, chunk_size: int, dtype: str, limit_mb: float):
    """Prints a JSON line of what is known so far after each step (the parent keeps the last)."""
    import jax
    import jax.numpy as jnp

    import jina_jax
    from jina_jax.config_lib import JINA_BERT_SIZES
    from jina_jax.encoding import embed_fn
    from jina_jax.models import BertConfig
    from jina_jax.tokenization import jina_v2_tokenizer

    def report(**values):
        result.update(values)
        print(json.dumps(result), flush=True)

    config = BertConfig(
        **JINA_BERT_SIZES[arch],
        attention_impl=impl,
        attention_chunk_size=chunk_size,
        dtype=dtype,
    )
    params = host_random_params(config)
    tokenizer = jina_v2_tokenizer()
    model = jina_jax.Model(config, params, tokenizer, max_length=length)
    text = document(tokenizer, length)
    result = {}
    report(rss_params_mb=round(current_rss_mb(), 1), peak_rss_init_mb=round(peak_rss_mb(), 1))
    # XLA's own account of the buffers the encode program needs, before running it.
    ids = jax.ShapeDtypeStruct((1, length), jnp.int32)
    start = time.perf_counter()
    memory = embed_fn(config, "mean").lower(params, ids, ids).compile().memory_analysis()
    temp_mb = memory.temp_size_in_bytes / 2**20
    report(
        compile_s=round(time.perf_counter() - start, 2),
        xla_temp_mb=round(temp_mb),
        xla_args_mb=round(memory.argument_size_in_bytes / 2**20),
    )
    needed = current_rss_mb() + temp_mb + memory.output_size_in_bytes / 2**20
    if needed > limit_mb:
        raise MemoryError(
            f"needs about {needed / 1024:.1f} GB (XLA temp {temp_mb / 1024:.1f} GB), over the "
            f"{limit_mb / 1024:.0f} GB limit of this shared machine: not run"
        )
    report(peak_reset=reset_peak_rss())
    start = time.perf_counter()
    out, stats = jina_jax.encode(model, [text], max_length=length, return_stats=True)
    report(cold_s=round(time.perf_counter() - start, 2), peak_rss_cold_mb=round(peak_rss_mb(), 1))
    reset_peak_rss()
    start = time.perf_counter()
    jina_jax.encode(model, [text], max_length=length)
    warm_s = round(time.perf_counter() - start, 2)
    assert stats["tokens"] == length and stats["shapes"] == [(1, length)], stats
    assert bool(jnp.isfinite(out).all())
    peak_warm = round(peak_rss_mb(), 1)  # execution only
    report(
        warm_s=warm_s,
        peak_rss_warm_mb=peak_warm,
        peak_rss_mb=max(result["peak_rss_cold_mb"], peak_warm, result["peak_rss_init_mb"]),
    )


def run_one(args, arch: str, length: int, impl: str) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        f"{arch},{length},{impl},{args.chunk_size},{args.dtype},{args.memory_limit_gb * 1024}",
    ]
    limit = int((args.memory_limit_gb + 4) * 2**30)
    status_file = f"/tmp/long_context_{os.getpid()}_{arch}_{length}_{impl}.hwm"

    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = dict(os.environ, LONG_CONTEXT_HWM_FILE=status_file, TOKENIZERS_PARALLELISM="false")
    if args.xla_flags:
        env["XLA_FLAGS"] = args.xla_flags
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, preexec_fn=limit_memory, env=env)
    row = {"arch": f"v2-{arch}", "tokens": length, "attention": impl}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if lines:
        row.update(json.loads(lines[-1]))
    if proc.returncode == 0:
        row["status"] = "ok"
    else:
        row["status"] = "failed"
        row["returncode"] = proc.returncode
        tail = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        row["error"] = tail[-1][:300] if tail else ""
        if os.path.exists(status_file):
            with open(status_file) as f:
                row["peak_rss_mb_at_failure"] = float(f.read() or "nan")
        row["seconds_until_failure"] = round(time.perf_counter() - start, 1)
    if os.path.exists(status_file):
        os.remove(status_file)
    return row


def _record_hwm_at_exit():
    """Writes VmHWM to a file from the child at exit, so a failed run still reports memory."""
    import atexit

    path = os.environ.get("LONG_CONTEXT_HWM_FILE")
    if path:

        def write():
            with open(path, "w") as f:
                f.write(str(round(peak_rss_mb(), 1)))

        atexit.register(write)
        try:
            import signal

            for sig in (signal.SIGTERM, signal.SIGABRT):
                signal.signal(sig, lambda *_: (write(), os._exit(134)))
        except (ValueError, OSError):
            pass


def machine() -> dict:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem = f.readline().split()[1]
    return {
        "date": subprocess.run(["date"], capture_output=True, text=True).stdout.strip(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "mem_total_gb": round(int(mem) / 2**20, 1),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--archs", default="small,base")
    parser.add_argument("--lengths", default="512,2048,4096,8192")
    parser.add_argument("--impls", default="chunked,dense")
    parser.add_argument("--chunk-size", type=int, default=512)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--memory-limit-gb", type=float, default=12.0)
    parser.add_argument("--xla-flags", default="", help="XLA_FLAGS for the subprocesses")
    parser.add_argument("--out", default="")
    parser.add_argument("--child", default="")
    args = parser.parse_args()
    if args.child:
        _record_hwm_at_exit()
        arch, length, impl, chunk_size, dtype, limit_mb = args.child.split(",")
        child(arch, int(length), impl, int(chunk_size), dtype, float(limit_mb))
        return

    info = machine()
    info["load_avg_start"] = os.getloadavg()
    rows = []
    for arch in args.archs.split(","):
        for length in map(int, args.lengths.split(",")):
            for impl in args.impls.split(","):
                row = run_one(args, arch, length, impl)
                row["load_avg"] = round(os.getloadavg()[0], 2)
                print(json.dumps(row), file=sys.stderr, flush=True)
                rows.append(row)
    info["load_avg_end"] = os.getloadavg()
    result = {
        "benchmark": "long_context",
        "machine": info,
        "chunk_size": args.chunk_size,
        "dtype": args.dtype,
        "memory_limit_gb": args.memory_limit_gb,
        "xla_flags": args.xla_flags,
        "rows": rows,
    }
    print(json.dumps(result, indent=1))
    print()
    print(markdown(result))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


def markdown(result: dict) -> str:
    lines = [
        f"one document, random weights, {result['dtype']} compute, attention chunk "
        f"{result['chunk_size']}, XLA_FLAGS={result['xla_flags']!r}; memory limit "
        f"{result['memory_limit_gb']} GB",
        "",
        "| model | tokens | attention | peak RSS MB | RSS after init MB | XLA temp MB | compile s "
        "| cold s | warm s | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        head = f"| {r['arch']} | {r['tokens']} | {r['attention']} |"
        temp = r.get("xla_temp_mb", "?")
        if r["status"] == "ok":
            lines.append(
                f"{head} {r['peak_rss_mb']} | {r['rss_params_mb']} | {temp} | {r['compile_s']} | "
                f"{r['cold_s']} | {r['warm_s']} | {r['load_avg']} |"
            )
        else:
            peak = r.get("peak_rss_mb_at_failure", "?")
            lines.append(
                f"{head} failed (peak {peak} MB): {r['error'][:110]} | "
                f"{r.get('rss_params_mb', '')} "
                f"| {temp} | {r.get('compile_s', '')} | after {r['seconds_until_failure']} s | "
                f"| {r['load_avg']} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
