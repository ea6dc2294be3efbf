"""Evaluators: an embedder (``jina_jax.embedders``) and data in, a dict of metrics out. A
jina_jax ``Model`` is accepted too and wrapped in a ``ModelEmbedder`` (``jina_jax.encode``).

    metrics = run_evaluator("retrieval", model, dataset="python_faq")
    metrics = run_evaluator("negation", TfidfEmbedder())            # held-out negation triplets

Training runs them from the config (big_vision style), without the trainer knowing them:

    config.evals.faq = dict(type="retrieval", every=500, dataset="python_faq")
    config.evals.neg = dict(type="negation", every=500)
    results = run_evals(config.evals, model, step=step)            # the ones due at ``step``

Each evaluator is a dataclass: its fields are the data arguments (``dataset``: a starter name, a
path, or the records themselves; ``data_dir``: the starter corpus, default
``data_cache/starter``) and encode settings (``batch_size``: of the ``ModelEmbedder`` made
from a Model; ``max_length``: passed to ``embed``). Its ``headline`` class attribute names the
metric that result tables show. ``compare`` runs the same entries for several embedders (the
workflow's 'evaluate' stage: the trained model against TF-IDF and baseline models).

Quantised and Matryoshka retrieval: ``precisions`` / ``rescore`` and ``dims`` of the
retrieval evaluator (``dims`` also on sts and negation; by default a model's own
``matryoshka_dims``); variants are named ``ndcg_at_10/dim_256/binary_rescore``
(``common.metric_name``). ``precision_table`` turns one result into the table of nDCG@10
retained per size and precision, with each index's bytes:

    metrics = run_evaluator("retrieval", model, dataset="python_faq", dims=(256, 128, 64),
                            precisions=("float32", "int8", "binary"), rescore=100)
    print(precision_table(metrics))

The workflow's 'evaluate' stage sets these from ``config.evaluate`` (``evaluation_options``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from jina_jax.evaluators.classification import ClassificationEvaluator
from jina_jax.evaluators.clustering import ClusteringEvaluator
from jina_jax.evaluators.common import as_embedder, split_metric_name
from jina_jax.evaluators.negation import NegationEvaluator
from jina_jax.evaluators.pair_classification import PairClassificationEvaluator
from jina_jax.evaluators.reranking import RerankingEvaluator
from jina_jax.evaluators.retrieval import RetrievalEvaluator
from jina_jax.evaluators.sts import STSEvaluator

EVALUATORS: dict[str, type] = {
    "retrieval": RetrievalEvaluator,
    "sts": STSEvaluator,
    "pair_classification": PairClassificationEvaluator,
    "reranking": RerankingEvaluator,
    "classification": ClassificationEvaluator,
    "clustering": ClusteringEvaluator,
    "negation": NegationEvaluator,
}
log = logging.getLogger(__name__)
# Keys of a config.evals entry that schedule an evaluator rather than configure it.
SCHEDULE_KEYS = ("type", "every")
# The headline metric of each evaluator type, for tables.
HEADLINE: dict[str, str] = {name: cls.headline for name, cls in EVALUATORS.items()}


def make_evaluator(type_name: str, **kwargs: Any):
    if type_name not in EVALUATORS:
        raise ValueError(f"unknown evaluator type {type_name!r}; known: {sorted(EVALUATORS)}")
    return EVALUATORS[type_name](**kwargs)


def run_evaluator(type_name: str, embedder_or_model, **kwargs: Any) -> dict[str, Any]:
    """Runs the evaluator ``type_name`` built with ``kwargs`` on an embedder, or on a ``Model``
    (wrapped in a ``ModelEmbedder`` with the evaluator's ``batch_size``)."""
    evaluator = make_evaluator(type_name, **kwargs)
    return evaluator(as_embedder(embedder_or_model, batch_size=evaluator.batch_size))


def is_due(every: int | None, step: int | None, last_step: int | None = None) -> bool:
    """Due at ``step`` when ``every`` divides it, and always at the last step; always when
    ``step`` is None (a standalone run). ``every`` 0 / None: only at the last step."""
    if step is None or (last_step is not None and step == last_step):
        return True
    return bool(every) and step % int(every) == 0


def run_evals(
    evals: Mapping[str, Mapping[str, Any]],
    embedder_or_model,
    *,
    step: int | None = None,
    last_step: int | None = None,
    **defaults: Any,
) -> dict[str, dict[str, Any]]:
    """Runs the entries of ``config.evals`` (name -> dict(type=..., every=..., <arguments>))
    due at ``step`` on an embedder or a ``Model``; ``defaults`` (e.g. ``data_dir``) fill
    arguments an entry does not set. Returns {name: metrics}."""
    results = {}
    for name, entry in evals.items():
        entry = dict(entry.to_dict() if hasattr(entry, "to_dict") else entry)
        if "type" not in entry:
            raise ValueError(f"config.evals.{name} has no type; known: {sorted(EVALUATORS)}")
        if not is_due(entry.get("every"), step, last_step):
            continue
        arguments = {k: v for k, v in entry.items() if k not in SCHEDULE_KEYS}
        evaluator_fields = EVALUATORS[entry["type"]].__dataclass_fields__
        arguments |= {k: v for k, v in defaults.items() if k in evaluator_fields and k not in entry}
        results[name] = run_evaluator(entry["type"], embedder_or_model, **arguments)
    return results


# Evaluator types that score truncations (``dims``); retrieval also takes ``precisions``.
DIMS_TYPES = ("retrieval", "sts", "negation")


def evaluation_options(
    entries: Mapping[str, Mapping[str, Any]],
    embedder_or_model,
    *,
    precisions: Sequence[str] = ("float32",),
    rescore: int = 0,
    dims: Sequence[int] = (),
) -> dict[str, dict[str, Any]]:
    """``entries`` (``config.evals``) with the 'evaluate' stage's options (``config.evaluate``)
    filled in for one embedder, where an entry does not set its own: ``dims`` on retrieval,
    sts and negation entries (those below the model's width: the full width is the plain
    metric; those above are skipped with a warning), and ``precisions`` (with ``rescore`` when
    int8 or binary is among them) on retrieval entries. Chunked retrieval entries stay as they
    are (full-size float32). Only for dense embedders, i.e. a ``Model`` or an embedder with a
    ``.model``; others (TF-IDF) get the entries as they are."""
    out = {n: dict(e.to_dict() if hasattr(e, "to_dict") else e) for n, e in entries.items()}
    model = getattr(embedder_or_model, "model", embedder_or_model)
    width = getattr(model, "dim", None)
    if not isinstance(width, int):
        if tuple(precisions) != ("float32",) or dims:
            name = getattr(embedder_or_model, "name", type(embedder_or_model).__name__)
            log.info("%s: not a dense model; full-size float32 only", name)
        return out
    if any(d > width for d in dims):
        log.warning("dims %s above the %d-dim embeddings are skipped", list(dims), width)
    for entry in out.values():
        chunked = entry.get("chunking", "none") != "none"  # full-size float32 only
        if entry.get("type") not in DIMS_TYPES or chunked:
            continue
        entry.setdefault("dims", tuple(d for d in dims if d < width))
        if entry["type"] != "retrieval":
            continue
        own = entry.setdefault("precisions", tuple(precisions))
        if set((own,) if isinstance(own, str) else own) - {"float32"}:
            entry.setdefault("rescore", rescore)
    return out


def compare(
    entries: Mapping[str, Mapping[str, Any]],
    embedders: Mapping[str, Any] | Sequence[Any],
    *,
    data_dir: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every entry of ``config.evals`` (name -> dict(type=..., every=..., <arguments>)) for each
    embedder: {label: {entry name: metrics}}, labels in order. ``embedders``: {label: embedder
    or Model}, or a sequence of embedders labelled by their ``name``. ``options``: the keyword
    arguments of ``evaluation_options`` (precisions, rescore, dims), applied per embedder."""
    if not isinstance(embedders, Mapping):
        embedders = {e.name: e for e in embedders}
    rows = {}
    for label, embedder in embedders.items():
        log.info("evaluating %s", label)
        own = evaluation_options(entries, embedder, **options) if options else entries
        rows[label] = run_evals(own, embedder, data_dir=data_dir)
    return rows


def results_table(rows: Mapping[str, Mapping], entries: Mapping[str, Mapping]) -> str:
    """Markdown table of ``compare``'s rows: one row per label, one column per entry, each
    cell the entry's headline metric ("-" where missing)."""
    names = list(entries)
    header = [f"{n} ({HEADLINE.get(entries[n]['type'], '?')})" for n in names]
    lines = ["| model | " + " | ".join(header) + " |", "|---" * (len(names) + 1) + "|"]
    for label, results in rows.items():
        cells = []
        for n in names:
            value = results.get(n, {}).get(HEADLINE.get(entries[n]["type"], ""), None)
            cells.append("-" if value is None else f"{value:.4f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# The precision columns of ``precision_table``, in this order where present.
PRECISION_COLUMNS = ("float32", "int8", "int8_rescore", "binary", "binary_rescore")


def precision_table(metrics: Mapping[str, Any], metric: str = "ndcg_at_10") -> str:
    """Markdown table of one result with per-dimension and / or quantised scores: one row per
    embedding size (the full size first, then each truncation, largest first), one column per
    precision found (float32, int8, int8_rescore, binary, binary_rescore), each cell ``metric``
    and, in brackets, its share of the full-size float32 value; then the bytes of each index
    found (``index_bytes``). "-" where not evaluated."""
    found: dict[tuple[str, int | None, str], Any] = {}
    for name, value in metrics.items():
        try:
            base, dim, precision = split_metric_name(name)
        except ValueError:  # not one of ours
            continue
        if base in (metric, "index_bytes"):
            found[base, dim, precision] = value
    dims = sorted({dim for _, dim, _ in found if dim is not None}, reverse=True)
    scored = [p for p in PRECISION_COLUMNS if any(k[0] == metric and k[2] == p for k in found)]
    sized = [
        p for p in PRECISION_COLUMNS if any(k[0] == "index_bytes" and k[2] == p for k in found)
    ]
    reference = found.get((metric, None, "float32"))
    full = metrics.get("embedding_dim")
    header = [f"dims ({metric})", *scored, *(f"bytes {p}" for p in sized)]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for dim in (None, *dims):
        cells = [f"{full} (full)" if dim is None and full else "full" if dim is None else str(dim)]
        for precision in scored:
            value = found.get((metric, dim, precision))
            if value is None:
                cells.append("-")
            elif reference:
                cells.append(f"{value:.4f} ({100 * value / reference:.1f}%)")
            else:
                cells.append(f"{value:.4f}")
        for precision in sized:
            size = found.get(("index_bytes", dim, precision))
            cells.append("-" if size is None else f"{size:,}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def has_variants(metrics: Mapping[str, Any], metric: str) -> bool:
    """Whether ``metrics`` holds per-dimension or quantised variants of ``metric``."""
    return any(split_metric_name(k)[0] == metric and k != metric for k in metrics)


def detail_tables(rows: Mapping[str, Mapping], entries: Mapping[str, Mapping]) -> str:
    """The ``precision_table`` of each entry's headline metric for each model (``compare``'s
    rows) that scored variants of it, under a heading naming both; "" when none did."""
    sections = []
    for name, entry in entries.items():
        metric = HEADLINE.get(entry["type"], "")
        for label, results in rows.items():
            metrics = results.get(name, {})
            if metric and has_variants(metrics, metric):
                sections.append(f"### {name}: {label}\n\n{precision_table(metrics, metric)}")
    return "\n\n".join(sections)


__all__ = [
    "EVALUATORS",
    "HEADLINE",
    "ClassificationEvaluator",
    "ClusteringEvaluator",
    "NegationEvaluator",
    "PairClassificationEvaluator",
    "RerankingEvaluator",
    "RetrievalEvaluator",
    "STSEvaluator",
    "compare",
    "detail_tables",
    "evaluation_options",
    "has_variants",
    "is_due",
    "make_evaluator",
    "precision_table",
    "results_table",
    "run_evals",
    "run_evaluator",
]
