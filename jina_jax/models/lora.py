"""Task LoRA adapters (jina-embeddings-v3, v5-text): low-rank updates of the attention and MLP
projections, one set per task (``retrieval.query``, ``retrieval.passage``, ``text-matching``,
...), trained with the encoder frozen. Pure functions over parameter trees:

    lora = init_lora(params, rank=4, tasks=("retrieval.query",), rng=key)
    # {task: {module path: {"a": [..., in, r], "b": [..., r, out]}}}, e.g. path "layer_0/attention/query"
    merged = merge(params, lora["retrieval.query"], alpha=4.0, rank=4)   # W + alpha/r A @ B

A target is a ``Dense`` whose module name is in ``targets``; its kernel may have several input
axes (the attention output projection: ``[heads, kv, H]``) or output axes (query/key/value:
``[H, heads, kv]``): ``a``/``b`` act on the flattened ``in = prod(input axes)`` and
``out = prod(output axes)``, so ``A @ B`` reshaped is a kernel's shape. Kernels of scanned
layers (``scan_layers``: the ``layers``/``blocks`` module) carry a leading layers axis, and so do
their ``a`` and ``b``. B starts at zero, so an adapter leaves the encoder's output unchanged at
step 0; A starts as PEFT's default (Kaiming-uniform, bound ``1 / sqrt(in)``).

Training runs the low-rank branch beside the frozen kernel (``Dense`` reads a ``lora``
collection, ``as_collection``): ``y = x W + (x A)(alpha/r B)``, with no ``[in, out]`` weight
gradient. Inference and export merge the adapter into the kernels (``merge``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

# Module names adapted by default: JinaBERT/BERT attention (query, key, value, output) and MLP
# (gated_layers; intermediate, wo for the original FFN); T5 attention (the same Flax names, HF
# q/k/v/o) and MLP (wi, or wi_0/wi_1 when gated; wo).
DEFAULT_TARGETS = (
    "query",
    "key",
    "value",
    "output",
    "gated_layers",
    "intermediate",
    "wo",
    "wi",
    "wi_0",
    "wi_1",
)
# jina-embeddings-v3's five task adapters.
V3_TASKS = (
    "retrieval.query",
    "retrieval.passage",
    "separation",
    "classification",
    "text-matching",
)
# nn.scan modules of the encoders (BertEncoder "layers", T5Encoder "blocks"): their parameters
# are stacked on a leading layers axis.
SCANNED_MODULES = ("layers", "blocks")
# Kernels with more than one input axis: the attention output projection [heads, kv, H].
INPUT_AXES = {"output": 2}
COLLECTION = "lora"  # the Flax variable collection Dense reads the branch from


def kernel_layout(path: Sequence[str], shape: Sequence[int]) -> tuple[int, int, int]:
    """``(leading, inputs, outputs)``: how many axes of the kernel at module ``path`` are the
    stacked layers axis (0 or 1), its inputs and its outputs."""
    leading = 1 if any(p in SCANNED_MODULES for p in path) else 0
    inputs = INPUT_AXES.get(path[-1], 1)
    outputs = len(shape) - leading - inputs
    if outputs < 1:
        raise ValueError(f"kernel {'/'.join(path)} of shape {tuple(shape)}: no output axis")
    return leading, inputs, outputs


def _unboxed(params):
    return nn.meta.unbox(params)


def _get(tree, path: Sequence[str]):
    for key in path:
        tree = tree[key]
    return tree


def target_kernels(params, targets: Sequence[str] = DEFAULT_TARGETS) -> dict[str, tuple]:
    """``{"a/b/module": kernel shape}`` of every ``kernel`` whose module name is in
    ``targets``, in sorted path order."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(_unboxed(params))[0]:
        names = tuple(str(getattr(k, "key", k)) for k in path)
        if len(names) >= 2 and names[-1] == "kernel" and names[-2] in targets:
            out["/".join(names[:-1])] = tuple(leaf.shape)
    return dict(sorted(out.items()))


def _dense_names(params) -> set[str]:
    """Module names of every ``kernel`` of ``params``."""
    return {
        str(getattr(path[-2], "key", path[-2]))
        for path, _ in jax.tree_util.tree_flatten_with_path(_unboxed(params))[0]
        if len(path) >= 2 and str(getattr(path[-1], "key", path[-1])) == "kernel"
    }


