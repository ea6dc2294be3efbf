"""Exports a run's latest checkpoint as a transformers + sentence-transformers folder.

    python -m jina_jax.export --workdir RUN --out DIR [--step N] [--auto-map local|official]
    python -m jina_jax.export --workdir RUN/lora --out DIR --adapter retrieval.query   # merged
    python -m jina_jax.export --workdir RUN/lora --out DIR --peft [--adapter NAME]    # PEFT

RUN and DIR may be local or ``gs://`` paths (``jina_jax.hf.io.save_hf`` says how an export to a
bucket is written).

JinaBERT exports carry their own modeling file, so
``AutoModel.from_pretrained(DIR, trust_remote_code=True)`` and
``SentenceTransformer(DIR, trust_remote_code=True)`` work offline. ``--auto-map official``
points config.json at jinaai/jina-bert-implementation instead (needs the hub and transformers 4).

Task LoRA adapters (a LoRA stage's folder): ``--adapter NAME`` merges that adapter into the
weights and writes an ordinary folder; ``--peft`` writes the base model plus
``adapters/<name>/`` in PEFT's layout for every adapter (only NAME with ``--adapter``).
"""

from __future__ import annotations

import argparse
import sys

from jina_jax.checkpoints import load_model_from_workdir
from jina_jax.errors import EXPECTED, report
from jina_jax.hf.io import save_hf


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jina_jax.export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--step", type=int, default=None, help="default: the latest")
    parser.add_argument("--auto-map", choices=("local", "official"), default="local")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument(
        "--adapter", default=None, help="a task LoRA adapter: merged in (or, with --peft, alone)"
    )
    parser.add_argument(
        "--peft", action="store_true", help="the base model plus the adapters as PEFT folders"
    )
    args = parser.parse_args(argv)
    try:
        model = load_model_from_workdir(args.workdir, step=args.step)
        out = save_hf(
            model,
            args.out,
            auto_map=args.auto_map,
            overwrite=args.overwrite,
            adapter=args.adapter,
            peft=args.peft,
        )
    except (*EXPECTED, ValueError) as e:
        return report("export", e)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
