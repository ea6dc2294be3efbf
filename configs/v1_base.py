"""jina-embedding-b-en-v1: the t5-base encoder -> pairs -> triplets (v1 loss) -> export.

    python -m jina_jax.main --config=configs/v1_base.py --workdir=DIR
    python -m jina_jax.main --config=configs/v1_base.py:local --workdir=DIR    # CPU smoke run

Start from real t5-base weights with --config.init_from=/path/to/t5-base (an HF folder).
"""

from jina_jax import config_lib


def get_config(arg=None):
    return config_lib.jina_v1_config("base", config_lib.parse_args(arg))
