"""jina_jax: train, evaluate and export Jina Embeddings text models in JAX."""

__version__ = "0.1.0"
