"""The eight bugs of issue 14, each reproduced through a public entry point (mostly
``python -m jina_jax.main`` in a subprocess, on a tiny pairs config): each ends with one clear
message and nothing lost."""

from __future__ import annotations

import json
import pathlib
import shutil
import signal
import socket
import struct
import subprocess
import time

import numpy as np
import pytest
from _support import REPO, env, last_lines, main_command, run

import jina_jax
from jina_jax import checkpoints
from jina_jax.convert import main as convert_main
from jina_jax.data.readers import ReadReport, read_pairs
from jina_jax.errors import CheckpointError


def _leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _damage(step_dir: pathlib.Path, kind: str) -> None:
    if kind == "truncated_array_file":
        files = sorted(
            p for p in (step_dir / "params").rglob("*") if p.is_file() and p.stat().st_size > 100
        )
        target = max(files, key=lambda p: p.stat().st_size)
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif kind == "metadata_deleted":
        for path in step_dir.rglob("*metadata*"):
            if path.is_file():
                path.unlink()
    elif kind == "emptied":
        for path in sorted(step_dir.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
    elif kind == "garbage_meta":
        for path in (step_dir / "meta").rglob("*"):
            if path.is_file():
                path.write_text("{not json")


# 1. A damaged latest checkpoint: set aside (never deleted), the run resumes from the newest
#    intact one and ends bitwise equal to an uninterrupted run. The four kinds of damage and the
#    uninterrupted reference run as five processes at once (on 2 cores their imports and
#    compiles overlap).
DAMAGE = ("truncated_array_file", "garbage_meta", "emptied", "metadata_deleted")


@pytest.mark.slow
def test_damaged_latest_checkpoint_falls_back(finished, config_file, tmp_path):
    def start(workdir: pathlib.Path, log: pathlib.Path) -> subprocess.Popen:
        with open(log, "w") as f:
            return subprocess.Popen(
                main_command(config_file, workdir, "pairs.steps=8"),
                env=env(),
                cwd=REPO,
                stdout=f,
                stderr=subprocess.STDOUT,
                text=True,
            )

    straight = start(tmp_path / "straight", tmp_path / "straight.log")
    jobs = {}
    for kind in DAMAGE:
        workdir = tmp_path / kind
        shutil.copytree(finished, workdir)
        _damage(workdir / "pairs" / "checkpoints" / "6", kind)
        jobs[kind] = (workdir, start(workdir, tmp_path / f"{kind}.log"))
    assert straight.wait(timeout=600) == 0, (tmp_path / "straight.log").read_text()[-3000:]
    reference, _ = checkpoints.restore_params(tmp_path / "straight" / "pairs")
    for kind, (workdir, proc) in jobs.items():
        code, out = proc.wait(timeout=600), (tmp_path / f"{kind}.log").read_text()
        assert code == 0, (kind, out[-3000:])
        if "damaged" in out:  # orbax may not even list a step whose metadata is gone
            assert f"checkpoint 6 in {workdir / 'pairs' / 'checkpoints'} is damaged" in out, kind
            moved = list((workdir / "pairs" / "damaged_checkpoints").iterdir())
            assert [p.name.split("-")[0] for p in moved] == ["6"], kind  # kept, not deleted
        assert "resuming from step 4" in out, (kind, out[-3000:])
        params, step = checkpoints.restore_params(workdir / "pairs")
        assert step == 8, kind
        for a, b in zip(_leaves(reference), _leaves(params)):  # bitwise: an 8-step straight run
            assert a.dtype == b.dtype and np.array_equal(a, b), kind


# 2. Two runs on one workdir: the second refuses at once naming the holder; a lock left by a
#    killed run is stale and taken over.
@pytest.mark.slow
def test_second_run_on_a_workdir_is_refused_and_a_stale_lock_taken_over(tmp_path, config_file):
    workdir = tmp_path / "run"
    first = subprocess.Popen(
        main_command(config_file, workdir, "pairs.steps=400"),
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while not (workdir / ".lock").exists() and time.time() < deadline:
            time.sleep(0.05)
        started = time.time()
        second = run(main_command(config_file, workdir, "pairs.steps=400"))
        assert time.time() - started < 60
        assert second.returncode == 2
        assert last_lines(second) == (
            f"jina_jax.main: error: {workdir} is in use by another run (host "
            f"{socket.gethostname()}, pid {first.pid}, since "
            + json.loads((workdir / ".lock").read_text())["since"]
            + f"); wait for it to end or use another --workdir. If that run is gone, delete "
            f"{workdir / '.lock'}."
        )
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert (workdir / ".lock").exists()  # the killed run's lock is left behind...
    third = run(main_command(config_file, workdir, "pairs.steps=4"))
    assert third.returncode == 0, third.stderr[-2000:]
    assert f"taking over the stale lock of {workdir / '.lock'} (pid {first.pid}" in third.stdout
    assert not (workdir / ".lock").exists()  # ...and released by the run that took it over


# 3. Nothing is written before a run is accepted: a refused config leaves config.json as it
#    was; a folder that is not a workdir (an export) is refused, its files untouched.
def test_refused_run_leaves_config_json_and_foreign_folders_alone(workdir, config_file, tmp_path):
    before = (workdir / "config.json").read_bytes()
    result = run(main_command(config_file, workdir, "model.hidden_size=48"))
    assert result.returncode == 2
    assert "model.hidden_size: was 32, now 48" in last_lines(result)
    assert (workdir / "config.json").read_bytes() == before

    export = tmp_path / "export"
    from jina_jax.export import main as export_main

    assert export_main(["--workdir", str(workdir / "pairs"), "--out", str(export)]) == 0
    files = {p.name: p.read_bytes() for p in export.iterdir() if p.is_file()}
    result = run(main_command(config_file, export))
    assert result.returncode == 2
    assert last_lines(result) == (
        f"jina_jax.main: error: --workdir {export} holds a Hugging Face model (config.json with "
        "architectures), not a jina_jax run; a run would overwrite its files. Use a new folder."
    )
    assert {p.name: p.read_bytes() for p in export.iterdir() if p.is_file()} == files
    assert jina_jax.load_model(export).config.hidden_size == 32


# 4. steps <= 0 is refused at config time, naming the key; nothing is created.
@pytest.mark.parametrize("steps", [0, -3])
def test_nonpositive_steps_refused(tmp_path, config_file, steps):
    workdir = tmp_path / "run"
    result = run(main_command(config_file, workdir, f"pairs.steps={steps}"))
    assert result.returncode == 2
    assert last_lines(result) == (
        f"jina_jax.main: error: bad config values: pairs.steps={steps}: allowed range [1, inf]"
    )
    assert not workdir.exists()


# 5. Zero or negative values, and values that do not fit the mesh, are refused up front.
@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "pairs.datasets.local.batch_size=0",
            "pairs.datasets.local.batch_size=0: allowed range [1, inf]",
        ),
        (
            "pairs.datasets.local.batch_size=-4",
            "pairs.datasets.local.batch_size=-4: allowed range [1, inf]",
        ),
        ("pairs.checkpoint.every=0", "pairs.checkpoint.every=0: allowed range [1, inf]"),
        ("pairs.optimizer.lr=-0.1", "pairs.optimizer.lr=-0.1: allowed range [0, inf]"),
        ("pairs.temperature=0.0", "pairs.temperature=0.0: allowed range (0, inf]"),
        ("pairs.pack_row_steps=3", "pairs.pack_row_steps=3: a power of two"),
    ],
)
def test_bad_numbers_refused_naming_the_key(tmp_path, config_file, override, message):
    result = run(main_command(config_file, tmp_path / "run", override))
    assert result.returncode == 2
    assert last_lines(result) == f"jina_jax.main: error: bad config values: {message}"


