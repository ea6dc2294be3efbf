"""python -m jina_jax.evaluate: spec parsing and a run on local files, results as JSON."""

from __future__ import annotations

import json

import pytest

from jina_jax import evaluate


def test_parse_evals(starter_dir):
    specs = evaluate.parse_evals("retrieval,sts,negation:my.jsonl", str(starter_dir))
    labels = [label for label, _, _ in specs]
    assert labels[:4] == [
        f"retrieval:{n}" for n in ("python_faq", "debian_faq", "manpages", "debian_descriptions")
    ]
    assert specs[4] == ("sts", "sts", {})
    assert specs[5] == ("negation:my.jsonl", "negation", {"dataset": "my.jsonl"})
    with pytest.raises(ValueError, match="unknown eval type"):
        evaluate.parse_evals("bleu")


def test_cli_writes_results(tmp_path, capsys, monkeypatch, minilm):
    import jina_jax.loading

    loaded = []
    monkeypatch.setattr(jina_jax.loading, "load_model", lambda path: loaded.append(path) or minilm)
    negation = tmp_path / "negation.jsonl"
    rows = [
        {"anchor": "full of light", "entailment": "bright and shining", "negative": "dark"},
        {"anchor": "able to be seen", "entailment": "visible", "negative": "not visible"},
    ]
    negation.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sts = tmp_path / "sts.jsonl"
    pairs = [
        ("a cat sleeps", "a kitten naps", 4.5),
        ("a cat sleeps", "stocks fell", 0.2),
        ("kids play football", "children kick a ball", 4.0),
    ]
    sts.write_text(
        "".join(
            json.dumps({"sentence1": a, "sentence2": b, "score": s}) + "\n" for a, b, s in pairs
        )
    )
    out = tmp_path / "results.json"
    code = evaluate.main(
        [
            "--model",
            "all-MiniLM-L6-v2",
            "--evals",
            f"negation:{negation},sts:{sts}",
            "--max-length",
            "16",
            "--out",
            str(out),
        ]
    )
    assert code == 0 and loaded == ["all-MiniLM-L6-v2"]
    results = json.loads(out.read_text())["results"]
    assert results[f"negation:{negation}"]["num_triplets"] == 2
    assert results[f"sts:{sts}"]["num_pairs"] == 3
    assert "| eval | metric | value |" in capsys.readouterr().out


def test_cli_precisions_and_dims(tmp_path, capsys, monkeypatch, minilm):
    """--precisions / --rescore / --dims reach the retrieval evaluator (and --dims the STS one);
    without --dims, the model's own Matryoshka dims; --dims none: no truncation."""
    import dataclasses

    import jina_jax.loading
    from jina_jax.evaluators import RetrievalEvaluator

    matryoshka = dataclasses.replace(minilm, matryoshka_dims=(128,))
    monkeypatch.setattr(jina_jax.loading, "load_model", lambda path: matryoshka)
    beir = tmp_path / "faq"
    (beir / "qrels").mkdir(parents=True)
    docs = ["Run apt install and the name.", "ls lists files.", "cp copies a file.", "Cats nap."]
    queries = ["How do I install a package?", "How do I list files?", "How do I copy a file?"]
    (beir / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(docs))
    )
    (beir / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": t}) + "\n" for i, t in enumerate(queries))
    )
    (beir / "qrels" / "test.tsv").write_text("".join(f"q{i}\td{i}\t1\n" for i in range(3)))
    out = tmp_path / "results.json"
    common = ["--model", "mrl", "--evals", f"retrieval:{beir}", "--out", str(out)]
    code = evaluate.main([*common, "--precisions", "float32,binary", "--rescore", "2"])
    assert code == 0
    got = json.loads(out.read_text())["results"][f"retrieval:{beir}"]
    expected = RetrievalEvaluator(
        dataset=str(beir), precisions=("float32", "binary"), rescore=2, dims=(128,)
    )(minilm)  # the evaluator's numbers are checked against brute force elsewhere
    assert got == pytest.approx(expected) and "ndcg_at_10/dim_128/binary_rescore" in got
    printed = capsys.readouterr().out
    assert "| dims (ndcg_at_10) | float32 | binary | binary_rescore | bytes float32 |" in printed
    assert evaluate.main([*common, "--dims", "none", "--precisions", "int8"]) == 0
    got = json.loads(out.read_text())["results"][f"retrieval:{beir}"]
    assert "ndcg_at_10/int8" in got and not any("dim_" in k for k in got)
    assert evaluate.main([*common, "--precisions", "int4"]) == 2
    assert "evaluate: error: precisions must list distinct precisions" in capsys.readouterr().err
