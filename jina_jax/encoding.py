"""The one encode path: texts -> embeddings (``encode``), and chunk embeddings of long documents
from one pass over the whole document (``late_chunking``). Used by evaluation, benchmarks, export
checks and the mteb adapter.

Batching (why it looks like this; measurements in benchmarks/RESULTS.md):
- Texts are tokenised once, sorted by length (longest first) and cut into batches in that order,
  so each batch holds texts of nearly the same length.
- A batch's length is padded up to a bucket from ``encode_buckets``: multiples of 16 up to 128,
  then four steps per octave (160, 192, 224, 256, 320, ...). A row is padded by less than a
  quarter of its length, and the whole 8192-token range has only 32 lengths to compile for.
- A batch holds ``min(batch_size, max_batch_tokens // length)`` rows, at least one
  (``default_max_batch_tokens``: 1024 on CPU, 16384 on accelerators). Long buckets thus get fewer
  rows automatically: an 8192-token document runs alone and memory stays bounded. On CPU, small
  blocks also stay in cache and cost less per token than large ones.
- Each bucket therefore has one shape, ``(rows, length)``; only a final partial batch is padded
  to fewer rows (a power of two), so a single query is not padded to 32 rows.
- Batch k + 1 is dispatched (asynchronously) before batch k is read back, so host-side padding
  overlaps device compute and at most two batches are alive.
- Above the model's ``attention_chunk_threshold`` (2048 for JinaBERT) the model itself switches to
  chunked attention (``attention_impl="auto"``), so no ``[heads, L, L]`` tensor is built.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jina_jax.data.buckets import bucket_for, encode_buckets
from jina_jax.models import build_encoder
from jina_jax.models.pooling import l2_normalize, pool

log = logging.getLogger(__name__)


def default_max_batch_tokens() -> int:
    """Padded tokens per encode batch (rows x length) when the caller gives none.

    CPU: 1024. Blocks that small keep activations in cache (cheaper per text than 32 x 256 blocks
    on the development machine, benchmarks/RESULTS.md), and long documents run one per batch.
    Accelerators: 16384, enough rows to keep them busy (two 8192-token documents).
    """
    return 1024 if jax.default_backend() == "cpu" else 16384


@functools.lru_cache(maxsize=32)
def embed_fn(config, pooling: str):
    """Jitted ``(params, ids [B, L], mask [B, L]) -> (embeddings [B, H] f32, states [B, L, H])``;
    cached per config so that every caller shares compiled programs."""
    module = build_encoder(config)

    @jax.jit
    def run(params, ids, mask):
        states = module.apply({"params": params}, ids, mask)["last_hidden_state"]
        return pool(states, mask, pooling), states

    return run


def _check_texts(texts, caller: str = "encode") -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{caller}() takes a list of texts, got a single string; wrap it in a list")
    texts = list(texts)
    if not texts:
        raise ValueError(f"{caller}() got an empty list of texts")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{caller}(): texts[{i}] is {type(t).__name__}, not str")
        try:
            t.encode("utf-8")
        except UnicodeEncodeError as e:  # e.g. a lone surrogate such as "\ud800"
            raise ValueError(
                f"{caller}(): texts[{i}] is not valid Unicode text ({e.reason} at character "
                f"{e.start})"
            ) from None
    return texts


def _check_max_length(model, max_length: int | None) -> int:
    """The length texts are cut at: refused above a position table's size; above a relative-
    position model's own limit (8192 for JinaBERT, 512 for jina-v1's T5), cut to it, saying so."""
    max_length = int(max_length or model.max_length)
    limit = model.config.position_limit
    if limit is not None and max_length > limit:
        raise ValueError(f"max_length {max_length} exceeds the {limit} positions of this model")
    if max_length > model.config.max_length:
        log.warning(
            "max_length %d is above the model's limit of %d tokens; texts are cut at %d",
            max_length,
            model.config.max_length,
            model.config.max_length,
        )
        max_length = model.config.max_length
    return max_length


def _plan_batches(
    lengths: np.ndarray, max_length: int, batch_size: int, max_batch_tokens: int
) -> list[tuple[np.ndarray, int, int]]:
    """``[(text indices, rows, length)]``: longest texts first, each batch padded to
    ``(rows, length)`` with ``length`` the bucket of its first (longest) text and ``rows`` fixed
    per bucket, except for a final partial batch (rows rounded up to a power of two)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_batch_tokens < 1:
        raise ValueError(f"max_batch_tokens must be >= 1, got {max_batch_tokens}")
    order = np.argsort(-lengths, kind="stable")  # longest first: memory trouble shows at once
    buckets = encode_buckets(max_length)
    plan, start = [], 0
    while start < len(order):
        length = bucket_for(int(lengths[order[start]]), buckets)
        rows = max(1, min(batch_size, max_batch_tokens // length))
        left = len(order) - start
        if left < rows:  # the last batch (or a small call): pad rows only to a power of two
            rows = min(rows, 1 << (left - 1).bit_length())
        plan.append((order[start : start + rows], rows, length))
        start += rows
    return plan


def _params(model, adapter: str | None):
    """The base parameters, or those with the task adapter ``adapter`` merged in."""
    return model.params if adapter is None else model.params_for(adapter)


def _run_batches(
    model, ids: list[np.ndarray], plan, *, want_states: bool, show_progress, params=None
):
    """Runs ``embed_fn`` over the planned batches, yielding ``(text indices, pooled [rows, D],
    states [rows, L, H] or None)`` as numpy arrays. Batch ``k + 1`` is dispatched before batch
    ``k`` is read back, so host work overlaps device compute and at most two batches are alive."""
    run = embed_fn(model.config, model.pooling)
    params = model.params if params is None else params
    pad_id = model.tokenizer.pad_id
    if show_progress is None:
        show_progress = len(plan) > 8
    previous = None
    for rows_idx, rows, length in tqdm(
        plan, disable=not show_progress, desc="encode", unit="batch"
    ):
        batch = np.full((rows, length), pad_id, np.int32)
        mask = np.zeros((rows, length), np.int32)
        for j, r in enumerate(rows_idx):
            batch[j, : len(ids[r])] = ids[r]
            mask[j, : len(ids[r])] = 1
        pooled, states = run(params, batch, mask)  # async: returns before compute ends
        current = (rows_idx, pooled, states if want_states else None)
        if previous is not None:
            yield _fetch(*previous)
        previous = current
    if previous is not None:
        yield _fetch(*previous)


def _fetch(rows_idx, pooled, states):
    pooled = np.asarray(pooled)[: len(rows_idx)]
    return rows_idx, pooled, None if states is None else np.asarray(states)[: len(rows_idx)]


def encode(
    model,
    texts: Sequence[str],
    batch_size: int = 32,
    max_length: int | None = None,
    *,
    normalize: bool | None = None,
    show_progress: bool | None = None,
    return_stats: bool = False,
    max_batch_tokens: int | None = None,
    adapter: str | None = None,
):
    """Embeds ``texts`` with ``model`` (a ``jina_jax.Model``); returns ``np.ndarray [N, D]``
    float32 in input order (and a stats dict with ``return_stats=True``).

    ``adapter``: the name of one of ``model.adapters`` (task LoRA, e.g. ``"retrieval.query"``):
    the texts go through the weights with that adapter merged in (merged once per model and
    adapter; the same compiled programs as the base). None: the base model.

    Texts longer than ``max_length`` tokens (default: the model's, up to 8192 for JinaBERT) are
    truncated and counted. A batch holds at most ``batch_size`` texts and at most
    ``max_batch_tokens`` padded tokens (default ``default_max_batch_tokens()``; always at least
    one text), so long inputs run in smaller batches; see the module docstring. ``normalize``
    defaults to the model's own setting (e.g. a Normalize module in its sentence-transformers
    folder).
    """
    texts = _check_texts(texts)
    max_length = _check_max_length(model, max_length)
    normalize = model.normalize if normalize is None else normalize
    ids, truncated = model.tokenizer.encode_batch(texts, max_length)
    if truncated:
        log.warning("%d of %d texts were truncated to %d tokens", truncated, len(texts), max_length)
    lengths = np.array([len(x) for x in ids])
    plan = _plan_batches(
        lengths, max_length, batch_size, max_batch_tokens or default_max_batch_tokens()
    )
    out = np.zeros((len(texts), model.dim), np.float32)
    params = _params(model, adapter)
    batches = _run_batches(
        model, ids, plan, want_states=False, show_progress=show_progress, params=params
    )
    for rows_idx, pooled, _ in batches:
        out[rows_idx] = pooled
    if normalize:
        out = np.asarray(l2_normalize(jnp.asarray(out)))
    if return_stats:
        padded = sum(rows * length for _, rows, length in plan)
        return out, {
            "truncated": int(truncated),
            "batches": len(plan),
            "shapes": sorted({(rows, length) for _, rows, length in plan}),
            "tokens": int(lengths.sum()),
            "padded_tokens": int(padded),
        }
    return out


# ---------------------------------------------------------------------------------------------
# Late chunking (Günther et al. 2024, "Late Chunking: Contextual Chunk Embeddings Using
# Long-Context Embedding Models"): embed the WHOLE document once, then mean-pool the final token
# states over each chunk's token span. Each chunk embedding thus sees the rest of the document.


@dataclasses.dataclass(frozen=True)
class LateChunks:
    """Chunk embeddings of one document.

    ``embeddings [n, D]`` float32; ``token_spans[i] = (start, end)`` indexes the document's token
    sequence (special tokens included in the indexing, never in a span); ``char_spans[i]`` are
    contiguous character ranges of the text and ``texts[i]`` the matching substrings.
    """

    embeddings: np.ndarray
    token_spans: list[tuple[int, int]]
    char_spans: list[tuple[int, int]]
    texts: list[str]


_SENTENCE_END = frozenset(".!?")


def sentence_token_spans(text: str, offsets, special) -> list[tuple[int, int]]:
    """Token spans of sentences: a sentence ends after a ``.``, ``!`` or ``?`` token that is
    followed by whitespace or the end of the text, or before a line break. ``offsets`` is the fast
    tokenizer's character offsets mapping, ``special`` its special-tokens mask."""
    content = [i for i, s in enumerate(special) if not s]
    spans, start = [], None
    for n, i in enumerate(content):
        if start is None:
            start = i
        begin, end = offsets[i]
        following = content[n + 1] if n + 1 < len(content) else None
        # The token ends in . ! or ? (a "." token in WordPiece, "▁." or "s." in SentencePiece).
        ends_sentence = (
            end > begin
            and text[end - 1] in _SENTENCE_END
            and (end >= len(text) or text[end].isspace())
        )
        if following is not None and "\n" in text[end : offsets[following][0]]:
            ends_sentence = True
        if ends_sentence or following is None:
            spans.append((start, i + 1))
            start = None
    return spans


def token_count_spans(special, chunk_tokens: int) -> list[tuple[int, int]]:
    """Consecutive spans of ``chunk_tokens`` content tokens (the last one may be shorter)."""
    if chunk_tokens < 1:
        raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    content = [i for i, s in enumerate(special) if not s]
    return [
        (content[k], content[min(k + chunk_tokens, len(content)) - 1] + 1)
        for k in range(0, len(content), chunk_tokens)
    ]


def char_to_token_spans(char_spans, offsets, special) -> list[tuple[int, int]]:
    """Character spans -> token spans: a content token belongs to the span its first character
    falls in. Raises for a span without tokens (empty, or cut off by ``max_length``)."""
    starts = np.array([offsets[i][0] if not s else -1 for i, s in enumerate(special)])
    spans = []
    for begin, end in char_spans:
        inside = np.flatnonzero((starts >= begin) & (starts < end))
        if not len(inside):
            raise ValueError(
                f"character span ({begin}, {end}) holds no tokens (empty, or beyond max_length)"
            )
        if inside[-1] - inside[0] + 1 != len(inside):
            raise ValueError(f"character span ({begin}, {end}) maps to non-contiguous tokens")
        spans.append((int(inside[0]), int(inside[-1]) + 1))
    return spans


def _char_spans_of(token_spans, offsets, text_length: int, truncated: bool):
    """Contiguous character ranges covering the text: each chunk runs from its first token to the
    next chunk's first token (the first from 0, the last to the end unless truncated)."""
    starts = [offsets[s][0] for s, _ in token_spans]
    starts[0] = 0
    ends = starts[1:] + [offsets[token_spans[-1][1] - 1][1] if truncated else text_length]
    return list(zip(starts, ends, strict=True))


def late_chunking(
    model,
    text_or_texts: str | Sequence[str],
    *,
    chunks="sentences",
    chunk_tokens: int = 256,
    max_length: int | None = None,
    normalize: bool | None = None,
    batch_size: int = 32,
    max_batch_tokens: int | None = None,
    show_progress: bool | None = None,
    adapter: str | None = None,
) -> LateChunks | list[LateChunks]:
    """Chunk embeddings by late chunking: one forward pass per document (batched and bucketed
    like ``encode``, through the same ``embed_fn``), then a mean of the final token states over
    each chunk's tokens.

    Args:
      chunks: ``"sentences"`` (sentence ends found through the tokenizer's offsets mapping),
        ``"tokens"`` (``chunk_tokens`` tokens per chunk), or character spans ``[(start, end)]``
        (for one text; a list of such lists for several).
      max_length: tokens per document (default: the model's; 8192 for JinaBERT). Longer documents
        are truncated and their chunks cover the kept part only.
      batch_size, max_batch_tokens: as in ``encode`` (a document longer than
        ``max_batch_tokens`` runs alone).
      adapter: a task LoRA adapter of the model, as in ``encode``.

    Returns ``LateChunks`` for a string, a list of them for a list of strings.
    """
    single = isinstance(text_or_texts, str)
    texts = _check_texts([text_or_texts] if single else text_or_texts, "late_chunking")
    if isinstance(chunks, str):
        if chunks not in ("sentences", "tokens"):
            raise ValueError(f"chunks must be 'sentences', 'tokens' or spans, got {chunks!r}")
        per_text = [chunks] * len(texts)
    else:
        per_text = [chunks] if single else list(chunks)
        if len(per_text) != len(texts):
            raise ValueError(f"got character spans for {len(per_text)} of {len(texts)} texts")
    max_length = _check_max_length(model, max_length)
    normalize = model.normalize if normalize is None else normalize
    # The fast tokenizer's public call: the same ids as Tokenizer.encode_batch, plus offsets.
    encoded = model.tokenizer.hf(
        texts,
        add_special_tokens=True,
        truncation=True,
        max_length=max_length,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        return_overflowing_tokens=False,
    )
    ids = [np.asarray(x, np.int32) for x in encoded["input_ids"]]
    spans_per_text = []
    for n, (text, how) in enumerate(zip(texts, per_text, strict=True)):
        offsets, special = encoded["offset_mapping"][n], encoded["special_tokens_mask"][n]
        if how == "sentences":
            spans = sentence_token_spans(text, offsets, special)
        elif how == "tokens":
            spans = token_count_spans(special, chunk_tokens)
        else:
            spans = char_to_token_spans(how, offsets, special)
        if not spans:
            raise ValueError(f"texts[{n}] has no tokens to chunk")
        spans_per_text.append(spans)
    lengths = np.array([len(x) for x in ids])
    truncated = [bool(encoding.overflowing) for encoding in encoded.encodings]
    if any(truncated):
        log.warning(
            "%d of %d documents were truncated to %d tokens", sum(truncated), len(texts), max_length
        )
    plan = _plan_batches(
        lengths, max_length, batch_size, max_batch_tokens or default_max_batch_tokens()
    )
    results: list[LateChunks | None] = [None] * len(texts)
    params = _params(model, adapter)
    batches = _run_batches(
        model, ids, plan, want_states=True, show_progress=show_progress, params=params
    )
    for rows_idx, _, states in batches:
        states = states.astype(np.float32, copy=False)  # [rows, L, H]
        for j, n in enumerate(rows_idx):
            spans = spans_per_text[n]
            # [chunks, L] averaging weights: one matmul pools every chunk of the document.
            weights = np.zeros((len(spans), states.shape[1]), np.float32)
            for c, (begin, end) in enumerate(spans):
                weights[c, begin:end] = 1.0 / (end - begin)
            vectors = weights @ states[j]
            if normalize:
                vectors /= np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
            text, offsets = texts[n], encoded["offset_mapping"][n]
            char_spans = (
                _char_spans_of(spans, offsets, len(text), truncated[n])
                if isinstance(per_text[n], str)
                else [tuple(span) for span in per_text[n]]
            )
            results[n] = LateChunks(
                embeddings=vectors,
                token_spans=spans,
                char_spans=char_spans,
                texts=[text[b:e] for b, e in char_spans],
            )
    return results[0] if single else results


@dataclasses.dataclass(frozen=True)
class ChunkWindow:
    """A stretch of a document that fits the model: ``text[begin:end]``, cut into chunks whose
    character spans ``chunks`` are relative to ``begin``."""

    begin: int
    end: int
    chunks: list[tuple[int, int]]


WINDOW_MARGIN = 16  # tokens kept free in a window: re-tokenising a cut-out stretch may differ


def chunk_windows(
    model,
    texts: Sequence[str],
    *,
    chunks: str = "sentences",
    chunk_tokens: int = 64,
    window_tokens: int | None = None,
) -> list[list[ChunkWindow]]:
    """Chunks of WHOLE documents (no truncation), grouped into windows that fit the model.

    Each document is cut into chunks (``"sentences"``, or ``"tokens"``: ``chunk_tokens`` tokens
    each; a sentence longer than a window is cut by tokens), covering all of its text. Consecutive
    chunks are grouped into windows of at most ``window_tokens`` tokens (default: the model's
    max length) minus the special tokens and a margin of ``WINDOW_MARGIN``. Late chunking runs
    one window per forward pass ("long late chunking" in the paper, for documents longer than the
    context; without overlap here); naive chunking encodes each chunk on its own. Both thus see
    the same chunks.
    """
    texts = _check_texts(texts, "chunk_windows")
    if chunks not in ("sentences", "tokens"):
        raise ValueError(f"chunks must be 'sentences' or 'tokens', got {chunks!r}")
    window = _check_max_length(model, window_tokens)
    specials = len(model.tokenizer.hf("", add_special_tokens=True)["input_ids"])
    budget = window - specials - WINDOW_MARGIN
    if budget < 1:
        raise ValueError(f"window_tokens {window} leaves no room for text")
    encoded = model.tokenizer.hf(
        texts,
        add_special_tokens=True,
        truncation=False,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        verbose=False,
    )
    out = []
    for n, text in enumerate(texts):
        offsets, special = encoded["offset_mapping"][n], encoded["special_tokens_mask"][n]
        if all(special):
            raise ValueError(f"texts[{n}] has no tokens to chunk")
        if chunks == "sentences":
            spans = sentence_token_spans(text, offsets, special)
        else:
            spans = token_count_spans(special, chunk_tokens)
        fitted = []  # spans no longer than a window
        for begin, end in spans:
            while end - begin > budget:
                fitted.append((begin, begin + budget))
                begin += budget
            fitted.append((begin, end))
        char_spans = _char_spans_of(fitted, offsets, len(text), truncated=False)
        windows, current, used = [], [], 0
        for (begin, end), span in zip(fitted, char_spans, strict=True):
            if current and used + (end - begin) > budget:
                windows.append(current)
                current, used = [], 0
            current.append(span)
            used += end - begin
        windows.append(current)
        out.append(
            [
                ChunkWindow(w[0][0], w[-1][1], [(b - w[0][0], e - w[0][0]) for b, e in w])
                for w in windows
            ]
        )
    return out
