"""Model folders: a training stage's folder, or the output of ``jina_jax.convert``::

    model.json           encoder config, pooling, normalisation, max length, Matryoshka dims
                         (and, in a LoRA stage's folder, "lora": rank, alpha, tasks, targets)
    tokenizer/           the tokenizer, as Hugging Face files
    checkpoints/<step>/  orbax items: params (+ opt_state, data, meta while training)

``load_model_from_workdir`` reads model.json, the tokenizer and the latest ``params`` item
(``jina_jax.training.checkpointing`` writes and restores the checkpoints themselves). A LoRA
stage's params are ``{"base": encoder, "lora": adapters}``: the model gets the base as its
params and the adapters as ``Model.adapters``. The folder may be local or in a bucket (``gs://``).
"""

from __future__ import annotations

import json
import os
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from jina_jax import storage
from jina_jax.errors import CheckpointError, CheckpointMismatchError
from jina_jax.model import Model, check_matryoshka_dims
from jina_jax.models import config_from_dict, config_to_dict, init_params
from jina_jax.models import lora as lora_lib
from jina_jax.tokenization import load_tokenizer
from jina_jax.training.checkpointing import (
    CHECKPOINT_DIR,
    latest_step,
    restore_params,
    save_params,
)

MODEL_FILE = "model.json"
TOKENIZER_DIR = "tokenizer"
__all__ = [
    "CHECKPOINT_DIR",
    "MODEL_FILE",
    "TOKENIZER_DIR",
    "latest_step",
    "load_model_from_workdir",
    "read_model_spec",
    "restore_params",
    "save_params",
    "write_model_spec",
]

PathLike = str | os.PathLike


def write_model_spec(workdir: PathLike, model, **fields) -> None:
    """Writes model.json (atomically) and the tokenizer (Hugging Face writes local folders only:
    a remote one is written to a temporary folder, uploaded, and the temporary folder deleted).
    ``fields``: more model.json entries (a LoRA stage's ``lora``). Multi-host: the caller lets
    one process write."""
    workdir = storage.as_path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    spec = {
        "config": config_to_dict(model.config),
        "pooling": model.pooling,
        "normalize": model.normalize,
        "max_length": model.max_length,
        **fields,
    }
    if model.matryoshka_dims:
        spec["matryoshka_dims"] = list(model.matryoshka_dims)
    storage.write_text(workdir / MODEL_FILE, json.dumps(spec, indent=2, sort_keys=True))
    with storage.writing_dir(workdir / TOKENIZER_DIR) as folder:
        model.tokenizer.save(folder)


def read_model_spec(workdir: PathLike) -> dict[str, Any]:
    path = storage.as_path(workdir) / MODEL_FILE
    try:
        spec = storage.read_json(path)
    except ValueError as e:
        raise CheckpointError(str(e)) from e
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        raise CheckpointError(f"{path}: not a model spec (no config object)")
    return spec


def abstract_params(config) -> Any:
    """Shapes/dtypes of the encoder parameters, for a restore that checks shapes."""
    shapes = jax.eval_shape(lambda: init_params(config, jax.random.key(0)))
    shapes = nn.meta.unbox(shapes)
    cpu = jax.sharding.SingleDeviceSharding(jax.local_devices(backend="cpu")[0])
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=cpu), shapes)


def load_model_from_workdir(workdir: PathLike, step: int | None = None, **config_overrides):
    workdir = storage.as_path(workdir)
    spec = read_model_spec(workdir)
    config = config_from_dict({**spec["config"], **config_overrides})
    params, _ = restore_params(workdir, step)
    params = encoder_params(params)
    source = str(workdir / CHECKPOINT_DIR)
    adapters = None
    if "lora" in spec:
        params, adapters = _split_lora(params, spec["lora"], config, source)
    check_params_match(params, config, source=source)
    with storage.local_copy(workdir / TOKENIZER_DIR) as folder:
        tokenizer = load_tokenizer(folder)
    try:
        dims = check_matryoshka_dims(spec.get("matryoshka_dims"), config.hidden_size)
    except ValueError as e:
        raise CheckpointError(f"{workdir / MODEL_FILE}: {e}") from e
    return Model(
        config=config,
        params=params,
        tokenizer=tokenizer,
        pooling=spec.get("pooling", "mean"),
        normalize=spec.get("normalize", False),
        max_length=spec.get("max_length", config.max_length),
        matryoshka_dims=dims,
        adapters=adapters,
    )


def encoder_params(params):
    """The encoder's parameters in a training state's ``params``: a distillation stage keeps
    them under ``encoder``, next to its ``projection`` heads (which the model does not use); an
    MLM stage under ``bert``, next to its ``cls`` prediction head (the MLM backbone as an
    encoder, mean-pooled as model.json says)."""
    if (
        isinstance(params, dict)
        and "encoder" in params
        and set(params) <= {"encoder", "projection"}
    ):
        return params["encoder"]
    if isinstance(params, dict) and set(params) == {"bert", "cls"}:
        return params["bert"]
    return params


def _split_lora(params, spec: dict, config, source: str):
    """A LoRA stage's ``{"base", "lora"}`` params -> (base, ``Adapters``), the adapters checked
    against the shapes model.json's ``lora`` entry gives them."""
    if not isinstance(params, dict) or set(params) != {"base", "lora"}:
        raise CheckpointMismatchError(
            f"{source}: model.json describes LoRA adapters but the checkpoint's params are not "
            "{base, lora}"
        )
    try:
        rank, alpha = int(spec["rank"]), float(spec["alpha"])
        tasks, targets = tuple(spec["tasks"]), tuple(spec["targets"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: model.json's lora entry is incomplete ({e})") from e
    expected = jax.eval_shape(
        lambda: lora_lib.init_lora(
            abstract_params(config), rank=rank, tasks=tasks, targets=targets, rng=jax.random.key(0)
        )
    )
    _check_tree(params["lora"], expected, f"{source} (LoRA adapters)")
    return params["base"], lora_lib.Adapters(params["lora"], rank, alpha)


def check_params_match(params, config, source: str) -> None:
    """Raises naming every parameter whose presence or shape differs from ``config``'s model."""
    _check_tree(params, abstract_params(config), source)


def _check_tree(params, expected, source: str) -> None:
    flat_expected = {
        jax.tree_util.keystr(k): v.shape
        for k, v in jax.tree_util.tree_flatten_with_path(expected)[0]
    }
    flat_got = {
        jax.tree_util.keystr(k): np.shape(v)
        for k, v in jax.tree_util.tree_flatten_with_path(params)[0]
    }
    problems = [f"missing {k}" for k in flat_expected if k not in flat_got]
    problems += [f"unexpected {k}" for k in flat_got if k not in flat_expected]
    problems += [
        f"{k} has shape {flat_got[k]}, config expects {v}"
        for k, v in flat_expected.items()
        if k in flat_got and tuple(flat_got[k]) != tuple(v)
    ]
    for path, value in jax.tree_util.tree_flatten_with_path(params)[0]:
        value, name = np.asarray(value), jax.tree_util.keystr(path)
        if not np.issubdtype(value.dtype, np.floating):
            problems.append(f"{name} has dtype {value.dtype}, not floating point")
        elif not np.all(np.isfinite(value)):
            problems.append(f"{name} holds NaN or infinite values")
    if problems:
        raise CheckpointMismatchError(
            f"{source}: checkpoint does not match model.json: " + "; ".join(problems)
        )
