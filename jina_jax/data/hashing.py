"""Choices made by hashing text, so that they are the same on every machine, run and file order:
held-out splits of the starter corpus and stable samples of evaluation queries."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def normalize_text(text: str) -> str:
    """Case- and whitespace-insensitive form of a text: what "the same text" means for
    de-duplication, held-out splits and stable samples."""
    return " ".join(text.casefold().split())


def stable_fraction(text: str, salt: str) -> float:
    """A number in [0, 1) fixed by ``salt`` and the normalised ``text`` alone (sha1)."""
    digest = hashlib.sha1(f"{salt}\0{normalize_text(text)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def stable_sample(keys: Sequence[str], size: int | None, salt: str) -> list[int]:
    """Indices of ``size`` items chosen by hash of their keys (all when size is None, 0 or at
    least len(keys)), in their original order."""
    if not size or size >= len(keys):
        return list(range(len(keys)))
    ranked = sorted(range(len(keys)), key=lambda i: stable_fraction(keys[i], salt))
    return sorted(ranked[:size])
