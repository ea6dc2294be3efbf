"""jina-embedding-l-en-v1: the t5-large encoder -> pairs -> triplets (v1 loss) -> export.

    python -m jina_jax.main --config=configs/v1_large.py --workdir=DIR
    python -m jina_jax.main --config=configs/v1_large.py:local --workdir=DIR    # CPU smoke run

Start from real t5-large weights with --config.init_from=/path/to/t5-large (an HF folder).
"""

from jina_jax import config_lib


def get_config(arg=None):
    return config_lib.jina_v1_config("large", config_lib.parse_args(arg))
