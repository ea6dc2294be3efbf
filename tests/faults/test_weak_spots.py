"""The weak spots of issue 14: each try through a public entry point ends with a clear message
naming what is wrong, and nothing a user wrote is changed."""

from __future__ import annotations

import logging
import pathlib
import shutil
import subprocess
import sys
import uuid

import numpy as np
import pytest
from _support import REPO, env, last_lines, main_command, run
from safetensors.numpy import load_file, save_file

import jina_jax
from jina_jax import checkpoints
from jina_jax.data.catalog import text_source
from jina_jax.data.readers import read_pairs
from jina_jax.errors import CheckpointError, DataError
from jina_jax.export import main as export_main


@pytest.fixture()
def small_disk():
    """A 9 MB tmpfs: room for the run's first checkpoint of a model with a 50k vocabulary (about
    6 MB of parameters), not for a second."""
    mount = pathlib.Path(f"/tmp/jina-jax-faults-{uuid.uuid4().hex[:8]}")
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=9m", "tmpfs", str(mount)])
    if done.returncode != 0:
        mount.rmdir()
        pytest.fail("this test needs root to mount a small tmpfs")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)
    mount.rmdir()


@pytest.mark.slow
def test_full_disk_ends_with_one_clear_message(small_disk, config_file):
    workdir = small_disk / "run"
    cmd = main_command(config_file, workdir, "model.vocab_size=50000", "pairs.checkpoint.keep=5")
    result = run(cmd)
    assert result.returncode == 2
    last = last_lines(result)
    assert last.startswith("jina_jax.main: error: saving the checkpoint of step 4 failed")
    assert "No space left on device" in last
    assert last.endswith(
        f"the checkpoint of step 2 in {workdir / 'pairs' / 'checkpoints'} is intact"
    )
    _, step = checkpoints.restore_params(workdir / "pairs")
    assert step == 2


@pytest.mark.slow
def test_nan_stops_with_what_was_kept_and_no_nan_evals(tmp_path, config_file):
    # lr 1e30: the first update makes the weights enormous, so step 2's loss is not finite
    cmd = main_command(config_file, tmp_path / "a", "pairs.optimizer.lr=1e30")
    result = run(cmd)
    assert result.returncode == 2
    assert last_lines(result).startswith("jina_jax.main: error: non-finite loss at step 2")
    assert last_lines(result).endswith("; no checkpoint was written before it")
    # with a checkpoint every step and an evaluation due at the NaN step: the stage folder loads
    # (model.json is written at the start), and the NaN step was never evaluated
    workdir = tmp_path / "b"
    config = config_file.parent / "with_evals.py"
    config.write_text(
        config_file.read_text().replace(
            "    c.lock()",
            '    c.evals = ConfigDict({"lee": dict(type="sts", dataset="lee_sts", every=2)})\n'
            f"    c.data.dir = {str(REPO / 'data_cache' / 'starter')!r}\n    c.lock()",
        )
    )
    cmd = main_command(config, workdir, "pairs.optimizer.lr=1e30", "pairs.checkpoint.every=1")
    result = run(cmd)
    assert result.returncode == 2
    assert "the last good checkpoint (step 1) is kept" in last_lines(result)
    log = workdir / "pairs" / "evals.jsonl"
    assert not log.exists() or not log.read_text().strip()
    model = jina_jax.load_model(workdir / "pairs")
    assert jina_jax.encode(model, ["a sentence"]).shape == (1, 32)


def test_changed_settings_are_refused_naming_them(workdir, config_file):
    before = (workdir / "config.json").read_bytes()
    # a finished workdir rerun with another pooling / normalisation / max length
    result = run(main_command(config_file, workdir, "normalize=True", "max_length=64"))
    assert result.returncode == 2
    message = last_lines(result)
    assert "normalize: was False, now True" in message and "max_length: was 512, now 64" in message
    assert (workdir / "config.json").read_bytes() == before
    # an interrupted stage resumed with another learning rate
    (workdir / "pairs" / "DONE").unlink()
    result = run(main_command(config_file, workdir, "pairs.optimizer.lr=0.002"))
    assert result.returncode == 2
    assert (
        "holds a checkpoint of another config: stages.pairs.optimizer.lr: was 0.001, now 0.002"
        in last_lines(result)
    )


def test_unknown_key_and_garbage_markers_are_named(workdir, config_file):
    result = run(main_command(config_file, workdir, "zzzqqq=1"))
    assert result.returncode == 2
    assert last_lines(result) == (
        "jina_jax.main: config error: unknown config key 'zzzqqq' (no close match); the keys a "
        "config has are listed in jina_jax/config_lib.py"
    )
    (workdir / "pairs" / "DONE").write_text("{garbage")
    result = run(main_command(config_file, workdir))
    assert result.returncode == 2
    assert last_lines(result).startswith(
        f"jina_jax.main: error: {workdir / 'pairs' / 'DONE'}: invalid JSON"
    )


