"""Matryoshka, embedding distillation and the spread-out regulariser against float64 NumPy
loops and hand computations; the teacher-vector cache; the word-embedding PCA init against
scikit-learn's PCA; a distillation stage run end to end, twice, on one cache."""

from __future__ import annotations

import json
import math

import jax
import numpy as np
import pytest
from ml_collections import ConfigDict

from jina_jax import config_lib, losses
from jina_jax.data.pipeline import contrastive_batch
from jina_jax.models import BertConfig
from jina_jax.training import word_init
from jina_jax.training.objectives import DistillObjective
from jina_jax.training.teacher import TeacherTargets

# --------------------------------------------------------------------------- references


def _unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def ref_infonce(q, p, tau):
    """Bidirectional in-batch InfoNCE by loops: sum over both directions of mean_i
    -log(e^{cos(a_i,b_i)/tau} / sum_j e^{cos(a_i,b_j)/tau})."""
    total = 0.0
    for a, b in ((q, p), (p, q)):
        a, b = _unit(a), _unit(b)
        for i in range(len(a)):
            logits = [float(a[i] @ b[j]) / tau for j in range(len(b))]
            top = max(logits)
            total += (top + math.log(sum(math.exp(x - top) for x in logits)) - logits[i]) / len(a)
    return total


def ref_spread_out(x):
    """M1^2 + max(0, M2 - 1/D) over ordered pairs i != j of the normalised rows."""
    x = _unit(x)
    n, d = x.shape
    cos = [float(x[i] @ x[j]) for i in range(n) for j in range(n) if i != j]
    m1, m2 = sum(cos) / len(cos), sum(c * c for c in cos) / len(cos)
    return m1 * m1 + max(0.0, m2 - 1.0 / d)


# --------------------------------------------------------------------------- losses


def test_distill_loss_cosine_and_mse_match_hand_computation():
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(6, 5)).astype(np.float32), rng.normal(size=(6, 5)).astype(np.float32)
    cos = np.sum(_unit(s) * _unit(t), axis=1)
    loss, metrics = losses.distill_loss(s, t, "cosine")
    np.testing.assert_allclose(float(loss), np.mean(1 - cos), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["teacher_cos"]), np.mean(cos), rtol=1e-5)
    loss, _ = losses.distill_loss(s, t, "mse")
    np.testing.assert_allclose(float(loss), np.mean((s.astype(np.float64) - t) ** 2), rtol=1e-5)
    # identical directions: zero cosine loss, whatever the magnitudes
    np.testing.assert_allclose(float(losses.distill_loss(3 * t, t, "cosine")[0]), 0.0, atol=1e-6)


def test_spread_out_matches_loop_and_known_values():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(7, 4)).astype(np.float32)
    np.testing.assert_allclose(float(losses.spread_out_loss(x)), ref_spread_out(x), rtol=1e-5)
    # all rows equal: M1 = M2 = 1 -> 1 + 1 - 1/D
    same = np.tile(x[:1], (5, 1))
    np.testing.assert_allclose(float(losses.spread_out_loss(same)), 2 - 1 / 4, rtol=1e-5)
    # orthonormal rows: M1 = M2 = 0 -> 0
    np.testing.assert_allclose(float(losses.spread_out_loss(np.eye(4))), 0.0, atol=1e-7)


@pytest.mark.parametrize(
    "dims, weights", [((4, 2), ()), ((2, 4), (0.5, 2.0)), ((6, 3), (1.0, 0.25))]
)
def test_matryoshka_sums_infonce_over_prefixes(dims, weights):
    rng = np.random.default_rng(2)
    q = rng.normal(size=(5, 6)).astype(np.float32)
    p = (q + rng.normal(size=(5, 6))).astype(np.float32)
    tau = 0.1

    def fn(a, b):
        return losses.infonce_loss(a, b, temperature=tau)

    loss, metrics = losses.matryoshka_loss(fn, dims, weights, q, p)
    weight_of = dict(zip(dims, weights)) if weights else {}
    expected = sum(weight_of.get(d, 1.0) * ref_infonce(q[:, :d], p[:, :d], tau) for d in {*dims, 6})
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    for d in {*dims, 6}:
        np.testing.assert_allclose(
            float(metrics[f"loss_dim_{d}"]), ref_infonce(q[:, :d], p[:, :d], tau), rtol=1e-5
        )
    # no dims: the plain loss
    plain, _ = losses.matryoshka_loss(fn, (), (), q, p)
    np.testing.assert_allclose(float(plain), ref_infonce(q, p, tau), rtol=1e-5)


