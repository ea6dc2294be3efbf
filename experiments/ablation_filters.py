"""Data-filter ablation (the v1 paper's table), on a design that can show the effect: a model
that is not yet an embedding model is fine-tuned on ONE noisy pair dataset prepared several
ways, with a second arm whose noise is known, over several seeds.

    python -m experiments.ablation_filters --out experiments/results/ablation_filters --seeds 3

The backbone (``--backbone mlm``, the default) is the demo's v2 JinaBERT (``configs/demo.py:v2``)
after its MLM stage alone, run for ``--backbone-steps`` on the starter text: a language model,
not an embedding model, as the paper fine-tuned. It is trained once (``--out/runs/backbone``) and
shared by every arm; the seeds vary the fine-tuning (data order). ``--backbone PATH`` fine-tunes
another model instead (the earlier design: ``all-MiniLM-L6-v2``, itself the filter's model).

The pairs are the starter's RAW extracted pairs of ``--dataset`` (``cache/extract`` of the
starter build, split exactly as the build splits them, held-out texts removed), before any
cleaning; the default is the noisiest pair source by the consistency filter's share of the
pairs it judged, from the starter build's own filter report (its table of every source is
printed too).
Every arm is exactly de-duplicated first (empty and same-side pairs dropped), then:

- natural arms: none, language (``LanguageFilter``, py3langid, both sides English), consistency
  (``ConsistencyFilter`` with the auxiliary model ``--aux-model``, all-MiniLM-L6-v2, which is not
  the model trained: a pair survives if its positive is in the top 2 of all the dataset's
  positives for its query), both (language, then consistency);
- known-noise arms: the positives of ``--planted-noise`` (30%) of the pairs are swapped among
  themselves (true pairs, mismatched), then no filter ("mismatched") or the consistency filter
  ("mismatched + consistency"); the table counts how many planted pairs each keeps.

Every arm trains the same steps, then scores on the held-out sets. Verdicts: a paired bootstrap
over the queries of all held-out retrieval sets together (``experiments.stats``), each query's
nDCG@10 averaged over seeds first.

Online the paper's ablation scores Quora, SciFact, TREC-COVID (nDCG@10) and STS12 (Spearman);
``--online`` runs those MTEB tasks through ``jina_jax.mteb_adapter`` (needs the hub); offline the
held-out starter sets stand in and the output says which tasks would run.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import pathlib
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from experiments.common import (
    finetune,
    held_out_scores,
    load_config,
    markdown_table,
    setup,
    write_jsonl,
    write_outputs,
)
from experiments.stats import (
    NO,
    format_interval,
    format_mean_std,
    paired_bootstrap,
    per_query_matrix,
)

NAME = "ablation_filters"
VARIANTS = ("none", "language", "consistency", "both")
MISMATCHED, RECOVERED = "mismatched", "mismatched + consistency"
# Size controls: clean pairs drawn at random, as many as a filtered arm keeps, so that a
# filter's choice of pairs is compared with no choice at the same data size.
RANDOM_CONSISTENCY = "random (consistency's size)"
RANDOM_RECOVERED = "random (mismatched + consistency's size)"
ARMS = (*VARIANTS, MISMATCHED, RECOVERED, RANDOM_CONSISTENCY, RANDOM_RECOVERED)
ONLINE_TASKS = ("QuoraRetrieval", "SciFact", "TRECCOVID", "STS12")
# v1 paper, filter ablation: each filter helps, both help most.
PAPER_DIRECTION = "both > consistency, language > none"
# (B, A, expected direction of B - A, what it tests)
COMPARISONS = (
    ("language", "none", "higher", "paper: the language filter helps"),
    ("consistency", "none", "higher", "paper: the consistency filter helps"),
    ("both", "none", "higher", "paper: both filters help"),
    (MISMATCHED, "none", "lower", "known noise: 30% mismatched positives hurt"),
    (RECOVERED, MISMATCHED, "higher", "known noise: the consistency filter helps against it"),
    (RECOVERED, "none", "higher", "known noise: filtering recovers the clean score"),
    (
        "consistency",
        RANDOM_CONSISTENCY,
        "higher",
        "same size: the consistency filter's pairs beat as many random ones",
    ),
    (
        RECOVERED,
        RANDOM_RECOVERED,
        "higher",
        "same size: filtering the mismatched data recovers the clean score",
    ),
)
MAX_CHARS = 20_000


def raw_pairs(data_dir: pathlib.Path, dataset: str):
    """The starter build's pairs of ``dataset`` before cleaning (held-out texts removed)."""
    from jina_jax.data import starter as st
    from jina_jax.data.starter.cache import read_json

    manifest = read_json(data_dir / "manifest.json")
    fields = {f.name for f in dataclasses.fields(st.StarterConfig)}
    config = st.StarterConfig(
        data_dir=data_dir, **{k: v for k, v in manifest["config"].items() if k in fields}
    )
    extract_dir = data_dir / "cache" / "extract"
    missing = [n for n in st.EXTRACTORS if not (extract_dir / f"{n}.json.gz").is_file()]
    if missing:
        raise FileNotFoundError(
            f"{extract_dir} lacks {missing}: rebuild the starter (python -m jina_jax.data.starter)"
        )
    extracted = {name: read_json(extract_dir / f"{name}.json.gz") for name in st.EXTRACTORS}
    splits = st.make_splits(extracted, config)
    if dataset not in splits.pairs:
        raise ValueError(f"unknown pair dataset {dataset!r}; known: {sorted(splits.pairs)}")
    records, _ = st.HeldoutFilter(splits.eval_texts())(splits.pairs[dataset], dataset=dataset)
    return records


