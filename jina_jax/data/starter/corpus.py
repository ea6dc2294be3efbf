"""``load_starter``: a built starter corpus as paths and record readers."""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Iterator
from typing import Any

from jina_jax.data.readers import read_beir, read_negations, read_pairs, read_sts, read_texts
from jina_jax.data.records import NegationRecord, PairRecord, STSRecord
from jina_jax.data.starter.cache import read_json

PAIR_DATASETS = (
    "debian_descriptions",  # package short description -> first paragraph of the long one
    "manpages",  # NAME summary -> DESCRIPTION
    "wordnet_synonyms",  # word -> another word of the same synset
    "wordnet_definitions",  # word -> definition
    "wordnet_examples",  # definition -> example sentence
    "bible_paraphrase",  # KJV verse -> WEB verse
    "python_docs",  # section heading -> section text
)
BEIR_SETS = ("python_faq", "debian_faq", "manpages", "debian_descriptions")


@dataclasses.dataclass(frozen=True)
class Starter:
    """Paths and readers of a built starter corpus (see ``load_starter``)."""

    root: pathlib.Path
    manifest: dict[str, Any]

    def _path(self, rel: str) -> pathlib.Path:
        path = self.root / rel
        if not path.exists():
            raise FileNotFoundError(f"{path} (not in this starter build)")
        return path

    @property
    def pair_datasets(self) -> dict[str, pathlib.Path]:
        return {n: self._path(f"train/pairs/{n}.jsonl.gz") for n in PAIR_DATASETS}

    @property
    def triplet_datasets(self) -> dict[str, pathlib.Path]:
        return {n: self._path(f"train/triplets/{n}.jsonl.gz") for n in PAIR_DATASETS}

    @property
    def mlm_files(self) -> dict[str, pathlib.Path]:
        return {
            p.name.removesuffix(".txt.gz"): p
            for p in sorted((self.root / "train/mlm").glob("*.txt.gz"))
        }

    @property
    def beir_folders(self) -> dict[str, pathlib.Path]:
        return {n: self._path(f"eval/{n}") for n in BEIR_SETS}

    @property
    def negation_train(self) -> pathlib.Path:
        return self._path("train/negation.jsonl.gz")

    @property
    def negation_test(self) -> pathlib.Path:
        return self._path("eval/negation/test.jsonl")

    @property
    def sts_test(self) -> dict[str, pathlib.Path]:
        return {"lee_sts": self._path("eval/lee_sts/test.jsonl")}

    def pairs(self, name: str) -> Iterator[PairRecord]:
        return read_pairs(self.pair_datasets[name], split=None)

    def triplets(self, name: str) -> Iterator[PairRecord]:
        return read_pairs(self.triplet_datasets[name], split=None)

    def negations(self, split: str = "train") -> Iterator[NegationRecord]:
        path = self.negation_train if split == "train" else self.negation_test
        return read_negations(path, split=None)

    def sts(self, name: str = "lee_sts") -> Iterator[STSRecord]:
        return read_sts(self.sts_test[name], split=None)

    def texts(self, name: str) -> Iterator[str]:
        return read_texts(self.mlm_files[name], unit="line")

    def beir(self, name: str):
        return read_beir(self.beir_folders[name], split="test")


def load_starter(data_dir: str | os.PathLike) -> Starter:
    """The starter corpus built in ``data_dir``; raises if its build never finished."""
    root = pathlib.Path(data_dir)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"{manifest_path} missing: build it with python -m jina_jax.data.starter --data-dir {root}"
        )
    return Starter(root, read_json(manifest_path))
