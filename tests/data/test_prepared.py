"""Prepared datasets: the on-disk format round-trips, token ids equal the tokenizer's own,
reads name a damaged shard, writes are all-or-nothing; and the row bound every host computes is
never below what first-fit decreasing packing uses."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from jina_jax.data.pipeline import PairBatches, pack_sequences, packed_rows_bound
from jina_jax.data.prepared import (
    CorruptShardError,
    PreparedDataset,
    tokenizer_identity,
    write_prepared,
)
from jina_jax.data.records import PairRecord
from jina_jax.data.sampler import DatasetSpec
from jina_jax.tokenization import jina_v2_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return jina_v2_tokenizer()


def _pairs(sentences, n):
    return [
        PairRecord(" ".join(s.split()[:5]), s, (sentences[(i + 7) % n],))
        for i, s in enumerate(sentences[:n])
    ]


def _write(folder, tokenizer, records, **kwargs):
    def rows():
        for r in records:
            texts = [r.query, r.positive, *r.negatives]
            q, _ = tokenizer.encode_batch(texts[:1], 16)
            p, _ = tokenizer.encode_batch(texts[1:], 32)
            yield [*q, *p], texts

    return write_prepared(
        folder,
        rows(),
        num_records=len(records),
        kind="pairs",
        num_negatives=1,
        tokenizer=tokenizer_identity(tokenizer),
        max_lengths={"query": 16, "passage": 32},
        **kwargs,
    )


def test_round_trip_against_the_tokenizer(tmp_path, tokenizer, real_sentences):
    records = _pairs(real_sentences, 50)
    data = PreparedDataset(_write(tmp_path / "ds", tokenizer, records, num_shards=4))
    assert len(data) == 50 and data.meta["sides"] == 3
    assert len(data.meta["shards"]) == 4
    picked = [3, 49, 0, 17, 17]
    for i, ids in zip(picked, data.token_ids(picked)):
        expected_q = tokenizer.hf(records[i].query, truncation=True, max_length=16)["input_ids"]
        expected_p = tokenizer.hf(records[i].positive, truncation=True, max_length=32)["input_ids"]
        assert ids[0].tolist() == expected_q and ids[1].tolist() == expected_p
        assert data.lengths[i].tolist() == [len(x) for x in ids]
    assert data.records(picked) == [records[i] for i in picked]
    assert data[-1] == records[-1] and data[2:4] == records[2:4]


def test_damaged_shard_is_named_and_writes_are_atomic(tmp_path, tokenizer, real_sentences):
    records = _pairs(real_sentences, 40)
    folder = _write(tmp_path / "ds", tokenizer, records, num_shards=2)
    shard = folder / "records-00001-of-00002.array_record"
    shard.write_bytes(shard.read_bytes()[:100])  # truncated
    data = PreparedDataset(folder)
    assert data.records([0])[0] == records[0]  # the other shard still reads
    with pytest.raises(CorruptShardError, match=re.escape("records-00001-of-00002.array_record")):
        data.token_ids([39])
    # a failed write leaves nothing; an existing dataset is not replaced without overwrite
    meta_before = (folder / "prepared.json").read_text()
    with pytest.raises(FileExistsError):
        _write(folder, tokenizer, records)

    def broken():
        yield [np.array([1], np.int32)] * 3, ["a", "b", "c"]
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        write_prepared(
            folder,
            broken(),
            num_records=5,
            kind="pairs",
            num_negatives=1,
            tokenizer={},
            max_lengths={},
            overwrite=True,
        )
    assert (folder / "prepared.json").read_text() == meta_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no staging folder left
    meta = json.loads(meta_before)
    meta["format"] = "jina_jax.prepared/0"
    (folder / "prepared.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=re.escape("format 'jina_jax.prepared/0'")):
        PreparedDataset(folder)


def test_rows_bound_is_never_below_first_fit_decreasing():
    rng = np.random.default_rng(0)
    worst_slack = 0
    for trial in range(600):
        length = int(rng.choice([8, 16, 64, 512]))
        n = int(rng.integers(1, 50))
        if trial % 3 == 0:
            lengths = rng.integers(1, length + 1, n)
        elif trial % 3 == 1:  # many short texts, a few long ones (real pairs look like this)
            lengths = np.clip((rng.pareto(1.5, n) * length / 6).astype(int) + 1, 1, length)
        else:  # sizes around 1/2, 1/3, 1/4 of a row: first-fit's hard cases
            choices = [length // 2 + 1, length // 3 + 1, length // 4 + 1, max(1, length // 2)]
            lengths = rng.choice(choices, n)
        rows = [np.zeros(int(x), np.int32) for x in lengths]
        used = pack_sequences(rows, length, 0, steps_per_octave=1 << 20)["ids"].shape[0]
        bound = int(packed_rows_bound(lengths[None], length)[0])
        assert bound >= used, (length, lengths.tolist(), used, bound)
        assert bound >= int(np.ceil(lengths.sum() / length))
        worst_slack = max(worst_slack, bound - used)
    # by hand: three texts of 5 tokens in rows of 8: longer than 8/2, one row each
    assert packed_rows_bound(np.array([[5, 5, 5]]), 8).tolist() == [3]
    # [4, 4, 3, 3, 2] in rows of 8 (packing uses 2): f(4) = 0; class (3, 4]: ceil(8 / 4) = 2;
    # (2, 3]: ceil(14 / 5) = 3; (1, 2]: ceil(16 / 6) = 3; (0, 1] is empty -> 3
    assert packed_rows_bound(np.array([[4, 4, 3, 3, 2]]), 8).tolist() == [3]
    assert worst_slack < 40


def test_oversized_raw_source_is_refused_naming_prepare(tmp_path):
    from jina_jax.data.catalog import pair_source_from_path

    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(json.dumps([f"q{i}", f"p{i} " * 50]) for i in range(2000)))
    size_mb = path.stat().st_size / 2**20
    with pytest.raises(ValueError, match=r"max_raw_mb=0\.1: raw files are read whole") as error:
        pair_source_from_path(str(path), max_raw_mb=0.1)
    assert "python -m jina_jax.data.prepare" in str(error.value)
    assert f"{size_mb:,.0f} MB" in str(error.value)
    assert len(pair_source_from_path(str(path), max_raw_mb=size_mb + 1)) == 2000  # under the limit


def test_training_draws_a_chunk_of_consecutive_records_at_a_time(
    tmp_path, tokenizer, real_sentences
):
    records = _pairs(real_sentences, 100)
    data = PreparedDataset(_write(tmp_path / "ds", tokenizer, records, num_shards=4))
    assert data.meta["records_per_chunk"] == 16 == data.block
    # shards start on chunk boundaries: 100 records in 4 shards -> 16, 32, 16, 36 records
    assert data._starts.tolist() == [0, 16, 48, 64]
    assert data.records(range(100)) == records
    batches = PairBatches({"d": data}, [DatasetSpec("d", batch_size=32)], tokenizer, 16, 32, seed=0)
    _, indices = batches.sampler.global_plan(3)
    runs = indices.reshape(2, 16)
    np.testing.assert_array_equal((runs - runs[:, :1]) % 100, np.tile(np.arange(16), (2, 1)))
    # the batch holds those records' token ids: queries first, in batch order
    batch = batches.batch_at(3)
    ids = data.token_ids(indices)
    first = batch["ids"][batch["segments"] == 1]  # text 0: the first record's query
    assert first.tolist() == ids[0][0].tolist()
    np.testing.assert_array_equal(batch["query_lengths"], data.lengths[indices, 0])
    # lengths of whole blocks (gathered a block at a time) and of any indices agree
    np.testing.assert_array_equal(data.lengths_at(indices, 2), data.lengths[indices, :2])
    np.testing.assert_array_equal(data.lengths_at(indices[3:9], 1), data.lengths[indices[3:9], :1])
