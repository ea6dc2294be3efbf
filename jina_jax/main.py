"""The main job: runs the stages a config lists, each in its own folder of the workdir.

    python -m jina_jax.main --config=configs/demo.py --workdir=runs/demo
    python -m jina_jax.main --config=configs/demo.py --workdir=runs/demo --config.sample_texts=64

Each stage writes ``<workdir>/<stage>/`` and, when it completes, ``<workdir>/<stage>/DONE``
(a JSON summary). A rerun with the same workdir skips completed stages and says so.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import sys
import time
from collections.abc import Callable

from absl import app, flags
from ml_collections import ConfigDict, config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file (path.py[:arg]).")
flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and exports go.")

log = logging.getLogger("jina_jax")

DONE_FILE = "DONE"


def stage_dir(workdir: pathlib.Path, stage: str) -> pathlib.Path:
    return workdir / stage


def _done(folder: pathlib.Path) -> dict | None:
    marker = folder / DONE_FILE
    return json.loads(marker.read_text()) if marker.exists() else None


def _mark_done(folder: pathlib.Path, summary: dict) -> None:
    tmp = folder / f".{DONE_FILE}.tmp"
    tmp.write_text(json.dumps(summary, indent=2, default=str))
    os.replace(tmp, folder / DONE_FILE)


# --------------------------------------------------------------------------- stages


def stage_import(config: ConfigDict, workdir: pathlib.Path, previous: pathlib.Path | None) -> dict:
    """Imports ``config.init_from`` (an HF folder or local alias) as a step-0 checkpoint."""
    from jina_jax.convert import convert

    out = stage_dir(workdir, "import")
    convert(config.init_from, out, overwrite=True)
    return {"from": str(config.init_from), "model_dir": str(out)}


def stage_encode(config: ConfigDict, workdir: pathlib.Path, previous: pathlib.Path | None) -> dict:
    """Encodes real sentences with the latest model and saves the embeddings."""
    import numpy as np

    import jina_jax
    from jina_jax.data.stdlib_text import stdlib_sentences

    out = stage_dir(workdir, "encode")
    model = jina_jax.load_model(_require(previous, "encode"))
    texts = stdlib_sentences(config.sample_texts)
    start = time.perf_counter()
    vectors, stats = jina_jax.encode(
        model,
        texts,
        batch_size=config.encode.batch_size,
        max_length=config.encode.max_length,
        return_stats=True,
    )
    seconds = time.perf_counter() - start
    np.save(out / "embeddings.npy", vectors)
    (out / "texts.json").write_text(json.dumps(texts, indent=1))
    return {
        "texts": len(texts),
        "dim": int(vectors.shape[1]),
        "seconds": round(seconds, 2),
        "truncated": stats["truncated"],
        "embeddings": str(out / "embeddings.npy"),
    }


def stage_export(config: ConfigDict, workdir: pathlib.Path, previous: pathlib.Path | None) -> dict:
    """Exports the latest model as one transformers + sentence-transformers folder."""
    from jina_jax.checkpoints import load_model_from_workdir
    from jina_jax.hf.io import save_hf

    model = load_model_from_workdir(_require(previous, "export"))
    out = save_hf(model, stage_dir(workdir, "export") / "model", overwrite=True)
    return {"model_dir": str(out)}


def stage_verify_export(config: ConfigDict, workdir: pathlib.Path, previous) -> dict:
    """Reloads the export with sentence-transformers and compares it with jina_jax."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    import jina_jax
    from jina_jax.data.stdlib_text import stdlib_sentences

    export_dir = stage_dir(workdir, "export") / "model"
    texts = stdlib_sentences(config.sample_texts)
    ours = jina_jax.encode(jina_jax.load_model(export_dir), texts)
    st = SentenceTransformer(str(export_dir), device="cpu", trust_remote_code=True)
    ref = st.encode(texts, convert_to_numpy=True)
    cos = np.sum(ours * ref, 1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    if cos.min() < 0.9999:
        raise RuntimeError(f"export check failed: min cosine {cos.min():.6f} < 0.9999")
    return {"texts": len(texts), "min_cosine": float(cos.min()), "export": str(export_dir)}


STAGES: dict[str, Callable] = {
    "import": stage_import,
    "encode": stage_encode,
    "export": stage_export,
    "verify_export": stage_verify_export,
}
# Stages whose folder holds a model that the next stage starts from.
MODEL_STAGES = {"import"}


def _require(previous: pathlib.Path | None, stage: str) -> pathlib.Path:
    if previous is None:
        raise ValueError(
            f"stage {stage!r} needs a model: list 'import' (or a training stage) first"
        )
    return previous


def run(config: ConfigDict, workdir: str | os.PathLike) -> dict[str, dict]:
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    unknown = [s for s in config.stages if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stages {unknown}; known: {sorted(STAGES)}")
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
    previous: pathlib.Path | None = None
    results: dict[str, dict] = {}
    for stage in config.stages:
        folder = stage_dir(workdir, stage)
        summary = _done(folder)
        if summary is not None:
            print(f"[{stage}] already complete in {folder}, skipping")
        else:
            print(f"[{stage}] running")
            folder.mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            summary = STAGES[stage](config, workdir, previous)
            summary["wall_seconds"] = round(time.perf_counter() - start, 1)
            _mark_done(folder, summary)
        results[stage] = summary
        if stage in MODEL_STAGES:
            previous = folder
    _print_summary(results, workdir)
    return results


def _print_summary(results: dict[str, dict], workdir: pathlib.Path) -> None:
    print(f"\nResults ({workdir}):")
    print("| stage | summary |")
    print("|---|---|")
    for stage, summary in results.items():
        text = ", ".join(f"{k}={v}" for k, v in summary.items())
        print(f"| {stage} | {text} |")


def main(argv) -> int:
    del argv
    if FLAGS.config is None or FLAGS.workdir is None:
        print(
            "usage: python -m jina_jax.main --config=configs/X.py[:arg] --workdir=DIR",
            file=sys.stderr,
        )
        return 2
    quiet_libraries()
    run(FLAGS.config, FLAGS.workdir)
    return 0


def quiet_libraries() -> None:
    """Our progress lines on the console; orbax/absl INFO chatter only at WARNING and above."""
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)
    logging.getLogger("absl").setLevel(logging.WARNING)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")


def entry_point() -> None:
    try:
        app.run(main)
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        # Config overrides (--config.x=y) are applied while flags parse: a misspelt key lands here.
        message = str(e).replace("\\n", " ").replace("\\'", "'")
        if len(message) > 1 and message[0] == message[-1] == "'":
            message = message[1:-1]
        print(f"jina_jax.main: config error: {message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    entry_point()
