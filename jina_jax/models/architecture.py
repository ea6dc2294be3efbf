"""What an encoder architecture provides, in one place: its config class, its Flax module (and
MLM model, if any), its Hugging Face name table and config translation, and its FLOPs.

Each encoder file (``jina_bert.py``, ``t5.py``) ends with one ``Architecture``; the package
``jina_jax.models`` collects them. ``jina_jax.hf``, the training metrics and ``encoding`` look
an architecture up instead of branching on types, so adding one is adding one file.

The HF name table is a list of ``Rule``s: one HF tensor name, one path in the Flax parameter
tree, and a ``Transform`` whose ``to_flax``/``to_torch`` are exact inverses, so import and
export share one table. A model with ``scan_layers`` keeps each layer parameter as ONE array
stacked over the layers (leading ``layers`` axis); its rules say which slice of that array an HF
tensor is (``Rule.layer``), so import stacks and export unstacks (``per_layer``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import numpy as np


@dataclasses.dataclass(frozen=True)
class Transform:
    to_flax: Callable[[np.ndarray, Any], np.ndarray]  # (torch-layout tensor, config) -> flax
    to_torch: Callable[[np.ndarray, Any], np.ndarray]  # (flax tensor, config) -> torch layout


IDENTITY = Transform(lambda w, c: w, lambda w, c: w)
# torch Linear.weight is [out, in]; a Flax kernel is [in, out].
LINEAR = Transform(lambda w, c: w.T, lambda w, c: w.T)


def linear_to_heads(heads: Callable[[Any], tuple[int, int]]) -> tuple[Transform, Transform]:
    """(kernel, bias) transforms of a projection into heads: ``[heads*kv, H] <-> [H, heads, kv]``
    and ``[heads*kv] <-> [heads, kv]``; ``heads(config)`` gives ``(heads, kv)``."""
    kernel = Transform(
        lambda w, c: w.T.reshape(w.shape[1], *heads(c)),
        lambda w, c: w.reshape(w.shape[0], -1).T,
    )
    bias = Transform(lambda w, c: w.reshape(heads(c)), lambda w, c: w.reshape(-1))
    return kernel, bias


def linear_from_heads(heads: Callable[[Any], tuple[int, int]]) -> Transform:
    """The output projection: ``[H, heads*kv] <-> [heads, kv, H]``."""
    return Transform(
        lambda w, c: w.T.reshape(*heads(c), w.shape[0]),
        lambda w, c: w.reshape(-1, w.shape[-1]).T,
    )


@dataclasses.dataclass(frozen=True)
class Rule:
    hf_name: str
    flax_path: tuple[str, ...]
    transform: Transform = IDENTITY
    # scanned layers: the Flax array at flax_path is [num_layers, ...] and this HF tensor is
    # slice [layer] of it (transform applies to the slice)
    layer: int | None = None


def per_layer(
    rules: list[Rule], index: int, scanned: bool, layer_path: tuple[str, ...], stack_name: str
) -> list[Rule]:
    """The rules of layer ``index``, written against ``layer_path`` (``(..., "layer_3")``). With
    ``scanned``, the layer's parameters live under ``stack_name`` (the ``nn.scan`` module),
    stacked on a leading axis: each rule then names slice ``index`` of that stack."""
    if not scanned:
        return rules
    depth = len(layer_path)
    stack = (*layer_path[:-1], stack_name)
    return [
        dataclasses.replace(r, flax_path=(*stack, *r.flax_path[depth:]), layer=index) for r in rules
    ]


def linear_rules(
    hf: str,
    path: tuple[str, ...],
    *,
    bias: bool = True,
    kernel_transform: Transform = LINEAR,
    bias_transform: Transform = IDENTITY,
) -> list[Rule]:
    rules = [Rule(f"{hf}.weight", (*path, "kernel"), kernel_transform)]
    if bias:
        rules.append(Rule(f"{hf}.bias", (*path, "bias"), bias_transform))
    return rules


def layer_norm_rules(hf: str, path: tuple[str, ...], *, bias: bool = True) -> list[Rule]:
    rules = [Rule(f"{hf}.weight", (*path, "scale"))]
    if bias:
        rules.append(Rule(f"{hf}.bias", (*path, "bias")))
    return rules


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One encoder family. ``name`` is ``config.model.arch`` in run configs."""

    name: str
    config_cls: type
    encoder: type[nn.Module]
    # HF ``architectures[0]`` names this family reads -> "encoder" | "mlm"
    hf_classes: dict[str, str]
    hf_model_type: str  # config.json "model_type", used when "architectures" is absent
    hf_rules: Callable[..., list[Rule]]  # (config, *, mlm) -> rules
    config_from_hf: Callable[..., Any]  # (hf config dict, **overrides) -> config
    config_to_hf: Callable[..., dict[str, Any]]  # (config, *, mlm) -> config.json fields
    forward_flops: Callable[[Any, int, int], float]  # (config, rows, length) -> matmul FLOPs
    mlm: type[nn.Module] | None = None  # the MLM pretraining model, when the family has one
    # HF tensors that carry no information of their own (tied copies, buffers): allowed on import
    ignorable_hf: tuple[str, ...] = ()
    # (HF tensors, load overrides) -> both, adjusted before the rule table applies
    import_tensors: Callable[[dict, dict], tuple[dict, dict]] | None = None
    # export: extra tensors some loaders expect (tied copies)
    export_tensors: Callable[[dict], dict] | None = None
    # export: does config.json need a modeling file shipped with it (auto_map)?
    needs_remote_code: Callable[[Any], bool] = lambda config: False
