"""config_lib's validation of the 'evaluate' stage's keys (precisions, rescore, dims), of the
same keys on config.evals entries, and of the LoRA stage: each bad value is refused up front,
naming its key and what is allowed."""

from __future__ import annotations

import pytest

from jina_jax import config_lib
from jina_jax.errors import ConfigError
from jina_jax.evaluators.quantization import PRECISIONS


def _config():
    c = config_lib.base_config()
    c.stages = ("import", "evaluate")
    c.init_from = "all-MiniLM-L6-v2"
    c.model.hidden_size = 384
    c.evals = config_lib.heldout_evals()
    return c


def _problems(config) -> str:
    with pytest.raises(ConfigError) as error:
        config_lib.validate(config)
    return str(error.value).removeprefix("bad config values: ")


def test_defaults_and_a_full_request_are_valid():
    config = _config()
    assert config.evaluate.precisions == ("float32",) and config.evaluate.model_dims
    config_lib.validate(config)
    config.evaluate.update(precisions=("float32", "int8", "binary"), rescore=0, dims=(256, 64))
    config.evals.python_faq.precisions = ("binary",)
    config.evals.python_faq.rescore = 10
    config_lib.validate(config)
    assert config_lib.EVAL_PRECISIONS == PRECISIONS  # config_lib's copy of the evaluators' list


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "precisions",
            ("float32", "int4"),
            "evaluate.precisions=('float32', 'int4'): distinct names of 'float32', 'int8', "
            "'binary', at least one (on the command line: "
            '--config.evaluate.precisions=\'("float32", "int8", "binary")\')',
        ),
        ("precisions", (), "evaluate.precisions=(): distinct names of"),
        ("precisions", ("int8", "int8"), "evaluate.precisions=('int8', 'int8'): distinct"),
        ("rescore", -1, "evaluate.rescore=-1: allowed range [0, inf]"),
        ("dims", (256, 0), "evaluate.dims=(256, 0): distinct positive integers"),
        ("dims", (64, 64), "evaluate.dims=(64, 64): distinct positive integers"),
        ("dims", (512,), "evaluate.dims=(512,): each at most the model's width 384"),
    ],
)
def test_bad_evaluate_values_name_the_key(key, value, message):
    config = _config()
    config.evaluate[key] = value
    assert _problems(config).startswith(message)


def test_entry_rescore_needs_int8_or_binary_where_the_entry_runs():
    config = _config()
    config.evals.manpages.rescore = 5
    config.evaluate.precisions = ("float32", "binary")  # filled in by the 'evaluate' stage
    config_lib.validate(config)
    config.evals.manpages.every = 100  # also during training, where nothing fills it in
    assert _problems(config).startswith("evals.manpages.rescore=5: re-ranks")
    config.evals.manpages.precisions = "int8"
    config_lib.validate(config)


def test_bad_entry_values_name_the_entry():
    config = _config()
    config.evals.python_faq.precisions = ("fp16",)
    config.evals.manpages.rescore = 5  # without int8 / binary
    config.evals.lee_sts.dims = (0,)
    assert _problems(config).split("; ") == [  # entries in ConfigDict's (sorted) order
        "evals.lee_sts.dims=(0,): distinct positive integers",
        "evals.manpages.rescore=5: re-ranks int8 / binary candidates, so set "
        "evals.manpages.precisions to include int8 or binary (or rescore=0)",
        "evals.python_faq.precisions=('fp16',): distinct names of 'float32', 'int8', 'binary', "
        "at least one (on the command line: "
        '--config.evals.python_faq.precisions=\'("float32", "int8", "binary")\')',
    ]


def test_command_line_override_is_refused_before_anything_runs(tmp_path):
    import os
    import pathlib
    import subprocess
    import sys

    repo = pathlib.Path(__file__).resolve().parents[1]
    workdir = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable, "-m", "jina_jax.main", "--config=configs/import_export.py",
            f"--workdir={workdir}", "--config.evaluate.precisions=('float32', 'int4')",
            "--config.evaluate.dims=(64, 64)",
        ],
        env={**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(repo)},
        cwd=repo, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    last = (result.stdout + result.stderr).strip().splitlines()[-1]
    assert last.startswith(
        "jina_jax.main: error: bad config values: evaluate.precisions=('float32', 'int4'): "
    )
    assert last.endswith("; evaluate.dims=(64, 64): distinct positive integers")
    assert not workdir.exists()