# --------------------------------------------------------------------------- objective

TINY = BertConfig(
    vocab_size=96, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, add_pooler=False
)


def _pair_batch(b=4, teacher_dim=12, seed=0):
    rng = np.random.default_rng(seed)
    texts = [
        rng.integers(1, 96, size=int(rng.integers(4, 10))).astype(np.int32) for _ in range(2 * b)
    ]
    batch = contrastive_batch(texts[:b], texts[b:], max_length=12, pad_id=0, pack=False)
    batch = {k: v for k, v in batch.items() if isinstance(v, np.ndarray) and v.ndim}
    batch["teacher"] = rng.normal(size=(b, 2, teacher_dim)).astype(np.float32)
    return batch


@pytest.mark.parametrize("projection", ["student", "teacher", "none"])
def test_distill_objective_matches_numpy(projection):
    teacher_dim = 16 if projection == "none" else 12
    dims, weights = ((8, 4), (0.5, 2.0)) if projection != "none" else ((), ())
    objective = DistillObjective(
        TINY,
        teacher_dim=teacher_dim,
        projection=projection,
        spread_out_weight=0.3,
        matryoshka_dims=dims,
        matryoshka_weights=weights,
    )
    import flax.linen as nn

    params = nn.meta.unbox(objective.init(jax.random.key(0)))
    batch = _pair_batch(teacher_dim=teacher_dim)
    rng = jax.random.key(1)
    loss, metrics = objective(params, batch, rng, train=False)
    emb = np.asarray(objective.encoder.embed(params["encoder"], batch, rng, False), np.float64)
    target = np.concatenate([batch["teacher"][:, 0], batch["teacher"][:, 1]]).astype(np.float64)
    weight_of = dict(zip(dims, weights))
    expected = 0.0
    for d in {*dims, 16}:
        if projection == "student":
            pred, goal = emb[:, :d] @ np.asarray(params["projection"][f"dim_{d}"]), target
        elif projection == "teacher":
            pred, goal = emb[:, :d], target @ np.asarray(params["projection"][f"dim_{d}"])
        else:
            pred, goal = emb[:, :d], target
        cos = np.sum(_unit(pred) * _unit(goal), axis=1)
        expected += weight_of.get(d, 1.0) * float(np.mean(1 - cos))
    expected += 0.3 * ref_spread_out(emb)
    np.testing.assert_allclose(float(loss), expected, rtol=2e-5)
    np.testing.assert_allclose(float(metrics["spread_out"]), ref_spread_out(emb), rtol=2e-5)
    heads = {} if projection == "none" else params["projection"]
    assert sorted(heads) == sorted(f"dim_{d}" for d in dims + ((16,) if dims else ()))


def test_identity_projection_init_leaves_an_equal_width_student_unchanged():
    """``projection_init="identity"``: at the full width the loss is the plain cosine distance
    between the student's and the teacher's embeddings; a prefix ``d`` maps onto the teacher's
    first ``d`` dimensions."""
    import flax.linen as nn

    objective = DistillObjective(
        TINY, teacher_dim=16, projection="student", projection_init="identity"
    )
    params = nn.meta.unbox(objective.init(jax.random.key(0)))
    np.testing.assert_array_equal(params["projection"]["dim_16"], np.eye(16))
    batch, rng = _pair_batch(teacher_dim=16), jax.random.key(1)
    loss, _ = objective(params, batch, rng, train=False)
    emb = np.asarray(objective.encoder.embed(params["encoder"], batch, rng, False), np.float64)
    target = np.concatenate([batch["teacher"][:, 0], batch["teacher"][:, 1]]).astype(np.float64)
    expected = float(np.mean(1 - np.sum(_unit(emb) * _unit(target), axis=1)))
    np.testing.assert_allclose(float(loss), expected, rtol=2e-5)
    teacher_side = DistillObjective(
        TINY, teacher_dim=12, projection="teacher", projection_init="identity"
    )
    heads = nn.meta.unbox(teacher_side.init(jax.random.key(0)))["projection"]
    np.testing.assert_array_equal(heads["dim_16"], np.eye(12, 16))


