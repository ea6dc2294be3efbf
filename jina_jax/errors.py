"""The errors jina_jax raises on purpose. Each names what is wrong (a config key, a file and line,
a checkpoint, a tensor); the command-line entry points print them as one message."""

from __future__ import annotations


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit what is asked of it (another config, tensors of other shapes):
    names the differing keys or tensors."""
