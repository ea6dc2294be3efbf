"""Reads two runs (any paths, e.g. gs://); exports RUN_B to the local EXPORT_DIR with the export
CLI's own entry point (``jina_jax.export.main``, what ``python -m jina_jax.export`` runs, here
in this process to save a process start); prints as JSON whether the runs' latest parameters
are bitwise equal, how far ``load_model(RUN_B)`` embeds from the export, and how far the
export, exported again to REMOTE_EXPORT (twice: the second replaces the first) and loaded from
there, embeds from itself.

    python tests/jobs/gcs_check.py RUN_A/STAGE RUN_B/STAGE EXPORT_DIR REMOTE_EXPORT
"""

from __future__ import annotations

import json
import sys

import jax
import numpy as np

import jina_jax
from jina_jax import checkpoints, export
from jina_jax.data.stdlib_text import stdlib_sentences
from jina_jax.hf.io import save_hf

run_a, run_b, export_dir, remote_export = sys.argv[1:5]
if export.main(["--workdir", run_b, "--out", export_dir]) != 0:
    sys.exit("export CLI failed")
params_a, step_a = checkpoints.restore_params(run_a)
params_b, step_b = checkpoints.restore_params(run_b)
leaves_a, leaves_b = jax.tree.leaves(params_a), jax.tree.leaves(params_b)
bitwise = jax.tree.structure(params_a) == jax.tree.structure(params_b) and all(
    a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    for a, b in zip(leaves_a, leaves_b)
)
texts = stdlib_sentences(16)
remote = jina_jax.encode(jina_jax.load_model(run_b), texts, batch_size=8, max_length=32)
exported = jina_jax.load_model(export_dir)
local = jina_jax.encode(exported, texts, batch_size=8, max_length=32)
save_hf(exported, remote_export)
save_hf(exported, remote_export, overwrite=True)
again = jina_jax.encode(jina_jax.load_model(remote_export), texts, batch_size=8, max_length=32)
print(
    json.dumps(
        {
            "steps": [step_a, step_b],
            "leaves": len(leaves_a),
            "bitwise_equal": bool(bitwise),
            "embeddings": list(remote.shape),
            "max_abs_diff": float(np.max(np.abs(remote - local))),
            "reexport_max_abs_diff": float(np.max(np.abs(again - local))),
        }
    )
)
