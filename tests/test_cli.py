"""convert -> workdir -> export, through the command lines a user scripts."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

import jina_jax
from jina_jax import checkpoints
from jina_jax.convert import main as convert_main
from jina_jax.export import main as export_main


def test_convert_then_export_round_trip(tmp_path, real_sentences):
    ckpt, out = tmp_path / "ckpt", tmp_path / "export"
    assert convert_main(["--hf", "all-MiniLM-L6-v2", "--out", str(ckpt)]) == 0
    assert checkpoints.latest_step(ckpt) == 0
    assert json.loads((ckpt / "model.json").read_text())["config"]["num_layers"] == 6
    # a second convert into the same place refuses instead of overwriting
    assert convert_main(["--hf", "all-MiniLM-L6-v2", "--out", str(ckpt)]) == 2
    assert export_main(["--workdir", str(ckpt), "--out", str(out)]) == 0
    texts = real_sentences[:20]
    original = jina_jax.encode(jina_jax.load_model("all-MiniLM-L6-v2"), texts)
    from_ckpt = jina_jax.encode(jina_jax.load_model(ckpt), texts)
    exported = jina_jax.encode(jina_jax.load_model(out), texts)
    np.testing.assert_allclose(from_ckpt, original, atol=1e-6)
    np.testing.assert_allclose(exported, original, atol=1e-6)
    # an existing export is never clobbered without --overwrite
    before = (out / "model.safetensors").read_bytes()
    assert export_main(["--workdir", str(ckpt), "--out", str(out)]) == 2
    assert (out / "model.safetensors").read_bytes() == before


def test_checkpoint_of_another_shape_is_refused(tmp_path):
    ckpt = tmp_path / "ckpt"
    assert convert_main(["--hf", "all-MiniLM-L6-v2", "--out", str(ckpt)]) == 0
    spec = json.loads((ckpt / "model.json").read_text())
    spec["config"]["intermediate_size"] = 1024
    (ckpt / "model.json").write_text(json.dumps(spec))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "jina_jax.export",
            "--workdir",
            str(ckpt),
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert (
        "layer_0']['mlp']['intermediate']['kernel'] has shape (384, 1536), config expects (384, 1024)"
        in proc.stderr
    )
    assert not (tmp_path / "x").exists()
