"""Word embeddings of a first training stage taken from another model (``init_word_embeddings``).

A small student distilled from a teacher learns faster when its token table starts from the
teacher's: tokens are matched by their string in the two vocabularies, and a teacher wider than
the student is reduced to the student's width by PCA (the top principal directions of the
teacher's table, rescaled to the teacher's per-entry RMS). Tokens the source lacks keep a random
``N(0, 0.02)`` row. ``initial_params`` turns that table into the partial parameter tree and the
``reinit`` pattern that ``jina_jax.training.loop.train_stage`` merges into a fresh init.

``layer_params`` (``init_source_layers``) goes further, DistilBERT-style: a student of the
source's width takes chosen source layers whole, with BERT's gelu MLP rewritten as an exact GEGLU.
"""

from __future__ import annotations

import re
from typing import Any

import jax
import numpy as np

# Where the families keep their token table: JinaBERT/BERT, T5.
TABLE_SUFFIXES = (("word_embeddings", "embedding"), ("shared", "embedding"))


def _name(path) -> str:
    return "/".join(str(getattr(k, "key", k)) for k in path)


def find_table(tree) -> tuple[tuple[str, ...], Any]:
    """The path (dict keys) and leaf of the token table in a parameter tree."""
    found = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        keys = tuple(str(getattr(k, "key", k)) for k in path)
        if any(keys[-len(s) :] == s for s in TABLE_SUFFIXES):
            found.append((keys, leaf))
    if len(found) != 1:
        names = ", ".join("/".join(k) for k, _ in found) or "none"
        raise ValueError(f"expected one token-embedding table in the parameters, found {names}")
    return found[0]


def pca_reduce(table: np.ndarray, width: int) -> np.ndarray:
    """``table [V, H]`` projected on its top ``width`` principal directions (centred), rescaled
    to the table's per-entry RMS; ``width >= H`` returns the table, zero-padded to ``width``."""
    table = np.asarray(table, np.float64)
    h = table.shape[1]
    if width >= h:
        return np.pad(table, ((0, 0), (0, width - h))).astype(np.float32)
    centred = table - table.mean(axis=0)
    # the principal directions are the top eigenvectors of the H x H scatter matrix (the SVD of
    # the V x H table gives the same, at ~100x the cost for a 30k-token table)
    values, vectors = np.linalg.eigh(centred.T @ centred)
    top = vectors[:, np.argsort(values)[::-1][:width]]
    # a fixed sign per direction: its largest loading positive
    top *= np.sign(top[np.abs(top).argmax(axis=0), np.arange(width)])
    reduced = centred @ top
    scale = np.sqrt(np.mean(np.square(table))) / max(np.sqrt(np.mean(np.square(reduced))), 1e-12)
    return (reduced * scale).astype(np.float32)


def aligned_table(source_model, tokenizer, width: int, seed: int = 0) -> tuple[np.ndarray, int]:
    """The source model's token table for ``tokenizer``'s vocabulary at ``width``: rows matched
    by token string, PCA-reduced; unmatched rows ``N(0, 0.02)``. Returns the table and the number
    of rows matched."""
    _, source_table = find_table(source_model.params)
    reduced = pca_reduce(np.asarray(source_table), width)
    source_vocab = source_model.tokenizer.hf.get_vocab()
    target_vocab = tokenizer.hf.get_vocab()
    table = np.random.default_rng(seed).normal(0.0, 0.02, (tokenizer.vocab_size, width))
    table = table.astype(np.float32)
    matched = 0
    for token, target_id in target_vocab.items():
        source_id = source_vocab.get(token)
        if source_id is not None and source_id < len(reduced) and target_id < len(table):
            table[target_id] = reduced[source_id]
            matched += 1
    return table, matched


def initial_params(abstract_params, table: np.ndarray) -> tuple[dict, tuple[str, ...]]:
    """The partial tree holding ``table`` where ``abstract_params`` (shapes of the stage's
    parameters) keeps its token table, and the ``reinit`` pattern for everything else."""
    keys, leaf = find_table(abstract_params)
    if tuple(leaf.shape) != table.shape:
        raise ValueError(
            f"init_word_embeddings: table {table.shape} does not fit {'/'.join(keys)} "
            f"{tuple(leaf.shape)}"
        )
    tree: dict = {}
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = table
    return tree, (f"(?!{re.escape('/'.join(keys))}$).*",)


# --------------------------------------------------------------------------- teacher layers

# What a JinaBERT layer takes from a BERT layer unchanged (the GEGLU feed-forward's input
# layer is built by ``geglu_from_mlp``).
COPIED_LAYER_PARAMS = (
    ("attention", "query", "kernel"),
    ("attention", "query", "bias"),
    ("attention", "key", "kernel"),
    ("attention", "key", "bias"),
    ("attention", "value", "kernel"),
    ("attention", "value", "bias"),
    ("attention", "output", "kernel"),
    ("attention", "output", "bias"),
    ("attention_norm", "scale"),
    ("attention_norm", "bias"),
    ("mlp", "wo", "kernel"),
    ("mlp", "wo", "bias"),
    ("mlp_norm", "scale"),
    ("mlp_norm", "bias"),
)