def test_broken_datasets_metadata_is_named(tmp_path):
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "state.json").write_text("{nope")
    with pytest.raises(DataError, match=f"{folder / 'state.json'}: invalid JSON"):
        list(read_pairs(folder))


def test_export_and_starter_refuse_bad_targets(workdir, tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("mine")
    assert export_main(["--workdir", str(workdir / "pairs"), "--out", str(target)]) == 2
    assert (
        capsys.readouterr().err
        == f"export: error: {target} is a file; the export is a folder: give a folder path\n"
    )
    assert target.read_text() == "mine"
    result = subprocess.run(
        [sys.executable, "-m", "jina_jax.export", "--workdir", str(workdir / "pairs")]
        + ["--out", ".", "--overwrite"],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert f"refusing to write an export to {tmp_path}: it is the current folder" in result.stderr
    assert target.read_text() == "mine"
    result = subprocess.run(
        [sys.executable, "-m", "jina_jax.data.starter", "--data-dir", str(target)],
        env=env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert (
        last_lines(result)
        == f"python -m jina_jax.data.starter: error: --data-dir {target} is a file, not a folder"
    )


@pytest.mark.parametrize("kind", ["nan", "int32"])
def test_broken_weights_are_refused(tmp_path, minilm_dir, kind):
    folder = tmp_path / "model"
    shutil.copytree(minilm_dir, folder)
    weights = load_file(folder / "model.safetensors")
    name = "encoder.layer.0.attention.self.query.weight"
    weights[name] = (
        np.full_like(weights[name], np.nan) if kind == "nan" else weights[name].astype(np.int32)
    )
    save_file(weights, folder / "model.safetensors")
    expected = (
        "holds NaN or infinite values" if kind == "nan" else "has dtype int32, not floating point"
    )
    with pytest.raises(CheckpointError, match=f"tensor {name} {expected}"):
        jina_jax.load_model(folder)


def test_cr_line_ends_and_bad_text_lines_are_read_and_reported(tmp_path, capsys):
    pairs = tmp_path / "mac.jsonl"
    pairs.write_bytes(b'["q1", "p1"]\r["q2", "p2"]\r["q3", "p3"]\r')
    assert [r.query for r in read_pairs(pairs)] == ["q1", "q2", "q3"]
    texts = tmp_path / "docs.txt"
    texts.write_bytes(b"a good line\n" + b"bad \xff byte\n" + b"x" * 500_000 + b"\nanother\n")
    data = type("Data", (), {"dir": str(tmp_path)})()
    assert list(text_source(str(texts), data)) == ["a good line", "another"]
    out = capsys.readouterr().out
    assert f"{texts}:2: invalid_utf8" in out and f"{texts}:3: too_long" in out


def test_encode_above_the_model_limit(minilm_dir, caplog):
    model = jina_jax.load_model(minilm_dir)
    with pytest.raises(ValueError, match="max_length 1024 exceeds the 512 positions"):
        jina_jax.encode(model, ["x"], max_length=1024)
    from jina_jax.models import BertConfig, init_params

    config = BertConfig(vocab_size=model.config.vocab_size, hidden_size=32, num_layers=1,
                        num_heads=2, intermediate_size=32, max_position_embeddings=64)  # fmt: skip
    import flax.linen as nn
    import jax

    alibi = jina_jax.Model(
        config, nn.meta.unbox(init_params(config, jax.random.key(0))), model.tokenizer
    )
    # the logger's own level: experiments.common.setup() (an earlier test) quietens it
    with caplog.at_level(logging.WARNING, logger="jina_jax.encoding"):
        out = jina_jax.encode(alibi, ["word " * 200], max_length=100)
    assert out.shape == (1, 32)
    assert (
        "max_length 100 is above the model's limit of 64 tokens; texts are cut at 64" in caplog.text
    )


def test_stale_export_staging_is_cleaned(workdir, tmp_path, capsys):
    out = tmp_path / "export"
    assert export_main(["--workdir", str(workdir / "pairs"), "--out", str(out)]) == 0
    # an export --overwrite killed half way leaves its staging folder and the old copy
    stale = tmp_path / ".export.ab12cd34"
    shutil.copytree(out, stale)
    (tmp_path / ".export.old").mkdir()
    assert export_main(["--workdir", str(workdir / "pairs"), "--out", str(out), "--overwrite"]) == 0
    printed = capsys.readouterr().out
    assert f"removed {stale}, left by an interrupted export" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "run"]
