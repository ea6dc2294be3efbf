"""Stage kinds: each builds, from the run config, its model, objective, batches and fingerprint,
and says how the previous stage's weights become its starting weights. ``jina_jax.main`` runs
whichever the config's ``stages`` list.

    task = TASKS["pairs"](config, "pairs")
    objective = task.objective(task.model_config(base_config))
    batches = task.batches(tokenizer, mesh, rules)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np
from ml_collections import ConfigDict

from jina_jax import config_lib, storage
from jina_jax import sharding as shd
from jina_jax.data import catalog
from jina_jax.data.pipeline import MLMBatches, PairBatches
from jina_jax.data.sampler import DatasetSpec
from jina_jax.model import Model
from jina_jax.models import EncoderConfig
from jina_jax.models.lora import Adapters
from jina_jax.training.objectives import (
    ContrastiveObjective,
    DistillObjective,
    LoraObjective,
    MLMObjective,
)
from jina_jax.training.teacher import TeacherTargets


class StageTask:
    """What every stage kind provides; ``name`` is its block in the config."""

    def __init__(self, config: ConfigDict, name: str):
        self.config = config
        self.name = name
        self.cfg = config[name]

    def sources(self) -> list[str]:
        """Dataset sources the stage reads (the starter corpus is built if one is in it)."""
        raise NotImplementedError

    def model_config(self, base: EncoderConfig) -> EncoderConfig:
        return base

    def objective(self, model_config: EncoderConfig):
        raise NotImplementedError

    def batches(self, tokenizer, mesh, rules):
        raise NotImplementedError

    def prepare(self, load_embedder) -> None:
        """Loads what the stage needs beyond the config (a distillation teacher), through the
        loader the caller hands in (``jina_jax.loading.load_embedder``)."""

    def finish(self) -> None:
        """Called after the stage's training (also when it stops early)."""

    def starting_params(self, params) -> tuple[Any, tuple[str, ...]]:
        """The previous stage's (or the import's) encoder or MLM weights -> this stage's
        parameter tree, and patterns of parameters the conversion knowingly lacks (they start
        fresh, like the config's ``reinit`` patterns)."""
        return params, ()

    def fingerprint(self) -> dict:
        return config_lib.stage_fingerprint(self.config, self.name)

    def spec_fields(self) -> dict:
        """Extra model.json fields of the stage's folder (``checkpoints.write_model_spec``)."""
        return {}

    def model_with(self, model: Model, params) -> Model:
        """``model`` with this stage's parameters (periodic evals during training)."""
        return dataclasses.replace(model, params=params)

    @property
    def eval_adapter(self) -> str | None:
        """The adapter periodic evals embed through (None: the model as it is)."""
        return None

    @property
    def grad_cache_chunk(self) -> int:
        """Rows per GradCache chunk; 0 = the plain step (GradCache is contrastive-only)."""
        return 0

    def _process(self) -> dict[str, int]:
        return dict(process_index=jax.process_index(), process_count=jax.process_count())


class MLMTask(StageTask):
    """Masked-LM pretraining of the backbone (v2 stage 0)."""

    def sources(self) -> list[str]:
        return [self.cfg.data]

    def model_config(self, base: EncoderConfig) -> EncoderConfig:
        return dataclasses.replace(base, add_pooler=False)  # the MLM model has no pooler

    def objective(self, model_config: EncoderConfig) -> MLMObjective:
        return MLMObjective(model_config)

    def batches(self, tokenizer, mesh, rules) -> MLMBatches:
        return MLMBatches(
            catalog.text_source(self.cfg.data, self.config.data),
            tokenizer,
            self.cfg.max_length,
            self.cfg.batch_size,
            self.config.seed,
            mask_prob=self.cfg.mask_prob,
            row_multiple=shd.batch_shards(mesh, rules),
            **self._process(),
        )

    def starting_params(self, params):
        if "cls" in params:  # an MLM checkpoint: continue pretraining it
            return params, ()
        encoder = {k: v for k, v in params.items() if k != "pooler"}
        return {"bert": encoder}, ("cls/.*",)  # an encoder gets a fresh MLM head


