"""Where a run keeps its files: a local folder or a bucket (``gs://bucket/run``).

Workdir I/O goes through ``etils.epath`` (gcsfs under it for ``gs://``); ``pathlib`` would turn
``gs://b/run`` into the local folder ``<cwd>/gs:/b/run``. Libraries that only read or write local
folders (Hugging Face tokenizers, safetensors, sentence-transformers) get a temporary local copy,
deleted right after, so a run on a remote workdir leaves nothing on the local disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterable, Iterator

from etils import epath

PathLike = str | os.PathLike


def is_remote(path: PathLike) -> bool:
    """``gs://...`` (any ``scheme://``), as opposed to a local path."""
    return "://" in os.fspath(path)


def as_path(path: PathLike) -> epath.Path:
    """An ``epath.Path``: a remote path as given, a local one made absolute."""
    if is_remote(path):
        return epath.Path(os.fspath(path))
    return epath.Path(pathlib.Path(path).absolute())


def write_text(path: PathLike, text: str) -> None:
    """Writes a whole file so that readers see the old content or the new, never a part: locally
    through a temporary file and a rename; a GCS object is replaced atomically by one upload."""
    path = as_path(path)
    if is_remote(path):
        path.write_text(text)
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_json(path: PathLike):
    path = as_path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON ({e})") from e


def _files_under(folder: epath.Path) -> Iterator[tuple[str, epath.Path]]:
    """``(relative name, path)`` of every file below ``folder``, depth first."""
    for child in sorted(folder.iterdir()):
        if child.is_dir():
            for name, path in _files_under(child):
                yield f"{child.name}/{name}", path
        else:
            yield child.name, child


def copy_file(src: PathLike, dst: PathLike) -> None:
    """Streams one file between any two places (local, ``gs://``)."""
    with as_path(src).open("rb") as fin, as_path(dst).open("wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 24)


def copy_tree(src: PathLike, dst: PathLike, *, last: Iterable[str] = ()) -> None:
    """Copies the files below ``src`` to ``dst``; the relative names in ``last`` go last (a reader
    that waits for them sees a complete folder)."""
    src, dst = as_path(src), as_path(dst)
    files = dict(_files_under(src))
    last = [name for name in last if name in files]
    for name in [n for n in files if n not in last] + last:
        target = dst / name
        if not is_remote(target):
            target.parent.mkdir(parents=True, exist_ok=True)
        copy_file(files[name], target)


def remove_tree(path: PathLike) -> None:
    path = as_path(path)
    if path.exists():
        path.rmtree()


def _temporary_dir() -> pathlib.Path:
    return pathlib.Path(tempfile.mkdtemp(prefix="jina_jax-"))


@contextlib.contextmanager
def local_copy(path: PathLike) -> Iterator[pathlib.Path]:
    """A local path holding ``path`` (a file or a folder): the path itself when local, else a
    temporary download, deleted when the block ends. For libraries that read local files only;
    what they load must be in memory by then."""
    if not is_remote(path):
        yield pathlib.Path(path)
        return
    path = as_path(path)
    tmp = _temporary_dir()
    try:
        local = tmp / path.name
        if path.is_dir():
            copy_tree(path, local)
        else:
            copy_file(path, local)
        yield local
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def writing_dir(path: PathLike, *, last: Iterable[str] = ()) -> Iterator[pathlib.Path]:
    """A local folder to write ``path``'s files into: the folder itself when local, else a
    temporary one whose files are uploaded (``last`` last) when the block ends without an error,
    then deleted."""
    if not is_remote(path):
        folder = pathlib.Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    tmp = _temporary_dir()
    try:
        yield tmp
        copy_tree(tmp, path, last=last)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class JsonLines:
    """Appends JSON records to a ``.jsonl`` file. A GCS object cannot be appended to, so for a
    remote path the lines are kept in memory (starting from the object's current lines, when a
    resumed run finds one) and the whole object is rewritten on each append."""

    def __init__(self, path: PathLike):
        self.path = as_path(path)
        self._lines: list[str] | None = None
        if is_remote(self.path):
            text = self.path.read_text() if self.path.exists() else ""
            self._lines = text.splitlines(keepends=True)

    def append(self, record: dict) -> None:
        line = json.dumps(record) + "\n"
        if self._lines is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as f:
                f.write(line)
            return
        self._lines.append(line)
        self.path.write_text("".join(self._lines))
