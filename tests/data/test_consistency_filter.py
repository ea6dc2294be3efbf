"""The consistency filter: its ranking rule on hand-computed vectors, and the whole filter with
all-MiniLM-L6-v2 on real pairs with planted mismatches."""

import numpy as np

from jina_jax.data import filters, hashing
from jina_jax.data.filters import ConsistencyFilter
from jina_jax.data.records import PairRecord

# 3-d unit vectors; scores worked out by hand.
VECTORS = {
    "q0": [1, 0, 0], "p0": [1, 0, 0],
    "q1": [0, 1, 0], "p1": [0, 1, 0],
    "q2": [0.8, 0.6, 0], "p2": [0.6, 0.8, 0],
    "q3": [0, 1, 0], "p3": [0, 0, 1],
    "q4": [0, 1, 0],
}  # fmt: skip


def lookup(texts):
    return np.array([VECTORS[t] for t in texts], np.float32)


class Lookup:
    """``lookup`` as an embedder."""

    name = "lookup"

    def embed(self, texts, *, max_length=None):
        return lookup(texts)


def test_consistency_rule_known_answer():
    q = lookup(["q0", "q1", "q2", "q3"])
    p = lookup(["p0", "p1", "p2", "p3"])
    # pair 3: own score 0; p1 (1.0) and p2 (0.8) are higher -> rank 3.
    # pair 2: own score 0.96; p0 0.8, p1 0.6 -> rank 1.
    np.testing.assert_array_equal(
        filters.consistent_pairs(q, p, p, top_k=2), [True, True, True, False]
    )
    np.testing.assert_array_equal(filters.consistent_pairs(q, p, p, top_k=3), [True] * 4)
    # Blocking does not change the answer.
    rng = np.random.default_rng(0)
    big_q, big_p = rng.normal(size=(2, 300, 8))
    big_q /= np.linalg.norm(big_q, axis=1, keepdims=True)
    big_p /= np.linalg.norm(big_p, axis=1, keepdims=True)
    full = filters.consistent_pairs(big_q, big_p, big_p, top_k=5, block_size=1000)
    blocked = filters.consistent_pairs(big_q, big_p, big_p, top_k=5, block_size=7)
    np.testing.assert_array_equal(blocked, full)
    assert 0 < full.sum() < 300
    # Default candidates: the positives, or a sample of them (reference computed directly).
    np.testing.assert_array_equal(filters.consistent_pairs(big_q, big_p, top_k=5), full)
    sampled = filters.consistent_pairs(big_q, big_p, top_k=2, sample_size=50, seed=3)
    sample = np.sort(np.random.default_rng(3).choice(300, size=50, replace=False))
    own = np.sum(big_q * big_p, axis=1)
    np.testing.assert_array_equal(sampled, ((big_q @ big_p[sample].T) > own[:, None]).sum(1) < 2)


def test_consistency_filter_known_answer_with_a_stand_in_model():
    records = [PairRecord(f"q{i}", f"p{i}") for i in range(4)]
    kept, report = ConsistencyFilter(embedder=Lookup(), top_k=2, chunk_size=3)(records, "toy")
    assert kept == records[:3] and report.removed_by_reason == {"positive not in top 2": 1}
    # A positive text that occurs twice is ONE candidate: pair 4 repeats "p1", so pair 3 still
    # has two candidates above it (p1, p2) and survives top_k=3.
    records.append(PairRecord("q4", "p1"))
    kept, _ = ConsistencyFilter(embedder=Lookup(), top_k=3)(records, "toy")
    assert kept == records
    # With a sample of one positive, at most one candidate can outrank a pair: all kept at k=2.
    kept, _ = ConsistencyFilter(embedder=Lookup(), top_k=2, sample_size=1)(records, "toy")
    assert kept == records


def test_consistency_sample_is_stable_and_judge_sample_keeps_the_rest():
    records = [PairRecord(f"q{i % 5}", f"p{i % 4}") for i in range(12)] + [PairRecord("q3", "p3")]
    fractions = [
        hashing.stable_fraction(f"{r.query}\0{r.positive}", "consistency:0") for r in records
    ]
    sampled = {r for r, f in zip(records, fractions) if f <= sorted(set(fractions))[2]}
    assert len(sampled) == 3  # three distinct (query, positive) pairs, by hash
    stage = ConsistencyFilter(embedder=Lookup(), sample_size=3, top_k=1, judge="sample")
    kept, report = stage(records, "toy")
    assert set(records) - sampled <= set(kept)  # the unjudged are kept
    assert report.note == f"judged {sum(r in sampled for r in records)} of 13 (sample); rest kept"
    # the same sample and verdicts in any order
    again, _ = stage(records[::-1], "toy")
    assert again == kept[::-1]


def test_consistency_filter_on_real_pairs_with_planted_mismatches():
    """Real title -> document pairs (a stdlib function's name and docstring summary -> its
    docstring, as in title -> abstract data); planted pairs join a query with an unrelated
    docstring."""
    from jina_jax.data.stdlib_text import stdlib_docs
    from jina_jax.loading import load_embedder

    docs = stdlib_docs(1000)
    assert len(docs) >= 400
    rng = np.random.default_rng(0)
    # 150 drawn from all modules: taken in module order, near-twins such as base64.b32decode and
    # base64.b16decode crowd together (their pairs are ambiguous and rightly fail the filter).
    docs = [docs[i] for i in np.sort(rng.choice(len(docs), 150, replace=False))]
    true = [PairRecord(f"{name}: {summary}", f"{summary} {body}") for name, summary, body in docs]
    # A planted pair joins a query with the docstring of a function from ANOTHER module (within a
    # module, shutil.ignore_patterns -> shutil.copytree's docstring would be a fair match).
    module = [name.rsplit(".", 1)[0] for name, _, _ in docs]
    planted = []
    for i in rng.choice(len(true), 15, replace=False):
        j = rng.choice([j for j in range(len(true)) if module[j] != module[i]])
        planted.append(PairRecord(true[i].query, true[j].positive))
    minilm = load_embedder("all-MiniLM-L6-v2", batch_size=32)
    kept, report = ConsistencyFilter(embedder=minilm, max_length=64)(true + planted, "stdlib")
    kept = set(kept)
    assert not kept & set(planted)
    kept_true = sum(r in kept for r in true) / len(true)
    assert kept_true >= 0.9, kept_true
    assert report.n_in == 165 and report.n_out == len(kept)
