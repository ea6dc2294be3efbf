"""``python -m jina_jax.data.starter --data-dir DIR [--force] [--max-pairs-per-dataset N]``:
builds the starter corpus (see the package docstring)."""

from __future__ import annotations

import argparse
import logging
import pathlib
import sys
import time
from collections.abc import Sequence

from jina_jax.data import starter
from jina_jax.errors import EXPECTED, report

# The one upward import of the data layer: this CLI is the composition root that loads the
# auxiliary model (all-MiniLM-L6-v2) and hands it to build_starter.
from jina_jax.loading import load_embedder


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jina_jax.data.starter", description=starter.__doc__.split("\n\n")[0]
    )
    defaults = starter.StarterConfig(data_dir=pathlib.Path("."))
    parser.add_argument("--data-dir", required=True, type=pathlib.Path)
    parser.add_argument("--force", action="store_true", help="redo every step except downloads")
    parser.add_argument("--max-pairs-per-dataset", type=int, default=None)
    parser.add_argument(
        "--aux-sample",
        type=int,
        default=defaults.aux_sample,
        help="pairs per dataset judged for consistency and mined (0 = all)",
    )
    parser.add_argument("--aux-max-length", type=int, default=defaults.aux_max_length)
    parser.add_argument("--aux-batch-size", type=int, default=defaults.aux_batch_size)
    parser.add_argument("--aux-model", default=defaults.aux_model)
    args = parser.parse_args(argv)
    if args.data_dir.exists() and not args.data_dir.is_dir():
        return report(
            parser.prog, NotADirectoryError(f"--data-dir {args.data_dir} is a file, not a folder")
        )
    if args.max_pairs_per_dataset is not None and args.max_pairs_per_dataset < 1:
        return report(parser.prog, ValueError("--max-pairs-per-dataset must be >= 1"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    config = starter.StarterConfig(
        data_dir=args.data_dir,
        force=args.force,
        max_pairs_per_dataset=args.max_pairs_per_dataset,
        aux_sample=args.aux_sample,
        aux_max_length=args.aux_max_length,
        aux_batch_size=args.aux_batch_size,
        aux_model=args.aux_model,
    )
    start = time.perf_counter()
    try:
        manifest = starter.built_manifest(config)  # an up-to-date build needs no model
        if manifest is None:
            embedder = load_embedder(
                config.aux_model, batch_size=config.aux_batch_size, max_length=config.aux_max_length
            )
            manifest = starter.build_starter(config, embedder)
    except (*EXPECTED, ValueError) as e:
        return report(parser.prog, e)
    print(starter.summary(manifest))
    print(f"\nwall time this run: {time.perf_counter() - start:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
