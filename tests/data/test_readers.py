"""Readers on hand-made files with known contents, and a fuzz run over broken files whose bad
lines are worked out independently (by splitting the raw bytes)."""

import gzip
import json
import random
import re
import zlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jina_jax.data import readers
from jina_jax.data.readers import BadRecordError, ReadReport
from jina_jax.data.records import NegationRecord, PairRecord, STSRecord


def write_lines(path, lines: list[str], compress: bool = False) -> None:
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if compress else data)


def test_jsonl_layouts_of_embedding_training_data(tmp_path):
    rows = [
        ["what is a cat", "a cat is a small feline"],
        ["q2", "p2", "n2a", "n2b"],
        {"query": "q3", "pos": ["p3", "p3 second"], "neg": ["n3"]},
        {"anchor": "q4", "positive": "p4", "negative": "n4"},
        {"set": ["same a", "same b", "same c"]},
        {"question": "q6", "answer": "p6"},
        {"texts": ["q7", "p7"]},
        {"anchor": "q8", "entailment": "p8", "negative": "n8"},
    ]
    path = tmp_path / "pairs.jsonl.gz"
    write_lines(path, [json.dumps(row) for row in rows], compress=True)
    report = ReadReport()
    records = list(readers.read_pairs(path, report=report))
    assert records == [
        PairRecord("what is a cat", "a cat is a small feline"),
        PairRecord("q2", "p2", ("n2a", "n2b")),
        PairRecord("q3", "p3", ("n3",)),
        PairRecord("q4", "p4", ("n4",)),
        PairRecord("same a", "same b"),
        PairRecord("q6", "p6"),
        PairRecord("q7", "p7"),
        PairRecord("q8", "p8", ("n8",)),
    ]
    assert report.num_records == 8 and report.num_skipped == 0


def test_bad_lines_are_counted_with_file_and_line(tmp_path):
    path = tmp_path / "mixed.jsonl"
    lines = [
        b'["good q", "good p"]',  # 1
        b'{"query": "x"',  # 2 malformed json
        b'["only one"]',  # 3 missing field
        b'{"query": "q", "pos": 5}',  # 4 wrong type
        b'["   ", "p"]',  # 5 empty text
        b'["caf\xe9", "p"]',  # 6 invalid utf-8 (latin-1 byte)
        b"",  # 7 blank: not a record, not an error
        b'["x", "' + b"y" * 5000 + b'"]',  # 8 too long for max_chars=1000
        b'{"anchor": "a"}',  # 9 missing field
        b"42",  # 10 wrong type
        b'["good q2", "good p2"]',  # 11
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = ReadReport()
    records = list(readers.read_pairs(path, report=report, max_chars=1000))
    assert records == [PairRecord("good q", "good p"), PairRecord("good q2", "good p2")]
    assert dict(report.skipped) == {
        "malformed_json": 1,
        "missing_field": 2,
        "wrong_type": 2,
        "empty_text": 1,
        "invalid_utf8": 1,
        "too_long": 1,
    }
    lines_reported = [
        int(re.match(rf"{re.escape(str(path))}:(\d+): ", e)[1]) for e in report.examples
    ]
    assert lines_reported == [2, 3, 4, 5, 6, 8, 9, 10]

    with pytest.raises(BadRecordError, match=rf"{re.escape(str(path))}:2: malformed_json"):
        list(readers.read_pairs(path, strict=True))


def test_parquet_and_save_to_disk_negation_data(tmp_path):
    table = pa.table(
        {
            "anchor": ["a man plays", "a dog runs", ""],
            "entailment": ["someone plays", "an animal runs", "x"],
            "negative": ["nobody plays", "no animal runs", "y"],
        }
    )
    pq.write_table(table, tmp_path / "train.parquet")
    report = ReadReport()
    rows = list(readers.read_negations(tmp_path / "train.parquet", report=report))
    assert rows == [
        NegationRecord("a man plays", "someone plays", "nobody plays"),
        NegationRecord("a dog runs", "an animal runs", "no animal runs"),
    ]
    assert dict(report.skipped) == {"empty_text": 1}
    assert report.examples[0].startswith(f"{tmp_path / 'train.parquet'}:3: empty_text")

    # datasets.DatasetDict.save_to_disk layout: dataset_dict.json + <split>/{state.json, *.arrow}
    root = tmp_path / "negation-dataset"
    for split, n in (("train", 2), ("test", 1)):
        folder = root / split
        folder.mkdir(parents=True)
        with pa.OSFile(str(folder / "data-00000-of-00001.arrow"), "wb") as sink:
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table.slice(0, n))
        (folder / "state.json").write_text(
            json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]})
        )
        (folder / "dataset_info.json").write_text("{}")
    (root / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
    assert list(readers.read_negations(root, split="test")) == rows[:1]
    assert list(readers.read_negations(root, split="train")) == rows
    # Read as pairs, a negation row is a triplet.
    assert next(readers.read_pairs(root)) == PairRecord(
        "a man plays", "someone plays", ("nobody plays",)
    )


def test_folder_of_hub_files_picks_the_split(tmp_path):
    (tmp_path / "data").mkdir()
    pq.write_table(
        pa.table({"sentence1": ["a"], "sentence2": ["b"], "score": [4.5]}),
        tmp_path / "data" / "train-00000-of-00001.parquet",
    )
    write_lines(tmp_path / "data" / "test.jsonl", [json.dumps(["c", "d", 1.0]), '["c", "d", "x"]'])
    assert list(readers.read_sts(tmp_path)) == [STSRecord("a", "b", 4.5)]
    report = ReadReport()
    assert list(readers.read_sts(tmp_path, split="test", report=report)) == [
        STSRecord("c", "d", 1.0)
    ]
    assert dict(report.skipped) == {"wrong_type": 1}


def test_hub_name_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="jinaai/negation-dataset"):
        list(readers.read_negations("jinaai/negation-dataset"))
    with pytest.raises(FileNotFoundError):
        list(readers.read_pairs("no/such/local/file.jsonl"))


