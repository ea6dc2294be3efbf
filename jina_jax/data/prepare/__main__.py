"""``python -m jina_jax.data.prepare --input GLOB [--input GLOB ...] --out DIR [options]
[Beam pipeline options]``: see ``main --help``."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from jina_jax.data import filters, prepare
from jina_jax.data.beam_transforms import Lazy

# The one upward import of the data layer besides the starter's: this CLI is the composition
# root that loads the run's tokenizer and the auxiliary model (all-MiniLM-L6-v2) by name.
from jina_jax.loading import load_embedder, load_tokenizer

FILTERS = ("exact_dedup", "near_dedup", "language", "consistency", "cross_encoder")
DEFAULT_FILTERS = {"pairs": FILTERS[:4], "texts": FILTERS[:3]}

EPILOG = """\
Any other option is an Apache Beam pipeline option and goes to Beam unchanged; without
--runner the pipeline runs locally with --runner=DirectRunner (Beam's own default, Prism,
downloads a binary). Write them as --name=value. Local parallelism:

  python -m jina_jax.data.prepare --input 'raw/*.jsonl.gz' --out prepared/msmarco \\
      --direct_num_workers=2 --direct_running_mode=multi_processing

The same command on Google Cloud Dataflow (inputs and --out on gs://; the workers need this
package: build a wheel with `pip wheel --no-deps -w dist .`):

  python -m jina_jax.data.prepare --input 'gs://BUCKET/raw/msmarco/*.jsonl.gz' \\
      --out gs://BUCKET/prepared/msmarco --num-shards=1024 \\
      --runner=DataflowRunner --project=PROJECT --region=us-central1 \\
      --temp_location=gs://BUCKET/tmp --requirements_file=requirements.lock \\
      --extra_package=dist/jina_jax-0.1.0-py3-none-any.whl

Flink and Spark: --runner=FlinkRunner / --runner=SparkRunner with their options. A shard is
sorted in one worker's memory: keep shards under about a gigabyte (--num-shards=1024 for
100M pairs). Train from the folder with a dataset source that names it.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m jina_jax.data.prepare",
        description=(
            "Raw pairs / triplets / texts -> a prepared dataset (cleaned, tokenised "
            "array_record shards read by jina_jax.data.prepared.PreparedDataset) and a "
            "filter report, as an Apache Beam pipeline. Prints the report and the output path."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # an abbreviation must not swallow a Beam option
    )
    io = parser.add_argument_group("input and output")
    io.add_argument(
        "--input",
        action="append",
        required=True,
        help="a file, folder or glob, local or gs:// (repeat for several): jsonl[.gz], "
        "parquet, Arrow, HF save_to_disk folders; .txt[.gz] for --kind texts",
    )
    io.add_argument(
        "--out", "--output", required=True, help="the prepared dataset folder (local or gs://)"
    )
    io.add_argument(
        "--kind",
        choices=("pairs", "texts"),
        default="pairs",
        help="pairs: query, positive and hard negatives (triplets); texts: MLM documents",
    )
    io.add_argument("--split", default="train", help="in folders, read the files naming it")
    io.add_argument(
        "--unit",
        choices=("line", "paragraph"),
        default="line",
        help="texts: a document per line, or per blank-line separated paragraph",
    )
    io.add_argument("--name", default=None, help="dataset name in the report (default: --out's)")
    io.add_argument("--num-shards", type=int, default=64)
    io.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    tok = parser.add_argument_group("tokenisation")
    tok.add_argument("--tokenizer", default="jina_v2", help="jina_v2, a tokenizer path or alias")
    tok.add_argument("--query-max-length", type=int, default=64)
    tok.add_argument("--passage-max-length", type=int, default=512)
    tok.add_argument("--max-length", type=int, default=512, help="texts")
    tok.add_argument("--query-prefix", default="", help='e.g. "query: "')
    tok.add_argument("--passage-prefix", default="", help='e.g. "passage: "')
    tok.add_argument(
        "--num-negatives",
        type=int,
        default=None,
        help="keep K negatives, drop records with fewer (default: the fewest any record has)",
    )
    clean = parser.add_argument_group("filters (jina_jax.data.filters)")
    clean.add_argument(
        "--filters",
        default=None,
        help=f"comma-separated, in order, from {', '.join(FILTERS)}, or none (default: "
        f"{','.join(DEFAULT_FILTERS['pairs'])} for pairs, the first three for texts; "
        "cross_encoder is added with --cross-encoder)",
    )
    clean.add_argument("--near-threshold", type=float, default=0.8, help="MinHash Jaccard")
    clean.add_argument("--language", default="en")
    clean.add_argument("--fasttext-model", default=None, help="lid.176.bin; default py3langid")
    clean.add_argument("--aux-model", default="all-MiniLM-L6-v2", help="consistency embedder")
    clean.add_argument("--aux-sample", type=int, default=1_000_000, help="pairs sampled")
    clean.add_argument(
        "--aux-judge",
        choices=("all", "sample"),
        default="all",
        help="all: rank every pair against the sample's positives (the paper); sample: judge "
        "only the sampled pairs, keep the rest",
    )
    clean.add_argument("--aux-top-k", type=int, default=2)
    clean.add_argument("--cross-encoder", default=None, help="a local cross-encoder folder")
    clean.add_argument("--margin", type=float, default=0.2, help="cross-encoder margin")
    return parser


def build_filters(args: argparse.Namespace) -> list:
    names = (
        list(DEFAULT_FILTERS[args.kind])
        if args.filters is None
        else [n.strip() for n in args.filters.split(",") if n.strip() and n.strip() != "none"]
    )
    if args.filters is None and args.cross_encoder and args.kind == "pairs":
        names.append("cross_encoder")
    unknown = sorted(set(names) - set(FILTERS))
    if unknown:
        raise SystemExit(f"unknown filters {unknown}; choose from {', '.join(FILTERS)}")
    stages = []
    for name in names:
        if name == "exact_dedup":
            stages.append(filters.ExactDedup())
        elif name == "near_dedup":
            stages.append(filters.NearDedup(threshold=args.near_threshold))
        elif name == "language":
            stages.append(
                filters.LanguageFilter(language=args.language, fasttext_model=args.fasttext_model)
            )
        elif name == "consistency":
            embedder = Lazy(load_embedder, args.aux_model, batch_size=64, max_length=128)
            stages.append(
                filters.ConsistencyFilter(
                    embedder=embedder,
                    sample_size=args.aux_sample,
                    top_k=args.aux_top_k,
                    judge=args.aux_judge,
                )
            )
        else:
            stages.append(filters.CrossEncoderFilter(args.cross_encoder, margin=args.margin))
    return stages


def main(argv: Sequence[str] | None = None) -> int:
    args, beam_args = build_parser().parse_known_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    start = time.perf_counter()
    result = prepare.prepare(
        args.input,
        args.out,
        tokenizer=load_tokenizer(args.tokenizer),
        tokenizer_name=args.tokenizer,
        kind=args.kind,
        filters=build_filters(args),
        dataset=args.name,
        num_shards=args.num_shards,
        query_max_length=args.query_max_length,
        passage_max_length=args.passage_max_length,
        max_length=args.max_length,
        query_prefix=args.query_prefix,
        passage_prefix=args.passage_prefix,
        num_negatives=args.num_negatives,
        split=args.split,
        unit=args.unit,
        overwrite=args.overwrite,
        beam_args=beam_args,
    )
    print(result.summary())
    print(f"\n{result.folder}\nwall time: {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