# --------------------------------------------------------------------------- teacher cache


class CountingEmbedder:
    """Vectors from a hash of the text; counts the texts it embeds."""

    name = "fake/teacher"

    def __init__(self, dim=6):
        self.dim, self.calls = dim, 0

    def vector(self, text):
        v = np.random.default_rng(abs(hash(text)) % 2**32).normal(size=self.dim)
        return v / np.linalg.norm(v)

    def embed(self, texts, *, max_length=None):
        self.calls += len(texts)
        return np.stack([self.vector(t) for t in texts]).astype(np.float32)


class Rec:
    def __init__(self, i):
        self.query, self.positive = f"query {i}", f"passage {i}"


def test_teacher_cache_embeds_each_record_once_and_is_reused(tmp_path):
    embedder = CountingEmbedder()
    records = [Rec(i) for i in range(10)]
    teacher = TeacherTargets(embedder, tmp_path, max_length=32)
    assert teacher.dim == 6 and embedder.calls == 1  # the dimension probe
    got = teacher("ds", 10, [0, 3, 3, 7], [records[i] for i in (0, 3, 3, 7)])
    assert embedder.calls == 1 + 2 * 3  # record 3 drawn twice: embedded once
    for row, i in enumerate((0, 3, 3, 7)):
        np.testing.assert_allclose(got[row, 0], embedder.vector(f"query {i}"), atol=1e-3)
        np.testing.assert_allclose(got[row, 1], embedder.vector(f"passage {i}"), atol=1e-3)
    teacher("ds", 10, [3, 5], [records[3], records[5]])
    assert embedder.calls == 1 + 2 * 4  # only record 5 is new
    teacher.flush()
    assert teacher.computed == 8
    files = sorted(p.name for p in (tmp_path / "fake_teacher-32").iterdir())
    assert files == ["ds.filled.npy", "ds.npy"]

    again = CountingEmbedder()
    reread = TeacherTargets(again, tmp_path, max_length=32)
    out = reread("ds", 10, [7, 5, 0], [records[i] for i in (7, 5, 0)])
    assert again.calls == 1 and reread.computed == 0  # all from the cache
    np.testing.assert_allclose(out[0, 1], embedder.vector("passage 7"), atol=1e-3)
    # another size under the same name is another dataset: recomputed, not misread
    reread("ds", 11, [0], [records[0]])
    assert reread.computed == 2
    # hosts of a multi-host run keep files of their own
    host = TeacherTargets(
        CountingEmbedder(), tmp_path, max_length=32, process_index=1, process_count=4
    )
    host("ds", 10, [1], [records[1]])
    host.flush()
    assert (tmp_path / "fake_teacher-32" / "ds.host1of4.npy").exists()
    # a bfloat16 teacher's vectors are kept apart from the float32 teacher's
    bf16 = TeacherTargets(CountingEmbedder(), tmp_path, max_length=32, variant="bfloat16")
    assert bf16.directory.name == "fake_teacher-32-bfloat16"


def test_bfloat16_teacher_stays_close_to_float32(real_sentences):
    from jina_jax.loading import load_embedder

    texts = real_sentences[:16]
    full = load_embedder("all-MiniLM-L6-v2").embed(texts)
    half = load_embedder("all-MiniLM-L6-v2", dtype="bfloat16").embed(texts)
    cosine = np.sum(full * half, 1) / np.linalg.norm(full, axis=1) / np.linalg.norm(half, axis=1)
    assert cosine.min() >= 0.999 and not np.array_equal(full, half)  # bf16 computed, and close


# --------------------------------------------------------------------------- word-embedding init