def test_beir_folder(tmp_path):
    write_lines(
        tmp_path / "corpus.jsonl",
        [
            json.dumps({"_id": "d1", "title": "Cats", "text": "Cats purr."}),
            json.dumps({"_id": 2, "title": "", "text": "Dogs bark."}),
            json.dumps({"_id": "d3"}),
        ],
    )
    write_lines(tmp_path / "queries.jsonl", [json.dumps({"_id": "q1", "text": "what purrs"})])
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\t2\t0\nq1\td9\tbad\n"
    )
    report = ReadReport()
    beir = readers.read_beir(tmp_path, report=report)
    assert beir.corpus == {"d1": "Cats Cats purr.", "2": "Dogs bark."}
    assert beir.queries == {"q1": "what purrs"}
    assert beir.qrels == {"q1": {"d1": 1, "2": 0}}
    assert list(beir.pairs()) == [PairRecord("what purrs", "Cats Cats purr.")]
    assert dict(report.skipped) == {"missing_field": 1, "wrong_type": 1}
    assert report.examples[1].startswith(f"{tmp_path / 'qrels' / 'test.tsv'}:4:")


def test_plain_text_lines_and_paragraphs(tmp_path):
    path = tmp_path / "c4.txt"
    path.write_bytes(b"first doc line one\nline two\n\n  \nsecond \xff doc\n\nthird doc\n")
    assert list(readers.read_texts(path)) == ["first doc line one", "line two", "third doc"]
    report = ReadReport()
    assert list(readers.read_texts(path, unit="paragraph", report=report)) == [
        "first doc line one\nline two",
        "third doc",
    ]
    assert report.examples == [
        f"{path}:5: invalid_utf8: 'utf-8' codec can't decode byte 0xff in position 7: "
        "invalid start byte"
    ]


# ------------------------------------------------------------------------------------- fuzz


def _reference_bad_lines(data: bytes) -> list[int]:
    """Independent oracle for a file of random bytes: every line that is not blank is bad (random
    bytes are never a valid pair row). Lines end in b"\\n", b"\\r\\n" or a lone b"\\r"
    (universal newlines, as Python's text mode splits them)."""
    parts = re.split(rb"\r\n|\r|\n", data)
    if parts and parts[-1] == b"":
        parts = parts[:-1]
    bad = []
    for number, raw in enumerate(parts, start=1):
        try:
            blank = not raw.decode("utf-8-sig" if number == 1 else "utf-8").strip()
        except UnicodeDecodeError:
            blank = False
        if not blank:
            bad.append(number)
    return bad


