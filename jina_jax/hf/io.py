"""Reading and writing Hugging Face folders (safetensors only, never pickle).

``params_from_hf`` / ``params_to_hf`` apply an architecture's rule table (``hf_rules`` of its
``jina_jax.models.Architecture``).
``load_hf`` reads a transformers or sentence-transformers folder into a ``jina_jax.Model``;
``save_hf`` writes one folder that is both: transformers loads it (JinaBERT through the modeling
file shipped inside it) and ``SentenceTransformer(dir)`` loads it.

Task LoRA adapters (``Model.adapters``) export two ways: merged into the weights
(``save_hf(model, out, adapter=NAME)``: an ordinary folder), or beside the base model in PEFT's
layout (``peft=True``): ``adapters/<name>/adapter_config.json`` and ``adapter_model.safetensors``
with ``base_model.model.<HF module>.lora_A.weight [r, in]`` / ``.lora_B.weight [out, r]``, the HF
module names from the architecture's rule table. ``load_hf`` reads those folders back as the
model's adapters.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import tempfile
from typing import Any

import jax
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from jina_jax import storage
from jina_jax.errors import CheckpointError, CheckpointMismatchError
from jina_jax.hf.remote_code import OFFICIAL_AUTO_MAP, copy_remote_code
from jina_jax.model import Model, check_matryoshka_dims
from jina_jax.models import (
    ARCHITECTURES,
    Architecture,
    EncoderConfig,
    architecture_of,
    build_encoder,
    build_mlm,
)
from jina_jax.models import lora as lora_lib
from jina_jax.models.architecture import Rule
from jina_jax.tokenization import load_tokenizer

PathLike = str | os.PathLike
ST_CONFIG_FILE = "config_sentence_transformers.json"


# --------------------------------------------------------------------------- tensors


def read_safetensors(folder: PathLike) -> dict[str, np.ndarray]:
    """All tensors of ``model.safetensors`` or of the shards named in its index, as numpy (float
    tensors as float32). A damaged file is an error naming the file and what is wrong."""
    folder = pathlib.Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.exists():
        weight_map = _read_json(index).get("weight_map")
        if not isinstance(weight_map, dict):
            raise CheckpointError(f"{index}: no weight_map object")
        files = sorted(set(weight_map.values()))
    elif (folder / "model.safetensors").exists():
        files = ["model.safetensors"]
    else:
        found = sorted(p.name for p in folder.glob("*.bin")) + sorted(
            p.name for p in folder.glob("*.pt")
        )
        hint = f" (found {', '.join(found)}: pickle files are never loaded)" if found else ""
        raise FileNotFoundError(f"{folder}: no model.safetensors{hint}")
    tensors: dict[str, np.ndarray] = {}
    for name in files:
        tensors.update(read_safetensors_file(folder / name))
    return tensors


def read_safetensors_file(path: pathlib.Path) -> dict[str, np.ndarray]:
    """The tensors of one safetensors file (float tensors as float32); a damaged file is an
    error naming it."""
    _check_safetensors_header(path)
    tensors: dict[str, np.ndarray] = {}
    try:
        # The flax framework reads bf16 too; the values are then held as float32 numpy.
        with safe_open(str(path), framework="flax") as f:
            for key in f.keys():
                value = np.asarray(f.get_tensor(key))
                if np.issubdtype(value.dtype, np.floating) or value.dtype.name == "bfloat16":
                    value = value.astype(np.float32)
                tensors[key] = value
    except CheckpointError:
        raise
    except Exception as e:  # safetensors' own error names no file
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from e
    return tensors


def _check_safetensors_header(path: pathlib.Path) -> None:
    """The safetensors layout: an 8-byte little-endian header length, a JSON header, the data.
    Says what is wrong with a file that breaks it, naming the file."""
    size = path.stat().st_size
    if size < 8:
        raise CheckpointError(f"{path}: {size} bytes: too short to be a safetensors file (empty?)")
    with open(path, "rb") as f:
        header_length = int.from_bytes(f.read(8), "little")
        if header_length > size - 8:
            raise CheckpointError(
                f"{path}: the header claims {header_length} bytes but the file has {size - 8} "
                "after the length field (a truncated or corrupt file)"
            )
        try:
            header = json.loads(f.read(header_length))
        except (ValueError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{path}: the safetensors header is not valid JSON ({e})") from e
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header is not a JSON object")
    data = size - 8 - header_length
    for key, info in header.items():
        if key == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and offsets[1] <= data):
            raise CheckpointError(
                f"{path}: tensor {key} lies beyond the end of the file ({data} data bytes): "
                "the file is truncated"
            )


def _flax_shapes(config: EncoderConfig, mlm: bool) -> dict[tuple[str, ...], tuple[int, ...]]:
    module = build_mlm(config) if mlm else build_encoder(config)
    ids = jax.ShapeDtypeStruct((1, 4), np.int32)
    shapes = jax.eval_shape(lambda i: module.init(jax.random.key(0), i, None), ids)["params"]
    flat = jax.tree_util.tree_flatten_with_path(
        shapes, is_leaf=lambda x: hasattr(x, "value") and hasattr(x, "names")
    )[0]
    out = {}
    for path, leaf in flat:
        leaf = getattr(leaf, "value", leaf)
        out[tuple(k.key for k in path)] = tuple(leaf.shape)
    return out


def _set(tree: dict, path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _get(tree: dict, path: tuple[str, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def params_from_hf(
    tensors: dict[str, np.ndarray],
    config: EncoderConfig,
    *,
    mlm: bool = False,
    source: str = "checkpoint",
) -> dict:
    """Flax parameters from HF tensors; a missing, extra or wrong-shape tensor is an error
    that names it."""
    arch = architecture_of(config)
    rules = arch.hf_rules(config, mlm=mlm)
    shapes = _flax_shapes(config, mlm)
    missing = [r.hf_name for r in rules if r.hf_name not in tensors]
    used = {r.hf_name for r in rules}
    extra = [
        k for k in tensors if k not in used and not any(k.endswith(s) for s in arch.ignorable_hf)
    ]
    problems = []
    if missing:
        problems.append(
            f"missing tensors: {', '.join(missing[:10])}" + (" ..." if len(missing) > 10 else "")
        )
    if extra:
        problems.append(
            f"unexpected tensors: {', '.join(extra[:10])}" + (" ..." if len(extra) > 10 else "")
        )
    params: dict = {}
    stacks: dict[tuple[str, ...], dict[int, np.ndarray]] = {}  # scanned layers: path -> slices
    for rule in rules:
        if rule.hf_name not in tensors:
            continue
        want = shapes[rule.flax_path]
        if rule.layer is not None:
            want = want[1:]
        expected_hf = jax.eval_shape(
            lambda w, r=rule: r.transform.to_torch(w, config),
            jax.ShapeDtypeStruct(want, np.float32),
        ).shape
        got = tensors[rule.hf_name].shape
        if tuple(got) != tuple(expected_hf):
            problems.append(
                f"tensor {rule.hf_name} has shape {tuple(got)}, the model expects {tuple(expected_hf)}"
            )
            continue
        tensor = tensors[rule.hf_name]
        if not np.issubdtype(tensor.dtype, np.floating):
            problems.append(f"tensor {rule.hf_name} has dtype {tensor.dtype}, not floating point")
            continue
        if not np.all(np.isfinite(tensor)):
            problems.append(f"tensor {rule.hf_name} holds NaN or infinite values")
            continue
        value = np.asarray(rule.transform.to_flax(tensor, config), np.float32)
        if rule.layer is None:
            _set(params, rule.flax_path, np.ascontiguousarray(value))
        else:
            stacks.setdefault(rule.flax_path, {})[rule.layer] = value
    if problems:
        raise CheckpointMismatchError(f"{source}: " + "; ".join(problems))
    for path, slices in stacks.items():  # every slice is there, or it was reported missing
        _set(params, path, np.stack([slices[i] for i in sorted(slices)]))
    return params


def params_to_hf(
    params: dict, config: EncoderConfig, *, mlm: bool = False
) -> dict[str, np.ndarray]:
    out = {}
    for rule in architecture_of(config).hf_rules(config, mlm=mlm):
        value = np.asarray(_get(params, rule.flax_path), dtype=np.float32)
        if rule.layer is not None:  # scanned layers: this tensor is one slice of the stack
            value = value[rule.layer]
        out[rule.hf_name] = np.ascontiguousarray(rule.transform.to_torch(value, config))
    return out


# --------------------------------------------------------------------------- folders


def _read_json(path: pathlib.Path, expect: type = dict):
    try:
        value = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: invalid JSON ({e})") from e
    if not isinstance(value, expect):
        want = "an object" if expect is dict else "a list"
        raise CheckpointError(f"{path}: holds a JSON {type(value).__name__}, not {want}")
    return value


# config.json fields by the type their values must have (those the architectures read)
_INT_FIELDS = (
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
    "max_position_embeddings", "type_vocab_size", "pad_token_id", "d_model", "d_kv", "d_ff",
    "num_layers", "num_heads", "relative_attention_num_buckets",
    "relative_attention_max_distance", "n_positions",
)  # fmt: skip
_FLOAT_FIELDS = (
    "layer_norm_eps", "hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range",
    "dropout_rate", "layer_norm_epsilon", "initializer_factor",
)  # fmt: skip
_STR_FIELDS = ("hidden_act", "feed_forward_type", "position_embedding_type", "feed_forward_proj")


def _config_from_hf(arch: Architecture, hf_config: dict, source: str, overrides: dict):
    """The architecture's config from config.json; a missing field or a value of the wrong type
    is an error naming the file and the key."""
    for key in _INT_FIELDS:
        value = hf_config.get(key)
        if (
            key in hf_config
            and value is not None
            and (isinstance(value, bool) or not isinstance(value, int))
        ):
            raise CheckpointError(f"{source}: {key} is {value!r}, expected an integer")
    for key in _FLOAT_FIELDS:
        value = hf_config.get(key)
        if key in hf_config and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise CheckpointError(f"{source}: {key} is {value!r}, expected a number")
    for key in _STR_FIELDS:
        if key in hf_config and not isinstance(hf_config[key], str):
            raise CheckpointError(f"{source}: {key} is {hf_config[key]!r}, expected a string")
    try:
        return arch.config_from_hf(hf_config, **overrides)
    except KeyError as e:
        raise CheckpointError(f"{source}: no {e.args[0]!r} field ({arch.name} needs it)") from e
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: {e}") from e


def _sentence_transformers_info(folder: pathlib.Path) -> dict[str, Any]:
    """Pooling mode, normalisation, max length and Matryoshka dims (jina_jax's own key in
    config_sentence_transformers.json) from a sentence-transformers folder."""
    info: dict[str, Any] = {
        "pooling": "mean",
        "normalize": False,
        "max_seq_length": None,
        "matryoshka_dims": None,
    }
    if (folder / ST_CONFIG_FILE).exists():
        info["matryoshka_dims"] = _read_json(folder / ST_CONFIG_FILE).get("matryoshka_dims")
    modules_file = folder / "modules.json"
    if not modules_file.exists():
        return info
    for module in _read_json(modules_file, list):
        kind = module.get("type", "")
        if kind.endswith("Pooling"):
            pooling = _read_json(folder / module["path"] / "config.json")
            if pooling.get("pooling_mode_cls_token"):
                info["pooling"] = "cls"
            elif not pooling.get("pooling_mode_mean_tokens", True):
                raise ValueError(
                    f"{folder}: pooling {pooling} is not supported (jina_jax pools mean or cls)"
                )
        elif kind.endswith("Normalize"):
            info["normalize"] = True
    st_config = folder / "sentence_bert_config.json"
    if st_config.exists():
        info["max_seq_length"] = _read_json(st_config).get("max_seq_length")
    return info


def architecture_for_hf(hf_config: dict[str, Any], source: str = "config.json") -> Architecture:
    """The jina_jax architecture of a config.json: by ``architectures[0]``, else ``model_type``."""
    names = hf_config.get("architectures") or []
    model_type = hf_config.get("model_type")
    for arch in ARCHITECTURES.values():
        if (names and names[0] in arch.hf_classes) or (
            not names and model_type == arch.hf_model_type
        ):
            return arch
    supported = sorted(n for arch in ARCHITECTURES.values() for n in arch.hf_classes)
    if not names:
        raise ValueError(f"{source}: no 'architectures' and unknown model_type {model_type!r}")
    raise ValueError(
        f"{source}: unsupported architecture {names[0]!r} (model_type {model_type!r}); "
        f"jina_jax reads {', '.join(supported)}"
    )


def load_hf(path: PathLike, **config_overrides) -> Model:
    """A transformers / sentence-transformers folder (local, or ``gs://``: read through a
    temporary local copy) -> ``jina_jax.Model``."""
    if storage.is_remote(path):
        with storage.local_copy(path) as folder:
            return load_hf(folder, **config_overrides)
    folder = pathlib.Path(path)
    config_file = folder / "config.json"
    if not config_file.exists():
        raise FileNotFoundError(f"{folder}: no config.json (not a Hugging Face model folder)")
    hf_config = _read_json(config_file)
    arch = architecture_for_hf(hf_config, str(config_file))
    tensors = read_safetensors(folder)
    if arch.import_tensors is not None:
        tensors, config_overrides = arch.import_tensors(tensors, config_overrides)
    config = _config_from_hf(arch, hf_config, str(config_file), config_overrides)
    params = params_from_hf(tensors, config, source=str(folder))
    info = _sentence_transformers_info(folder)
    max_length = info["max_seq_length"] or config.max_length
    try:
        dims = check_matryoshka_dims(info["matryoshka_dims"], config.hidden_size)
    except ValueError as e:
        raise CheckpointError(f"{folder / ST_CONFIG_FILE}: {e}") from e
    return Model(
        config=config,
        params=params,
        tokenizer=load_tokenizer(folder),
        pooling=info["pooling"],
        normalize=info["normalize"],
        max_length=int(max_length),
        matryoshka_dims=dims,
        adapters=read_peft_adapters(folder, config),
    )


def hf_config_for(config: EncoderConfig, *, mlm: bool = False) -> dict[str, Any]:
    return architecture_of(config).config_to_hf(config, mlm=mlm)


def _write_sentence_transformers(out: pathlib.Path, model) -> None:
    hidden = model.config.hidden_size
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    if model.normalize:
        modules.append(
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            }
        )
        (out / "2_Normalize").mkdir()
    (out / "modules.json").write_text(json.dumps(modules, indent=2))
    (out / "1_Pooling").mkdir()
    pooling = {
        "word_embedding_dimension": hidden,
        "pooling_mode_cls_token": model.pooling == "cls",
        "pooling_mode_mean_tokens": model.pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (out / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))
    st_config = {"max_seq_length": model.max_length, "do_lower_case": False}
    (out / "sentence_bert_config.json").write_text(json.dumps(st_config, indent=2))
    meta = {
        "__version__": {"jina_jax": "0.1.0"},
        "prompts": {},
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    }
    if model.matryoshka_dims:
        # Not a sentence-transformers key (it ignores it; ``truncate_dim`` would truncate by
        # default): jina_jax's record of the sizes the model was trained for, read by load_hf.
        meta["matryoshka_dims"] = list(model.matryoshka_dims)
        (out / "README.md").write_text(_matryoshka_card(model))
    (out / ST_CONFIG_FILE).write_text(json.dumps(meta, indent=2))


def _matryoshka_card(model) -> str:
    """A short model card: which truncations the model was trained for and how to use one."""
    full = model.config.hidden_size
    dims = sorted(set(model.matryoshka_dims) | {full}, reverse=True)
    example = next((d for d in dims if d < full), full)
    sizes = ", ".join(str(d) for d in dims)
    return f"""---
