"""``StarterConfig``: the settings of a starter build."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

BUILD_VERSION = 1  # bump when outputs change for the same inputs and settings


@dataclasses.dataclass
class StarterConfig:
    data_dir: pathlib.Path
    force: bool = False
    max_pairs_per_dataset: int | None = None  # stable sample per pair dataset before cleaning
    aux_model: str = "all-MiniLM-L6-v2"
    aux_sample: int = 500  # pairs per dataset judged for consistency and mined (0 = all)
    aux_max_length: int = 128
    aux_batch_size: int = 64
    consistency_top_k: int = 2
    near_duplicate: float = 0.95  # cosine to the positive above which a negative is a duplicate
    heldout_manpages: float = 0.15
    heldout_descriptions: float = 0.02
    negation_test: float = 0.2
    min_body_words: int = 10  # shortest man page / docs section / description kept as a pair

    def key(self) -> dict[str, Any]:
        """The settings that change the outputs."""
        out = dataclasses.asdict(self)
        for name in ("data_dir", "force", "aux_batch_size"):
            out.pop(name)
        return {"build_version": BUILD_VERSION, **out}
