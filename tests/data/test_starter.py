"""The starter corpus build: stable held-out splits, hard-negative mining, a mini build from the
embedded source samples (tests/data/test_sources.py), and the real build when it is cached."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pathlib
import zlib

import numpy as np
import pytest
from test_sources import write_sample_sources

from jina_jax.data import filters, hashing, starter
from jina_jax.data.records import PairRecord

REAL_BUILD = pathlib.Path(
    os.environ.get("JINA_STARTER_DIR", pathlib.Path(__file__).parents[2] / "data_cache" / "starter")
)


class BagOfWordsEmbedder:
    """A cheap stand-in for the auxiliary model: hashed word counts, L2-normalised. ``calls``
    records the size of every ``embed`` call."""

    name = "bag-of-words"

    def __init__(self):
        self.calls: list[int] = []

    def embed(self, texts: list[str], *, max_length: int | None = None) -> np.ndarray:
        self.calls.append(len(texts))
        out = np.zeros((len(texts), 256), np.float32)
        for i, text in enumerate(texts):
            for word in filters.normalize_text(text).split():
                out[i, zlib.crc32(word.encode()) % 256] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


# --------------------------------------------------------------------------- splits


def test_stable_fraction_is_sha1_of_salted_normalised_text():
    expected = int.from_bytes(hashlib.sha1(b"manpages\0open a file").digest()[:8], "big") / 2**64
    assert hashing.stable_fraction("Open  a FILE", "manpages") == expected
    assert hashing.stable_fraction("open a file", "other salt") != expected


def test_heldout_split_is_stable_and_disjoint():
    texts = [f"query number {i}" for i in range(2000)]
    held = {t for t in texts if starter.is_heldout(t, "s", 0.1)}
    train = {t for t in texts if not starter.is_heldout(t, "s", 0.1)}
    assert held.isdisjoint(train) and held | train == set(texts)
    assert 120 < len(held) < 280  # about 10%
    # independent of order and of which other items exist
    assert {t for t in reversed(texts[:500]) if starter.is_heldout(t, "s", 0.1)} == {
        t for t in held if int(t.split()[-1]) < 500
    }
    # a larger fraction only adds items
    assert held <= {t for t in texts if starter.is_heldout(t, "s", 0.2)}
    keys = [f"k{i}" for i in range(100)]
    sample = hashing.stable_sample(keys, 10, "x")
    assert sample == sorted(sample) and len(sample) == 10
    assert hashing.stable_sample(keys[::-1], 10, "x") == sorted(99 - i for i in sample)


def test_mine_hard_negatives_skips_self_same_query_and_near_duplicates():
    records = [
        PairRecord("q0", "p0"),
        PairRecord("q0", "p0 again"),  # same query: another true positive, never a negative
        PairRecord("q2", "p2"),
        PairRecord("q3", "p3"),
    ]
    e = np.eye(4, dtype=np.float32)
    queries = np.stack([e[0], e[0], e[2], e[3]])
    p0 = (e[0] + 0.1 * e[3]) / np.linalg.norm(e[0] + 0.1 * e[3])
    # "p0 again" duplicates p0; p2 is the hard negative for q0, p3 the one for q2
    positives = np.stack([p0, p0, 0.8 * e[0] + 0.6 * e[2], 0.6 * e[2] + 0.8 * e[3]])
    usable = np.array([True, True, True, True])
    assert starter.mine_hard_negatives(records, queries, positives, usable, 0.95) == [2, 2, 3, 0]
    usable[2] = False  # e.g. failed the consistency filter: neither mined for nor used
    assert starter.mine_hard_negatives(records, queries, positives, usable, 0.95) == [3, 3, -1, 0]


def test_step_cache_redoes_unfinished_or_changed_steps(tmp_path):
    cache, calls = starter.StepCache(), []

    def compute():
        calls.append(1)
        return {"rows": [[1, "a"]]}

    path = tmp_path / "step.json.gz"
    assert cache.get(path, {"v": 1}, compute) == {"rows": [[1, "a"]]}
    assert cache.get(path, {"v": 1}, compute) == {"rows": [[1, "a"]]} and len(calls) == 1
    cache.get(path, {"v": 2}, compute)  # other settings
    assert len(calls) == 2
    (tmp_path / "step.json.gz.key.json").unlink()  # interrupted before the key was written
    cache.get(path, {"v": 2}, compute)
    assert len(calls) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------ mini build


@pytest.fixture(scope="module")
def mini_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("starter")
    write_sample_sources(root / "raw")
    config = starter.StarterConfig(
        data_dir=root,
        heldout_manpages=1.0,  # both sample pages become the man-page evaluation set
        heldout_descriptions=0.0,
        negation_test=1.0,
        min_body_words=3,
    )
    manifest = starter.build_starter(config, BagOfWordsEmbedder())
    return root, config, manifest


def _jsonl(path: pathlib.Path) -> list:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f]


def test_mini_build_outputs(mini_build):
    root, _, manifest = mini_build
    counts = manifest["counts"]
    assert counts["train/pairs/wordnet_synonyms.jsonl.gz"] == 4
    assert counts["train/pairs/bible_paraphrase.jsonl.gz"] == 4
    assert counts["train/pairs/debian_descriptions.jsonl.gz"] == 2
    assert counts["train/pairs/manpages.jsonl.gz"] == 0  # all held out
    assert counts["eval/manpages/queries"] == 2
    assert counts["eval/python_faq/queries"] == 2
    assert counts["eval/debian_faq/queries"] == 4
    assert counts["eval/lee_sts/test.jsonl"] == 3
    assert counts["eval/negation/test.jsonl"] == 1
    assert _jsonl(root / "train/pairs/bible_paraphrase.jsonl.gz")[0] == [
        "In the beginning God created the heaven and the earth.",
        "In the beginning, God created the heavens and the earth.",
    ]
    beir = starter.load_starter(root).beir("debian_faq")
    assert beir.queries["q-faq-2.1"] == "Where can I get it?"
    assert beir.qrels["q-faq-2.1"] == {"faq-2.1": 1}
    negation = _jsonl(root / "eval/negation/test.jsonl")[0]
    assert negation["negative"] == "not having the necessary means or skill or know-how"
    assert manifest["sources"]["wordnet-base"]["version"] == "1:3.0-37"
    assert "| dataset | filter |" in (root / "filter_report.md").read_text()
    for triplet in _jsonl(root / "train/triplets/wordnet_definitions.jsonl.gz"):
        assert len(triplet) == 3 and triplet[2] != triplet[1]


def test_mini_build_keeps_eval_text_out_of_training(mini_build):
    root, _, _ = mini_build
    data = starter.load_starter(root)
    eval_texts = set()
    for name in starter.BEIR_SETS:
        beir = data.beir(name)
        eval_texts |= set(beir.queries.values()) | set(beir.corpus.values())
    for r in data.negations("test"):
        eval_texts |= {r.anchor, r.entailment, r.negative}
    eval_texts = {starter.heldout_key(t) for t in eval_texts}
    # the negation anchor "having the necessary means ..." is also able's WordNet definition
    assert any(
        t.startswith("having the necessary means")
        for t in (starter.heldout_key(t) for t in eval_texts)
    )
    train_texts = set()
    for name in starter.PAIR_DATASETS:
        for r in [*data.pairs(name), *data.triplets(name)]:
            train_texts |= {starter.heldout_key(t) for t in filters.sides(r)}
    for name in data.mlm_files:
        train_texts |= {starter.heldout_key(t) for t in data.texts(name)}
    assert train_texts.isdisjoint(eval_texts)
    assert not [d for d in data.texts("manpages")]  # every man page is held out


def test_mini_build_rerun_is_cached(mini_build):
    root, config, manifest = mini_build
    embedder = BagOfWordsEmbedder()
    calls = embedder.calls

    assert starter.build_starter(config, embedder)["built"] == manifest["built"]
    (root / "manifest.json").unlink()  # steps are still cached one by one
    rebuilt = starter.build_starter(config, embedder)
    assert not calls
    assert rebuilt["counts"] == manifest["counts"]
    assert len(rebuilt["cache_hits"]) == len(starter.EXTRACTORS) + len(starter.PAIR_DATASETS)


# ------------------------------------------------------------------------ real build


@pytest.mark.skipif(
    not (REAL_BUILD / "manifest.json").is_file(), reason=f"no starter build in {REAL_BUILD}"
)
def test_real_build_counts_and_disjoint_splits():
    data = starter.load_starter(REAL_BUILD)
    counts = data.manifest["counts"]
    source_counts = data.manifest["source_counts"]
    assert source_counts["man_pages"] > 1000
    assert source_counts["aligned_verses"] > 30000
    assert source_counts["debian_faq"] == 146
    assert source_counts["lee_pairs"] == 1225
    assert 500 < source_counts["negation_triplets"] < 1000
    assert counts["eval/lee_sts/test.jsonl"] == 1225
    assert counts["eval/python_faq/queries"] > 150
    eval_texts = set()
    for name in starter.BEIR_SETS:
        beir = data.beir(name)
        assert beir.queries and set(beir.qrels) <= set(beir.queries)
        eval_texts |= set(beir.queries.values()) | set(beir.corpus.values())
    eval_texts = {starter.heldout_key(t) for t in eval_texts}
    for name in ("manpages", "python_docs", "debian_descriptions"):
        for r in data.pairs(name):
            assert starter.heldout_key(r.query) not in eval_texts
            assert starter.heldout_key(r.positive) not in eval_texts