def factor_shapes(path: str, shape: Sequence[int], rank: int) -> tuple[tuple, tuple]:
    """Shapes of ``a`` ``[..., in, r]`` and ``b`` ``[..., r, out]`` for a kernel."""
    leading, inputs, _ = kernel_layout(path.split("/"), shape)
    lead = tuple(shape[:leading])
    fan_in = math.prod(shape[leading : leading + inputs])
    fan_out = math.prod(shape[leading + inputs :])
    return (*lead, fan_in, rank), (*lead, rank, fan_out)


def init_lora(
    params,
    *,
    rank: int,
    tasks: Sequence[str],
    targets: Sequence[str] = DEFAULT_TARGETS,
    rng: jax.Array,
) -> dict:
    """Fresh adapters for ``tasks`` on every target kernel of ``params`` (boxed or not):
    ``a`` Kaiming-uniform (PEFT's default, bound ``1 / sqrt(in)``), ``b`` zero."""
    if rank < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {rank}")
    kernels = target_kernels(params, targets)
    if not kernels:
        raise ValueError(
            f"LoRA targets {tuple(targets)}: no Dense module of this model has one of these "
            f"names (the model's: {', '.join(sorted(_dense_names(params)))})"
        )
    out = {}
    for t, task in enumerate(tasks):
        out[task] = {}
        for k, (path, shape) in enumerate(kernels.items()):
            a_shape, b_shape = factor_shapes(path, shape, rank)
            bound = 1.0 / math.sqrt(a_shape[-2])
            key = jax.random.fold_in(jax.random.fold_in(rng, t), k)
            out[task][path] = {
                "a": jax.random.uniform(key, a_shape, jnp.float32, -bound, bound),
                "b": jnp.zeros(b_shape, jnp.float32),
            }
    return out


def delta(shape: Sequence[int], a, b, scale: float):
    """``scale * A @ B`` in the kernel's ``shape`` (float32, full-precision matmul)."""
    product = jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)
    return scale * product.reshape(shape)


def merge(params, lora_task: dict, alpha: float, rank: int):
    """``params`` with ``W + (alpha / rank) * A @ B`` at every adapted kernel (a new tree; the
    input is not changed)."""
    params = _unboxed(params)
    scale = float(alpha) / int(rank)
    merged = jax.tree.map(lambda x: x, params)  # a fresh container tree, same leaves
    for path, factors in lora_task.items():
        names = path.split("/")
        module = _get(merged, names)
        kernel = module["kernel"]
        update = delta(kernel.shape, factors["a"], factors["b"], scale)
        module["kernel"] = (kernel + update).astype(kernel.dtype)
    return merged


# ``merge`` as one compiled program (alpha and rank static): what ``Adapters.merged`` runs.
merge_jit = jax.jit(merge, static_argnums=(2, 3))


def as_collection(lora_task: dict, alpha: float, rank: int) -> dict:
    """One task's adapter as the nested ``lora`` collection ``Dense`` reads (``b`` scaled by
    ``alpha / rank``): ``{"layer_0": {"attention": {"query": {"a", "b"}}}}``."""
    scale = float(alpha) / int(rank)
    out: dict = {}
    for path, factors in lora_task.items():
        node = out
        for key in path.split("/"):
            node = node.setdefault(key, {})
        node["a"] = factors["a"]
        node["b"] = factors["b"] * scale
    return out


def select(lora: dict, tasks: Sequence[str], index: jax.Array) -> dict:
    """The adapter of ``tasks[index]`` (a traced index: one program for every task)."""
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *[lora[t] for t in tasks])
    return jax.tree.map(lambda x: x[index], stacked)


@dataclasses.dataclass
class Adapters:
    """A model's task adapters: ``params`` ``{task: {module path: {"a", "b"}}}`` and their
    ``rank`` and ``alpha`` (the update is ``alpha / rank * A @ B``)."""

    params: dict[str, Any]
    rank: int
    alpha: float

    @property
    def tasks(self) -> tuple[str, ...]:
        """The adapter names, sorted (JAX sorts dict keys in any tree it rebuilds, so the
        insertion order would not survive a ``jax.tree.map``)."""
        return tuple(sorted(self.params))

    def merged(self, base, task: str):
        if task not in self.params:
            raise ValueError(f"no adapter {task!r}; this model has {', '.join(self.tasks)}")
        return merge_jit(base, self.params[task], float(self.alpha), int(self.rank))