def _valid_row(rng: random.Random) -> list[str]:
    return [f"query {rng.random()}", f"positive {rng.random()}"]


def _broken_row(rng: random.Random) -> bytes:
    choices = [
        b'{"query": ',  # truncated JSON
        b"[1, 2]",  # wrong types
        b'{"query": null, "pos": "p"}',  # null field
        b'{"pos": "p"}',  # missing query
        b'["a"]',  # missing positive
        b'["", "p"]',  # empty text
        b'["\xc3\x28", "p"]',  # invalid UTF-8
        b'"just a string"',
        b"[" * 40_000,  # deeply nested: recursion limit in json
        b'["a", ' + b"9" * 5000 + b"]",  # an integer too long for int()
        b'["a", "' + b"z" * 300_000 + b'"]',  # huge line
        bytes(rng.getrandbits(8) for _ in range(50)).replace(b"\n", b"?").replace(b"\r", b"?")
        + b"x",  # one line: no line end inside
    ]
    return rng.choice(choices)


def test_fuzz_readers_over_broken_files(tmp_path):
    rng = random.Random(1234)
    expected_records = 0
    expected_bad: dict[str, list[int]] = {}
    # 1. Files of random bytes, plain and with a .gz name.
    for i in range(6):
        # (not starting with the gzip magic bytes, which would make it a broken gzip file)
        data = b"{" + bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 3000)))
        path = tmp_path / f"random{i}.jsonl"
        path.write_bytes(data)
        expected_bad[str(path)] = _reference_bad_lines(data)
    (tmp_path / "random.jsonl.gz").write_bytes(b"not gzip at all\n")
    expected_bad[str(tmp_path / "random.jsonl.gz")] = [1]
    # 2. Valid and broken rows interleaved, known line numbers, plain and gzipped.
    for compress in (False, True):
        lines, bad = [], []
        for number in range(1, 301):
            if rng.random() < 0.3:
                lines.append(_broken_row(rng))
                bad.append(number)
            else:
                lines.append(json.dumps(_valid_row(rng)).encode())
                expected_records += 1
        data = b"\n".join(lines) + b"\n"
        path = tmp_path / ("rows.jsonl.gz" if compress else "rows.jsonl")
        path.write_bytes(gzip.compress(data) if compress else data)
        expected_bad[str(path)] = bad
    # 3. A truncated gzip: the complete lines before the cut are read, the cut is reported once.
    rows = [json.dumps(_valid_row(rng)) for _ in range(3000)]
    data = gzip.compress(("\n".join(rows) + "\n").encode())
    cut = data[: len(data) // 2]
    complete = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(cut).count(b"\n")
    (tmp_path / "truncated.jsonl.gz").write_bytes(cut)
    expected_records += complete
    expected_bad[str(tmp_path / "truncated.jsonl.gz")] = [complete + 1]
    # 4. Parquet: random bytes, and a table whose columns have the wrong types.
    (tmp_path / "random.parquet").write_bytes(b"PAR1" + bytes(range(200)))
    expected_bad[str(tmp_path / "random.parquet")] = [1]
    pq.write_table(pa.table({"query": [1, 2], "pos": ["a", "b"]}), tmp_path / "types.parquet")
    expected_bad[str(tmp_path / "types.parquet")] = [1, 2]

    report = ReadReport(max_examples=10**6)
    records = list(readers.read_pairs(tmp_path, split=None, report=report, max_chars=50_000))
    assert len(records) == expected_records
    assert all(isinstance(r, PairRecord) and r.query and r.positive for r in records)
    reported: dict[str, list[int]] = {}
    for example in report.examples:
        match = re.match(r"(.+?):(\d+): (\w+)", example)
        assert match, example
        reported.setdefault(match[1], []).append(int(match[2]))
    assert reported == expected_bad
    assert report.num_skipped == sum(len(v) for v in expected_bad.values())