def constant_one_direction(scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``w [H]`` with ``LayerNorm(x) @ w == 1`` for every ``x``: the norm's output is
    ``scale * n + bias`` with ``sum(n) == 0``, so ``w = c / scale`` drops the ``n`` term and
    ``c = 1 / sum(bias / scale)`` makes the rest 1 (finite while ``sum(bias / scale) != 0``)."""
    scale, bias = np.asarray(scale, np.float64), np.asarray(bias, np.float64)
    total = float(np.sum(bias / scale))
    if abs(total) < 1e-6:
        raise ValueError("the LayerNorm's sum(bias / scale) is 0: no constant direction")
    return (1.0 / total) / scale


def geglu_from_mlp(
    kernel: np.ndarray, bias: np.ndarray, norm_scale: np.ndarray, norm_bias: np.ndarray
) -> np.ndarray:
    """A GEGLU input layer (no bias; ``[H, 2I]``, gate half first) computing BERT's
    ``gelu(x @ kernel + bias)`` exactly, for ``x`` the output of the LayerNorm before it.

    GEGLU is ``gelu(x @ W_gate) * (x @ W_up)``. With ``w`` the LayerNorm's constant direction
    (``x @ w == 1``, ``constant_one_direction``): ``W_gate = kernel + w bias^T`` adds the bias,
    and every column of ``W_up`` is ``w``, so the up half is 1."""
    w = constant_one_direction(norm_scale, norm_bias)
    kernel, bias = np.asarray(kernel, np.float64), np.asarray(bias, np.float64)
    gate = kernel + np.outer(w, bias)
    up = np.repeat(w[:, None], kernel.shape[1], axis=1)
    return np.concatenate([gate, up], axis=1).astype(np.float32)


def _get(tree, keys):
    for key in keys:
        tree = tree[key]
    return tree


def _set(tree: dict, keys, value) -> None:
    for key in keys[:-1]:
        tree = tree.setdefault(key, {})
    tree[keys[-1]] = value


def layer_params(
    source_model, tokenizer, abstract_params, layers: tuple[int, ...], seed: int = 0
) -> tuple[dict, tuple[str, ...], list[str]]:
    """A student JinaBERT started from a BERT teacher (DistilBERT-style): the token table
    (matched by token string), token-type table and embedding LayerNorm, and for student layer
    ``j`` all of teacher layer ``layers[j]``: attention, both LayerNorms, the feed-forward's
    output layer, and its input layer as an exact GEGLU (``geglu_from_mlp``; a student with BERT's
    plain feed-forward copies it as it is). The teacher's position table has no place in an ALiBi
    student and is dropped; the pooler is left fresh.

    Returns the partial tree, the ``reinit`` pattern for every parameter not copied, and the
    names copied."""
    source = source_model.config
    keys, _ = find_table(abstract_params)
    root = keys[:-3]  # .../embeddings/word_embeddings/embedding -> the encoder's subtree
    student = _get(abstract_params, root)
    if "layers" in student:
        raise ValueError("init_source_layers: scanned layers (model.scan_layers) are not supported")
    student_layers = sorted(k for k in student if k.startswith("layer_"))
    if len(student_layers) != len(layers):
        raise ValueError(
            f"init_source_layers {tuple(layers)} names {len(layers)} layers; the student has "
            f"{len(student_layers)} (model.num_layers)"
        )
    bad = [i for i in layers if not 0 <= i < source.num_layers]
    if bad:
        raise ValueError(
            f"init_source_layers {tuple(layers)}: the source has layers 0..{source.num_layers - 1}"
        )
    s_params = source_model.params
    mlp_kind = "gated_layers" if "gated_layers" in student["layer_0"]["mlp"] else "intermediate"
    tree: dict = {}
    copied: list[str] = []

    def put(student_keys, value):
        want = tuple(_get(student, student_keys).shape)
        value = np.asarray(value, np.float32)
        if value.shape != want:
            raise ValueError(
                f"init_source_layers: {'/'.join(student_keys)} is {want} in the student, the "
                f"source gives {value.shape} (the student must have the source's hidden_size, "
                "num_heads and intermediate_size)"
            )
        _set(tree, (*root, *student_keys), value)
        copied.append("/".join((*root, *student_keys)))

    table, _ = aligned_table(
        source_model,
        tokenizer,
        _get(student, ("embeddings", "word_embeddings", "embedding")).shape[1],
        seed,
    )
    put(("embeddings", "word_embeddings", "embedding"), table)
    for name in (
        ("token_type_embeddings", "embedding"),
        ("LayerNorm", "scale"),
        ("LayerNorm", "bias"),
    ):
        put(("embeddings", *name), _get(s_params, ("embeddings", *name)))
    for j, i in enumerate(layers):
        teacher, own = s_params[f"layer_{i}"], f"layer_{j}"
        for name in COPIED_LAYER_PARAMS:
            put((own, *name), _get(teacher, name))
        mlp = teacher["mlp"]["intermediate"]
        if mlp_kind == "gated_layers":
            if source.feed_forward_type != "original" or source.hidden_act != "gelu":
                raise ValueError(
                    "init_source_layers: a GEGLU student is built from a source with BERT's "
                    f"gelu feed-forward, not {source.feed_forward_type!r}/{source.hidden_act!r}"
                )
            norm = teacher["attention_norm"]
            put(
                (own, "mlp", "gated_layers", "kernel"),
                geglu_from_mlp(mlp["kernel"], mlp["bias"], norm["scale"], norm["bias"]),
            )
        else:
            put((own, "mlp", "intermediate", "kernel"), mlp["kernel"])
            put((own, "mlp", "intermediate", "bias"), mlp["bias"])
    pattern = "|".join(re.escape(name) for name in copied)
    return tree, (f"(?!(?:{pattern})$).*",), copied
