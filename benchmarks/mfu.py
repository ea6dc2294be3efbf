"""MFU of the contrastive training step and attention speed at long sequence lengths.

    python benchmarks/mfu.py                     # this machine (CPU: measured matmul peak)
    python benchmarks/mfu.py --sizes base --batch 32 --passage-length 512 --dtype bfloat16  # GPU

Train step: JinaBERT pairs step (query 64 tokens, passage ``--passage-length``), random ids,
model FLOPs = 3 x forward matmul FLOPs (jina_jax.models.forward_flops) over the peak
(table for accelerators, a measured matmul on CPU). ``--long`` adds a forward (encode) timing
of one batch at 512..8192 tokens for each attention implementation: dense, chunked and, on GPU,
jax.nn's cudnn kernel. Prints JSON and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np


def _time(fn, *args, repeats=5):
    import jax

    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best


def train_step_row(size_name, size, batch, query_length, passage_length, dtype, remat, attention):
    import flax.linen as nn
    import jax

    from jina_jax import config_lib
    from jina_jax import sharding as shd
    from jina_jax.data.pipeline import contrastive_batch
    from jina_jax.models import BertConfig
    from jina_jax.training.loop import init_state, jit_train_step
    from jina_jax.training.metrics import peak_flops
    from jina_jax.training.objectives import ContrastiveObjective
    from jina_jax.training.optim import make_optimizer
    from jina_jax.training.step import make_train_step

    config = BertConfig(
        vocab_size=30528,
        add_pooler=False,
        dtype=dtype,
        remat=remat,
        attention_impl=attention,
        **size,
    )
    objective = ContrastiveObjective(config)
    rng = np.random.default_rng(0)
    # `batch` queries of query_length tokens and as many passages of passage_length, packed
    # into rows of passage_length tokens, as the training pipeline lays them out.
    queries = list(rng.integers(1, 30000, (batch, query_length)).astype(np.int32))
    passages = list(rng.integers(1, 30000, (batch, passage_length)).astype(np.int32))
    laid_out = contrastive_batch(queries, passages, max_length=passage_length, pad_id=0, pack=True)
    host = {k: v for k, v in laid_out.items() if isinstance(v, np.ndarray) and v.ndim}
    mesh = shd.make_mesh({"data": 1}, devices=jax.devices()[:1])
    tx, schedule = make_optimizer(config_lib.optimizer(1e-4, 0, schedule="constant"), 10)
    key = jax.random.key(0)
    init = jax.tree.map(np.asarray, nn.meta.unbox(jax.jit(objective.init)(key)))
    state = init_state(objective, tx, mesh, shd.DEFAULT_RULES, key, init)
    step = jit_train_step(make_train_step(objective, tx, schedule), state)
    batch_dev = shd.global_batch(host, mesh)
    state, m = step(state, batch_dev, key)
    jax.block_until_ready(m["loss"])
    steps = 10
    start = time.perf_counter()
    for _ in range(steps):
        state, m = step(state, batch_dev, key)
    jax.block_until_ready(m["loss"])
    seconds = (time.perf_counter() - start) / steps
    flops = objective.flops(host)
    tokens = batch * (query_length + passage_length)
    return {
        "model": f"v2-{size_name}",
        "dtype": dtype,
        "remat": remat,
        "attention": attention,
        "batch": batch,
        "packed_rows": int(host["ids"].shape[0]),
        "query_length": query_length,
        "passage_length": passage_length,
        "step_seconds": round(seconds, 4),
        "tokens_per_s": round(tokens / seconds, 1),
        "model_tflops_per_step": round(flops / 1e12, 3),
        "mfu": round(flops / seconds / peak_flops(), 4),
    }


def long_context_rows(size_name, size, lengths, implementations, dtype, batch):
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    from jina_jax.models import BertConfig, build_encoder, init_params

    rows = []
    for impl in implementations:
        config = BertConfig(
            vocab_size=30528,
            add_pooler=False,
            dtype=dtype,
            attention_impl=impl,
            attention_chunk_size=1024,
            **size,
        )
        params = nn.meta.unbox(init_params(config, jax.random.key(0)))
        module = build_encoder(config)
        fn = jax.jit(
            lambda p, i, m, module=module: module.apply({"params": p}, i, m)["last_hidden_state"]
        )
        for length in lengths:
            ids = jnp.ones((batch, length), jnp.int32)
            row = {"model": f"v2-{size_name}", "attention": impl, "length": length, "batch": batch}
            try:
                row["seconds"] = round(_time(fn, params, ids, ids, repeats=3), 4)
                row["tokens_per_s"] = round(batch * length / row["seconds"], 1)
            except Exception as e:  # e.g. out of memory for dense at 8192
                row["error"] = type(e).__name__ + ": " + str(e).splitlines()[0][:160]
            rows.append(row)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="local,small", help="comma list of local, small, base, large"
    )
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--query-length", type=int, default=64)
    parser.add_argument("--passage-length", type=int, default=256)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--remat", action="store_true")
    parser.add_argument("--attention", default="auto", help="dense, chunked, auto, cudnn, xla")
    parser.add_argument(
        "--long", action="store_true", help="also time attention at 512..8192 tokens"
    )
    parser.add_argument("--long-batch", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import jax

    from jina_jax import config_lib
    from jina_jax.training.metrics import peak_flops

    sizes = {"local": config_lib.LOCAL_JINA_BERT, **config_lib.JINA_BERT_SIZES}
    device = jax.devices()[0]
    result = {
        "benchmark": "mfu",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "device": f"{device.platform}: {device.device_kind}",
        "machine": f"{platform.machine()} {platform.node()}",
        "jax": jax.__version__,
        "peak_flops_per_device": peak_flops(),
        "train_step": [],
        "long_context": [],
    }
    for name in args.sizes.split(","):
        result["train_step"].append(
            train_step_row(
                name,
                sizes[name],
                args.batch,
                args.query_length,
                args.passage_length,
                args.dtype,
                args.remat,
                args.attention,
            )
        )
        print(json.dumps(result["train_step"][-1]), flush=True)
    if args.long:
        impls = ["dense", "chunked"] + (["cudnn", "xla"] if device.platform == "gpu" else [])
        for name in args.sizes.split(","):
            result["long_context"] += long_context_rows(
                name, sizes[name], [512, 2048, 4096, 8192], impls, args.dtype, args.long_batch
            )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
    print("\n| model | dtype | attention | batch | q/p length | step s | tokens/s | MFU |")
    print("|---|---|---|---|---|---|---|---|")
    for r in result["train_step"]:
        lengths = f"{r['query_length']}/{r['passage_length']}"
        print(
            f"| {r['model']} | {r['dtype']} | {r['attention']} | {r['batch']} | {lengths} "
            f"| {r['step_seconds']} | {r['tokens_per_s']} | {r['mfu']:.1%} |"
        )
    if result["long_context"]:
        print("\n| model | attention | length | seconds | tokens/s |\n|---|---|---|---|---|")
        for r in result["long_context"]:
            print(
                f"| {r['model']} | {r['attention']} | {r['length']} | {r.get('seconds', '-')} "
                f"| {r.get('tokens_per_s', r.get('error', '-'))} |"
            )
    return result


if __name__ == "__main__":
    main()
