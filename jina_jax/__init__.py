"""jina_jax: train, evaluate and export Jina Embeddings text models in JAX.

model = jina_jax.load_model("all-MiniLM-L6-v2")    # or an HF folder, or a workdir
vectors = jina_jax.encode(model, texts, batch_size=32, max_length=512)
"""

__version__ = "0.1.0"

from jina_jax.encoding import encode
from jina_jax.loading import load_model
from jina_jax.model import Model

__all__ = ["Model", "encode", "load_model"]
