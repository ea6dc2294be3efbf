"""mteb 2.x adapter: run MTEB tasks on a ``jina_jax.Model`` through the one encode path.

    import mteb
    from jina_jax.mteb_adapter import JinaJaxEncoder, beir_retrieval_task

    encoder = JinaJaxEncoder(jina_jax.load_model("all-MiniLM-L6-v2"))
    mteb.evaluate(encoder, mteb.get_tasks(tasks=["SciFact"]))           # online
    mteb.evaluate(encoder, [beir_retrieval_task("data_cache/starter/eval/python_faq")],
                  cache=None)                                            # offline, local data

mteb gives ``encode`` a DataLoader of batches, each a dict whose ``"text"`` is a list of
strings; we gather every text and embed them in one ``jina_jax.encode`` call, so that its
length sorting and bucketing see the whole set.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import jax
import numpy as np
from mteb.abstasks.retrieval import AbsTaskRetrieval
from mteb.abstasks.task_metadata import TaskMetadata
from mteb.models.abs_encoder import AbsEncoder
from mteb.models.model_meta import ModelMeta, ScoringFunction

from jina_jax.data.readers import read_beir
from jina_jax.encoding import encode
from jina_jax.loading import load_model


def model_meta(model, name: str = "jina_jax/model", revision: str = "local") -> ModelMeta:
    """A ``ModelMeta`` for a loaded model (cosine similarity as the ``ScoringFunction`` enum)."""
    n_parameters = sum(int(np.prod(np.shape(x))) for x in jax.tree.leaves(model.params))
    return ModelMeta(
        loader=None,
        name=name,
        revision=revision,
        release_date=None,
        languages=["eng-Latn"],
        n_parameters=n_parameters,
        memory_usage_mb=round(n_parameters * 4 / 2**20, 1),
        max_tokens=model.max_length,
        embed_dim=model.dim,
        license=None,
        open_weights=None,
        public_training_code=None,
        public_training_data=None,
        framework=["JAX"],
        similarity_fn_name=ScoringFunction.COSINE,
        use_instructions=False,
        training_datasets=None,
    )


class JinaJaxEncoder(AbsEncoder):
    """An mteb encoder around a ``jina_jax.Model``: L2-normalised embeddings, cosine scoring.

    ``batch_size`` defaults to mteb's ``encode_kwargs["batch_size"]``; ``max_length`` to the
    model's. Prompts are not used (``use_instructions=False``).
    """

    def __init__(
        self,
        model,
        *,
        name: str | None = None,
        batch_size: int | None = None,
        max_length: int | None = None,
    ):
        if isinstance(model, str | os.PathLike):
            name = name or f"jina_jax/{pathlib.Path(model).name}"
            model = load_model(model)
        self.model = model
        self.batch_size = batch_size
        self.max_length = max_length
        self.mteb_model_meta = model_meta(model, name or "jina_jax/model")

    def encode(
        self,
        inputs,
        *,
        task_metadata: TaskMetadata,
        hf_split: str,
        hf_subset: str,
        prompt_type=None,
        **kwargs: Any,
    ) -> np.ndarray:
        """inputs: DataLoader of {"text": [str, ...], ...} -> [N, D] float32, input order."""
        del task_metadata, hf_split, hf_subset, prompt_type
        texts = [text for batch in inputs for text in batch["text"]]
        if not texts:
            return np.zeros((0, self.model.dim), np.float32)
        batch_size = self.batch_size or int(kwargs.get("batch_size") or 32)
        return encode(
            self.model, texts, batch_size=batch_size, max_length=self.max_length, normalize=True
        )


def _task_metadata(name: str, description: str) -> TaskMetadata:
    return TaskMetadata(
        name=name,
        description=description,
        dataset={"path": f"local/{name}", "revision": "local"},
        type="Retrieval",
        category="t2t",
        modalities=["text"],
        eval_splits=["test"],
        eval_langs=["eng-Latn"],
        main_score="ndcg_at_10",
        date=None,
        domains=None,
        task_subtypes=None,
        license=None,
        annotations_creators="derived",
        dialect=[],
        sample_creation="found",
        bibtex_citation="",
    )


class LocalBeirRetrieval(AbsTaskRetrieval):
    """An ``AbsTaskRetrieval`` whose ``load_data`` fills ``self.dataset`` from a local BEIR
    folder (no hub). Subclassed per folder by ``beir_retrieval_task``."""

    folder: pathlib.Path
    metadata = _task_metadata("LocalBeirRetrieval", "A local BEIR folder.")

    def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
        if self.data_loaded:
            return
        # optional: Hugging Face `datasets` is needed only to hand a local set to mteb
        from datasets import Dataset

        data = read_beir(self.folder, split="test")
        judged = {q: docs for q, docs in data.qrels.items() if q in data.queries}
        # Titles are already joined into the text by read_beir, as mteb would join them.
        self.dataset = {
            "default": {
                "test": {
                    "corpus": Dataset.from_list(
                        [{"id": d, "text": t, "title": ""} for d, t in data.corpus.items()]
                    ),
                    "queries": Dataset.from_list(
                        [{"id": q, "text": data.queries[q]} for q in judged]
                    ),
                    "relevant_docs": judged,
                    "top_ranked": None,
                }
            }
        }
        self.data_loaded = True


def beir_retrieval_task(folder: str | os.PathLike, name: str | None = None) -> LocalBeirRetrieval:
    """An mteb retrieval task (instance) over the BEIR folder ``folder``."""
    folder = pathlib.Path(folder)
    name = name or f"Local{folder.name.title().replace('_', '')}Retrieval"
    task_class = type(
        name,
        (LocalBeirRetrieval,),
        {"folder": folder, "metadata": _task_metadata(name, f"Local BEIR folder {folder}.")},
    )
    return task_class()
