"""TFDS array_record datasets without TensorFlow: round trips, atomic writes, and resuming the
batch pipeline and a grain loader over them."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from jina_jax.data.pipeline import PairBatches, tokenize_pairs
from jina_jax.data.records import NegationRecord, PairRecord, STSRecord
from jina_jax.data.sampler import DatasetSpec
from jina_jax.data.tfds_builder import grain_loader, load_tfds, write_tfds

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
PAIRS = [
    PairRecord(f"query {i} – café", f"positive {i}", tuple(f"neg {i}.{k}" for k in range(i % 3)))
    for i in range(40)
]


def test_build_and_read_back_without_tensorflow(tmp_path):
    """In a fresh interpreter where TensorFlow cannot be imported."""
    script = textwrap.dedent(
        f"""
        import importlib.abc, importlib.util, json, sys

        class HideTensorFlow(importlib.abc.MetaPathFinder):  # a finder that never finds TF
            def __init__(self, finder):
                self.finder = finder

            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "tensorflow":
                    return None
                return self.finder.find_spec(name, path, target)

        # As if TensorFlow were not installed, even where it is.
        sys.meta_path[:] = [HideTensorFlow(finder) for finder in sys.meta_path]
        assert importlib.util.find_spec("tensorflow") is None
        from jina_jax.data.records import PairRecord
        from jina_jax.data.tfds_builder import load_tfds, write_tfds

        records = [PairRecord(q, p, tuple(n)) for q, p, n in json.loads(sys.argv[1])]
        folder = write_tfds(records, {str(tmp_path / "pairs")!r})
        back = load_tfds(folder)
        assert list(back) == records, "round trip differs"
        assert "tensorflow" not in sys.modules
        print("OK", len(back))
        """
    )
    payload = json.dumps([[r.query, r.positive, list(r.negatives)] for r in PAIRS])
    result = subprocess.run(
        [sys.executable, "-c", script, payload],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == "OK 40"
    files = sorted(os.listdir(tmp_path / "pairs"))
    assert files == [
        "dataset_info.json",
        "features.json",
        "records-train.array_record-00000-of-00001",
    ]


def test_round_trip_of_every_record_type(tmp_path):
    cases = {
        "negation": [NegationRecord("a man sleeps", "a person sleeps", "nobody sleeps")] * 3,
        "sts": [STSRecord("a", "b", 1 / 3), STSRecord("c", "d", 4.75)],
        "text": ["first document\nwith two lines", "second 文档"],
    }
    for name, records in cases.items():
        back = load_tfds(write_tfds(records, tmp_path / name))
        assert list(back) == records and len(back) == len(records)
        assert back[-1] == records[-1] and back[0:2] == records[0:2]
    folder = write_tfds({"train": PAIRS[:30], "test": PAIRS[30:]}, tmp_path / "splits")
    assert list(load_tfds(folder, "train")) == PAIRS[:30]
    assert list(load_tfds(folder, "test")) == PAIRS[30:]
    with pytest.raises(TypeError, match="mixed record types"):
        write_tfds([PAIRS[0], "text"], tmp_path / "mixed")
    assert not (tmp_path / "mixed").exists()


def test_an_interrupted_rebuild_leaves_the_old_dataset_intact(tmp_path):
    folder = write_tfds(PAIRS, tmp_path / "pairs")
    with pytest.raises(FileExistsError):
        write_tfds(PAIRS[:3], folder)

    def dying_stream():
        yield from PAIRS[:10]
        raise KeyboardInterrupt  # the build is killed halfway

    with pytest.raises(KeyboardInterrupt):
        write_tfds(dying_stream(), folder, overwrite=True)
    assert list(load_tfds(folder)) == PAIRS
    assert sorted(os.listdir(tmp_path)) == ["pairs"]  # no scratch folders left behind
    write_tfds(PAIRS[:5], folder, overwrite=True)
    assert list(load_tfds(folder)) == PAIRS[:5]
    assert sorted(os.listdir(tmp_path)) == ["pairs"]


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    from jina_jax.tokenization import load_tokenizer

    return load_tokenizer(minilm_dir)


def test_pair_batches_over_tfds_resume_and_match_in_memory(tmp_path, tokenizer):
    other = [PairRecord(f"other {i}", f"text {i}") for i in range(25)]
    sources = {
        "pairs": load_tfds(write_tfds(PAIRS, tmp_path / "pairs")),
        "other": load_tfds(write_tfds(other, tmp_path / "other")),
    }
    specs = [DatasetSpec("pairs", batch_size=4), DatasetSpec("other", batch_size=8)]

    def make(sources):
        return PairBatches(sources, specs, tokenizer, 32, 32, seed=11)

    in_memory = make({"pairs": PAIRS, "other": other})
    uninterrupted = [in_memory.batch_at(step) for step in range(10)]
    iterator = make(sources).iterator(prefetch=2)
    for step in range(4):
        batch = next(iterator)
        np.testing.assert_array_equal(batch["ids"], uninterrupted[step]["ids"])
    state = iterator.get_state()
    iterator.close()
    restored = make(sources).iterator()
    restored.set_state(state)
    for step in range(4, 10):
        batch = next(restored)
        assert batch["dataset"] == uninterrupted[step]["dataset"]
        for key in ("ids", "segments", "positions", "query_lengths", "docs_lengths"):
            np.testing.assert_array_equal(batch[key], uninterrupted[step][key])


def test_grain_loader_resumes_and_shards(tmp_path, tokenizer):
    records = load_tfds(write_tfds(PAIRS, tmp_path / "pairs"))
    spec = DatasetSpec("pairs", batch_size=4)

    def loader(**kwargs):
        return grain_loader(
            records,
            batch_size=4,
            seed=3,
            batch_fn=lambda batch: tokenize_pairs(batch, spec, tokenizer, 32, 32),
            **kwargs,
        )

    iterator = iter(loader())
    first = [next(iterator) for _ in range(3)]
    state = iterator.get_state()
    after = [next(iterator) for _ in range(4)]
    restored = iter(loader())
    restored.set_state(state)
    for expected in after:
        got = next(restored)
        for key in ("ids", "segments", "query_lengths", "docs_lengths"):
            np.testing.assert_array_equal(got[key], expected[key])
    assert not np.array_equal(first[0]["ids"], after[0]["ids"])

    # Two hosts read disjoint halves of the records, together all of them (one epoch).
    seen = []
    for host in range(2):
        host_loader = grain_loader(
            records, batch_size=4, seed=3, num_epochs=1, process_index=host, process_count=2
        )
        seen.append([r for batch in host_loader for r in batch])
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1], key=PAIRS.index) == PAIRS
