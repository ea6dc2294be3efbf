"""Smoke tests of the experiments' table writers and helpers on tiny inputs (the experiments
themselves train and take minutes)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from experiments import ablation_filters, mteb_table, negation, sequence_length
from experiments.common import git_revision, markdown_table, write_outputs
from jina_jax.data.records import PairRecord


def test_markdown_table_and_outputs(tmp_path):
    table = markdown_table(["model", "score"], [["a", 1.234], ["b", None]])
    assert table.splitlines() == ["| model | score |", "|---|---:|", "| a | 1.23 |", "| b | - |"]
    write_outputs(
        tmp_path,
        name="demo",
        table=table,
        config={"steps": 3},
        results=[1],
        started=0.0,
        notes=["a note"],
    )
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["config"] == {"steps": 3} and config["experiment"] == "demo"
    assert set(config["git"]) >= {"commit", "dirty"}
    assert config["git"] == git_revision()
    text = (tmp_path / "results.md").read_text()
    assert table in text and "a note" in text and "git " in text


def test_negation_table_check_and_comparisons():
    sets = ["python_faq", "manpages"]
    before = {
        "easy_error": 50.0,
        "hard_error": 25.0,
        "retrieval:python_faq": 80.0,
        "retrieval:manpages": 90.0,
        "per_triplet_hard_error": [1, 1, 0, 0],
    }
    after = {
        "easy_error": 30.0,
        "hard_error": 10.0,
        "retrieval:python_faq": 79.0,
        "retrieval:manpages": 90.2,
        "per_triplet_hard_error": [0, 0, 0, 0],
    }
    again = {**after, "hard_error": 12.0, "retrieval:python_faq": 79.4}
    rows = [
        {
            "model": "m",
            "before": before,
            "afters": [after, again],
            "before_queries": {"a": 50.0, "b": 60.0},
            "after_queries": [{"a": 51.0, "b": 61.0}, {"a": 51.0, "b": 61.0}],
        }
    ]
    table = negation.make_table(rows, sets)
    # hard after: 10, 12 -> 11.00 ± 1.41; mean nDCG after: (79 + 90.2) / 2 = 84.6 and
    # (79.4 + 90.2) / 2 = 84.8 -> 84.70 ± 0.14, change 84.70 - 85.00 = -0.30
    assert (
        "| m | 50.00 | 30.00 ± 0.00 | 25.00 | 11.00 ± 1.41 | 85.00 | 84.70 ± 0.14 | -0.30 "
        "| 80.00 / 79.20 ± 0.28 | 90.00 / 90.20 ± 0.00 |"
    ) in table
    (line,) = negation.check(rows, sets, max_drop=1.0)
    assert "fell (25.0% -> 11.0%, mean of 2 seeds)" in line and "within" in line
    (line,) = negation.check(rows, sets, max_drop=0.1)
    assert "OUTSIDE" in line
    assert negation.slug("runs/v2/pairs/") == "runs_v2_pairs"
    hard, retrieval = negation.comparisons(rows[0])
    # two of four triplets go from error to none in both seeds: -0.5 -> -50 points; the
    # bootstrap interval of a mean of {-1, -1, 0, 0} lies within [-100, 0] points
    assert hard["difference"] == -50.0 and -100.0 <= hard["low"] <= hard["high"] <= 0.0
    assert retrieval["difference"] == 1.0 and retrieval["verdict"] == "yes (yes)"
    assert "| m | held-out nDCG@10 x100, after - before |" in negation.comparison_table([retrieval])


class BagOfWordsEmbedder:
    """A deterministic stand-in for the auxiliary model: hashed word counts, L2-normalised."""

    name = "bag-of-words"

    def embed(self, texts, *, max_length=None):
        out = np.zeros((len(texts), 64), np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, sum(map(ord, word)) % 64] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_ablation_arms_table_and_comparisons():
    records = [
        PairRecord(f"how to copy file number {i}", f"copy the file number {i} to a directory")
        for i in range(8)
    ]
    records += [
        PairRecord(
            "Das ist ein deutscher Satz über Dateien", "Dieser Satz ist ebenfalls auf Deutsch"
        ),
        PairRecord(records[0].query, records[0].positive),  # an exact duplicate
    ]
    noisy, planted = ablation_filters.plant_noise(records[:8], 0.5, seed=1)
    assert len(planted) == 4
    assert all(noisy[i].positive != records[i].positive for i in planted)
    assert sorted(r.positive for r in noisy) == sorted(r.positive for r in records[:8])
    arms, swapped = ablation_filters.filter_arms(
        records, BagOfWordsEmbedder(), planted_fraction=0.5, top_k=1
    )
    assert len(arms["none"][0]) == 9  # the duplicate is gone in every arm
    assert len(arms["language"][0]) == 8  # the German pair is gone
    assert len(arms["both"][0]) <= len(arms["language"][0])
    assert len(swapped) == 4 and len(arms["mismatched"][0]) == 9
    assert ablation_filters.planted_kept(arms["mismatched"][0], swapped) == 4
    # Numbered pairs: a swapped positive names another number, so bag-of-words ranks the
    # query's own (now elsewhere) positive first, and the filter (top 1) drops every planted
    # pair and keeps the others.
    assert ablation_filters.planted_kept(arms["mismatched + consistency"][0], swapped) == 0
    assert len(arms["mismatched + consistency"][0]) == 9 - 4
    # the size controls: as many clean pairs as each filtered arm keeps, drawn from "none"
    for control, filtered in (
        (ablation_filters.RANDOM_CONSISTENCY, "consistency"),
        (ablation_filters.RANDOM_RECOVERED, "mismatched + consistency"),
    ):
        assert len(arms[control][0]) == len(arms[filtered][0])
        assert set(arms[control][0]) <= set(arms["none"][0])
    note = ablation_filters.removal_note(swapped, arms)
    assert "removed 4 of the 4 planted mismatches (100.0%; meets" in note

    columns = ["a", "b"]
    seed_scores = {
        "none": [{"a": 50.0, "b": 60.0}, {"a": 52.0, "b": 62.0}],
        "both": [{"a": 53.0, "b": 63.0}, {"a": 53.0, "b": 63.0}],
    }
    rows = ablation_filters.arm_rows(arms, swapped, 10, seed_scores, columns)
    # none: 9 of 10 kept; a = mean(50, 52) ± std (ddof=1) = 51.0 ± 1.4; mean column 56.0 ± 1.4
    assert rows[0] == ["none", 9, "10.0", "-", "51.0 ± 1.4", "61.0 ± 1.4", "56.0 ± 1.4"]
    assert rows[1][0] == "both" and rows[1][4:] == ["53.0 ± 0.0", "63.0 ± 0.0", "58.0 ± 0.0"]

    # Arm B a constant 2 points above A on every query: the interval is [2, 2] -> "yes"; the
    # mismatched arm 5 below: expected lower -> "yes"; recovery at exactly the clean score:
    # "yes (within noise)".
    queries = {f"s/{i}": float(i) for i in range(20)}
    shifted = {q: v + 2.0 for q, v in queries.items()}
    lower = {q: v - 5.0 for q, v in queries.items()}
    per_query = {
        "none": [queries, queries],
        "both": [shifted, shifted],
        "mismatched": [lower, lower],
        "mismatched + consistency": [queries, queries],
    }
    compared = {r["comparison"]: r for r in ablation_filters.comparisons(per_query)}
    assert set(compared) == {
        "both vs none",
        "mismatched vs none",
        "mismatched + consistency vs mismatched",
        "mismatched + consistency vs none",
    }
    both = compared["both vs none"]
    assert (both["difference"], both["low"], both["high"], both["verdict"]) == (
        2.0,
        2.0,
        2.0,
        "yes",
    )
    assert compared["mismatched vs none"]["verdict"] == "yes"
    assert compared["mismatched + consistency vs mismatched"]["difference"] == 5.0
    assert compared["mismatched + consistency vs none"]["verdict"] == "yes (within noise)"
    table = ablation_filters.comparison_table(list(compared.values()))
    assert "| both vs none | paper: both filters help | +2.00 [+2.00, +2.00] | yes |" in table

    reports = [
        {"name": "exact_dedup", "dataset": "x", "n_in": 100, "n_out": 90},
        {"name": "consistency", "dataset": "x", "n_in": 90, "n_out": 81},
        {"name": "consistency", "dataset": "y", "n_in": 50, "n_out": 25},
        # judged a sample of 20: 8 removed of 20 judged is 40%, not 8 of 400
        {
            "name": "consistency",
            "dataset": "z",
            "n_in": 400,
            "n_out": 392,
            "note": "judged 20 of 400 (aux_sample); rest kept",
        },
    ]
    noise = ablation_filters.source_noise(reports)
    assert [r["dataset"] for r in noise] == ["y", "z", "x"]
    assert noise[1] == {
        "dataset": "z",
        "pairs": 400,
        "consistency": 40.0,
    }  # noisiest by consistency first
    assert noise[2] == {"dataset": "x", "pairs": 100, "exact_dedup": 10.0, "consistency": 10.0}


def test_sequence_length_set_table_and_plot(tmp_path):
    from experiments.common import REPO

    starter = REPO / "data_cache" / "starter"
    if not (starter / "manifest.json").is_file():
        pytest.skip("no starter corpus")
    from jina_jax.data.readers import read_beir
    from jina_jax.hf.local_models import resolve
    from jina_jax.tokenization import load_tokenizer

    tokenizer = load_tokenizer(resolve("all-MiniLM-L6-v2"))
    stats = sequence_length.build_long_doc_set(
        starter, tmp_path / "long", tokenizer, min_doc_tokens=512
    )
    data = read_beir(tmp_path / "long")
    assert stats["queries"] == len(data.queries) > 10
    assert stats["relevant_doc_tokens_median"] > 512
    assert len(data.corpus) == stats["documents"] == 139 + 175 + 146
    results = {"m1": {128: 50.0, 256: 60.0}, "m2": {128: 40.0, 256: 45.0, 512: 47.5}}
    table = sequence_length.make_table(results)
    assert "| m1 | 50.00 | 60.00 | - |" in table and "| m2 | 40.00 | 45.00 | 47.50 |" in table
    sequence_length.plot(results, tmp_path / "plot.png", "test")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"


def test_mteb_table_categories():
    scores = {
        "starter_domains": 80.0,
        "negation_pairs": 50.0,
        "debian_faq_rerank": 70.0,
        "python_faq_rerank": 90.0,
        "lee_sts": 60.0,
    }
    categories = mteb_table.category_scores(scores)
    assert categories["RR"] == 80.0 and categories["CF"] == 80.0 and categories["SM"] is None
    assert categories["RT"] is None and categories["Average"] == pytest.approx(70.0)
    table = mteb_table.make_table({"m": scores})
    assert table.splitlines()[2] == "| m | 80.00 | - | 50.00 | 80.00 | - | 60.00 | - | 70.00 |"


@pytest.mark.slow
def test_mteb_table_end_to_end(tmp_path):
    """The whole command on two cheap categories with the real model (about 30 s)."""
    from experiments.common import REPO

    if not (REPO / "data_cache" / "starter" / "manifest.json").is_file():
        pytest.skip("no starter corpus")
    out = tmp_path / "table"
    assert (
        mteb_table.main(
            [
                "--out",
                str(out),
                "--categories",
                "PC,STS",
                "--data-dir",
                str(REPO / "data_cache" / "starter"),
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    scores = results["task_scores"]["all-MiniLM-L6-v2"]
    assert set(scores) == {"negation_pairs", "lee_sts"}
    assert 30 < scores["lee_sts"] < 80
    assert "| all-MiniLM-L6-v2 |" in (out / "results.md").read_text()
    online = json.loads((out / "config.json").read_text())["config"]["online_tasks"]
    assert sum(map(len, online.values())) == 56 and "SciFact" in online["RT"]
    assert online["SM"] == ["SummEval"]


def test_negation_errors_on_a_file_in_the_hub_layout(tmp_path):
    """--test-set FILE (how jinaai/negation-dataset-v2 is read on a connected machine): a parquet
    file with anchor / entailment / negative columns, scored by hand with the same vectors."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    triplets = [
        ("copy the file number 1", "copy file number 1", "do not copy the file number 1"),
        ("the door is open", "door open", "the door is not open"),
        ("install the package", "package install", "remove the package now"),
    ]
    path = tmp_path / "negation-dataset-v2.parquet"
    columns = dict(zip(("anchor", "entailment", "negative"), zip(*triplets)))
    pq.write_table(pa.table({k: list(v) for k, v in columns.items()}), path)
    embedder = BagOfWordsEmbedder()
    got = negation.negation_errors(embedder, None, None, per_triplet=True, dataset=str(path))
    a, e, n = (embedder.embed([t[i] for t in triplets]) for i in range(3))
    positive = np.sum(a * e, axis=1)
    hard = [int(not ok) for ok in positive > np.sum(e * n, axis=1)]
    easy = [int(not ok) for ok in positive > np.sum(a * n, axis=1)]
    assert got["per_triplet_hard_error"] == hard and got["num_triplets"] == 3
    assert got["hard_error"] == pytest.approx(100 * np.mean(hard))
    assert got["easy_error"] == pytest.approx(100 * np.mean(easy))
