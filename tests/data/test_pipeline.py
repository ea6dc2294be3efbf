"""PairBatches / MLMBatches: contents against the Hugging Face tokenizer itself, bucketed
shapes, one dataset per batch, per-host slices, and resuming from a saved position."""

import numpy as np
import pytest

from jina_jax.data.masking import IGNORE_INDEX
from jina_jax.data.pipeline import (
    BatchIterator,
    MLMBatches,
    PairBatches,
    one_per_row,
    pack_sequences,
    packed_row_count,
)
from jina_jax.data.records import PairRecord
from jina_jax.data.sampler import DatasetSpec
from jina_jax.tokenization import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    return load_tokenizer(minilm_dir)


@pytest.fixture(scope="module")
def sources(real_sentences):
    s = real_sentences
    qa = [
        PairRecord(f"qa {s[i]}", s[i + 1], (s[i + 2], s[(i + 3) % len(s)], s[(i + 4) % len(s)]))
        for i in range(0, 200)
    ]
    para = [PairRecord(f"para {s[i]}", s[-i - 1]) for i in range(60)]
    return {"qa": qa, "para": para}


SPECS = [
    DatasetSpec(
        "qa",
        scale=1.0,
        batch_size=8,
        query_prefix="query: ",
        passage_prefix="passage: ",
        num_negatives=2,
    ),
    DatasetSpec("para", scale=3.0, batch_size=4, in_batch_negatives=False),
]


def make_batches(sources, tokenizer, **kwargs):
    return PairBatches(
        sources, SPECS, tokenizer, query_max_length=64, passage_max_length=96, seed=5, **kwargs
    )


def texts_of(batch) -> list[list[int]]:
    """Each text's token ids, in text order, read back through its segment id."""
    count = len(batch["query_lengths"]) + len(batch["docs_lengths"])
    return [batch["ids"][batch["segments"] == i + 1].tolist() for i in range(count)]


def test_pair_batches_match_the_hf_tokenizer(sources, tokenizer):
    batches = make_batches(sources, tokenizer, pack=False)  # one text per row, bucketed
    seen = set()
    for step in range(30):
        batch = batches.batch_at(step)
        spec, records = batches.records_at(step)
        seen.add(spec.name)
        assert batch["dataset"] == spec.name
        assert batch["in_batch_negatives"] == np.bool_(spec.in_batch_negatives)
        # One dataset per batch: every query carries the dataset's tag.
        assert all(r.query.startswith(f"{spec.name} ") for r in records)
        b = len(batch["query_lengths"])
        rows, length = batch["ids"].shape
        texts = texts_of(batch)
        assert b == spec.batch_size and rows == len(texts) == b * (2 + spec.num_negatives)
        assert length in (16, 32, 64, 96)
        hf = tokenizer.hf
        for i, record in enumerate(records):
            expected_q = hf(spec.query_prefix + record.query, truncation=True, max_length=64)
            assert texts[i] == expected_q["input_ids"]
            expected_p = hf(spec.passage_prefix + record.positive, truncation=True, max_length=96)
            assert texts[b + i] == expected_p["input_ids"]
        # padding uses the pad id
        assert (batch["ids"][batch["segments"] == 0] == tokenizer.pad_id).all()
        if spec.num_negatives:
            assert len(batch["docs_lengths"]) == b * 3
            for i, record in enumerate(records):
                for k in range(2):
                    expected = hf(
                        spec.passage_prefix + record.negatives[k], truncation=True, max_length=96
                    )
                    assert texts[2 * b + 2 * i + k] == expected["input_ids"]
        else:
            assert len(batch["docs_lengths"]) == b
        # the longest text sets the shared bucket
        longest = max(len(t) for t in texts)
        assert length == next(x for x in (16, 32, 64, 96) if x >= longest)
        np.testing.assert_array_equal(
            np.concatenate([batch["query_lengths"], batch["docs_lengths"]]),
            [len(t) for t in texts],
        )
    assert seen == {"qa", "para"}


def test_too_few_negatives_is_an_error(sources, tokenizer):
    bad = dict(sources, qa=[PairRecord("qa q", "p", ("only one",))] * 20)
    batches = make_batches(bad, tokenizer)
    step = next(s for s in range(100) if batches.sampler.dataset_at(s) == "qa")
    with pytest.raises(ValueError, match="fewer than 2 negatives"):
        batches.batch_at(step)