def test_pca_reduce_matches_sklearn_pca():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(3)
    table = (rng.normal(size=(200, 12)) @ rng.normal(size=(12, 12))).astype(np.float32) * 0.05
    reduced = word_init.pca_reduce(table, 4)
    reference = PCA(n_components=4).fit_transform(table.astype(np.float64))
    for c in range(4):  # the same directions up to sign and one common scale
        corr = np.corrcoef(reduced[:, c], reference[:, c])[0, 1]
        assert abs(corr) > 0.9999, (c, corr)
    ratio = reduced / np.where(np.abs(reference) > 1e-9, reference, np.nan)
    assert np.nanstd(np.abs(ratio)) < 1e-3 * np.nanmean(np.abs(ratio))
    np.testing.assert_allclose(np.sqrt(np.mean(reduced**2)), np.sqrt(np.mean(table**2)), rtol=1e-5)
    np.testing.assert_array_equal(word_init.pca_reduce(table, 12), table)  # same width: kept


def test_aligned_table_matches_tokens_by_string():
    from jina_jax.loading import load_model, load_tokenizer

    source = load_model("all-MiniLM-L6-v2")
    target = load_tokenizer("jina_v2")
    table, matched = word_init.aligned_table(source, target, 32, seed=0)
    source_vocab, target_vocab = source.tokenizer.hf.get_vocab(), target.hf.get_vocab()
    assert matched == len(set(source_vocab) & set(target_vocab))
    assert matched >= 30_000  # jina_v2 extends bert-base-uncased's vocabulary (MiniLM's)
    reduced = word_init.pca_reduce(
        np.asarray(source.params["embeddings"]["word_embeddings"]["embedding"]), 32
    )
    for token in ("the", "retrieval", "[SEP]"):
        np.testing.assert_array_equal(table[target_vocab[token]], reduced[source_vocab[token]])
    shapes = {"encoder": {"embeddings": {"word_embeddings": {"embedding": table}}, "x": {"k": 0}}}
    tree, reinit = word_init.initial_params(shapes, table)
    assert tree["encoder"]["embeddings"]["word_embeddings"]["embedding"] is table
    import re

    pattern = re.compile(reinit[0])
    assert pattern.fullmatch("x/k") and not pattern.fullmatch(
        "encoder/embeddings/word_embeddings/embedding"
    )


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory, real_sentences):
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    with open(path, "w") as f:
        for sentence in real_sentences[:200]:
            f.write(json.dumps([" ".join(sentence.split()[:5]), sentence]) + "\n")
    return path


def _distill_config(pairs_file, data_dir) -> ConfigDict:
    c = config_lib.jina_v2_config("small", {"local"})
    c.unlock()
    c.stages = ("distill", "export")
    c.model.update(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64)
    c.init_word_embeddings = "all-MiniLM-L6-v2"
    c.data.dir = str(data_dir)
    c.distill.datasets = ConfigDict({"local": config_lib.dataset(str(pairs_file), batch_size=8)})
    c.distill.update(
        steps=4, query_max_length=32, passage_max_length=32, log_every=2, matryoshka_dims=(16,)
    )
    c.distill.checkpoint.update(every=2)
    c.lock()
    return c


def test_distill_stage_runs_exports_and_reuses_teacher_vectors(tmp_path, pairs_file, capsys):
    from sentence_transformers import SentenceTransformer

    from jina_jax.main import run

    config = _distill_config(pairs_file, tmp_path / "data")
    results = run(config, tmp_path / "first")
    out = capsys.readouterr().out
    assert results["distill"]["steps"] == 4
    assert "teacher vectors computed this run: 64" in out  # 4 steps x 8 records x 2 texts
    assert "tokens matched" in out
    cache = tmp_path / "data" / "teacher_cache" / "all-MiniLM-L6-v2-256"
    filled = np.load(cache / "local.filled.npy")
    assert filled.sum() == 32 and filled.shape == (200,)
    # the export is the student alone: 32 wide, its projection heads left behind
    st = SentenceTransformer(str(tmp_path / "first" / "export" / "model"), device="cpu")
    assert st.encode(["a sentence"]).shape == (1, 32)
    # a second run on the same data directory embeds nothing again (its first 2 steps: records
    # the first run embedded)
    config.unlock()
    config.stages = ("distill",)
    config.distill.steps = 2
    config.lock()
    run(config, tmp_path / "second")
    assert "teacher vectors computed this run: 0" in capsys.readouterr().out