def source_noise(reports: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per source of the starter build's filter report (``manifest.json``'s
    ``filter_reports``): pairs in, and the % each filter removed, noisiest by consistency first.
    A consistency filter that judged only a sample ("judged 500 of 856" in its note) removed
    that share of the sample, not of its input."""
    by_source: dict[str, dict[str, Any]] = {}
    for report in reports:
        row = by_source.setdefault(report["dataset"], {"dataset": report["dataset"]})
        row.setdefault("pairs", report["n_in"])
        judged = re.match(r"judged (\d+) of \d+", report.get("note", ""))
        n_in = int(judged.group(1)) if judged else report["n_in"]
        row[report["name"]] = 100.0 * (report["n_in"] - report["n_out"]) / n_in if n_in else 0.0
    return sorted(by_source.values(), key=lambda r: -r.get("consistency", 0.0))


def plant_noise(records, fraction: float, seed: int = 0):
    """Swaps the positives of ``fraction`` of the records among themselves (a derangement of
    the chosen ones), returning the new list and the indices made wrong."""
    from jina_jax.data.records import PairRecord

    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(records), size=int(fraction * len(records)), replace=False))
    if len(chosen) < 2:
        return list(records), []
    rotated = np.roll(chosen, 1)
    out = list(records)
    for i, j in zip(chosen, rotated):
        out[i] = PairRecord(records[i].query, records[j].positive)
    return out, chosen.tolist()


def filter_arms(records, embedder, *, planted_fraction: float = 0.3, top_k: int = 2):
    """{arm: (kept records, [FilterReport, ...])} for the natural arms (``VARIANTS``) and the
    known-noise ones, plus the planted (query, positive) pairs. ``embedder``: the consistency
    filter's auxiliary embedder (memoised by the caller: "both" and the mismatched arms re-use
    the vectors of "consistency")."""
    from jina_jax.data import filters
    from jina_jax.data.hashing import stable_sample

    def consistency(rows, dataset):
        stage = filters.ConsistencyFilter(
            embedder=embedder, sample_size=len(rows), top_k=top_k, max_length=128
        )
        return stage(rows, dataset=dataset)

    base, dedup = filters.ExactDedup()(records, dataset="raw")
    out = {"none": (base, [dedup])}
    by_language, language_report = filters.LanguageFilter()(base, dataset="raw")
    out["language"] = (by_language, [dedup, language_report])
    consistent, consistency_report = consistency(base, "raw")
    out["consistency"] = (consistent, [dedup, consistency_report])
    both, both_report = consistency(by_language, "raw")
    out["both"] = (both, [dedup, language_report, both_report])
    noisy, chosen = plant_noise(base, planted_fraction)
    planted = {(noisy[i].query, noisy[i].positive) for i in chosen}
    noisy_report = filters.FilterReport(
        "planted mismatches", "mismatched", len(base), len(base), {"swapped": len(chosen)}
    )
    out[MISMATCHED] = (noisy, [dedup, noisy_report])
    recovered, recovered_report = consistency(noisy, "mismatched")
    out[RECOVERED] = (recovered, [dedup, noisy_report, recovered_report])
    for arm, size in ((RANDOM_CONSISTENCY, len(consistent)), (RANDOM_RECOVERED, len(recovered))):
        keep = stable_sample([r.query + "\0" + r.positive for r in base], size, arm)
        report = filters.FilterReport("random subset", arm, len(base), len(keep))
        out[arm] = ([base[i] for i in keep], [dedup, report])
    return out, planted


def planted_kept(kept, planted: set) -> int:
    return sum((r.query, r.positive) in planted for r in kept)


def mlm_backbone(out: pathlib.Path, *, steps: int, data_dir: pathlib.Path) -> pathlib.Path:
    """The demo's v2 JinaBERT after its MLM stage alone (``configs/demo.py:v2``, ``steps``
    steps on the starter text): ``out/mlm``, reused when it is complete."""
    from jina_jax.main import run

    config = load_config("configs/demo.py:v2")
    config.stages = ("mlm",)
    config.mlm.steps = steps
    config.mlm.checkpoint.every = steps
    config.data.dir = str(data_dir.absolute())
    config.data.build_starter = False
    config.lock()
    run(config, out)
    return out / "mlm"


def arm_rows(
    arms: Mapping[str, tuple[list, list]],
    planted: set,
    n_records: int,
    seed_scores: Mapping[str, Sequence[Mapping[str, float]]],
    columns: Sequence[str],
) -> list[list[Any]]:
    """One table row per arm: training pairs, % removed, planted pairs kept, then per column
    and for the mean of the columns, mean ± std over seeds."""
    rows = []
    for arm, (kept, _) in arms.items():
        if arm not in seed_scores:
            continue
        runs = seed_scores[arm]
        known = arm in (MISMATCHED, RECOVERED)
        rows.append(
            [
                arm,
                len(kept),
                f"{100 * (1 - len(kept) / n_records):.1f}",
                f"{planted_kept(kept, planted)} of {len(planted)}" if known else "-",
                *(format_mean_std([s[c] for s in runs]) for c in columns),
                format_mean_std([float(np.mean([s[c] for c in columns])) for s in runs]),
            ]
        )
    return rows


def comparisons(per_query: Mapping[str, Sequence[Mapping[str, float]]]) -> list[dict[str, Any]]:
    """The ``COMPARISONS`` whose arms both ran: B - A in nDCG@10 x100 over the pooled held-out
    queries (seeds averaged per query), its 95% interval and the verdict."""
    out = []
    for b, a, expected, what in COMPARISONS:
        if a not in per_query or b not in per_query:
            continue
        queries, a_scores = per_query_matrix(per_query[a])
        _, b_scores = per_query_matrix(per_query[b], queries)
        result = paired_bootstrap(a_scores, b_scores, expected=expected)
        verdict = result.verdict
        if a in ("none", RANDOM_RECOVERED) and b == RECOVERED:  # unless significantly lower
            verdict = "no" if result.verdict == NO else f"yes ({result.verdict})"
        out.append(
            {
                "comparison": f"{b} vs {a}",
                "what": what,
                "expected": expected,
                "difference": result.difference,
                "low": result.low,
                "high": result.high,
                "verdict": verdict,
                "queries": result.queries,
                "seeds": result.seeds,
            }
        )
    return out


def comparison_table(rows: Sequence[Mapping[str, Any]]) -> str:
    return markdown_table(
        ["comparison", "what it tests", "B - A, nDCG@10 x100 [95% CI]", "same direction?"],
        [
            [
                r["comparison"],
                r["what"],
                format_interval(r),
                r["verdict"],
            ]
            for r in rows
        ],
    )


def removal_note(planted: set, arms: Mapping[str, tuple[list, list]]) -> str:
    removed = len(planted) - planted_kept(arms[RECOVERED][0], planted)
    share = removed / len(planted) if planted else 0.0
    verdict = "meets" if share >= 0.8 else "misses"
    return (
        f"The consistency filter removed {removed} of the {len(planted)} planted mismatches "
        f"({100 * share:.1f}%; {verdict} the >= 80% target); it also removed "
        f"{len(arms[MISMATCHED][0]) - len(arms[RECOVERED][0]) - removed} of the other pairs."
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{NAME}", description=__doc__)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument(
        "--backbone", default="mlm", help="'mlm' (the demo's MLM-only JinaBERT) or a model"
    )
    parser.add_argument("--backbone-steps", type=int, default=300, help="MLM steps (mlm)")
    parser.add_argument("--aux-model", default="all-MiniLM-L6-v2", help="consistency filter")
    parser.add_argument(
        "--dataset", default="python_docs", help="one starter pair dataset, or 'noisiest'"
    )
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--max-pairs", type=int, default=2000, help="stable sample of raw pairs")
    parser.add_argument("--planted-noise", type=float, default=0.3)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated subset")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--query-max-length", type=int, default=32)
    parser.add_argument("--passage-max-length", type=int, default=64)
    parser.add_argument("--retrieval-sets", default="manpages,python_faq,debian_faq")
    parser.add_argument("--eval-max-length", type=int, default=128, help="documents")
    parser.add_argument("--max-queries", type=int, default=None)
    parser.add_argument("--online", action="store_true", help=f"also run {', '.join(ONLINE_TASKS)}")
    args = parser.parse_args(argv)
    setup()
    started = time.perf_counter()

    import jina_jax
    from jina_jax.data import filters
    from jina_jax.data.hashing import stable_sample
    from jina_jax.data.starter import MemoEmbedder
    from jina_jax.data.starter.cache import read_json
    from jina_jax.evaluators.common import data_dir_or_default
    from jina_jax.loading import load_embedder

    data_dir = pathlib.Path(data_dir_or_default(args.data_dir))
    arm_names = [a for a in args.arms.split(",") if a]
    unknown = sorted(set(arm_names) - set(ARMS))
    if unknown:
        parser.error(f"--arms: unknown {unknown}; known: {', '.join(ARMS)}")
    noise = source_noise(read_json(data_dir / "manifest.json").get("filter_reports", []))
    if args.dataset == "noisiest":  # by the consistency filter, among the pair datasets
        counts = read_json(data_dir / "manifest.json").get("counts", {})
        pair_sets = {
            name.removeprefix("train/pairs/").removesuffix(".jsonl.gz")
            for name in counts
            if name.startswith("train/pairs/")
        }
        args.dataset = next(r["dataset"] for r in noise if r["dataset"] in pair_sets)
    records = raw_pairs(data_dir, args.dataset)
    n_raw = len(records)
    keep = stable_sample([r.query + "\0" + r.positive for r in records], args.max_pairs, "ablation")
    records = [records[i] for i in keep]
    print(f"{args.dataset}: {n_raw} raw pairs, {len(records)} used", flush=True)

    embedder = MemoEmbedder(load_embedder(args.aux_model, batch_size=64, max_length=128))
    arms, planted = filter_arms(records, embedder, planted_fraction=args.planted_noise)
    print(filters.format_filter_report(r for _, reports in arms.values() for r in reports[1:]))

    if args.backbone == "mlm":
        backbone = str(
            mlm_backbone(
                args.out / "runs" / f"backbone-{args.backbone_steps}",
                steps=args.backbone_steps,
                data_dir=data_dir,
            )
        )
    else:
        backbone = args.backbone
    retrieval_sets = [s for s in args.retrieval_sets.split(",") if s]
    columns = [f"retrieval:{s}" for s in retrieval_sets] + ["sts:lee_sts"]

    def scores(model, per_query: dict | None = None) -> dict[str, float]:
        return held_out_scores(
            model,
            data_dir=data_dir,
            retrieval_sets=retrieval_sets,
            max_length=args.eval_max_length,
            max_queries=args.max_queries,
            per_query=per_query,
        )

    before = scores(jina_jax.load_model(backbone))
    print(f"[backbone, no fine-tuning] {before}", flush=True)
    seed_scores: dict[str, list[dict[str, float]]] = {}
    seed_queries: dict[str, list[dict[str, float]]] = {}
    model_dirs: dict[str, list[str]] = {}
    for seed in range(args.seeds):
        for arm in arm_names:
            kept, _ = arms[arm]
            slug = re.sub(r"[^A-Za-z0-9+_-]+", "_", arm.replace(" + ", "+")).strip("_")
            path = args.out / "data" / f"{slug}.jsonl"
            # Training reads at most passage_max_length tokens; the readers skip lines over 100k
            # characters (one man page has 160k), so long texts are cut here rather than lost.
            write_jsonl(path, ([r.query[:MAX_CHARS], r.positive[:MAX_CHARS]] for r in kept))
            # The run folder is named by the data's hash: a rerun reuses a finished run only
            # when it would train on the same pairs (the consistency filter's ranks can flip at
            # ties).
            digest = hashlib.sha1(path.read_bytes()).hexdigest()[:10]
            stage_dir = finetune(
                args.out / "runs" / f"{slug}-{digest}-seed{seed}",
                init_from=backbone,
                stage="pairs",
                datasets={args.dataset: str(path.absolute())},
                steps=args.steps,
                lr=args.lr,
                batch_size=args.batch_size,
                query_max_length=args.query_max_length,
                passage_max_length=args.passage_max_length,
                data_dir=data_dir,
                seed=seed,
            )
            # A finished run's scores are kept next to it: a rerun that adds arms or seeds
            # does not score the others again.
            saved = stage_dir.parent / "held_out_scores.json"
            if saved.exists():
                kept_scores = json.loads(saved.read_text())
                result, per_query = kept_scores["scores"], kept_scores["per_query"]
            else:
                per_query = {}
                result = scores(jina_jax.load_model(stage_dir), per_query)
                saved.write_text(json.dumps({"scores": result, "per_query": per_query}))
            seed_scores.setdefault(arm, []).append(result)
            seed_queries.setdefault(arm, []).append(per_query)
            model_dirs.setdefault(arm, []).append(str(stage_dir))
            print(f"[{arm} seed {seed}] {len(kept)} pairs: {result}", flush=True)

    online: dict[str, Any] = {}
    online_note = "Offline: would also run " + ", ".join(ONLINE_TASKS) + " with --online."
    if args.online:
        from experiments.mteb_table import run_online_tasks

        online_note = f"Online tasks: {', '.join(ONLINE_TASKS)} (first seed's models)."
        for arm, dirs in model_dirs.items():
            online[arm] = run_online_tasks(jina_jax.load_model(dirs[0]), ONLINE_TASKS)

    headers = ["arm", "training pairs", "% removed", "planted kept"]
    table = markdown_table(
        [*headers, *columns, "mean"],
        [
            ["backbone, no fine-tuning", "-", "-", "-", *(before[c] for c in columns)]
            + [float(np.mean([before[c] for c in columns]))],
            *arm_rows(arms, planted, len(records), seed_scores, columns),
        ],
    )
    compared = comparisons(seed_queries)
    noise_table = markdown_table(
        ["starter source", "pairs in", "% removed: exact dedup", "near dedup", "language"]
        + ["consistency"],
        [
            [r["dataset"], r.get("pairs")]
            + [r.get(k) for k in ("exact_dedup", "near_dedup", "language", "consistency")]
            for r in noise
        ],
        digits=1,
    )
    backbone_text = (
        f"the demo's v2 JinaBERT after {args.backbone_steps} MLM steps alone "
        "(configs/demo.py:v2, not an embedding model)"
        if args.backbone == "mlm"
        else args.backbone
    )
    consistency_share = 1 - len(arms["consistency"][0]) / max(len(arms["none"][0]), 1)
    paper_agrees = [r for r in compared if r["comparison"].split(" vs ")[0] in VARIANTS]
    notes = [
        "",
        f"Fine-tuned {backbone_text}: pairs stage, InfoNCE over the batch, {args.steps} steps x "
        f"{args.batch_size}, lr {args.lr}, {args.seeds} seeds (data order) per arm, on starter "
        f"`{args.dataset}`: {n_raw} raw pairs, a stable sample of {len(records)}, exactly "
        f"de-duplicated, then filtered. Consistency filter: {args.aux_model} (top 2 of all the "
        "dataset's positives). Scores x100, mean ± std over seeds: nDCG@10 on the held-out "
        "starter retrieval sets, Spearman on Lee 2005 STS.",
        "",
        "Comparisons: paired bootstrap over the "
        + (f"{compared[0]['queries']} " if compared else "")
        + "held-out retrieval queries of all sets (10,000 resamples; each query's nDCG@10 "
        "averaged over seeds); 'yes' when the 95% interval lies on the expected side of 0.",
        "",
        comparison_table(compared),
        "",
        f"Paper direction: {PAPER_DIRECTION}. Natural arms here: "
        + (
            "; ".join(f"{r['comparison']}: {r['verdict']}" for r in paper_agrees)
            if paper_agrees
            else "not run"
        )
        + ".",
    ]
    if MISMATCHED in arms and planted:
        notes.append(removal_note(planted, arms))
    notes += [
        "",
        f"Noise of the starter sources, measured by the starter build's own filters ({data_dir}"
        "/manifest.json; % of each filter's input removed; consistency: of the pairs it judged), "
        "noisiest by consistency first:",
        "",
        noise_table,
        "",
        f"Trained here: `{args.dataset}`. Against all {len(arms['none'][0])} of its sampled "
        f"positives the consistency filter removes {100 * consistency_share:.1f}% of them (the "
        "starter build ranks against a sample of 500, hence the lower share above)."
        + (
            " The WordNet sources rank higher in the table; their pairs are a word's synonyms, "
            "glosses and example sentences, short texts among many near-identical candidates, "
            "and none of the held-out sets is in their domain, so the default is the noisiest "
            "document source."
            if args.dataset == "python_docs"
            else ""
        ),
        "",
        online_note,
    ]
    config = {k: (str(v) if isinstance(v, pathlib.Path) else v) for k, v in vars(args).items()}
    config["online_tasks"] = list(ONLINE_TASKS)
    results = {
        "backbone": backbone,
        "before": before,
        "arms": {
            arm: {
                "pairs": len(arms[arm][0]),
                "planted_kept": planted_kept(arms[arm][0], planted),
                "reports": [dataclasses.asdict(r) for r in arms[arm][1]],
                "scores": seed_scores.get(arm, []),
                "model_dirs": model_dirs.get(arm, []),
                "online": online.get(arm),
            }
            for arm in arm_names
        },
        "planted": len(planted),
        "comparisons": compared,
        "source_noise": noise,
        "per_query_ndcg_at_10": seed_queries,
    }
    write_outputs(
        args.out,
        name=NAME,
        table=table,
        config=config,
        results=results,
        started=started,
        notes=notes,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
