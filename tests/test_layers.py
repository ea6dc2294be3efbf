"""The package's layers (pyproject.toml, [tool.importlinter]): the contract holds on this tree,
and the same check fails, naming the import, on a copy with one upward import added."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
LINT = [str(pathlib.Path(sys.executable).with_name("lint-imports")), "--no-cache"]


def test_layers_contract_is_kept():
    result = subprocess.run(LINT, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "1 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    shutil.copytree(
        REPO / "jina_jax", tmp_path / "jina_jax", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    # data is the lowest layer; main the highest (main -> ... -> data already exists: a cycle)
    with open(tmp_path / "jina_jax" / "data" / "records.py", "a") as f:
        f.write("\nfrom jina_jax import main  # noqa: E402,F401\n")
    result = subprocess.run(LINT, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stdout[-3000:]
    assert "jina_jax.data is not allowed to import jina_jax.main" in result.stdout
    assert "jina_jax.data.records -> jina_jax.main" in result.stdout
