"""Training losses: contrastive InfoNCE (jina-embeddings v1/v2, Günther et al. 2023/2024), v1's
triplet margin term, and masked-LM cross-entropy.

The losses are pure functions of the GLOBAL batch. They run inside one `jax.jit` whose inputs
are sharded over the "data" axis; the compiler inserts the all-gathers (and their transposes in
the backward pass), so no device offsets or rank-dependent labels appear here. Similarities and
cross-entropies are computed in float32 whatever the embedding dtype. (Whole-word masking runs
on the host: ``jina_jax.data.masking``.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jina_jax.data.masking import IGNORE_INDEX


def _l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    x = x.astype(jnp.float32)
    # rsqrt(max(|x|^2, eps^2)) keeps zero vectors (e.g. all-padding rows) finite in both passes.
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), eps * eps))


def _dot(spec: str, a: jax.Array, b: jax.Array) -> jax.Array:
    # HIGHEST: on TPU the default f32 matmul runs in bf16 passes, too coarse for logits scaled by
    # 1/temperature = 20.
    return jnp.einsum(spec, a, b, precision=jax.lax.Precision.HIGHEST)


# Columns of the similarity matrix per step of the streamed cross-entropy: each device holds
# [rows on it, COLUMN_BLOCK] logits at a time, so memory grows linearly in the batch, not as B².
COLUMN_BLOCK = 2048
_MASKED = -1e30  # finite: a row with nothing kept yet stays NaN-free


def _streamed_cross_entropy(rows, cols, scale, in_batch_negatives, extra=None, block=None):
    """Row ``i`` of ``rows [B, D]`` scores every ``cols [B, D]`` (logit ``scale * rows_i .
    cols_j``; only ``j = i`` unless ``in_batch_negatives``) and its own ``extra [B, K]`` logits;
    the label is column ``i``. Returns per row: the cross-entropy ``[B]``, whether the label is
    the argmax ``[B]`` (first maximum wins, as ``argmax`` over ``[cols.., extra..]``), the
    similarity to column ``i`` and the sum of the off-diagonal similarities ``[B]``.

    The ``[B, B]`` logits are never held: an online logsumexp runs over blocks of ``block``
    columns, each block rematerialised in the backward pass (flash attention's trick). Logits
    are taken relative to the label's, which is exactly 0, so a lone candidate costs exactly 0.
    """
    b = rows.shape[0]
    block = min(block or COLUMN_BLOCK, b)
    num_blocks = -(-b // block)
    pad = num_blocks * block - b
    col_blocks = jnp.pad(cols, ((0, pad), (0, 0))).reshape(num_blocks, block, cols.shape[1])
    row_ids = jnp.arange(b)[:, None]
    keep_all = jnp.asarray(in_batch_negatives, dtype=bool)
    diagonal = jnp.sum(rows * cols, axis=1)  # [B]: the label similarities
    label = diagonal * scale

    @jax.checkpoint
    def step(carry, inputs):
        top, total, best, best_col, off_diagonal = carry
        index, col_block = inputs
        sim = _dot("id,jd->ij", rows, col_block)  # [B, block]
        col_ids = index * block + jnp.arange(block)[None]
        real = col_ids < b
        on_diagonal = col_ids == row_ids
        relative = jnp.where(on_diagonal, 0.0, sim * scale - label[:, None])
        logits = jnp.where(real & (on_diagonal | keep_all), relative, _MASKED)
        block_top = jnp.max(logits, axis=1)
        new_top = jnp.maximum(top, block_top)
        total = total * jnp.exp(top - new_top) + jnp.sum(jnp.exp(logits - new_top[:, None]), 1)
        better = block_top > best  # strictly: an earlier column keeps a tie, as argmax does
        best_col = jnp.where(better, index * block + jnp.argmax(logits, axis=1), best_col)
        best = jnp.maximum(best, block_top)
        off_diagonal = off_diagonal + jnp.sum(jnp.where(real & ~on_diagonal, sim, 0.0), 1)
        return (new_top, total, best, best_col, off_diagonal), None

    start = jnp.full((b,), _MASKED, jnp.float32)
    carry = (start, jnp.zeros((b,), jnp.float32), start, jnp.zeros((b,), jnp.int32), start * 0)
    (top, total, best, best_col, off_diagonal), _ = jax.lax.scan(
        step, carry, (jnp.arange(num_blocks), col_blocks)
    )
    loss = top + jnp.log(total)  # logsumexp of the logits minus the label logit
    correct = best_col == jnp.arange(b)
    if extra is not None:
        relative_extra = extra - label[:, None]
        loss = jnp.logaddexp(loss, jax.nn.logsumexp(relative_extra, axis=1))
        correct = correct & (jnp.max(relative_extra, axis=1) <= best)
    return loss, correct, diagonal, off_diagonal


def infonce_loss(
    q: jax.Array,
    p: jax.Array,
    *,
    temperature: float = 0.05,
    negatives: jax.Array | None = None,
    in_batch_negatives: bool | jax.Array = True,
    bidirectional: bool | jax.Array = True,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Bidirectional InfoNCE over the global batch, optionally with per-query hard negatives.

    q, p: [B, D] query / positive embeddings (unnormalised, any float dtype).
    negatives: [B, K, D] hard negatives; row i belongs to query i only (v2 items (q, p, n1..n15)).

    q->p: row i scores candidates [p_0 .. p_{B-1}, n_{i,0} .. n_{i,K-1}] (all positives first,
    then the row's own negatives), label i. p->q: row i scores [q_0 .. q_{B-1}], label i; hard
    negatives do not enter it. Logits are cosine / temperature; L = L(q->p) + L(p->q).
    in_batch_negatives=False (Python or traced bool) removes the off-diagonal p_j / q_j
    candidates in both directions. bidirectional may also be a traced bool.

    Returns (loss, metrics) with metrics "loss", "accuracy" (q->p argmax is the own positive),
    "pos_sim" (mean cos(q_i, p_i)) and "neg_sim" (mean cos to hard negatives, or to the
    off-diagonal positives when there are none).

    Memory: the [B, B] similarities are streamed in column blocks (``_streamed_cross_entropy``),
    so a device holds [its rows, COLUMN_BLOCK] of them at a time, whatever the global batch.
    """
    qn, pn = _l2_normalize(q), _l2_normalize(p)
    batch = qn.shape[0]
    scale = 1.0 / temperature
    extra = None
    if negatives is not None:
        neg_sim = _dot("id,ikd->ik", qn, _l2_normalize(negatives))  # [B, K]
        # Candidates of row i: the B positives, then its own K negatives, so the label stays i
        # whatever K is and however the batch is sharded.
        extra = neg_sim * scale
    loss_qp, correct, pos_sim, off_diagonal = _streamed_cross_entropy(
        qn, pn, scale, in_batch_negatives, extra
    )
    loss_pq, *_ = _streamed_cross_entropy(pn, qn, scale, in_batch_negatives)
    loss = jnp.mean(loss_qp)
    loss = loss + jnp.where(jnp.asarray(bidirectional), jnp.mean(loss_pq), 0.0)
    if negatives is not None:
        mean_neg_sim = jnp.mean(neg_sim)
    else:
        # a float: B (B - 1) overflows int32 from B = 46,341 pairs on
        mean_neg_sim = jnp.sum(off_diagonal) / float(max(batch * (batch - 1), 1))
    metrics = {
        "loss": loss,
        "accuracy": jnp.mean(correct),
        "pos_sim": jnp.mean(pos_sim),
        "neg_sim": mean_neg_sim,
    }
    return loss, metrics


def triplet_margin_loss(q: jax.Array, p: jax.Array, n: jax.Array, *, margin: float = 0.05):
    """v1's triplet term: mean over (i, k) of relu(cos(q_i, n_ik) - cos(q_i, p_i) + margin).

    q, p: [B, D]; n: [B, K, D]. Returns a float32 scalar.
    """
    qn = _l2_normalize(q)
    pos = jnp.sum(qn * _l2_normalize(p), axis=-1)  # [B]
    neg = _dot("id,ikd->ik", qn, _l2_normalize(n))  # [B, K]
    return jnp.mean(jax.nn.relu(neg - pos[:, None] + margin))


def v1_hard_negative_loss(
    q: jax.Array,
    p: jax.Array,
    n: jax.Array,
    *,
    temperature: float = 0.05,
    margin: float = 0.05,
    triplet_weight: float = 1.0,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """jina-embeddings v1, stage 2: InfoNCE(q->p with n in the denominator) + InfoNCE(p->q)
    + triplet_weight * triplet margin term. q, p: [B, D]; n: [B, K, D].

    Metrics are those of `infonce_loss` plus "infonce_loss" and "triplet_loss"; "loss" is the total.
    """
    nce, metrics = infonce_loss(q, p, temperature=temperature, negatives=n, bidirectional=True)
    triplet = triplet_margin_loss(q, p, n, margin=margin)
    loss = nce + triplet_weight * triplet
    return loss, {**metrics, "loss": loss, "infonce_loss": nce, "triplet_loss": triplet}


def mlm_loss(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Masked-LM cross-entropy. logits [B, L, V]; labels [B, L] int, IGNORE_INDEX (-100) = skip.

    Mean over labelled positions; 0 (not NaN, with zero gradient) when nothing is labelled.
    Metrics: "loss", "accuracy" (argmax == label over labelled positions), "num_masked".
    """
    logits = logits.astype(jnp.float32)
    labelled = labels != IGNORE_INDEX
    safe_labels = jnp.where(labelled, labels, 0)  # any valid index; those terms are zeroed below
    label_logits = jnp.take_along_axis(logits, safe_labels[..., None], axis=-1)[..., 0]
    # logsumexp - label logit avoids materialising a second [B, L, V] log-softmax array.
    nll = jax.nn.logsumexp(logits, axis=-1) - label_logits
    num_masked = jnp.sum(labelled)
    denom = jnp.maximum(num_masked, 1).astype(jnp.float32)
    loss = jnp.sum(jnp.where(labelled, nll, 0.0)) / denom
    correct = jnp.logical_and(jnp.argmax(logits, axis=-1) == labels, labelled)
    metrics = {"loss": loss, "accuracy": jnp.sum(correct) / denom, "num_masked": num_masked}
    return loss, metrics


def nested_prefixes(dims, full: int) -> tuple[int, ...]:
    """Matryoshka dimensions, each at most the full width, the full width included."""
    return tuple(sorted({int(d) for d in dims if 0 < int(d) < full} | {full}, reverse=True))


def matryoshka_loss(loss_fn, dims, weights, *embeddings):
    """Matryoshka Representation Learning (Kusupati et al. 2022; jina-embeddings-v3): the loss
    summed over nested prefixes of the embeddings, ``sum_d w_d loss_fn(*(e[..., :d] ...))``
    (each prefix is normalised inside the losses, which take cosines). ``dims`` empty: the
    plain loss. ``weights`` (one per dimension of ``dims``, in its order; empty: all 1) weight the
    prefixes; the full width always counts with weight 1 when not listed. Metrics are the full
    width's, plus ``loss_dim_<d>`` per prefix."""
    full = embeddings[0].shape[-1]
    if not dims:
        return loss_fn(*embeddings)
    weight_of = dict(zip([int(d) for d in dims], weights)) if weights else {}
    total, metrics = 0.0, {}
    for d in nested_prefixes(dims, full):
        loss_d, metrics_d = loss_fn(*(e[..., :d] for e in embeddings))
        total = total + weight_of.get(d, 1.0) * loss_d
        if d == full:
            metrics = dict(metrics_d)
        metrics[f"loss_dim_{d}"] = loss_d
    metrics["loss"] = total
    return total, metrics


def distill_loss(student: jax.Array, teacher: jax.Array, kind: str = "cosine"):
    """Embedding distillation (jina-embeddings-v5-text, stage 1): the student's (projected)
    embeddings ``[N, D]`` against the teacher's ``[N, D]``. ``cosine``: mean of ``1 - cos``;
    ``mse``: mean squared difference per dimension (magnitudes count too)."""
    if kind == "cosine":
        cos = jnp.sum(_l2_normalize(student) * _l2_normalize(teacher), axis=-1)
        loss = jnp.mean(1.0 - cos)
    elif kind == "mse":
        diff = student.astype(jnp.float32) - teacher.astype(jnp.float32)
        loss = jnp.mean(jnp.square(diff))
        cos = jnp.sum(_l2_normalize(student) * _l2_normalize(teacher), axis=-1)
    else:
        raise ValueError(f"unknown distillation loss {kind!r}; use cosine or mse")
    return loss, {"loss": loss, "teacher_cos": jnp.mean(cos)}


def spread_out_loss(x: jax.Array) -> jax.Array:
    """The spread-out (global orthogonal) regulariser of Zhang et al. 2017, used in
    jina-embeddings-v5-text: over distinct pairs of the L2-normalised rows of ``x [N, D]``, with
    ``M1`` the mean cosine and ``M2`` the mean squared cosine, ``M1^2 + max(0, M2 - 1/D)``:
    zero when pairs are as spread as random directions in D dimensions."""
    xn = _l2_normalize(x)
    n, d = xn.shape
    sim = _dot("id,jd->ij", xn, xn)
    off = 1.0 - jnp.eye(n, dtype=jnp.float32)
    pairs = jnp.maximum(n * (n - 1), 1)
    m1 = jnp.sum(sim * off) / pairs
    m2 = jnp.sum(jnp.square(sim) * off) / pairs
    return jnp.square(m1) + jax.nn.relu(m2 - 1.0 / d)
