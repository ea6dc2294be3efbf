"""Shared fixtures: offline switches, real English sentences, tiny configs."""

from __future__ import annotations

import os

# Eight CPU devices for the sharding tests; must be set before jax is first imported.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
# libtpu is installed (jina_jax.aot): without this every process tries the TPU runtime first.
# get_topology_desc (the AOT tests) still works.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# No persistent XLA cache in tests (experiments.common.setup would turn it on process-wide, and
# cached multi-device CPU programs deadlocked collectives in later sharded tests).
os.environ.pop("JINA_JAX_XLA_CACHE", None)

import pytest


@pytest.fixture(scope="session")
def real_sentences() -> list[str]:
    from jina_jax.data.stdlib_text import stdlib_sentences

    sentences = stdlib_sentences(300)
    assert len(sentences) >= 250
    return sentences


@pytest.fixture(scope="session")
def minilm_dir():
    from jina_jax.hf.local_models import minilm_path

    return minilm_path()
