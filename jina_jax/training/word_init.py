"""Word embeddings of a first training stage taken from another model (``init_word_embeddings``).

A small student distilled from a teacher learns faster when its token table starts from the
teacher's: tokens are matched by their string in the two vocabularies, and a teacher wider than
the student is reduced to the student's width by PCA (the top principal directions of the
teacher's table, rescaled to the teacher's per-entry RMS). Tokens the source lacks keep a random
``N(0, 0.02)`` row. ``initial_params`` turns that table into the partial parameter tree and the
``reinit`` pattern that ``jina_jax.training.loop.train_stage`` merges into a fresh init.
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