library_name: sentence-transformers
pipeline_tag: sentence-similarity
tags:
- sentence-transformers
- matryoshka
---

# Matryoshka embeddings ({full} dimensions)

This model was trained with Matryoshka Representation Learning: the first d dimensions of each
embedding are an embedding of their own. Trained sizes: {sizes}
(`matryoshka_dims` in `config_sentence_transformers.json`).

```python
from sentence_transformers import SentenceTransformer

model = SentenceTransformer("path/to/this/folder", truncate_dim={example})
embeddings = model.encode(["a sentence", "another one"])  # shape (2, {example})
```

Truncated embeddings are not unit length: compare them by cosine similarity (the model's
`similarity`), or L2-normalise them first. Exported by jina_jax.
"""


def save_hf(
    model,
    out: PathLike,
    *,
    auto_map: str = "local",
    overwrite: bool = False,
    adapter: str | None = None,
    peft: bool = False,
):
    """Writes ``model`` as one transformers + sentence-transformers folder; returns its path.

    Task adapters: ``adapter=NAME`` alone writes the weights with that adapter merged in;
    ``peft=True`` writes the base weights plus ``adapters/<name>/`` in PEFT's layout for every
    adapter of the model (only ``adapter`` when given). Neither: the base weights.

    A local folder is assembled next to ``out`` and renamed into place, so an interrupted export
    never leaves a half-written folder, and an existing export is replaced only when complete.
    A bucket has no rename of folders: the export is assembled in a temporary local folder and
    uploaded with config.json last (after removing an existing export's config.json first, then
    its other files), so ``out`` holds a loadable model only once it is complete: transformers,
    sentence-transformers and ``load_model`` all need config.json.
    ``auto_map="local"`` points transformers at the modeling file shipped in the folder (works
    offline, transformers 4 and 5); ``"official"`` at jinaai/jina-bert-implementation.
    """
    if adapter is not None or peft:
        if model.adapters is None:
            raise ValueError("the model has no task adapters to export (a LoRA stage has)")
        names = model.adapters.tasks if adapter is None else (adapter,)
        for name in names:
            if name not in model.adapters.params:
                raise ValueError(
                    f"no adapter {name!r}; this model has {', '.join(model.adapters.tasks)}"
                )
        if not peft:  # merged: an ordinary folder of the adapted weights
            model = dataclasses.replace(model, params=model.params_for(adapter), adapters=None)
        else:
            model = dataclasses.replace(
                model,
                adapters=lora_lib.Adapters(
                    {n: model.adapters.params[n] for n in names},
                    model.adapters.rank,
                    model.adapters.alpha,
                ),
            )
    elif model.adapters is not None:
        model = dataclasses.replace(model, adapters=None)  # the base alone
    if storage.is_remote(out):
        return _save_hf_remote(model, storage.as_path(out), auto_map=auto_map, overwrite=overwrite)
    out = pathlib.Path(out).absolute()
    if out.is_file():
        raise FileExistsError(f"{out} is a file; the export is a folder: give a folder path")
    if pathlib.Path.cwd().resolve().is_relative_to(out.resolve()):
        raise FileExistsError(
            f"refusing to write an export to {out}: it is the current folder or holds it; "
            "give a new folder"
        )
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; pass overwrite=True (--overwrite)")
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(out)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _write_hf_folder(model, staging, auto_map, base_path=str(out))
        if out.exists():
            backup = out.with_name(f".{out.name}.old")
            if backup.exists():
                shutil.rmtree(backup)
            out.rename(backup)
            staging.rename(out)
            shutil.rmtree(backup)
        else:
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


EXPORT_FILES = {"config.json", "model.safetensors", "modules.json", "tokenizer.json"}


def _remove_stale_staging(out: pathlib.Path) -> None:
    """An export killed half way leaves ``.<name>.<random>`` (being assembled) or ``.<name>.old``
    (the replaced export) beside ``out``; both are ours and complete copies exist elsewhere or
    never existed, so they go (folders holding anything but an export's files are left)."""
    for leftover in out.parent.glob(f".{out.name}.*"):
        names = {p.name for p in leftover.iterdir()} if leftover.is_dir() else {"?"}
        if leftover.is_dir() and (not names or names & EXPORT_FILES):
            shutil.rmtree(leftover)
            print(f"removed {leftover}, left by an interrupted export")


def _save_hf_remote(model, out, *, auto_map: str, overwrite: bool):
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"{out} exists and is not empty; pass overwrite=True (--overwrite)"
            )
        (out / "config.json").unlink(missing_ok=True)  # no longer a model from here on
        out.rmtree()
    with storage.writing_dir(out, last=["config.json"]) as staging:
        _write_hf_folder(model, staging, auto_map, base_path=str(out))
    return out


