"""Fixtures of the fault tests: a tiny pairs config as a file and one finished tiny workdir
(trained once per session, copied by each test that needs one)."""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest
from _support import CONFIG, main_command, run


@pytest.fixture(scope="session")
def pairs_file(tmp_path_factory) -> pathlib.Path:
    from jina_jax.data.stdlib_text import stdlib_sentences

    path = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    with open(path, "w") as f:
        for sentence in stdlib_sentences(300):
            f.write(json.dumps([" ".join(sentence.split()[:4]), sentence]) + "\n")
    return path


@pytest.fixture(scope="session")
def config_file(tmp_path_factory, pairs_file) -> pathlib.Path:
    path = tmp_path_factory.mktemp("config") / "tiny.py"
    path.write_text(CONFIG.format(pairs=str(pairs_file)))
    return path


@pytest.fixture(scope="session")
def finished(tmp_path_factory, config_file) -> pathlib.Path:
    """A workdir whose pairs stage finished 6 steps, with checkpoints 2, 4 and 6."""
    workdir = tmp_path_factory.mktemp("finished") / "run"
    result = run(main_command(config_file, workdir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (workdir / "pairs" / "checkpoints").iterdir()) == ["2", "4", "6"]
    return workdir


@pytest.fixture()
def workdir(tmp_path, finished) -> pathlib.Path:
    """A private copy of the finished workdir."""
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    return copy
