"""The mteb 2.x adapter, offline: mteb.evaluate with JinaJaxEncoder on a local retrieval task
built from a starter BEIR folder gives the same nDCG@10 as our own retrieval evaluator.

Tolerance 1e-4: mteb stores scores rounded to 5 decimals; both sides embed the same texts
with jina_jax.encode and score with trec_eval, so the rest differs only by float32 noise.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

mteb = pytest.importorskip("mteb")

import jina_jax  # noqa: E402
from jina_jax.evaluators import run_evaluator  # noqa: E402
from jina_jax.mteb_adapter import JinaJaxEncoder, beir_retrieval_task  # noqa: E402

STARTER = pathlib.Path(__file__).parents[1] / "data_cache" / "starter"
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def minilm():
    return jina_jax.load_model("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def beir_subset(tmp_path_factory):
    """The first 40 queries of the starter's debian_faq set, their answers and 40 more answers,
    as a BEIR folder (keeps the test fast)."""
    source = STARTER / "eval" / "debian_faq"
    if not (source / "corpus.jsonl").is_file():
        pytest.skip("no starter corpus (python -m jina_jax.data.starter)")
    folder = tmp_path_factory.mktemp("debian_faq_subset")
    (folder / "qrels").mkdir()
    queries = (source / "queries.jsonl").read_text().splitlines()[:40]
    (folder / "queries.jsonl").write_text("\n".join(queries) + "\n")
    kept = {json.loads(q)["_id"] for q in queries}
    qrels = (source / "qrels" / "test.tsv").read_text().splitlines()
    lines = [qrels[0]] + [line for line in qrels[1:] if line.split("\t")[0] in kept]
    (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    relevant = {line.split("\t")[1] for line in lines[1:]}
    corpus = (source / "corpus.jsonl").read_text().splitlines()
    others = [d for d in corpus if json.loads(d)["_id"] not in relevant][:40]
    docs = [d for d in corpus if json.loads(d)["_id"] in relevant] + others
    (folder / "corpus.jsonl").write_text("\n".join(docs) + "\n")
    return folder


def test_model_meta(minilm):
    from mteb.models.model_meta import ModelMeta, ScoringFunction

    meta = JinaJaxEncoder(minilm, name="jina_jax/all-MiniLM-L6-v2").mteb_model_meta
    assert isinstance(meta, ModelMeta)
    assert meta.similarity_fn_name is ScoringFunction.COSINE
    assert meta.embed_dim == 384 and meta.max_tokens == 256
    assert 22_000_000 < meta.n_parameters < 24_000_000  # all-MiniLM-L6-v2: 22.7M


def test_encode_takes_mteb_batches(minilm):
    from torch.utils.data import DataLoader

    texts = ["first sentence", "a second, longer sentence", "third"]
    loader = DataLoader([{"text": t} for t in texts], batch_size=2)
    encoder = JinaJaxEncoder(minilm, max_length=16)
    task = beir_retrieval_task(STARTER / "eval" / "debian_faq")
    got = encoder.encode(loader, task_metadata=task.metadata, hf_split="test", hf_subset="default")
    expected = jina_jax.encode(minilm, texts, max_length=16, normalize=True)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_mteb_evaluate_matches_our_retrieval(minilm, beir_subset):
    encoder = JinaJaxEncoder(minilm, max_length=64)
    task = beir_retrieval_task(beir_subset, name="StarterDebianFaqSubset")
    result = mteb.evaluate(encoder, tasks=[task], cache=None, show_progress_bar=False)
    scores = result.task_results[0].scores["test"][0]
    ours = run_evaluator("retrieval", minilm, dataset=str(beir_subset), max_length=64)
    assert ours["num_queries"] == 40
    assert scores["ndcg_at_10"] == pytest.approx(ours["ndcg_at_10"], abs=TOLERANCE)
    assert scores["map_at_10"] == pytest.approx(ours["map_at_10"], abs=TOLERANCE)
    assert scores["recall_at_100"] == pytest.approx(ours["recall_at_100"], abs=TOLERANCE)
    assert scores["main_score"] == scores["ndcg_at_10"]