def _write_hf_folder(model, staging: pathlib.Path, auto_map: str, base_path: str) -> None:
    """The export's files, in an empty local folder (``base_path``: where it will be, named by
    the PEFT adapter configs)."""
    config = model.config
    arch = architecture_of(config)
    hf_config = hf_config_for(config)
    if arch.needs_remote_code(config):
        local = copy_remote_code(staging)
        if auto_map == "local":
            hf_config["auto_map"] = local
        elif auto_map == "official":
            hf_config["auto_map"] = dict(OFFICIAL_AUTO_MAP)
        else:
            raise ValueError(f"auto_map must be 'local' or 'official', got {auto_map!r}")
    hf_config["transformers_version"] = _transformers_version()
    (staging / "config.json").write_text(json.dumps(hf_config, indent=2, sort_keys=True))
    tensors = params_to_hf(model.params, config)
    if arch.export_tensors is not None:
        tensors = arch.export_tensors(tensors)
    save_file(tensors, str(staging / "model.safetensors"), metadata={"format": "pt"})
    model.tokenizer.save(staging)
    _write_sentence_transformers(staging, model)
    if model.adapters is not None:
        for name in model.adapters.tasks:
            write_peft_adapter(staging / ADAPTERS_DIR / name, model, name, base_path)


# --------------------------------------------------------------------------- PEFT adapters

