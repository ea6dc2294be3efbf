"""The main job: on the demo config, stages run, write their outputs, and a rerun skips them;
the evaluate stage's quantised and Matryoshka report."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from scipy import stats

import jina_jax
from jina_jax import config_lib
from jina_jax.data.stdlib_text import stdlib_sentences
from jina_jax.evaluators import RetrievalEvaluator
from jina_jax.hf.io import save_hf
from jina_jax.main import run


def _demo_config():
    import importlib.util

    spec = importlib.util.spec_from_file_location("io", "configs/import_export.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    config.unlock()
    config.sample_texts = 40
    return config


def test_demo_runs_and_resumes(tmp_path, capsys):
    config = _demo_config()
    results = run(config, tmp_path)
    assert results["verify_export"]["min_cosine"] >= 0.9999
    saved = np.load(tmp_path / "encode" / "embeddings.npy")
    reference = jina_jax.encode(jina_jax.load_model("all-MiniLM-L6-v2"), stdlib_sentences(40))
    np.testing.assert_allclose(saved, reference, atol=1e-5)
    done = (tmp_path / "encode" / "DONE").read_text()
    capsys.readouterr()
    again = run(config, tmp_path)
    out = capsys.readouterr().out
    assert out.count("already complete") == 4
    assert (tmp_path / "encode" / "DONE").read_text() == done
    assert again["encode"] == json.loads(done)


FAQ = [  # (query, its one relevant document), and documents nobody asks for
    ("How do I install a package?", "Run apt install followed by the package name."),
    ("How do I list files?", "The ls command lists the files of a directory."),
    ("How do I copy a file?", "Use cp with the source and the destination."),
    ("How do I see running processes?", "ps and top show the processes that run."),
]
OTHER_DOCS = ["Bread is baked in an oven.", "The river flows to the sea.", "Cats sleep a lot."]
STS_PAIRS = [
    ("A man plays a guitar.", "A person plays the guitar.", 4.8),
    ("A dog runs in the park.", "The cat sleeps on the sofa.", 0.6),
    ("Install the package with apt.", "Use apt to install the package.", 4.9),
    ("The market fell today.", "It rained all afternoon.", 0.2),
    ("He drove to work.", "He went to work by car.", 4.0),
]


def _write_eval_sets(folder):
    beir = folder / "faq"
    (beir / "qrels").mkdir(parents=True)
    docs = [d for _, d in FAQ] + OTHER_DOCS
    lines = [json.dumps({"_id": f"d{i}", "text": t}) for i, t in enumerate(docs)]
    (beir / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    lines = [json.dumps({"_id": f"q{i}", "text": q}) for i, (q, _) in enumerate(FAQ)]
    (beir / "queries.jsonl").write_text("\n".join(lines) + "\n")
    qrels = "".join(f"q{i}\td{i}\t1\n" for i in range(len(FAQ)))
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + qrels)
    sts = folder / "sts.jsonl"
    rows = [{"sentence1": a, "sentence2": b, "score": s} for a, b, s in STS_PAIRS]
    sts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return beir, sts


def test_evaluate_stage_scores_precisions_and_matryoshka_dims(tmp_path, capsys):
    """config.evaluate's precisions, rescore and dims (plus the model's own Matryoshka dims)
    reach ours and the dense baseline, not TF-IDF, and come out in results.json and the
    printed report under names like ndcg_at_10/dim_64/binary_rescore."""
    minilm = jina_jax.load_model("all-MiniLM-L6-v2")
    export = save_hf(dataclasses.replace(minilm, matryoshka_dims=(256, 64)), tmp_path / "mrl")
    beir, sts = _write_eval_sets(tmp_path)
    config = config_lib.base_config()
    config.stages = ("import", "evaluate")
    config.init_from = str(export)
    config.evals.faq = dict(type="retrieval", dataset=str(beir), top_k=5)
    config.evals.sts = dict(type="sts", dataset=str(sts))
    config.evaluate.update(
        baselines=("tfidf", "all-MiniLM-L6-v2"),
        precisions=("float32", "int8", "binary"),
        rescore=3,
        dims=(128,),
    )
    run(config, tmp_path / "run")
    rows = json.loads((tmp_path / "run" / "evaluate" / "results.json").read_text())
    dims = (256, 128, 64)  # ours' (256, 64) and evaluate.dims
    expected = RetrievalEvaluator(
        dataset=str(beir), top_k=5, precisions=("float32", "int8", "binary"), rescore=3, dims=dims
    )(minilm)  # the same weights as the export; the evaluator's numbers are checked elsewhere
    for label in ("ours", "all-MiniLM-L6-v2"):
        faq = rows[label]["faq"]
        assert faq == pytest.approx(expected, abs=1e-6), label
        assert "ndcg_at_10/dim_64/binary_rescore" in faq and "index_bytes/dim_128/int8" in faq
        assert sorted(k for k in rows[label]["sts"] if k.startswith("spearman")) == [
            "spearman", "spearman/dim_128", "spearman/dim_256", "spearman/dim_64"
        ]  # fmt: skip
    # TF-IDF: sparse rows, full-size float32 only
    assert not any("/" in k for k in rows["tfidf"]["faq"]) and "ndcg_at_10" in rows["tfidf"]["faq"]
    # an independent number: Spearman of the cosines of the first 64 dims
    first = jina_jax.encode(minilm, [p[0] for p in STS_PAIRS])[:, :64]
    second = jina_jax.encode(minilm, [p[1] for p in STS_PAIRS])[:, :64]
    cosine = (
        np.sum(first * second, 1) / np.linalg.norm(first, axis=1) / np.linalg.norm(second, axis=1)
    )
    spearman = stats.spearmanr(cosine, [p[2] for p in STS_PAIRS]).statistic
    assert rows["ours"]["sts"]["spearman/dim_64"] == pytest.approx(spearman, abs=1e-6)
    report = (tmp_path / "run" / "evaluate" / "results.md").read_text()
    assert "### faq: ours" in report and "### sts: all-MiniLM-L6-v2" in report
    assert "### faq: tfidf" not in report
    assert (
        "| dims (ndcg_at_10) | float32 | int8 | int8_rescore | binary | binary_rescore |" in report
    )
    assert f"| 384 (full) | {expected['ndcg_at_10']:.4f} (100.0%) |" in report
    assert report.strip() in capsys.readouterr().out


def _lora_config(folder, steps: int, stages=("lora", "export")):
    """A LoRA stage on a tiny random JinaBERT, from local pair files: qa pairs through
    retrieval.query -> retrieval.passage, paraphrases through text-matching; packed GradCache
    chunks as the local configs run it; then the export."""
    from ml_collections import ConfigDict

    from jina_jax import config_lib

    sentences = stdlib_sentences(120)
    for name, pairs in (
        ("qa", [(" ".join(s.split()[:4]), s) for s in sentences[:60]]),
        ("para", [(s, " ".join(s.split()[::-1])) for s in sentences[60:]]),
    ):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    c = config_lib.jina_v2_config("small", {"local"})
    c.unlock()
    c.stages = stages
    c.model.update(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64)
    c.lora.datasets = ConfigDict(
        {n: config_lib.dataset(str(folder / f"{n}.jsonl"), batch_size=8) for n in ("qa", "para")}
    )
    c.lora.adapters = ConfigDict({"para": ("text-matching", "text-matching")})
    c.lora.tasks = ("retrieval.query", "retrieval.passage", "text-matching")
    # one padded shape: one compilation
    c.lora.update(steps=steps, query_max_length=24, passage_max_length=24, log_every=1)
    c.lora.update(pack=False, pad_to_max_length=True, grad_cache_chunk=8)
    c.lora.checkpoint.update(every=2, keep=2)
    c.lora.optimizer.update(warmup_steps=0)  # step 0 (qa, in this draw) trains too
    c.lock()
    return c


@pytest.mark.slow  # two runs, each compiling a GradCache step (about a minute on 2 cores)
def test_lora_stage_trains_resumes_and_exports(tmp_path, capsys):
    from jina_jax import checkpoints
    from jina_jax.encoding import encode

    workdir = tmp_path / "run"
    results = run(_lora_config(tmp_path, steps=2, stages=("lora",)), workdir)
    assert results["lora"]["steps"] == 2 and np.isfinite(results["lora"]["loss"])
    spec = json.loads((workdir / "lora" / "model.json").read_text())
    assert spec["lora"]["rank"] == 4 and spec["lora"]["alpha"] == 4.0
    first, _ = checkpoints.restore_params(workdir / "lora")

    # more steps: resumes from the step-2 checkpoint; the base never moves
    capsys.readouterr()
    again = run(_lora_config(tmp_path, steps=4), workdir)
    out = capsys.readouterr().out
    assert "continuing from its checkpoint" in out and "resuming from step 2" in out
    assert again["lora"]["steps"] == 4 and again["lora"]["resumed_from"] == 2
    assert sorted(again["export"]["adapters"]) == [
        "retrieval.passage",
        "retrieval.query",
        "text-matching",
    ]
    second, _ = checkpoints.restore_params(workdir / "lora")
    assert all(
        np.array_equal(a, b) for a, b in zip(_leaves(first["base"]), _leaves(second["base"]))
    )
    assert not all(
        np.array_equal(a, b) for a, b in zip(_leaves(first["lora"]), _leaves(second["lora"]))
    )

    # the stage folder and the export (base + PEFT folders) embed alike, adapter by adapter
    trained = jina_jax.load_model(workdir / "lora")
    exported = jina_jax.load_model(workdir / "export" / "model")
    texts = stdlib_sentences(8)
    base = encode(trained, texts)
    for task in ("retrieval.query", "text-matching"):
        ours = encode(trained, texts, adapter=task)
        np.testing.assert_allclose(encode(exported, texts, adapter=task), ours, atol=1e-5)
        assert np.abs(ours - base).max() > 1e-4
    assert (
        workdir / "export" / "model" / "adapters" / "text-matching" / "adapter_config.json"
    ).exists()


def _leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]


class _Stop(Exception):
    pass


def test_every_process_checks_the_workdir_before_process_0_writes(tmp_path, monkeypatch):
    """Multi-host: a process that checked the workdir after process 0 had taken its lock saw a
    folder holding only `.lock`, refused it as "not a jina_jax workdir" and died, leaving its
    peers at a barrier (the CI flake of 1864685). The checks now come before the first sync, and
    nothing is written before it."""
    from jina_jax import main as main_module
    from jina_jax.errors import WorkdirError

    syncs = []

    def first_sync(name):
        syncs.append((name, workdir.exists()))
        raise _Stop

    monkeypatch.setattr(main_module, "_sync", first_sync)
    config = _demo_config()
    workdir = tmp_path / "foreign"
    workdir.mkdir()
    (workdir / "notes.txt").write_text("mine")
    with pytest.raises(WorkdirError, match="is not empty and is not a jina_jax workdir"):
        run(config, workdir)
    assert syncs == []  # refused by the check alone, before any process waits for another
    workdir = tmp_path / "fresh"
    with pytest.raises(_Stop):
        run(config, workdir)
    assert syncs == [("workdir checked", False)]  # no lock, marker or config.json yet
    assert not workdir.exists()
