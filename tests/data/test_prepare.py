"""The Beam data preparation (DirectRunner): it keeps exactly the records the in-process filter
chain keeps on raw starter-corpus pairs, with the same reports; its token ids are the
tokenizer's own and its order does not depend on parallelism; bad lines are named file:line;
a failed run leaves nothing behind."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pathlib
import zlib

import numpy as np
import pytest

from jina_jax.data import filters
from jina_jax.data.filters import FilterReport
from jina_jax.data.hashing import normalize_text
from jina_jax.data.prepare import prepare
from jina_jax.data.prepared import PreparedDataset
from jina_jax.data.readers import read_pairs
from jina_jax.data.records import PairRecord
from jina_jax.tokenization import jina_v2_tokenizer

STARTER = pathlib.Path(
    os.environ.get("JINA_STARTER_DIR", pathlib.Path(__file__).parents[2] / "data_cache" / "starter")
)
EXTRACT = STARTER / "cache" / "extract"
PREFIXES = {"query_prefix": "query: ", "passage_prefix": "passage: "}
LENGTHS = {"query_max_length": 16, "passage_max_length": 48}

needs_starter = pytest.mark.skipif(
    not (EXTRACT / "manpages.json.gz").is_file(), reason=f"no starter extract in {EXTRACT}"
)


class BagOfWords:
    """A deterministic stand-in for the auxiliary model: hashed word counts, L2-normalised."""

    def embed(self, texts, *, max_length=None):
        out = np.zeros((len(texts), 64), np.float32)
        for i, text in enumerate(texts):
            for word in normalize_text(text).split():
                out[i, zlib.crc32(word.encode()) % 64] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


class WordOverlap:
    """A stand-in cross-encoder: score = number of shared words."""

    def predict(self, pairs, batch_size=32):
        return [len(set(a.split()) & set(b.split())) for a, b in pairs]


def fail_on_shard_one(shard: int) -> None:
    if shard == 1:
        raise RuntimeError("planted failure writing shard 1")


def chain():
    return [
        filters.ExactDedup(),
        filters.NearDedup(),
        filters.LanguageFilter(),
        filters.ConsistencyFilter(embedder=BagOfWords(), sample_size=100, judge="sample"),
    ]


def order_key(texts) -> bytes:  # by hand: sha1 of the JSON list of normalised texts
    return hashlib.sha1(json.dumps([normalize_text(t) for t in texts]).encode()).digest()


def unprefixed(record: PairRecord) -> PairRecord:
    strip = lambda text, prefix: text.removeprefix(prefix)  # noqa: E731
    return PairRecord(
        strip(record.query, "query: "),
        strip(record.positive, "passage: "),
        tuple(strip(n, "passage: ") for n in record.negatives),
    )


@pytest.fixture(scope="module")
def tokenizer():
    return jina_v2_tokenizer()


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """Two raw files from the starter extract: man page summaries -> descriptions (dict rows,
    one malformed line), Debian package summaries -> descriptions (list rows, with five
    upper-cased repeats). The Debian descriptions hold near-duplicates and non-English text."""
    folder = tmp_path_factory.mktemp("raw")
    manpages = json.loads(gzip.decompress((EXTRACT / "manpages.json.gz").read_bytes()))
    debian = json.loads(gzip.decompress((EXTRACT / "debian_descriptions.json.gz").read_bytes()))
    with open(folder / "a_manpages.jsonl", "w") as f:
        for i, (_, summary, body) in enumerate(manpages[:150]):
            f.write(json.dumps({"query": summary, "positive": body}) + "\n")
            if i == 0:
                f.write('{"query": "a line cut short\n')  # line 2
    with open(folder / "b_debian.jsonl", "w") as f:
        for _, summary, body, _ in debian[:150]:
            f.write(json.dumps([summary, body]) + "\n")
        for _, summary, body, _ in debian[:5]:
            f.write(json.dumps([summary.upper(), body]) + "\n")
    return folder


def _run(raw, out, tokenizer, beam_args=()):
    return prepare(
        [str(raw / "*.jsonl")],
        out,
        tokenizer=tokenizer,
        tokenizer_name="jina_v2",
        filters=chain(),
        dataset="starter",
        num_shards=4,
        beam_args=beam_args,
        **PREFIXES,
        **LENGTHS,
    )


@pytest.fixture(scope="module")
def one_worker(raw, tokenizer, tmp_path_factory):
    return _run(raw, tmp_path_factory.mktemp("one") / "ds", tokenizer, ["--direct_num_workers=1"])


@pytest.fixture(scope="module")
def two_workers(raw, tokenizer, tmp_path_factory):
    args = ["--direct_num_workers=2", "--direct_running_mode=multi_threading"]
    return _run(raw, tmp_path_factory.mktemp("two") / "ds", tokenizer, args)


@needs_starter
def test_beam_keeps_the_records_and_reports_of_the_in_process_filters(raw, one_worker):
    records = [r for path in sorted(raw.glob("*.jsonl")) for r in read_pairs(path)]
    expected, reports = filters.run_filters(records, chain(), dataset="starter")
    # every filter removed something, so agreement is not trivial
    assert [r.n_removed > 0 for r in reports] == [True] * 4, reports
    assert reports[0].removed_by_reason == {"duplicate": 5}
    data = PreparedDataset(one_worker.folder)
    got = [unprefixed(r) for r in data.records(range(len(data)))]
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    assert [FilterReport(**r) for r in one_worker.report["filters"]] == reports
    assert one_worker.report["read"]["num_records"] == len(records) == 305
    # the global order: by the hash of the normalised texts, not the input order
    keys = [order_key([r.query, r.positive]) for r in got]
    assert keys == sorted(keys) and got != expected


@needs_starter
def test_token_ids_lengths_and_order_do_not_depend_on_parallelism(
    one_worker, two_workers, tokenizer
):
    data = PreparedDataset(one_worker.folder)
    meta = data.meta
    assert meta["max_lengths"] == {"query": 16, "passage": 48} and meta["sides"] == 2
    assert meta["prefixes"] == {"query": "query: ", "passage": "passage: "}
    assert meta["tokenizer"]["name"] == "jina_v2" and meta["tokenizer"]["vocab_size"] == 30528
    assert len(meta["shards"]) == 4 and data.lengths.dtype == np.uint16
    indices, truncated = range(len(data)), {"query": 0, "passage": 0}
    for i, ids, record in zip(indices, data.token_ids(indices), data.records(indices)):
        # the stored texts carry the prefixes; the ids are the HF tokenizer's own for them
        assert record.query.startswith("query: ") and record.positive.startswith("passage: ")
        query = tokenizer.hf(record.query, truncation=True, max_length=16)["input_ids"]
        passage = tokenizer.hf(record.positive, truncation=True, max_length=48)["input_ids"]
        assert [ids[0].tolist(), ids[1].tolist()] == [query, passage]
        assert data.lengths[i].tolist() == [len(query), len(passage)]
        truncated["query"] += len(tokenizer.hf(record.query)["input_ids"]) > 16
        truncated["passage"] += len(tokenizer.hf(record.positive)["input_ids"]) > 48
    assert one_worker.report["truncated"] == truncated
    # two workers: the same bytes in every file
    files = sorted(p.name for p in one_worker.folder.iterdir())
    assert files == sorted(p.name for p in two_workers.folder.iterdir())
    assert files == sorted([*meta["shards"], "lengths.npy", "prepared.json", "filter_report.json"])
    for name in files:
        assert (one_worker.folder / name).read_bytes() == (two_workers.folder / name).read_bytes()


@needs_starter
def test_a_malformed_line_is_reported_as_file_and_line(raw, one_worker):
    read = one_worker.report["read"]
    assert read["skipped"] == {"malformed_json": 1}
    assert read["examples"][0].startswith(f"{raw / 'a_manpages.jsonl'}:2: malformed_json")
    assert f"{raw / 'a_manpages.jsonl'}:2: malformed_json" in one_worker.summary()


def test_triplets_consistency_cross_encoder_and_negatives(tmp_path, tokenizer, real_sentences):
    """Triplets with 2 negatives (3 with only 1, 6 with an unrelated positive): --num-negatives 2
    drops the short ones; the consistency filter judges every pair against a sample of 20; the
    cross-encoder margin follows; as in one process."""
    s = real_sentences
    records = [
        PairRecord(" ".join(s[i].split()[:6]), s[i], (s[i + 1], s[i + 2])) for i in range(60)
    ]
    planted = [
        PairRecord(" ".join(s[i].split()[:6]), s[30 + i], ("xyzzy plugh", "frobnicate quux"))
        for i in range(6)
    ]
    short = [PairRecord(f"short {i}", s[100 + i], (s[200 + i],)) for i in range(3)]
    with open(tmp_path / "triplets.jsonl", "w") as f:
        for r in records + short + planted:
            f.write(json.dumps({"query": r.query, "pos": r.positive, "neg": list(r.negatives)}))
            f.write("\n")
    stages = [
        filters.ConsistencyFilter(embedder=BagOfWords(), sample_size=20),
        filters.CrossEncoderFilter(WordOverlap(), margin=1.0),
    ]
    result = prepare(
        [str(tmp_path / "triplets.jsonl")],
        tmp_path / "ds",
        tokenizer=tokenizer,
        tokenizer_name="jina_v2",
        filters=stages,
        num_negatives=2,
        num_shards=3,
        **LENGTHS,
    )
    expected, reports = filters.run_filters(records + planted, stages, dataset="ds")
    assert not set(planted) & set(expected)
    assert [r.n_removed for r in reports] == [6, 3] and reports[0].note == ""  # all judged
    negatives, *beam_reports = [FilterReport(**r) for r in result.report["filters"]]
    assert negatives == FilterReport("negatives", "ds", 69, 66, {"fewer than 2 negatives": 3})
    assert beam_reports == reports
    data = PreparedDataset(result.folder)
    assert data.meta["num_negatives"] == 2 and data.lengths.shape == (len(expected), 4)
    assert sorted(data.records(range(len(data))), key=repr) == sorted(expected, key=repr)
    ids = data.token_ids([0])[0]
    record = data[0]
    assert (
        ids[3].tolist()
        == tokenizer.hf(record.negatives[1], max_length=48, truncation=True)["input_ids"]
    )


def test_texts(tmp_path, tokenizer, real_sentences):
    lines = [
        *real_sentences[:30],
        real_sentences[3].upper(),
        "",
        "Das ist ein deutscher Satz hier.",
    ]
    (tmp_path / "docs.txt").write_text("\n".join(lines) + "\n")
    result = prepare(
        [str(tmp_path)],
        tmp_path / "ds",
        kind="texts",
        tokenizer=tokenizer,
        tokenizer_name="jina_v2",
        filters=[filters.ExactDedup(), filters.LanguageFilter()],
        max_length=24,
        num_shards=2,
    )
    texts = [line.strip() for line in lines if line.strip()]
    stages = [filters.ExactDedup(), filters.LanguageFilter()]
    expected, reports = filters.run_filters(texts, stages, dataset="ds")
    assert [r.n_removed for r in reports] == [1, 1]
    assert [FilterReport(**r) for r in result.report["filters"]] == reports
    data = PreparedDataset(result.folder)
    assert data.meta["kind"] == "texts" and data.meta["max_lengths"] == {"text": 24}
    assert data.lengths.shape == (len(expected), 1)
    stored = data.records(range(len(data)))
    assert sorted(stored) == sorted(expected)
    for text, ids in zip(stored, data.token_ids(range(len(data)))):
        assert ids[0].tolist() == tokenizer.hf(text, truncation=True, max_length=24)["input_ids"]


def test_a_failed_run_leaves_no_output_and_keeps_an_existing_one(tmp_path, tokenizer):
    (tmp_path / "pairs.jsonl").write_text(
        "".join(json.dumps([f"query {i}", f"passage number {i}"]) + "\n" for i in range(20))
    )
    out = tmp_path / "ds"
    out.mkdir()
    (out / "prepared.json").write_text("the old dataset")
    kwargs = {"tokenizer": tokenizer, "tokenizer_name": "jina_v2", "num_shards": 4}
    with pytest.raises(FileExistsError, match="--overwrite"):
        prepare([str(tmp_path / "pairs.jsonl")], out, **kwargs)
    with pytest.raises(Exception, match="planted failure writing shard 1"):
        prepare(
            [str(tmp_path / "pairs.jsonl")], out, overwrite=True, fault=fail_on_shard_one, **kwargs
        )
    with pytest.raises(FileNotFoundError, match="no input files"):
        prepare([str(tmp_path / "missing-*.jsonl")], tmp_path / "new", **kwargs)
    assert (out / "prepared.json").read_text() == "the old dataset"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "pairs.jsonl"]  # no staging
