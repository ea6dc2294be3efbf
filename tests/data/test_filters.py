"""Cleaning filters on hand-made cases with known answers, and the cross-encoder filter against
transformers' own scores. The consistency filter has its own file (it runs MiniLM)."""

import numpy as np
import pytest

from jina_jax.data import filters
from jina_jax.data.filters import (
    CrossEncoderFilter,
    ExactDedup,
    FilterReport,
    LanguageFilter,
    NearDedup,
    format_filter_report,
    run_filters,
)
from jina_jax.data.records import NegationRecord, PairRecord


def test_exact_dedup_known_answer():
    records = [
        PairRecord("Hello  World", "a greeting"),  # kept
        PairRecord("hello world", "A greeting "),  # duplicate of 0 after normalising
        PairRecord("", "x"),  # empty side
        PairRecord("q", "   "),  # empty side (whitespace only)
        PairRecord("Same Text", " same\ttext "),  # sides equal after normalising
        PairRecord("q", "p", ("P",)),  # negative equal to the positive
        PairRecord("q", "p", ("n",)),  # kept
        PairRecord("q", "p"),  # kept: no negatives, so not a repeat of the triplet
        PairRecord("Q", "P"),  # duplicate
        NegationRecord("a", "b", "c"),  # kept
        NegationRecord("A", "B", "C"),  # duplicate
    ]
    kept, report = ExactDedup()(records, dataset="toy")
    assert kept == [records[0], records[6], records[7], records[9]]
    assert report == FilterReport(
        "exact_dedup",
        "toy",
        11,
        4,
        {"duplicate": 3, "empty": 2, "same_sides": 1, "negative_equals_positive": 1},
    )


def _shingles(text: str, n: int = 3) -> set[str]:
    words = text.lower().split()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def test_near_dedup_against_exact_jaccard():
    base = "the quick brown fox jumps over the lazy dog near the river bank on a sunny day"
    records = [
        PairRecord(base, "an animal story"),
        PairRecord(base.replace("sunny", "rainy"), "an animal story"),  # near duplicate
        PairRecord("completely different words about cooking pasta in salted water", "food"),
        PairRecord(
            "the slow brown fox walks over the lazy cat by the river bank on a cold day",
            "an animal story",
        ),
    ]
    text = [" ".join(filters.sides(r)) for r in records]
    jaccard = [
        len(_shingles(text[0]) & _shingles(t)) / len(_shingles(text[0]) | _shingles(t))
        for t in text
    ]
    # Independent reference: true Jaccard of word 3-grams vs the first record.
    assert jaccard[1] > 0.7 and jaccard[2] == 0.0 and jaccard[3] < 0.3, jaccard
    kept, report = NearDedup(threshold=0.5)(records, dataset="toy")
    assert kept == [records[0], records[2], records[3]]
    assert report.removed_by_reason == {"near_duplicate": 1}


def test_near_dedup_drops_what_has_an_earlier_near_duplicate_in_any_order():
    """A ~ B ~ C but not A ~ C: a record goes when ANY earlier record is its near-duplicate,
    kept or not, so only the first of the chain stays (the rule before this one, "an earlier
    KEPT record", kept A and C). The rule is per pair, so the Beam pipeline can apply it bucket
    by bucket."""
    words = [f"w{i}" for i in range(30)]
    a, b, c = (" ".join(words[i : i + 20]) for i in (0, 5, 10))
    jaccard = lambda x, y: len(_shingles(x) & _shingles(y)) / len(_shingles(x) | _shingles(y))  # noqa: E731
    # by hand: 13 shared 3-grams of 23 (A, B and B, C); 8 of 28 (A, C)
    assert (jaccard(a, b), jaccard(b, c), jaccard(a, c)) == (13 / 23, 13 / 23, 8 / 28)
    records = [a, b, c]
    kept, report = NearDedup(threshold=0.45)(records)
    assert kept == [a] and report.removed_by_reason == {"near_duplicate": 2}
    kept, _ = NearDedup(threshold=0.45)(records[::-1])
    assert kept == [c]
    kept, _ = NearDedup(threshold=0.45)([a, c])
    assert kept == [a, c]


def test_language_filter_keeps_english_on_both_sides():
    records = [
        PairRecord(
            "The weather is nice today and we are going to the park.",
            "It is sunny outside, so the whole family walks to the park.",
        ),
        PairRecord(
            "Das Wetter ist heute schön und wir gehen in den Park.",
            "It is sunny outside, so the whole family walks to the park.",
        ),
        PairRecord(
            "How do I cook pasta at home for dinner tonight?",
            "Pour cuire des pâtes, faites bouillir de l'eau salée dans une grande casserole.",
        ),
        PairRecord(
            "¿Dónde está la estación de tren más cercana a mi hotel?",
            "La estación de tren más cercana está a diez minutos a pie.",
        ),
        PairRecord("ok", "fine"),  # too short to judge: kept
    ]
    kept, report = LanguageFilter()(records, dataset="toy")
    assert kept == [records[0], records[4]]
    assert report.removed_by_reason == {
        "not en (first side)": 1,
        "not en (second side)": 1,
        "not en (both sides)": 1,
    }


