"""Files of the starter build: atomic writers and readers (jsonl, json, text, BEIR folders) and
``StepCache``, which keeps each finished step with the settings it was made with.

Every file is written to a temporary name and renamed, so a file that exists is complete."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pathlib
import shutil
import uuid
from collections.abc import Callable, Iterable
from typing import Any


def _atomic_path(path: pathlib.Path) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"


def write_jsonl(path: pathlib.Path, rows: Iterable[Any]) -> int:
    """JSON lines (gzip when the name ends in .gz), written atomically; returns the count."""
    tmp, n = _atomic_path(path), 0
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(tmp, "wt", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
                n += 1
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return n


def write_json(path: pathlib.Path, obj: Any) -> None:
    tmp = _atomic_path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(tmp, "wt", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, indent=None if path.name.endswith(".gz") else 1)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_json(path: pathlib.Path) -> Any:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def write_texts(path: pathlib.Path, documents: Iterable[str]) -> int:
    """MLM documents, one per line (whitespace collapsed), gzip, atomic."""
    tmp, n = _atomic_path(path), 0
    try:
        with gzip.open(tmp, "wt", encoding="utf-8") as f:
            for doc in documents:
                line = " ".join(doc.split())
                if line:
                    f.write(line + "\n")
                    n += 1
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return n


def write_beir(
    folder: pathlib.Path, queries: dict[str, str], corpus: dict[str, str], qrels: dict[str, str]
) -> None:
    """A BEIR folder (``qrels``: query id -> its one relevant document id), built in a temporary
    folder and renamed into place."""
    scratch = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        (scratch / "qrels").mkdir(parents=True)
        with open(scratch / "corpus.jsonl", "w", encoding="utf-8") as f:
            for doc_id, text in corpus.items():
                row = {"_id": doc_id, "title": "", "text": text}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        with open(scratch / "queries.jsonl", "w", encoding="utf-8") as f:
            for query_id, text in queries.items():
                f.write(json.dumps({"_id": query_id, "text": text}, ensure_ascii=False) + "\n")
        with open(scratch / "qrels" / "test.tsv", "w", encoding="utf-8") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for query_id, doc_id in qrels.items():
                f.write(f"{query_id}\t{doc_id}\t1\n")
        if folder.exists():
            retired = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:8]}.old"
            os.rename(folder, retired)
            os.rename(scratch, folder)
            shutil.rmtree(retired)
        else:
            os.rename(scratch, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def code_hash(modules: Iterable[Any]) -> str:
    """Changes whenever one of the modules' source changes; part of a step's cache key, so
    that the step is redone with the new code."""
    digest = hashlib.sha1()
    for module in modules:
        digest.update(pathlib.Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


class StepCache:
    """``get(path, key, compute)``: the JSON value stored at ``path`` when it was made with the
    same ``key``, else ``compute()`` stored there (value first, then its key file)."""

    def __init__(self, force: bool = False):
        self.force = force
        self.hits: list[str] = []

    def get(self, path: pathlib.Path, key: Any, compute: Callable[[], Any]) -> Any:
        key_path = path.parent / f"{path.name}.key.json"
        key = json.loads(json.dumps(key))
        if not self.force and path.is_file() and key_path.is_file():
            if json.loads(key_path.read_text()) == key:
                self.hits.append(path.name)
                return read_json(path)
        value = json.loads(json.dumps(compute()))  # what a later cache hit returns
        key_path.unlink(missing_ok=True)
        write_json(path, value)
        write_json(key_path, key)
        return value
