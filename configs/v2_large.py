"""jina-embeddings-v2-large-en: JinaBERT (large) -> MLM -> pairs -> hard negatives -> export.

python -m jina_jax.main --config=configs/v2_large.py --workdir=DIR          # the real thing
python -m jina_jax.main --config=configs/v2_large.py:local --workdir=DIR    # CPU smoke run
"""

from jina_jax import config_lib


def get_config(arg=None):
    return config_lib.jina_v2_config("large", config_lib.parse_args(arg))