ADAPTERS_DIR = "adapters"
PEFT_PREFIX = "base_model.model."


def _kernel_rules(config: EncoderConfig) -> dict[tuple[str, ...], list[Rule]]:
    """Flax kernel path -> its rules (one per layer for a scanned stack)."""
    out: dict[tuple[str, ...], list[Rule]] = {}
    for rule in architecture_of(config).hf_rules(config):
        if rule.flax_path[-1] == "kernel":
            out.setdefault(rule.flax_path, []).append(rule)
    return out


def _check_linear_layout(rule: Rule, shape: tuple[int, ...], path: str, config) -> None:
    """A LoRA factor maps to torch as a transpose of the flattened ``[in, out]`` kernel: true
    when the rule's ``to_torch`` of a kernel is exactly that (LINEAR and the head reshapes are).
    Checked on an index array, so a rule that permutes differently is refused, not exported
    wrong."""
    leading, inputs, _ = lora_lib.kernel_layout(path.split("/"), shape)
    one = shape[leading:]
    fan_in = int(np.prod(one[:inputs]))
    probe = np.arange(int(np.prod(one)), dtype=np.float64).reshape(one)
    if not np.array_equal(rule.transform.to_torch(probe, config), probe.reshape(fan_in, -1).T):
        raise ValueError(
            f"{rule.hf_name}: its HF layout is not the transposed [in, out] kernel; LoRA "
            "factors cannot be written for it"
        )


