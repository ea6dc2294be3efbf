"""Whole-word masking for MLM pretraining of the backbone (jina-embeddings v2, stage 0: 30% of
the words, BERT's 80/10/10 replacement). NumPy, on the host, before batches reach devices."""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = -100  # label value for positions that take no part in the MLM loss


def whole_word_mask(
    input_ids: np.ndarray,
    word_start: np.ndarray,
    special: np.ndarray,
    rng: np.random.Generator,
    *,
    mask_prob: float = 0.3,
    mask_token_id: int,
    vocab_size: int,
    replace_probs: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> tuple[np.ndarray, np.ndarray]:
    """Whole-word masking. Returns (masked_ids, labels), both [B, L].

    input_ids [B, L] int; word_start [B, L] bool, True at the first sub-token of a word;
    special [B, L] bool, True at CLS/SEP/PAD (never masked).

    Words: a non-special token starts a word if word_start is True or the token before it is
    special (a row that begins mid-word); every following non-special non-start token belongs to
    the same word.
    Selection rule, per row with n non-special tokens: target = floor(mask_prob * n + 0.5)
    (round half up). The row's words are put in a uniformly random order and we take the prefix
    of that order whose total token count is closest to the target (ties: the shorter prefix).
    The count is therefore exact when the boundary word is one token and off by less than half
    the boundary word's length otherwise, with no systematic bias up or down.
    Replacement, per chosen token independently: with replace_probs = (mask, random, keep),
    -> mask_token_id, -> a uniform id in [1, vocab_size) (only id 0, the pad id of the BERT and T5
    vocabularies here, is excluded; other special ids may be drawn, as in BERT), or unchanged.
    labels hold the original id at chosen positions and IGNORE_INDEX elsewhere.
    All randomness comes from `rng`, so a seed fixes the output.
    """
    input_ids = np.asarray(input_ids)
    special = np.asarray(special, dtype=bool)
    word_start = np.asarray(word_start, dtype=bool)
    prev_special = np.concatenate([np.ones_like(special[:, :1]), special[:, :-1]], axis=1)
    starts = ~special & (word_start | prev_special)
    # word index of each non-special token within its row (-1 at special positions)
    word_id = np.where(special, -1, np.cumsum(starts, axis=1) - 1)

    chosen = np.zeros(input_ids.shape, dtype=bool)
    for row in range(input_ids.shape[0]):
        n_tokens = int(np.sum(~special[row]))
        n_words = int(np.sum(starts[row]))
        if n_words == 0:
            continue
        target = int(np.floor(mask_prob * n_tokens + 0.5))
        lengths = np.bincount(word_id[row][~special[row]], minlength=n_words)
        order = rng.permutation(n_words)
        counts = np.concatenate([[0], np.cumsum(lengths[order])])  # tokens in each prefix
        fits = int(np.searchsorted(counts, target, side="right")) - 1  # longest prefix <= target
        take = fits
        if fits < n_words and counts[fits + 1] - target < target - counts[fits]:
            take = fits + 1
        chosen[row] = np.isin(word_id[row], order[:take]) & ~special[row]

    p_mask, p_random, _ = replace_probs
    u = rng.random(input_ids.shape)
    random_ids = rng.integers(1, vocab_size, size=input_ids.shape, dtype=input_ids.dtype)
    masked_ids = input_ids.copy()
    to_mask = chosen & (u < p_mask)
    to_random = chosen & (u >= p_mask) & (u < p_mask + p_random)
    masked_ids[to_mask] = mask_token_id
    masked_ids[to_random] = random_ids[to_random]
    labels = np.where(chosen, input_ids, IGNORE_INDEX)
    return masked_ids, labels
