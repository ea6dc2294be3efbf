"""``Model``: an encoder config, its parameters, its tokenizer and how it pools: everything
``encode``, the evaluators and the exporters need. Loading lives in ``jina_jax.loading``."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn

from jina_jax.models import EncoderConfig, build_encoder
from jina_jax.models.lora import Adapters


@dataclasses.dataclass
class Model:
    config: EncoderConfig
    params: Any  # unboxed encoder parameters (a nested dict of arrays)
    tokenizer: Any  # jina_jax.tokenization.Tokenizer
    pooling: str = "mean"
    normalize: bool = False
    max_length: int = 512
    # The embedding sizes the model was trained to be truncated to (Matryoshka), e.g.
    # (512, 256, 128, 64); () when it was not. Exports record them for sentence-transformers'
    # ``truncate_dim``.
    matryoshka_dims: tuple[int, ...] = ()

    # task LoRA adapters (a LoRA stage's folder, or an export's adapters/ folders); None: none
    adapters: Adapters | None = None
    # merged parameters per adapter name, made on first use (not copied by dataclasses.replace)
    _merged: dict[str, Any] = dataclasses.field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self):
        dims = self.matryoshka_dims
        self.matryoshka_dims = check_matryoshka_dims(dims, self.dim if dims else None)

    @functools.cached_property
    def module(self) -> nn.Module:
        return build_encoder(self.config)

    @property
    def dim(self) -> int:
        return self.config.hidden_size

    def params_for(self, adapter: str | None = None) -> Any:
        """The base parameters (``adapter=None``), or those with the named task adapter merged
        in (``W + alpha/r A @ B``, computed once per adapter and kept): same shapes as the
        base, so ``encode`` compiles once for all of them."""
        if adapter is None:
            return self.params
        if self.adapters is None:
            raise ValueError(f"adapter {adapter!r} asked for, but this model has no adapters")
        if adapter not in self._merged:
            self._merged[adapter] = self.adapters.merged(self.params, adapter)
        return self._merged[adapter]


def check_matryoshka_dims(dims: Any, dim: int | None = None) -> tuple[int, ...]:
    """``dims`` as a tuple of distinct positive ints, none above ``dim``; ValueError naming
    what is wrong otherwise."""
    if dims is None:
        return ()
    if isinstance(dims, str) or not hasattr(dims, "__iter__"):
        raise ValueError(f"matryoshka_dims must be a list of integers, got {dims!r}")
    dims = tuple(dims)
    if any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
        raise ValueError(f"matryoshka_dims must be positive integers, got {list(dims)}")
    if len(set(dims)) != len(dims):
        raise ValueError(f"matryoshka_dims must be distinct, got {list(dims)}")
    if dim is not None and any(d > dim for d in dims):
        raise ValueError(f"matryoshka_dims {list(dims)} exceed the embedding size {dim}")
    return dims
