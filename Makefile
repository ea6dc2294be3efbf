# Two entry points for a fresh machine: `make demo` and `make test`. Both build .venv/ first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WORKDIR ?= runs/demo
export XLA_PYTHON_CLIENT_PREALLOCATE := false
# libtpu is a dependency (jina_jax.aot compiles for TPU topologies here), and with it every
# process tries the TPU runtime first. A CPU default for make's commands; on a TPU VM run
# `JAX_PLATFORMS= make demo` (or call python -m jina_jax.main directly, as tpu_setup.sh does).
JAX_PLATFORMS ?= cpu
export JAX_PLATFORMS

STARTER := data_cache/starter

.PHONY: venv demo test lint format clean starter

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned: the local CPU wheel; anything looser pulls a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m jina_jax.main --config=configs/demo.py --workdir=$(WORKDIR)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The offline starter corpus (Debian/PyPI sources; cached, a few minutes the first time): the
# evaluator, mteb and experiment tests score on its held-out splits.
# The same pair cap as configs/demo.py (the :local configs), so both commands share one build.
starter: $(STAMP)
	$(PY) -m jina_jax.data.starter --data-dir $(STARTER) --max-pairs-per-dataset 20000

test: lint starter
	$(PY) -m pytest -q --durations=15 tests

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