def peft_tensors(model, name: str) -> dict[str, np.ndarray]:
    """One adapter as PEFT's tensors: ``base_model.model.<HF module>.lora_A.weight [r, in]``
    and ``.lora_B.weight [out, r]`` (unscaled; PEFT applies ``lora_alpha / r``)."""
    config = model.config
    rules = _kernel_rules(config)
    shapes = _flax_shapes(config, mlm=False)
    out = {}
    for path, factors in model.adapters.params[name].items():
        kernel = tuple(path.split("/")) + ("kernel",)
        if kernel not in rules:
            raise ValueError(f"adapter {name!r}: no HF tensor for the kernel of {path}")
        a, b = np.asarray(factors["a"], np.float32), np.asarray(factors["b"], np.float32)
        shape = shapes[kernel]
        _check_linear_layout(rules[kernel][0], shape, path, config)
        for rule in rules[kernel]:
            la, lb = (a, b) if rule.layer is None else (a[rule.layer], b[rule.layer])
            module = PEFT_PREFIX + rule.hf_name.removesuffix(".weight")
            out[f"{module}.lora_A.weight"] = np.ascontiguousarray(la.T)
            out[f"{module}.lora_B.weight"] = np.ascontiguousarray(lb.T)
    return out


def write_peft_adapter(folder: pathlib.Path, model, name: str, base_path: str) -> None:
    """``adapter_config.json`` + ``adapter_model.safetensors`` of adapter ``name``, as PEFT
    writes them (``PeftModel.from_pretrained(base, folder)`` reads them)."""
    tensors = peft_tensors(model, name)
    modules = sorted({k.removeprefix(PEFT_PREFIX).rsplit(".lora_", 1)[0] for k in tensors})
    adapter_config = {
        "peft_type": "LORA",
        "task_type": "FEATURE_EXTRACTION",
        "base_model_name_or_path": base_path,
        "r": int(model.adapters.rank),
        "lora_alpha": float(model.adapters.alpha),
        "lora_dropout": 0.0,
        "target_modules": modules,  # full module names: exactly the adapted Linear layers
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "modules_to_save": None,
        "use_rslora": False,
        "use_dora": False,
        "rank_pattern": {},
        "alpha_pattern": {},
        "revision": None,
    }
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})