class ContrastiveTask(StageTask):
    """Pairs (InfoNCE over the global batch) or hard negatives (v2: InfoNCE with the negatives
    in the q->p denominator; v1: plus a triplet margin term)."""

    def sources(self) -> list[str]:
        return [ds.source for ds in self.cfg.datasets.values()]

    def objective(self, model_config: EncoderConfig) -> ContrastiveObjective:
        cfg = self.cfg
        return ContrastiveObjective(
            model_config,
            pooling=self.config.pooling,
            loss=cfg.loss,
            temperature=cfg.temperature,
            margin=cfg.margin,
            triplet_weight=cfg.triplet_weight,
            matryoshka_dims=tuple(cfg.matryoshka_dims),
            matryoshka_weights=tuple(cfg.matryoshka_weights),
        )

    def batches(self, tokenizer, mesh, rules, targets=None) -> PairBatches:
        cfg = self.cfg
        if not cfg.datasets:
            raise ValueError(f"config.{self.name}.datasets is empty: name at least one dataset")
        specs, sources = [], {}
        for name, ds in cfg.datasets.items():
            sources[name] = catalog.pair_source(
                ds.source, self.config.data, min_negatives=cfg.num_negatives
            )
            specs.append(
                DatasetSpec(
                    name,
                    scale=ds.scale,
                    batch_size=ds.batch_size,
                    query_prefix=ds.query_prefix,
                    passage_prefix=ds.passage_prefix,
                    in_batch_negatives=ds.in_batch_negatives,
                    num_negatives=cfg.num_negatives,
                )
            )
        # Rows split evenly over the batch shards, and over GradCache chunks.
        row_multiple = math.lcm(shd.batch_shards(mesh, rules), self.grad_cache_chunk or 1)
        return PairBatches(
            sources,
            specs,
            tokenizer,
            cfg.query_max_length,
            cfg.passage_max_length,
            self.config.seed,
            pad_to_max_length=cfg.pad_to_max_length,
            pack=cfg.pack,
            row_multiple=row_multiple,
            row_steps_per_octave=cfg.pack_row_steps,
            targets=targets,
            **self._process(),
        )

    @property
    def grad_cache_chunk(self) -> int:
        return int(self.cfg.grad_cache_chunk)

    def starting_params(self, params):
        if "cls" in params:  # an MLM backbone: its encoder, whose pooler it never had
            return params["bert"], ("pooler/.*",)
        if "lora" in params:  # a LoRA stage's: its (unchanged) base, the adapters left out
            return params["base"], ()
        return params, ()


class DistillTask(ContrastiveTask):
    """Embedding distillation (v5-text, stage 1) on the queries and positives of pair
    datasets: the teacher's vectors come from ``prepare``'s teacher (``TeacherTargets``)."""

    teacher: TeacherTargets | None = None

    def prepare(self, load_embedder) -> None:
        cfg = self.cfg
        embedder = load_embedder(
            cfg.teacher,
            batch_size=cfg.teacher_batch_size,
            max_length=cfg.teacher_max_length,
            dtype=None if cfg.teacher_dtype == "float32" else cfg.teacher_dtype,
        )
        cache = cfg.cache_dir or str(storage.as_path(self.config.data.dir) / "teacher_cache")
        self.teacher = TeacherTargets(
            embedder,
            cache,
            max_length=cfg.teacher_max_length,
            variant="" if cfg.teacher_dtype == "float32" else cfg.teacher_dtype,
            **self._process(),
        )

    def objective(self, model_config: EncoderConfig) -> DistillObjective:
        cfg = self.cfg
        return DistillObjective(
            model_config,
            teacher_dim=self.teacher.dim,
            pooling=self.config.pooling,
            loss=cfg.loss,
            projection=cfg.projection,
            projection_init=cfg.projection_init,
            spread_out_weight=cfg.spread_out_weight,
            matryoshka_dims=tuple(cfg.matryoshka_dims),
            matryoshka_weights=tuple(cfg.matryoshka_weights),
        )

    def batches(self, tokenizer, mesh, rules, targets=None) -> PairBatches:
        return super().batches(tokenizer, mesh, rules, targets=self.teacher)

    @property
    def grad_cache_chunk(self) -> int:
        return 0

    def starting_params(self, params):
        encoder, fresh = super().starting_params(params)
        return {"encoder": encoder}, (*(f"encoder/{p}" for p in fresh), "projection/.*")

    def finish(self) -> None:
        if self.teacher is not None:
            self.teacher.flush()
            print(f"[{self.name}] teacher vectors computed this run: {self.teacher.computed}")

    def model_with(self, model: Model, params) -> Model:
        """The student alone (the projection heads serve the loss only)."""
        return dataclasses.replace(model, params=params["encoder"])