def test_batch_not_divisible_by_the_mesh_refused(tmp_path, config_file):
    cmd = main_command(config_file, tmp_path / "run", "pairs.datasets.local.batch_size=6")
    result = subprocess.run(
        cmd,
        env={**env(), "XLA_FLAGS": "--xla_force_host_platform_device_count=4"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert last_lines(result) == (
        "jina_jax.main: error: bad config values: pairs.datasets.local.batch_size=6: must be "
        "divisible by the 4 batch shards of the mesh"
    )


def test_length_above_an_absolute_position_table_refused(tmp_path, config_file):
    overrides = ["model.position_embedding_type=absolute", "model.max_position_embeddings=16"]
    overrides.append("model.feed_forward_type=original")
    result = run(main_command(config_file, tmp_path / "run", *overrides))
    assert result.returncode == 2
    assert "pairs.query_max_length=32: allowed range [4, 16]" in last_lines(result)


# 6. Corrupt safetensors name the file and what is wrong, through convert and load_model.
@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("empty", r"0 bytes: too short to be a safetensors file"),
        ("truncated_header", r"the header claims \d+ bytes but the file has \d+ after"),
        ("absurd_header_length", r"the header claims 18446744073709551615 bytes"),
        (
            "truncated_data",
            r"tensor \S+ lies beyond the end of the file \(\d+ data bytes\): the file is truncated",
        ),
    ],
)
def test_corrupt_safetensors_are_named(tmp_path, minilm_dir, damage, expected, capsys):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(minilm_dir, folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    if damage == "empty":
        weights.write_bytes(b"")
    elif damage == "truncated_header":
        weights.write_bytes(data[:64])
    elif damage == "absurd_header_length":
        weights.write_bytes(struct.pack("<Q", 2**64 - 1) + data[8:])
    else:
        weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=f"{weights}: {expected}"):
        jina_jax.load_model(folder)
    assert convert_main(["--hf", str(folder), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith(f"convert: error: {weights}: ")


# 7. Bad config.json values name the file and the key.
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ([1, 2, 3], "holds a JSON list, not an object"),
        ({"hidden_size": "big"}, "hidden_size is 'big', expected an integer"),
        ({"num_attention_heads": 5}, "hidden_size 384 is not divisible by num_heads 5"),
    ],
)
def test_bad_config_json_names_file_and_key(tmp_path, minilm_dir, content, expected):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(minilm_dir, folder)
    path = folder / "config.json"
    if isinstance(content, dict):
        content = {**json.loads(path.read_text()), **content}
    path.write_text(json.dumps(content))
    with pytest.raises(CheckpointError) as error:
        jina_jax.load_model(folder)
    assert str(error.value) == f"{path}: {expected}"


# 8. A lone surrogate in a jsonl line is a bad line (file:line); training skips it and says so;
#    encode names the item.
def test_lone_surrogate_is_a_bad_line(tmp_path, config_file, pairs_file):
    bad = tmp_path / "pairs.jsonl"
    lines = pairs_file.read_text().splitlines()
    lines.insert(2, '["query \\ud800", "a positive"]')
    bad.write_text("\n".join(lines) + "\n")
    report = ReadReport()
    records = list(read_pairs(bad, report=report))
    assert len(records) == len(lines) - 1
    assert report.skipped == {"invalid_text": 1}
    assert (
        report.examples[0]
        == f"{bad}:3: invalid_text: item 0 holds surrogates not allowed at character 6"
    )

    workdir = tmp_path / "run"
    result = run(
        main_command(config_file, workdir, f"pairs.datasets.local.source={bad}", "pairs.steps=2")
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{bad}:3: invalid_text" in result.stdout + result.stderr

    model = jina_jax.load_model(workdir / "pairs")
    with pytest.raises(ValueError, match=r"texts\[1\] is not valid Unicode text"):
        jina_jax.encode(model, ["fine", "bad \ud800 text"])
