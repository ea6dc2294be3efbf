"""Backbone pretraining only: JinaBERT (small) masked-language modelling (jina-embeddings v2, stage 0)."""

from jina_jax import config_lib


def get_config(arg=None):
    return config_lib.jina_v2_config("small", config_lib.parse_args(arg) | {"mlm_only"})
