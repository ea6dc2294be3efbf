"""Config validation of the LoRA stage: each bad value is refused up front, naming its key and
what is allowed."""

from __future__ import annotations

import pytest

from jina_jax import config_lib
from jina_jax.errors import ConfigError


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
