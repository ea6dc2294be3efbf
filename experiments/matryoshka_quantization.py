"""Matryoshka dimensions x index precision (jina-embeddings-v3 / v5-text): how much held-out
nDCG@10 a model keeps when its embeddings are truncated and quantised.

    python -m experiments.matryoshka_quantization --out experiments/results/matryoshka_quantization \\
        --demo runs/demo/triplets

Models:
- the distilled demo model (``--demo``: a training stage folder of ``configs/demo.py``,
  trained with ``matryoshka_dims=(256, 128, 64)``);
- all-MiniLM-L6-v2 fine-tuned here with ``matryoshka_dims=(384, 256, 128, 64)`` on the starter
  pairs (``--minilm-steps`` InfoNCE steps, batch 32), and, for reference, the same number of
  steps without Matryoshka.

For each model, dimension and precision (float32; int8: per-dimension scalar quantisation
calibrated on the corpus; binary: sign bits, Hamming), with and without float rescoring of the
top ``--rescore`` candidates, the retrieval evaluator scores the four held-out sets; the table
gives the mean nDCG@10 over them and the share retained relative to the model's own full-size
float32 score, and the corpus index memory per vector.
"""

from __future__ import annotations

import argparse
import pathlib
import time

from experiments.common import (
    HELD_OUT_RETRIEVAL,
    finetune,
    markdown_table,
    setup,
    write_outputs,
)

NAME = "matryoshka_quantization"
PRECISIONS = ("float32", "int8", "int8_rescore", "binary", "binary_rescore")
MINILM_DIMS = (384, 256, 128, 64)
PAIRS = (
    "debian_descriptions",
    "manpages",
    "wordnet_synonyms",
    "wordnet_definitions",
    "wordnet_examples",
    "bible_paraphrase",
    "python_docs",
)


def scores(model, data_dir: str, rescore: int, max_queries: int | None) -> dict:
    """{(dim, precision): mean nDCG@10 over the held-out sets}, {(dim, precision): bytes per
    vector}; dim None = full size."""
    from jina_jax.evaluators import run_evaluator
    from jina_jax.evaluators.common import metric_name
    from jina_jax.evaluators.quantization import index_bytes

    dims = tuple(d for d in model.matryoshka_dims if d < model.dim)
    per_set, memory = {}, {}
    for name in HELD_OUT_RETRIEVAL:
        metrics = run_evaluator(
            "retrieval",
            model,
            dataset=name,
            data_dir=data_dir,
            max_length=256,
            max_queries=max_queries,
            precisions=("float32", "int8", "binary"),
            rescore=rescore,
            dims=dims,
        )
        for dim in (None, *dims):
            for precision in PRECISIONS:
                key = (dim, precision)
                per_set.setdefault(key, []).append(
                    float(metrics[metric_name("ndcg_at_10", dim, precision)])
                )
                width = dim or int(metrics["embedding_dim"])
                memory[key] = index_bytes(1, width, precision.removesuffix("_rescore"))
    return {k: sum(v) / len(v) for k, v in per_set.items()}, memory


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=pathlib.Path)
    parser.add_argument("--demo", default="runs/demo/triplets", help="the demo model's stage")
    parser.add_argument("--data-dir", default="data_cache/starter")
    parser.add_argument(
        "--minilm-steps", type=int, default=200, help="0: the demo model alone, no MiniLM arms"
    )
    parser.add_argument("--rescore", type=int, default=100)
    parser.add_argument("--max-queries", type=int, default=None)
    args = parser.parse_args(argv)
    setup()
    import jina_jax

    started = time.perf_counter()
    data_dir = str(pathlib.Path(args.data_dir).absolute())
    datasets = {name: f"starter:pairs/{name}" for name in PAIRS}
    models = {}
    if args.demo:
        models["demo (distilled)"] = args.demo
    arms = (("matryoshka", MINILM_DIMS), ("plain", ())) if args.minilm_steps > 0 else ()
    for label, dims in arms:
        models[f"all-MiniLM-L6-v2 fine-tuned, {label}"] = finetune(
            args.out / "runs" / f"minilm_{label}",
            init_from="all-MiniLM-L6-v2",
            stage="pairs",
            datasets=datasets,
            steps=args.minilm_steps,
            lr=2e-5,
            batch_size=32,
            passage_max_length=128,
            data_dir=data_dir,
            matryoshka_dims=dims,
        )
    results, rows = {}, []
    for label, path in models.items():
        model = jina_jax.load_model(path)
        if not model.matryoshka_dims:  # the reference: the same truncations, untrained for them
            model.matryoshka_dims = tuple(d for d in MINILM_DIMS if d <= model.dim)
        mean, memory = scores(model, data_dir, args.rescore, args.max_queries)
        full = mean[(None, "float32")]
        results[label] = {
            "path": str(path),
            "ndcg_at_10": {f"{d or 'full'}/{p}": v for (d, p), v in mean.items()},
            "bytes_per_vector": {f"{d or 'full'}/{p}": v for (d, p), v in memory.items()},
        }
        for dim in (
            None,
            *sorted((d for d in model.matryoshka_dims if d < model.dim), reverse=True),
        ):
            cells = [mean[(dim, p)] / full * 100 for p in PRECISIONS]
            bytes_ = [memory[(dim, p)] for p in ("float32", "int8", "binary")]
            rows.append(
                [label, dim or f"{model.dim} (full)", 100 * mean[(dim, "float32")], *cells, *bytes_]
            )
    headers = [
        "model",
        "dims",
        "nDCG@10 float32",
        *(f"% kept {p.replace('_', ' + ')}" for p in PRECISIONS),
        "bytes/vec float32",
        "int8",
        "binary",
    ]
    table = markdown_table(headers, rows, digits=1)
    worst = min(r[3 + PRECISIONS.index("binary_rescore")] for r in rows if "(full)" in str(r[1]))
    notes = [
        "nDCG@10: mean over the held-out sets "
        + ", ".join(HELD_OUT_RETRIEVAL)
        + f" (x100). '% kept': relative to the same model's full-size float32 score. Rescoring "
        f"re-ranks the top {args.rescore} candidates with the float32 query against the "
        "dequantised vectors.",
        f"Goal binary + rescore >= 95% at full size: lowest here {worst:.1f}%.",
    ]
    write_outputs(
        args.out,
        name=NAME,
        table=table,
        config=vars(args) | {"out": str(args.out)},
        results=results,
        started=started,
        notes=notes,
    )


if __name__ == "__main__":
    main()
