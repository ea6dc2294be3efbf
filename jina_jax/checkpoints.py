"""Workdir layout and orbax checkpoints.

A workdir (a training run, or the output of ``jina_jax.convert``) holds::

    model.json           encoder config, pooling, normalisation, max length
    tokenizer/           the tokenizer, as Hugging Face files
    checkpoints/<step>/  orbax items: params (+ opt_state, data, meta while training)

``jina_jax.export`` reads the latest ``params`` item; training resumes from the whole step.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import flax.linen as nn
import jax
import numpy as np
import orbax.checkpoint as ocp

from jina_jax.models import config_from_dict, config_to_dict

MODEL_FILE = "model.json"
TOKENIZER_DIR = "tokenizer"
CHECKPOINT_DIR = "checkpoints"

PathLike = str | os.PathLike


def write_model_spec(workdir: PathLike, model) -> None:
    """Writes model.json and the tokenizer; both are small and written atomically."""
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    spec = {
        "config": config_to_dict(model.config),
        "pooling": model.pooling,
        "normalize": model.normalize,
        "max_length": model.max_length,
    }
    tmp = workdir / f".{MODEL_FILE}.tmp"
    tmp.write_text(json.dumps(spec, indent=2, sort_keys=True))
    os.replace(tmp, workdir / MODEL_FILE)
    model.tokenizer.save(workdir / TOKENIZER_DIR)


def read_model_spec(workdir: PathLike) -> dict[str, Any]:
    path = pathlib.Path(workdir) / MODEL_FILE
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON ({e})") from e


def checkpoint_manager(workdir: PathLike, *, max_to_keep: int | None = 3, create: bool = True):
    directory = pathlib.Path(workdir).absolute() / CHECKPOINT_DIR
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create)
    return ocp.CheckpointManager(directory, options=options)


def save_params(workdir: PathLike, step: int, params) -> None:
    """Saves a bare ``params`` item (what ``convert`` writes; training adds more items)."""
    with checkpoint_manager(workdir) as manager:
        manager.save(step, args=ocp.args.Composite(params=ocp.args.StandardSave(params)))
        manager.wait_until_finished()


def latest_step(workdir: PathLike) -> int | None:
    directory = pathlib.Path(workdir) / CHECKPOINT_DIR
    if not directory.exists():
        return None
    with checkpoint_manager(workdir, create=False) as manager:
        return manager.latest_step()


def restore_params(workdir: PathLike, step: int | None = None, abstract=None):
    """The ``params`` item of ``step`` (default: latest), as numpy arrays on the host."""
    with checkpoint_manager(workdir, create=False) as manager:
        step = manager.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{pathlib.Path(workdir) / CHECKPOINT_DIR}: no checkpoint")
        # Without a target the item comes back as saved; callers check shapes against the config
        # and name what differs (orbax's own message would not).
        restore = ocp.args.StandardRestore(abstract)
        restored = manager.restore(step, args=ocp.args.Composite(params=restore))
    return jax.tree.map(np.asarray, restored["params"]), step


def abstract_params(config) -> Any:
    """Shapes/dtypes of the encoder parameters, for a restore that checks shapes."""
    from jina_jax.models import init_params

    shapes = jax.eval_shape(lambda: init_params(config, jax.random.key(0)))
    shapes = nn.meta.unbox(shapes)
    cpu = jax.sharding.SingleDeviceSharding(jax.local_devices(backend="cpu")[0])
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=cpu), shapes)


def load_model_from_workdir(workdir: PathLike, step: int | None = None, **config_overrides):
    from jina_jax.model import Model
    from jina_jax.tokenization import load_tokenizer

    workdir = pathlib.Path(workdir)
    spec = read_model_spec(workdir)
    config = config_from_dict({**spec["config"], **config_overrides})
    params, _ = restore_params(workdir, step)
    check_params_match(params, config, source=str(workdir / CHECKPOINT_DIR))
    return Model(
        config=config,
        params=params,
        tokenizer=load_tokenizer(workdir / TOKENIZER_DIR),
        pooling=spec.get("pooling", "mean"),
        normalize=spec.get("normalize", False),
        max_length=spec.get("max_length", config.max_length),
    )


def check_params_match(params, config, source: str) -> None:
    """Raises naming every parameter whose presence or shape differs from ``config``'s model."""
    expected = abstract_params(config)
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
    if problems:
        raise ValueError(f"{source}: checkpoint does not match model.json: " + "; ".join(problems))
