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

Quantised and Matryoshka retrieval: ``dims`` and ``quantization`` / ``rescore`` of the
retrieval evaluator (``dims`` also on sts and negation); ``quantization_table`` turns one
result into the table of nDCG@10 retained per size and precision:

    metrics = run_evaluator("retrieval", model, dataset="python_faq", dims=(256, 128, 64),
                            quantization=("float32", "int8", "binary"), rescore=100)
    print(quantization_table(metrics))
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from jina_jax.evaluators.classification import ClassificationEvaluator
from jina_jax.evaluators.clustering import ClusteringEvaluator
from jina_jax.evaluators.common import as_embedder
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


def compare(
    entries: Mapping[str, Mapping[str, Any]],
    embedders: Mapping[str, Any] | Sequence[Any],
    *,
    data_dir: str | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every entry of ``config.evals`` (name -> dict(type=..., every=..., <arguments>)) for each
    embedder: {label: {entry name: metrics}}, labels in order. ``embedders``: {label: embedder
    or Model}, or a sequence of embedders labelled by their ``name``."""
    if not isinstance(embedders, Mapping):
        embedders = {e.name: e for e in embedders}
    rows = {}
    for label, embedder in embedders.items():
        log.info("evaluating %s", label)
        rows[label] = run_evals(entries, embedder, data_dir=data_dir)
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


# The columns of ``quantization_table``: (header, metric-name part after the dims).
QUANTIZATION_COLUMNS = (
    ("float32", ""),
    ("int8", "int8"),
    ("int8+rescore", "int8+rescore"),
    ("binary", "binary"),
    ("binary+rescore", "binary+rescore"),
)


def quantization_table(metrics: Mapping[str, Any], metric: str = "ndcg_at_10") -> str:
    """Markdown table of one retrieval result with ``dims`` and ``quantization``: one row per
    embedding size (the full size first, then each truncation found, largest first), one column
    per precision (float32, int8, int8+rescore, binary, binary+rescore); each cell
    ``metric`` and, in brackets, its share of the full-size float32 value ("-" where not
    evaluated)."""
    reference = metrics.get(metric)
    prefix = f"{metric}@"
    dims = set()
    for key in metrics:
        head = key[len(prefix) :].split("+")[0] if key.startswith(prefix) else ""
        if head.isdigit():
            dims.add(int(head))
    full = metrics.get("embedding_dim")
    dims.discard(full)
    rows = [(f"{full} (full)" if full else "full", "")]
    rows += [(str(d), str(d)) for d in sorted(dims, reverse=True)]
    columns = " | ".join(name for name, _ in QUANTIZATION_COLUMNS)
    lines = [f"| dims ({metric}) | {columns} |", "|---" + "|---:" * len(QUANTIZATION_COLUMNS) + "|"]
    for label, dim in rows:
        cells = []
        for _, part in QUANTIZATION_COLUMNS:
            suffix = "+".join(p for p in (dim, part) if p)
            value = metrics.get(f"{metric}@{suffix}" if suffix else metric)
            if value is None:
                cells.append("-")
            elif reference:
                cells.append(f"{value:.4f} ({100 * value / reference:.1f}%)")
            else:
                cells.append(f"{value:.4f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


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
    "is_due",
    "make_evaluator",
    "quantization_table",
    "results_table",
    "run_evals",
    "run_evaluator",
]