def assert_same_batch(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        else:
            assert a[key] == b[key], key


def test_resume_from_a_saved_position_gives_the_same_batches(sources, tokenizer):
    uninterrupted = [make_batches(sources, tokenizer).batch_at(step) for step in range(12)]
    with make_batches(sources, tokenizer).iterator(prefetch=3) as iterator:
        for _ in range(5):
            next(iterator)
        state = iterator.get_state()
        assert state == {"step": 5}
        next(iterator)  # runs on past the save point before the "crash"
    # A fresh pipeline (new process in real life) restored from the saved state.
    restored = make_batches(sources, tokenizer).iterator(prefetch=2)
    restored.set_state(state)
    for step in range(5, 12):
        assert_same_batch(next(restored), uninterrupted[step])
    restored.set_state({"step": 2})  # rewinding drops the batches computed ahead
    assert_same_batch(next(restored), uninterrupted[2])
    restored.close()


def texts_by_segment(batch) -> dict[int, list[int]]:
    """Token ids of every text of a batch (or of hosts' rows together), by global segment id."""
    out: dict[int, list[int]] = {}
    for row_ids, row_segments in zip(batch["ids"], batch["segments"]):
        for token, segment in zip(row_ids.tolist(), row_segments.tolist()):
            if segment:
                out.setdefault(segment, []).append(token)
    return out


@pytest.mark.parametrize("pack", [False, True])
def test_hosts_read_their_own_records_of_the_global_batch(sources, tokenizer, pack):
    """Two hosts, each laying out only its half of the records, together hold the one-host batch:
    the same texts under the same global segment ids, the same per-text lengths, and equal row
    counts on both hosts."""
    single = make_batches(sources, tokenizer, pack=pack, row_multiple=2)
    hosts = [
        make_batches(sources, tokenizer, process_index=i, process_count=2, pack=pack)
        for i in range(2)
    ]
    for step in range(10):
        whole = single.batch_at(step)
        parts = [host.batch_at(step) for host in hosts]
        assert parts[0]["ids"].shape == parts[1]["ids"].shape
        together = {
            key: np.concatenate([p[key] for p in parts])
            for key in ("ids", "segments", "query_lengths", "docs_lengths")
        }
        assert texts_by_segment(together) == texts_by_segment(whole)
        for key in ("query_lengths", "docs_lengths"):
            np.testing.assert_array_equal(together[key], whole[key])
        assert all(p["dataset"] == whole["dataset"] for p in parts)


def test_one_per_row_bucket_and_iterator_basics():
    rows = one_per_row([np.array([1, 2, 3]), np.array([4] * 17)], 100, pad_id=0)
    ids, mask = rows["ids"], rows["segments"] > 0
    assert ids.shape == (2, 32) and mask.sum() == 20 and ids[0, 3] == 0
    ids = one_per_row([np.array([1] * 70)], 100, pad_id=0)["ids"]
    assert ids.shape == (1, 100)  # capped at the max length, not 128
    it = BatchIterator(lambda step: {"step": step}, step=3)
    assert [next(it)["step"] for _ in range(3)] == [3, 4, 5] and it.get_state() == {"step": 6}


def test_mlm_batches_whole_word_masking(real_sentences, tokenizer):
    texts = real_sentences[:100]
    mlm = MLMBatches(texts, tokenizer, max_length=48, batch_size=16, seed=0, mask_prob=0.3)
    total = masked_tokens = 0
    for step in range(8):
        batch = mlm.batch_at(step)
        ids, mask, labels = batch["ids"], batch["segments"] > 0, batch["labels"]
        assert ids.shape == mask.shape == labels.shape and ids.shape[0] == 16
        assert ids.shape[1] in (16, 32, 48)
        _, indices = mlm.sampler.global_plan(step)
        encoded = tokenizer.hf([texts[i] for i in indices], truncation=True, max_length=48)
        for row, original in enumerate(encoded["input_ids"]):
            n = len(original)
            chosen = labels[row] != IGNORE_INDEX
            # labels hold the original ids; unchosen positions are untouched
            np.testing.assert_array_equal(
                labels[row, :n][chosen[:n]], np.array(original)[chosen[:n]]
            )
            np.testing.assert_array_equal(
                ids[row, :n][~chosen[:n]], np.array(original)[~chosen[:n]]
            )
            assert not chosen[0] and not chosen[n - 1] and not chosen[n:].any()  # CLS, SEP, pad
            # whole words: all sub-tokens of a word are chosen together
            words = encoded.word_ids(row)
            for word in set(w for w in words if w is not None):
                positions = [i for i, w in enumerate(words) if w == word]
                assert len(set(chosen[positions].tolist())) == 1
            total += n - 2
            masked_tokens += chosen.sum()
    assert 0.25 < masked_tokens / total < 0.35
    # resume: a fresh object gives the same batch for the same step
    again = MLMBatches(texts, tokenizer, max_length=48, batch_size=16, seed=0).batch_at(5)
    assert_same_batch(again, mlm.batch_at(5))


def test_mlm_hosts_read_their_own_documents(real_sentences, tokenizer):
    """Two hosts each tokenise and mask only their half of an MLM batch; per document (by global
    segment id) tokens, masks and labels equal the one-host batch's."""
    texts = real_sentences[:100]

    def make(**kwargs):
        return MLMBatches(texts, tokenizer, max_length=48, batch_size=16, seed=0, **kwargs)

    single = make()
    hosts = [make(process_index=i, process_count=2) for i in range(2)]
    for step in range(4):
        whole = single.batch_at(step)
        parts = [host.batch_at(step) for host in hosts]
        assert parts[0]["ids"].shape == parts[1]["ids"].shape == (8, 48)
        for key in ("ids", "labels"):
            by_doc = {}
            for part in parts:
                for row, segments in zip(part[key], part["segments"]):
                    by_doc[int(segments.max())] = row[segments > 0].tolist()
            expected = {
                int(segments.max()): row[segments > 0].tolist()
                for row, segments in zip(whole[key], whole["segments"])
            }
            assert by_doc == expected, key


def test_packed_row_count_equals_packing():
    """The worst-case row count (``jina_jax.aot``) without building the rows: random length
    groups against ``pack_sequences``'s own row use, and the v2 pod batch by hand."""
    rng = np.random.default_rng(0)
    for _ in range(200):
        length = int(rng.integers(8, 80))
        counts = {int(rng.integers(1, length + 1)): int(rng.integers(1, 30)) for _ in range(3)}
        texts = [np.ones(n, np.int32) for n, c in counts.items() for _ in range(c)]
        used = int((pack_sequences(texts, length, 0, 1, 1 << 20)["segments"].max(1) > 0).sum())
        assert packed_row_count(counts, length) == used, (counts, length)
    # 4096 positives of 512 tokens fill a row each; 4096 queries of 64 go 8 to a row
    assert packed_row_count({64: 4096, 512: 4096}, 512) == 4096 + 512
