"""A teacher's embeddings for distillation, computed once per text and kept next to the data.

``TeacherTargets(embedder, cache_dir)`` is the ``targets`` hook of
``jina_jax.data.pipeline.PairBatches``: for the records of a batch it returns the teacher's
embeddings of each record's query and positive, ``[n, 2, D]``. A record's vectors are
computed the first time a batch draws it and kept in ``<cache_dir>/<teacher>/<dataset>.npy``
(float16, with a ``.filled.npy`` mask), so reruns, resumed runs and later stages embed nothing
twice. Each host computes the vectors of its own records only, and keeps them in files of its
own (``<dataset>.host<i>of<n>.npy``) when there are several hosts: no two hosts write one file.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence

import numpy as np

from jina_jax import storage

FLUSH_EVERY = 8192  # new vectors between writes of the cache


class TeacherTargets:
    def __init__(
        self,
        embedder,
        cache_dir: str | os.PathLike,
        *,
        max_length: int | None = None,
        variant: str = "",
        process_index: int = 0,
        process_count: int = 1,
    ):
        self.embedder = embedder
        self.suffix = f".host{process_index}of{process_count}" if process_count > 1 else ""
        self.max_length = max_length
        self.dim = int(
            np.asarray(embedder.embed(["dimension probe"], max_length=max_length)).shape[1]
        )
        key = re.sub(r"[^A-Za-z0-9._-]+", "_", str(getattr(embedder, "name", "teacher")))
        # the vectors depend on the teacher, its truncation and its compute (variant: "bfloat16")
        folder = f"{key}-{max_length or 'full'}" + (f"-{variant}" if variant else "")
        self.directory = storage.as_path(cache_dir) / folder
        self.tables: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # dataset -> vectors, filled
        self.dirty: set[str] = set()
        self.new = 0
        self.computed = 0  # vectors embedded by this process (the rest came from the cache)

    def _table(self, dataset: str, size: int) -> tuple[np.ndarray, np.ndarray]:
        if dataset not in self.tables or len(self.tables[dataset][1]) != size:
            vectors_path = self.directory / f"{dataset}{self.suffix}.npy"
            filled_path = self.directory / f"{dataset}{self.suffix}.filled.npy"
            vectors = filled = None
            if vectors_path.exists() and filled_path.exists():
                with storage.local_copy(vectors_path) as v, storage.local_copy(filled_path) as f:
                    vectors, filled = np.load(v), np.load(f)
                if vectors.shape != (size, 2, self.dim) or filled.shape != (size,):
                    vectors = filled = None  # another dataset of the same name: start over
            if vectors is None:
                vectors = np.zeros((size, 2, self.dim), np.float16)
                filled = np.zeros(size, bool)
            self.tables[dataset] = (vectors, filled)
        return self.tables[dataset]

    def __call__(self, dataset: str, size: int, indices, records: Sequence) -> np.ndarray:
        vectors, filled = self._table(dataset, size)
        indices = np.asarray(indices, np.int64)
        todo = [(int(i), r) for i, r in zip(indices, records) if not filled[i]]
        if todo:
            todo = list(dict(todo).items())  # a record drawn twice in one batch: once
            texts = [r.query for _, r in todo] + [r.positive for _, r in todo]
            encoding_log = logging.getLogger("jina_jax.encoding")
            level = encoding_log.level
            encoding_log.setLevel(logging.ERROR)  # truncation to max_length is the setting
            try:
                embedded = np.asarray(self.embedder.embed(texts, max_length=self.max_length))
            finally:
                encoding_log.setLevel(level)
            rows = np.asarray([i for i, _ in todo])
            vectors[rows, 0] = embedded[: len(todo)]
            vectors[rows, 1] = embedded[len(todo) :]
            filled[rows] = True
            self.dirty.add(dataset)
            self.new += 2 * len(todo)
            self.computed += 2 * len(todo)
            if self.new >= FLUSH_EVERY:
                self.flush()
        return vectors[indices].astype(np.float32)

    def flush(self) -> None:
        """Writes the datasets' tables that gained vectors (whole files, atomically)."""
        for dataset in sorted(self.dirty):
            vectors, filled = self.tables[dataset]
            self.directory.mkdir(parents=True, exist_ok=True)
            stem = f"{dataset}{self.suffix}"
            for name, array in ((f"{stem}.npy", vectors), (f"{stem}.filled.npy", filled)):
                with storage.writing_file(self.directory / name) as local:
                    np.save(local, array)
        self.dirty.clear()
        self.new = 0