def _lora_config(**values):
    c = config_lib.jina_v2_config("small", {"local", "lora"})
    assert "lora" in c.stages
    c.unlock()
    c.lora.update(values)
    return c


def test_default_lora_stage_is_valid():
    config_lib.validate(_lora_config())


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rank": 0}, "lora.rank=0: allowed range [1, inf]"),
        (
            {"matryoshka_dims": (16,)},
            "lora.matryoshka_dims=(16,): not supported by the lora stage yet",
        ),
        ({"rank": -2}, "lora.rank=-2: allowed range [1, inf]"),
        ({"alpha": 0.0}, "lora.alpha=0.0: allowed range (0, inf]"),
        (
            {"targets": ("query", "dense", "ffn")},
            "lora.targets: unknown module 'dense', 'ffn'; known: query, key, value, output, "
            "gated_layers, intermediate, wo, wi, wi_0, wi_1",
        ),
        ({"targets": ()}, "lora.targets=(): a non-empty tuple of module names"),
        ({"tasks": ("a", "a")}, "lora.tasks=('a', 'a'): distinct non-empty names without '/'"),
        (
            {"eval_adapter": "retrieval"},
            "lora.eval_adapter='retrieval': one of lora.tasks, or '' (the base)",
        ),
        (
            {"default_adapters": ("retrieval.query", "retrieval.document")},
            "lora.default_adapters=('retrieval.query', 'retrieval.document'): adapters of "
            "lora.tasks",
        ),
    ],
)
def test_bad_lora_values_name_the_key(values, message):
    with pytest.raises(ConfigError) as error:
        config_lib.validate(_lora_config(**values))
    assert message in str(error.value)
    assert str(error.value).startswith("bad config values: lora.")


def test_adapters_of_an_unknown_dataset_are_refused():
    c = _lora_config()
    c.lora.adapters.nope = ("text-matching", "text-matching")
    with pytest.raises(ConfigError, match=r"lora.adapters.nope: no such dataset in lora.datasets"):
        config_lib.validate(c)


def test_minilm_lora_config_is_valid():
    import importlib.util

    spec = importlib.util.spec_from_file_location("minilm_lora", "configs/minilm_lora.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config("quick")
    config_lib.validate(config)
    assert config.stages == ("lora", "evaluate", "export") and config.lora.steps == 10
    assert set(config.lora.adapters) == set(config_lib.STARTER_PARAPHRASES)


def _demo_config(arg=None):
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "configs" / "demo.py"
    spec = importlib.util.spec_from_file_location("demo_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def test_demo_student_starts_from_three_teacher_layers():
    config = _demo_config()
    config_lib.validate(config)
    assert config.init_source_layers == (0, 4, 5)
    assert config.init_word_embeddings == "all-MiniLM-L6-v2"
    assert (config.model.hidden_size, config.model.num_layers) == (384, 3)
    assert config.distill.projection_init == "identity"
    small = _demo_config("small")
    config_lib.validate(small)
    assert small.init_source_layers == () and small.model.hidden_size == 256
    assert _demo_config("contrastive").model.hidden_size == 256  # the experiment arms' student


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            dict(init_source_layers=(0, 4)),
            "init_source_layers=(0, 4) names 2 layers; model.num_layers is 3",
        ),
        (dict(init_source_layers=(0, 0, 5)), "init_source_layers=(0, 0, 5): each layer once"),
        (
            dict(init_source_layers=(0, -1, 5)),
            "init_source_layers=(0, -1, 5): layer indices (integers >= 0)",
        ),
        (
            dict(init_word_embeddings=""),
            "init_source_layers=(0, 4, 5) needs init_word_embeddings",
        ),
        (dict(init_from="all-MiniLM-L6-v2"), "init_source_layers and init_from exclude"),
    ],
)
def test_bad_source_layers_name_the_key(values, message):
    config = _demo_config()
    config.unlock()
    config.update(values)
    assert message in _problems(config)


def test_bad_projection_init_names_the_key():
    config = _demo_config()
    config.unlock()
    config.distill.projection_init = "zeros"
    assert "distill.projection_init='zeros': one of 'random', 'identity'" in _problems(config)
