"""jina-embeddings-v2-small-en: JinaBERT (small) -> MLM -> pairs -> hard negatives -> export.

python -m jina_jax.main --config=configs/v2_small.py --workdir=DIR          # the real thing
python -m jina_jax.main --config=configs/v2_small.py:local --workdir=DIR    # CPU smoke run
"""

from jina_jax import config_lib


def get_config(arg=None):
    return config_lib.jina_v2_config("small", config_lib.parse_args(arg))
