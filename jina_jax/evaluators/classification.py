"""Classification: logistic regression (sklearn) on frozen embeddings; accuracy on a held-out
split (MTEB's classification main score) and macro F1.

Offline task ``starter_domains``: which starter eval set a query comes from (a Python FAQ
question, a Debian FAQ question, a man page's NAME summary or a package's short description).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score

from jina_jax.data.hashing import stable_sample
from jina_jax.evaluators.common import as_embedder, embed, fit, load_starter


@dataclasses.dataclass(frozen=True)
class LabelledTexts:
    texts: tuple[str, ...]
    labels: tuple[str, ...]


def starter_domains(
    data_dir: str | os.PathLike | None = None, per_label: int | None = 150
) -> LabelledTexts:
    """Queries of every starter retrieval set, labelled with the set; at most ``per_label``
    (a stable sample) from each."""
    starter = load_starter(data_dir)
    texts, labels = [], []
    for name in starter.beir_folders:
        queries = list(dict.fromkeys(starter.beir(name).queries.values()))
        for i in stable_sample(queries, per_label, f"domains:{name}"):
            texts.append(queries[i])
            labels.append(name)
    return LabelledTexts(tuple(texts), tuple(labels))


def split_train_test(keys, test_fraction: float = 0.5, salt: str = "split"):
    """Stable split by hash of each key: (train indices, test indices)."""
    test = set(stable_sample(keys, round(len(keys) * test_fraction), salt))
    return [i for i in range(len(keys)) if i not in test], sorted(test)


def logistic_regression_scores(
    train_x, train_y, test_x, test_y, *, max_iter: int = 100, seed: int = 0
) -> dict[str, float]:
    """train_x, test_x: [N, D] features, dense or scipy sparse."""
    classifier = LogisticRegression(max_iter=max_iter, random_state=seed)
    predicted = classifier.fit(train_x, train_y).predict(test_x)
    return {
        "accuracy": float(accuracy_score(test_y, predicted)),
        "f1_macro": float(f1_score(test_y, predicted, average="macro")),
    }


@dataclasses.dataclass
class ClassificationEvaluator:
    """``dataset``: "starter_domains" or a ``LabelledTexts`` (split in half by a hash of the
    text), or a dict(train=LabelledTexts, test=LabelledTexts). A fitted embedder (TF-IDF) is
    fitted on the texts of both splits."""

    headline = "accuracy"

    dataset: Any = "starter_domains"
    data_dir: str | os.PathLike | None = None
    per_label: int | None = 150
    test_fraction: float = 0.5
    max_iter: int = 100
    seed: int = 0
    batch_size: int = 32
    max_length: int | None = None

    def __call__(self, embedder) -> dict[str, Any]:
        embedder = as_embedder(embedder, batch_size=self.batch_size)
        train, test = self.splits()
        fit(embedder, (*train.texts, *test.texts))
        texts = list(dict.fromkeys((*train.texts, *test.texts)))
        index = {t: i for i, t in enumerate(texts)}
        vectors = embed(embedder, texts, max_length=self.max_length)
        metrics = logistic_regression_scores(
            vectors[[index[t] for t in train.texts]],
            list(train.labels),
            vectors[[index[t] for t in test.texts]],
            list(test.labels),
            max_iter=self.max_iter,
            seed=self.seed,
        )
        return {**metrics, "num_train": len(train.texts), "num_test": len(test.texts)}

    def splits(self) -> tuple[LabelledTexts, LabelledTexts]:
        data = self.dataset
        if isinstance(data, dict):
            return data["train"], data["test"]
        if data == "starter_domains":
            data = starter_domains(self.data_dir, self.per_label)
        if not isinstance(data, LabelledTexts):
            raise ValueError(f"classification data {self.dataset!r}: not 'starter_domains'")
        train, test = split_train_test(data.texts, self.test_fraction)
        pick = lambda rows: LabelledTexts(  # noqa: E731
            tuple(data.texts[i] for i in rows), tuple(data.labels[i] for i in rows)
        )
        return pick(train), pick(test)
