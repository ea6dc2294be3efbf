"""Evaluators: a ``Model`` and data in, a dict of metrics out; every one embeds through
``jina_jax.encode``.

    metrics = run_evaluator("retrieval", model, dataset="python_faq")
    metrics = run_evaluator("negation", model)                      # held-out negation triplets

Training runs them from the config (big_vision style), without the trainer knowing them:

    config.evals.faq = dict(type="retrieval", every=500, dataset="python_faq")
    config.evals.neg = dict(type="negation", every=500)
    results = run_evals(config.evals, model, step=step)            # the ones due at ``step``

Each evaluator is a dataclass: its fields are the data arguments (``dataset``: a starter name, a
path, or the records themselves; ``data_dir``: the starter corpus, default
``data_cache/starter``) and encode settings (``batch_size``, ``max_length``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jina_jax.evaluators.classification import ClassificationEvaluator
from jina_jax.evaluators.clustering import ClusteringEvaluator
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
# Keys of a config.evals entry that schedule an evaluator rather than configure it.
SCHEDULE_KEYS = ("type", "every")


def make_evaluator(type_name: str, **kwargs: Any):
    if type_name not in EVALUATORS:
        raise ValueError(f"unknown evaluator type {type_name!r}; known: {sorted(EVALUATORS)}")
    return EVALUATORS[type_name](**kwargs)


def run_evaluator(type_name: str, model, **kwargs: Any) -> dict[str, Any]:
    """Runs the evaluator ``type_name`` built with ``kwargs`` on ``model``."""
    return make_evaluator(type_name, **kwargs)(model)


def is_due(every: int | None, step: int | None, last_step: int | None = None) -> bool:
    """Due at ``step`` when ``every`` divides it, and always at the last step; always when
    ``step`` is None (a standalone run). ``every`` 0 / None: only at the last step."""
    if step is None or (last_step is not None and step == last_step):
        return True
    return bool(every) and step % int(every) == 0


def run_evals(
    evals: Mapping[str, Mapping[str, Any]],
    model,
    *,
    step: int | None = None,
    last_step: int | None = None,
    **defaults: Any,
) -> dict[str, dict[str, Any]]:
    """Runs the entries of ``config.evals`` (name -> dict(type=..., every=..., <arguments>))
    due at ``step``; ``defaults`` (e.g. ``data_dir``) fill arguments an entry does not set.
    Returns {name: metrics}."""
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
        results[name] = run_evaluator(entry["type"], model, **arguments)
    return results


__all__ = [
    "EVALUATORS",
    "ClassificationEvaluator",
    "ClusteringEvaluator",
    "NegationEvaluator",
    "PairClassificationEvaluator",
    "RerankingEvaluator",
    "RetrievalEvaluator",
    "STSEvaluator",
    "is_due",
    "make_evaluator",
    "run_evals",
    "run_evaluator",
]
