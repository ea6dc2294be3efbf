"""jina_jax: train, evaluate and export Jina Embeddings text models in JAX.

model = jina_jax.load_model("all-MiniLM-L6-v2")    # or an HF folder, or a workdir
vectors = jina_jax.encode(model, texts, batch_size=32, max_length=512)

The names below load on first use, so that ``import jina_jax.data...`` (an input pipeline, a
Beam worker) does not pull in the model, checkpoint and Hugging Face stacks.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Model": "jina_jax.model",
    "encode": "jina_jax.encoding",
    "load_model": "jina_jax.loading",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'jina_jax' has no attribute {name!r}")