def read_peft_adapters(folder: PathLike, config: EncoderConfig) -> lora_lib.Adapters | None:
    """The ``adapters/<name>/`` PEFT folders of an export as ``Adapters`` (None without any).
    Every adapter must have the same ``r`` and ``lora_alpha``; a tensor for a module the model
    does not have, or of the wrong shape, is an error naming it."""
    root = pathlib.Path(folder) / ADAPTERS_DIR
    if not root.is_dir():
        return None
    by_module = {
        rule.hf_name.removesuffix(".weight"): rule
        for rules in _kernel_rules(config).values()
        for rule in rules
    }
    shapes = _flax_shapes(config, mlm=False)
    params, settings = {}, set()
    for sub in sorted(p for p in root.iterdir() if (p / "adapter_config.json").exists()):
        adapter_config = _read_json(sub / "adapter_config.json")
        settings.add((adapter_config.get("r"), adapter_config.get("lora_alpha")))
        rank = int(adapter_config.get("r", 0))
        tensors = read_safetensors_file(sub / "adapter_model.safetensors")
        factors: dict[str, dict[str, dict[int | None, np.ndarray]]] = {}
        for key, value in tensors.items():
            module, _, kind = key.removeprefix(PEFT_PREFIX).rpartition(".lora_")
            rule = by_module.get(module)
            if rule is None or kind not in ("A.weight", "B.weight"):
                raise CheckpointMismatchError(f"{sub}: tensor {key} fits no module of the model")
            path = "/".join(rule.flax_path[:-1])
            factor = "a" if kind == "A.weight" else "b"
            factors.setdefault(path, {}).setdefault(factor, {})[rule.layer] = value.T
        params[sub.name] = {}
        for path, pair in factors.items():
            want_a, want_b = lora_lib.factor_shapes(
                path, shapes[(*path.split("/"), "kernel")], rank
            )
            for factor, want in (("a", want_a), ("b", want_b)):
                slices = pair.get(factor, {})
                if None in slices:
                    value = slices[None]
                else:  # a scanned stack: one slice per layer
                    value = np.stack([slices[i] for i in sorted(slices)]) if slices else None
                got = None if value is None else value.shape
                if got != want:
                    raise CheckpointMismatchError(
                        f"{sub}: lora_{factor.upper()} of {path} (layers stacked, transposed) "
                        f"has shape {got}, the model needs {want}"
                    )
                params[sub.name].setdefault(path, {})[factor] = np.ascontiguousarray(value)
    if not params:
        return None
    if len(settings) > 1:
        raise CheckpointError(
            f"{root}: adapters with different r / lora_alpha {sorted(settings)}; jina_jax "
            "holds one rank and alpha for all"
        )
    ((rank, alpha),) = settings
    return lora_lib.Adapters(params, int(rank), float(alpha))


def _transformers_version() -> str:
    try:  # optional: exporting needs no torch/transformers; the version is informational
        import transformers

        return transformers.__version__
    except ImportError:  # exporting needs no torch/transformers
        return "unknown"