def test_fasttext_path_needs_the_package(tmp_path):
    try:
        import fasttext  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="fasttext"):
            LanguageFilter(fasttext_model=tmp_path / "lid.176.bin")
    else:
        with pytest.raises(FileNotFoundError):
            LanguageFilter(fasttext_model=tmp_path / "lid.176.bin")


class WordOverlapScorer:
    """A stand-in cross-encoder: score = number of shared words."""

    def predict(self, pairs, batch_size=32):
        return [len(set(a.split()) & set(b.split())) for a, b in pairs]


def test_cross_encoder_filter_known_answer():
    records = [
        PairRecord("red apple pie", "a red apple pie recipe", ("blue car",)),  # 3 - 0 > 0.2
        PairRecord("red apple pie", "blue car", ("red apple",)),  # 0 - 2
        PairRecord("red apple pie", "red pie", ("apple pie", "car")),  # 2 - 2: fails margin
        PairRecord("no negatives", "pass through"),
    ]
    kept, report = CrossEncoderFilter(WordOverlapScorer(), margin=0.2)(records, "toy")
    assert kept == [records[0], records[3]]
    assert report.removed_by_reason == {"margin <= 0.2": 2}


def test_cross_encoder_filter_without_a_model_is_a_no_op(tmp_path, caplog):
    records = [PairRecord("q", "p", ("n",))]
    for model in (None, tmp_path / "missing"):
        kept, report = CrossEncoderFilter(model)(records, "toy")
        assert kept == records and report.n_out == 1
        assert "no cross-encoder" in report.note
    assert "no cross-encoder" in caplog.text


def test_cross_encoder_filter_loads_a_local_folder(tmp_path, minilm_dir):
    """A tiny random BERT cross-encoder saved to disk; the reference scores come from
    transformers directly (sigmoid of the single logit, sentence-transformers' default)."""
    import shutil

    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=1,
    )
    transformers.BertForSequenceClassification(config).save_pretrained(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (minilm_dir / name).exists():
            shutil.copy(minilm_dir / name, tmp_path / name)
    records = [
        PairRecord(f"query number {i}", f"passage {i} text", (f"other {i}", f"neg {i * 7}"))
        for i in range(12)
    ]
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()

    def score(a, b):
        with torch.no_grad():
            return torch.sigmoid(model(**tokenizer(a, b, return_tensors="pt")).logits)[0, 0].item()

    gaps = [
        min(score(r.query, r.positive) - score(r.query, n) for n in r.negatives) for r in records
    ]
    margin = float(np.median(gaps))
    expected = [r for r, gap in zip(records, gaps) if gap > margin]
    assert 0 < len(expected) < len(records)
    kept, _ = CrossEncoderFilter(str(tmp_path), margin=margin)(records, "toy")
    assert kept == expected


def test_run_filters_and_report_table():
    records = [PairRecord("a b c", "d e f"), PairRecord("A B C", "D E F"), PairRecord("x", "x")]
    kept, reports = run_filters(records, [ExactDedup(), CrossEncoderFilter()], dataset="toy")
    assert kept == records[:1]
    assert [r.name for r in reports] == ["exact_dedup", "cross_encoder"]

    table = format_filter_report(
        [
            FilterReport("exact_dedup", "reddit", 1000, 900, {"duplicate": 80, "empty": 20}),
            FilterReport("language", "reddit", 900, 743, {"not en (first side)": 157}),
            FilterReport("consistency", "reddit", 743, 117, {"positive not in top 2": 626}),
            FilterReport("cross_encoder", "msmarco", 0, 0, {}, "skipped: no cross-encoder"),
        ]
    )
    assert table == (
        "| dataset | filter | in | out | % removed | removed by reason |\n"
        "|---|---|---:|---:|---:|---|\n"
        "| reddit | exact_dedup | 1000 | 900 | 10.0 | duplicate: 80, empty: 20 |\n"
        "| reddit | language | 900 | 743 | 17.4 | not en (first side): 157 |\n"
        "| reddit | consistency | 743 | 117 | 84.3 | positive not in top 2: 626 |\n"
        "| msmarco | cross_encoder | 0 | 0 | 0.0 | skipped: no cross-encoder |"
    )
