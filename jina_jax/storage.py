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
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator

from etils import epath

from jina_jax.errors import WorkdirError

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


@contextlib.contextmanager
def writing_file(path: PathLike) -> Iterator[pathlib.Path]:
    """A local path to write ``path``'s content to; when the block ends without an error it
    replaces ``path`` whole (a rename locally, one upload for a bucket), so readers never see a
    part. The temporary name keeps ``path``'s suffix (``np.save`` adds ``.npy`` otherwise)."""
    path = as_path(path)
    if is_remote(path):
        tmp = _temporary_dir()
        try:
            local = tmp / path.name
            yield local
            copy_file(local, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    local = pathlib.Path(path).with_name(f".{path.name}.tmp{pathlib.Path(path.name).suffix}")
    try:
        yield local
        os.replace(local, path)
    finally:
        local.unlink(missing_ok=True)


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


# --------------------------------------------------------------------------- workdirs

MARKER_FILE = "jina_jax_workdir.json"  # what makes a folder a jina_jax workdir
LOCK_FILE = ".lock"


def check_workdir(workdir: PathLike) -> None:
    """Refuses a folder that is not a jina_jax workdir: anything non-empty without our marker
    (an exported model, a Hugging Face folder, someone's files). Nothing is written here."""
    workdir = as_path(workdir)
    if not workdir.exists():
        return
    if not workdir.is_dir():
        raise WorkdirError(f"--workdir {workdir} is a file, not a folder")
    names = sorted(p.name for p in workdir.iterdir())
    if not names or MARKER_FILE in names:
        return
    config = workdir / "config.json"
    if "config.json" in names:
        try:
            saved = json.loads(config.read_text())
        except (ValueError, OSError):
            saved = None
        if isinstance(saved, dict) and "stages" in saved and "model" in saved:
            return  # a workdir of a jina_jax run from before the marker existed
        if isinstance(saved, dict) and ("architectures" in saved or "model_type" in saved):
            raise WorkdirError(
                f"--workdir {workdir} holds a Hugging Face model (config.json with "
                f"{'architectures' if 'architectures' in saved else 'model_type'}), not a "
                "jina_jax run; a run would overwrite its files. Use a new folder."
            )
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    raise WorkdirError(
        f"--workdir {workdir} is not empty and is not a jina_jax workdir (no {MARKER_FILE}; it "
        f"holds {shown}); a run would write into it. Use a new or empty folder."
    )


def mark_workdir(workdir: PathLike) -> None:
    marker = as_path(workdir) / MARKER_FILE
    if not marker.exists():
        write_text(marker, json.dumps({"jina_jax_workdir": 1, "created": time.time()}))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class WorkdirLock:
    """``<workdir>/.lock`` names the run that uses the workdir (host, pid, start). A second run
    is refused naming them; a lock whose process is gone from this host is stale and taken
    over. Local: created exclusively (O_EXCL). Remote (gs://): written, then read back, which
    leaves a short window between two runs started at the same instant."""

    def __init__(self, workdir: PathLike):
        self.path = as_path(workdir) / LOCK_FILE
        self.mine = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.ctime()}
        self.held = False

    def _holder(self) -> dict | None:
        try:
            holder = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (ValueError, OSError):
            return {}  # unreadable: a run died while writing it
        return holder if isinstance(holder, dict) else {}

    def acquire(self) -> None:
        text = json.dumps(self.mine)
        as_path(self.path.parent).mkdir(parents=True, exist_ok=True)
        if not is_remote(self.path):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                self._take_over_if_stale()
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            with os.fdopen(fd, "w") as f:
                f.write(text)
        else:
            if self.path.exists():
                self._take_over_if_stale()
            self.path.write_text(text)
            if self._holder() != self.mine:
                self._refuse(self._holder() or {})
        self.held = True

    def _take_over_if_stale(self) -> None:
        holder = self._holder()
        if holder is None:
            return
        same_host = holder.get("host") == socket.gethostname()
        if holder and not (same_host and isinstance(holder.get("pid"), int)):
            self._refuse(holder)
        if holder and _alive(holder["pid"]):
            self._refuse(holder)
        who = f"pid {holder.get('pid')}" if holder else "an unreadable lock"
        print(f"taking over the stale lock of {self.path} ({who} is no longer running)")
        self.path.unlink()

    def _refuse(self, holder: dict) -> None:
        raise WorkdirError(
            f"{self.path.parent} is in use by another run (host {holder.get('host', '?')}, pid "
            f"{holder.get('pid', '?')}, since {holder.get('since', '?')}); wait for it to end or "
            f"use another --workdir. If that run is gone, delete {self.path}."
        )

    def release(self) -> None:
        if self.held and self._holder() == self.mine:
            self.path.unlink()
        self.held = False
