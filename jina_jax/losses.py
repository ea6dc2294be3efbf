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


def _cross_entropy_diagonal(logits: jax.Array) -> jax.Array:
    """Mean over rows i of -log softmax(logits[i])[i]; logits [B, C >= B], masked entries -inf."""
    # Pick the label logit via the diagonal rather than a one-hot product: 0 * -inf would be NaN.
    label_logits = jnp.diagonal(logits[:, : logits.shape[0]])
    return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - label_logits)


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
    """
    qn, pn = _l2_normalize(q), _l2_normalize(p)
    batch = qn.shape[0]
    sim = _dot("id,jd->ij", qn, pn)  # [B, B], sim[i, j] = cos(q_i, p_j)
    eye = jnp.eye(batch, dtype=bool)
    keep = jnp.logical_or(eye, jnp.asarray(in_batch_negatives, dtype=bool))
    logits_qp = jnp.where(keep, sim / temperature, -jnp.inf)
    logits_pq = jnp.where(keep, sim.T / temperature, -jnp.inf)  # sim.T[i, j] = cos(p_i, q_j)

    if negatives is not None:
        neg_sim = _dot("id,ikd->ik", qn, _l2_normalize(negatives))  # [B, K]
        # Candidates along axis 1: the B positives, then row i's own K negatives, so the label
        # stays i whatever K is and however the batch is sharded.
        logits_qp = jnp.concatenate([logits_qp, neg_sim / temperature], axis=1)  # [B, B + K]
        mean_neg_sim = jnp.mean(neg_sim)
    else:
        off_diagonal = jnp.sum(jnp.where(eye, 0.0, sim))
        # a float: B (B - 1) overflows int32 from B = 46,341 pairs on
        mean_neg_sim = off_diagonal / float(max(batch * (batch - 1), 1))

    loss = _cross_entropy_diagonal(logits_qp)
    loss = loss + jnp.where(jnp.asarray(bidirectional), _cross_entropy_diagonal(logits_pq), 0.0)
    accuracy = jnp.mean(jnp.argmax(logits_qp, axis=1) == jnp.arange(batch))
    metrics = {
        "loss": loss,
        "accuracy": accuracy,
        "pos_sim": jnp.mean(jnp.diagonal(sim)),
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
