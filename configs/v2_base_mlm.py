"""Backbone pretraining only: JinaBERT (base) masked-language modelling (jina-embeddings v2, stage 0)."""

from jina_jax import config_lib


def get_config(arg=None):
    return config_lib.jina_v2_config("base", config_lib.parse_args(arg) | {"mlm_only"})
