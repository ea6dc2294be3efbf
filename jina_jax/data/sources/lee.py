"""Lee et al. (2005) document similarity: 50 short news documents rated pairwise by humans,
shipped as test data in the gensim wheel (``gensim/test/test_data/``) -> 1,225 STS pairs.

Layout found in gensim 4.4.0:
- ``lee.cor``: latin-1, one document per line, 50 lines (the last without a newline).
- ``similarities0-1.txt``: a 50 x 50 tab-separated matrix of mean human ratings scaled to
  [0, 1]. Only the upper triangle (column > row) holds ratings; the lower triangle is 0 and the
  diagonal 1. Row i, column j rates documents i and j (0-based line numbers of ``lee.cor``).
"""

from __future__ import annotations

import os
import pathlib

from jina_jax.data.records import STSRecord
from jina_jax.data.sources import deb

GENSIM_VERSION = "4.4.0"
DATA = "gensim/test/test_data"
MEMBERS = [f"{DATA}/lee.cor", f"{DATA}/similarities0-1.txt"]
LICENSE = (
    "Lee, Pincombe & Welsh (2005) corpus and ratings as redistributed in gensim's test data "
    "(gensim: LGPL-2.1)"
)


def read_lee(cor_path: str | os.PathLike, similarities_path: str | os.PathLike) -> list[STSRecord]:
    """One STSRecord per document pair i < j, in row-major order; score in [0, 1]."""
    documents = [
        " ".join(line.split())
        for line in pathlib.Path(cor_path).read_text(encoding="latin-1").split("\n")
        if line.strip()
    ]
    rows = [
        [float(x) for x in line.split()]
        for line in pathlib.Path(similarities_path).read_text().split("\n")
        if line.strip()
    ]
    if len(rows) != len(documents) or any(len(row) != len(documents) for row in rows):
        raise ValueError(
            f"{similarities_path}: expected a {len(documents)} x {len(documents)} matrix"
        )
    n = len(documents)
    return [
        STSRecord(documents[i], documents[j], rows[i][j]) for i in range(n) for j in range(i + 1, n)
    ]


def fetch_lee(cache_dir: str | os.PathLike) -> deb.FetchedSource:
    return deb.fetch_wheel("gensim", GENSIM_VERSION, cache_dir, MEMBERS, LICENSE)


def lee_files(source: deb.FetchedSource) -> tuple[pathlib.Path, pathlib.Path]:
    return source.root / MEMBERS[0], source.root / MEMBERS[1]