class AdapterBatches:
    """A LoRA stage's batches: ``PairBatches`` plus, per batch, the indices (into the stage's
    ``tasks``) of the adapters for its queries and its documents, from its dataset."""

    def __init__(self, batches, adapters: dict[str, tuple[int, int]]):
        self.batches, self.adapters = batches, adapters

    def batch_at(self, step: int) -> dict:
        batch = self.batches.batch_at(step)
        query, passage = self.adapters[batch["dataset"]]
        return {**batch, "query_adapter": np.int32(query), "passage_adapter": np.int32(passage)}


class LoraTask(ContrastiveTask):
    """Task LoRA adapters on the frozen previous model (jina-embeddings-v3, v5-text): the
    pairs / hard-negatives losses, each dataset's queries through one adapter and its documents
    through another (``config.lora.adapters``, else ``default_adapters``)."""

    def dataset_adapters(self) -> dict[str, tuple[str, str]]:
        cfg = self.cfg
        return {
            name: tuple(cfg.adapters[name] if name in cfg.adapters else cfg.default_adapters)
            for name in cfg.datasets
        }

    def objective(self, model_config: EncoderConfig) -> LoraObjective:
        cfg = self.cfg
        return LoraObjective(
            model_config,
            pooling=self.config.pooling,
            loss=cfg.loss,
            temperature=cfg.temperature,
            margin=cfg.margin,
            triplet_weight=cfg.triplet_weight,
            rank=int(cfg.rank),
            alpha=float(cfg.alpha),
            tasks=tuple(cfg.tasks),
            targets=tuple(cfg.targets),
            two_sided=any(q != p for q, p in self.dataset_adapters().values()),
        )

    def batches(self, tokenizer, mesh, rules) -> AdapterBatches:
        index = {task: i for i, task in enumerate(self.cfg.tasks)}
        adapters = {name: (index[q], index[p]) for name, (q, p) in self.dataset_adapters().items()}
        return AdapterBatches(super().batches(tokenizer, mesh, rules), adapters)

    def starting_params(self, params):
        """The previous model becomes the frozen base; the adapters start fresh (B = 0)."""
        base, fresh = super().starting_params(params)
        return {"base": base}, (*(f"base/{pattern}" for pattern in fresh), "lora/.*")

    def spec_fields(self) -> dict:
        cfg = self.cfg
        return {
            "lora": {
                "rank": int(cfg.rank),
                "alpha": float(cfg.alpha),
                "tasks": list(cfg.tasks),
                "targets": list(cfg.targets),
            }
        }

    def model_with(self, model: Model, params) -> Model:
        adapters = Adapters(params["lora"], int(self.cfg.rank), float(self.cfg.alpha))
        return dataclasses.replace(model, params=params["base"], adapters=adapters)

    @property
    def eval_adapter(self) -> str | None:
        return self.cfg.eval_adapter or None


TASKS: dict[str, type[StageTask]] = {
    "mlm": MLMTask,
    "distill": DistillTask,
    "pairs": ContrastiveTask,
    "triplets": ContrastiveTask,
    "lora": LoraTask,
}
