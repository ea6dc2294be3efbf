"""Training objectives: what one step minimises, given parameters and a batch of the one batch
schema (``jina_jax.data.pipeline``: ``ids, segments, positions [R, L]`` plus per-text lengths).

``ContrastiveObjective`` (pairs and hard negatives, jina-embeddings v1/v2) embeds every text of
the batch in one encoder pass over its rows (packed or one text per row) and pools each text
by its segment id. ``DistillObjective`` (jina-embeddings-v5-text, stage 1) learns a teacher's
embeddings of the same texts through a learnt projection. ``LoraObjective`` (jina-embeddings-v3
/ v5-text) trains task LoRA adapters with the same losses on a frozen encoder. ``MLMObjective``
is the backbone's masked-LM pretraining (v2, stage 0). The contrastive and distillation losses
can be summed over nested prefixes of the embedding (Matryoshka, ``matryoshka_dims``).

Each objective's ``optimizer_groups()`` tells ``training.optim.make_optimizer`` which parameters
train (None: all of them).
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jina_jax import losses
from jina_jax.data.masking import IGNORE_INDEX
from jina_jax.models import EncoderConfig, build_encoder, build_mlm, forward_flops
from jina_jax.models import lora as lora_lib
from jina_jax.models.pooling import segment_pool
from jina_jax.training.optim import FROZEN

CONTRASTIVE_LOSSES = ("infonce", "v1")


def batch_layout(batch) -> tuple[int, int, int]:
    """``(B, K, N)`` of a contrastive batch: queries, hard negatives per query, texts (B(2+K))."""
    b = batch["query_lengths"].shape[0]
    docs = batch["docs_lengths"].shape[0]
    return b, docs // b - 1, b + docs


@dataclasses.dataclass(frozen=True)
class ContrastiveObjective:
    """Pairs (q, p) and items with hard negatives (q, p, n_1..n_K).

    ``loss="infonce"``: bidirectional InfoNCE, hard negatives added to the q->p denominator (v2).
    ``loss="v1"``: the same plus the triplet margin term (jina-embeddings-v1, stage 2).
    """

    model: EncoderConfig
    pooling: str = "mean"
    loss: str = "infonce"
    temperature: float = 0.05
    margin: float = 0.05
    triplet_weight: float = 1.0
    bidirectional: bool = True
    matryoshka_dims: tuple[int, ...] = ()  # nested prefixes the loss is summed over; () = off
    matryoshka_weights: tuple[float, ...] = ()  # one per dimension of matryoshka_dims

    def __post_init__(self):
        if self.loss not in CONTRASTIVE_LOSSES:
            raise ValueError(
                f"unknown contrastive loss {self.loss!r}; use one of {CONTRASTIVE_LOSSES}"
            )

    @property
    def module(self) -> nn.Module:
        return build_encoder(self.model)

    def init(self, rng: jax.Array, length: int = 8):
        ids = jnp.zeros((1, length), jnp.int32)
        return self.module.init(rng, ids, jnp.ones_like(ids))["params"]

    def optimizer_groups(self):
        return None  # every parameter trains

    def encode_rows(self, variables, ids, segments, positions, num_texts: int, rng, train: bool):
        """The encoder applied to ``variables`` (``{"params": ...}``, maybe a ``lora``
        collection too), pooled per text."""
        rngs = {"dropout": rng} if train else {}
        out = self.module.apply(
            variables,
            ids,
            deterministic=not train,
            rngs=rngs,
            segment_ids=segments,
            position_ids=positions,
        )
        return segment_pool(out["last_hidden_state"], segments, positions, num_texts, self.pooling)

    def embed_rows(
        self, params, ids, segments, positions, num_texts: int, rng, train: bool, batch=None
    ):
        """Rows ``ids/segments/positions [R, L]`` -> float32 ``[num_texts, D]`` in text order;
        texts with no token in these rows (another GradCache chunk's) get zeros. ``batch``: the
        whole batch the rows come from (its per-batch fields; unused here)."""
        del batch
        return self.encode_rows({"params": params}, ids, segments, positions, num_texts, rng, train)

    def embed(self, params, batch, rng, train: bool) -> jax.Array:
        """Every text of the batch, ``[N, D]``: queries, positives, then hard negatives."""
        _, _, n = batch_layout(batch)
        return self.embed_rows(
            params, batch["ids"], batch["segments"], batch["positions"], n, rng, train, batch
        )

    def loss_from_embeddings(self, texts, batch):
        """The loss of the text embeddings ``[N, D]`` laid out as ``batch``, summed over the
        Matryoshka prefixes when there are any."""
        return losses.matryoshka_loss(
            lambda t: self._loss(t, batch), self.matryoshka_dims, self.matryoshka_weights, texts
        )

    def _loss(self, texts, batch):
        """Documents are the positives then all hard negatives (``p p .. n n ..``), the layout
        the labels assume."""
        b, k, _ = batch_layout(batch)
        q, p = texts[:b], texts[b : 2 * b]
        n = texts[2 * b :].reshape(b, k, -1) if k else None
        if self.loss == "v1" and n is not None:
            return losses.v1_hard_negative_loss(
                q,
                p,
                n,
                temperature=self.temperature,
                margin=self.margin,
                triplet_weight=self.triplet_weight,
            )
        return losses.infonce_loss(
            q,
            p,
            temperature=self.temperature,
            negatives=n,
            in_batch_negatives=batch.get("in_batch_negatives", True),
            bidirectional=self.bidirectional,
        )

    def __call__(self, params, batch, rng, train: bool = True):
        return self.loss_from_embeddings(self.embed(params, batch, rng, train), batch)

    def tokens(self, batch) -> int:
        """Token slots the encoder ran (padding included)."""
        return batch["ids"].size

    def examples(self, batch) -> int:
        return batch["query_lengths"].shape[0]

    def flops(self, batch) -> float:
        """Model FLOPs of a training step: forward + backward = 3 x forward."""
        return 3 * forward_flops(self.model, *batch["ids"].shape)


DISTILL_LOSSES = ("cosine", "mse")
PROJECTIONS = ("student", "teacher", "none")


@dataclasses.dataclass(frozen=True)
class DistillObjective:
    """Embedding distillation (jina-embeddings-v5-text, stage 1): the student encoder learns the
    teacher's embeddings of the batch's texts (``batch["teacher"] [B, 2, D_t]``: each record's
    query and positive, computed once by the teacher, ``jina_jax.training.teacher``).

    ``projection="student"`` (what the v5 paper found best): a learnt linear map takes the
    student's embedding (its first ``d`` dimensions, for each Matryoshka prefix ``d``) into the
    teacher's space, where the loss is taken. ``"teacher"``: a learnt map takes the teacher's
    embedding into the student's space instead. ``"none"``: equal widths, no map. ``loss``:
    ``cosine`` or ``mse``; ``spread_out_weight`` adds the spread-out regulariser on the student's
    embeddings. Parameters: ``{"encoder": ..., "projection": {"dim_<d>": [d, D_t] | [D_t, d]}}``.
    """

    model: EncoderConfig
    teacher_dim: int
    pooling: str = "mean"
    loss: str = "cosine"
    projection: str = "student"
    projection_init: str = "random"  # random: N(0, 1/d); identity: eye(d, D_t) / eye(D_t, d)
    spread_out_weight: float = 0.0
    matryoshka_dims: tuple[int, ...] = ()
    matryoshka_weights: tuple[float, ...] = ()

    def __post_init__(self):
        if self.loss not in DISTILL_LOSSES:
            raise ValueError(
                f"unknown distillation loss {self.loss!r}; use one of {DISTILL_LOSSES}"
            )
        if self.projection not in PROJECTIONS:
            raise ValueError(f"unknown projection {self.projection!r}; use one of {PROJECTIONS}")
        if self.projection_init not in ("random", "identity"):
            raise ValueError(f"unknown projection_init {self.projection_init!r}")
        if self.projection == "none" and self.model.hidden_size != self.teacher_dim:
            raise ValueError(
                f"projection='none' needs equal widths; student {self.model.hidden_size}, "
                f"teacher {self.teacher_dim}"
            )

    @property
    def encoder(self) -> ContrastiveObjective:
        return ContrastiveObjective(self.model, pooling=self.pooling)

    @property
    def dims(self) -> tuple[int, ...]:
        return losses.nested_prefixes(self.matryoshka_dims, self.model.hidden_size)

    def init(self, rng: jax.Array, length: int = 8):
        encoder = self.encoder.init(rng, length)
        if self.projection == "none":
            return {"encoder": encoder}
        keys = jax.random.split(jax.random.fold_in(rng, 7), len(self.dims))
        heads = {}
        for key, d in zip(keys, self.dims):
            shape = (d, self.teacher_dim) if self.projection == "student" else (self.teacher_dim, d)
            if self.projection_init == "identity":
                init = lambda k, s: jnp.eye(*s, dtype=jnp.float32)  # noqa: E731
            else:
                init = lambda k, s: jax.random.normal(k, s) / np.sqrt(s[0])  # noqa: E731
            heads[f"dim_{d}"] = nn.with_logical_partitioning(init, (None, None))(key, shape)
        return {"encoder": encoder, "projection": heads}

    def optimizer_groups(self):
        return None  # the student and its projection heads all train

    def __call__(self, params, batch, rng, train: bool = True):
        texts = self.encoder.embed(params["encoder"], batch, rng, train)  # [2B, D]
        teacher = batch["teacher"]  # [B, 2, D_t]: query, positive of each record
        target = jnp.concatenate([teacher[:, 0], teacher[:, 1]]).astype(jnp.float32)
        weight_of = dict(zip(self.matryoshka_dims, self.matryoshka_weights))
        total, metrics = 0.0, {}
        for d in self.dims:
            student = texts[:, :d]
            if self.projection == "student":
                pred, goal = student @ params["projection"][f"dim_{d}"], target
            elif self.projection == "teacher":
                pred, goal = student, target @ params["projection"][f"dim_{d}"]
            else:
                pred, goal = student, target
            loss_d, metrics_d = losses.distill_loss(pred, goal, self.loss)
            total = total + weight_of.get(d, 1.0) * loss_d
            if d == self.model.hidden_size:
                metrics = dict(metrics_d)
            if len(self.dims) > 1:
                metrics[f"loss_dim_{d}"] = loss_d
        if self.spread_out_weight:
            spread = losses.spread_out_loss(texts)
            total = total + self.spread_out_weight * spread
            metrics["spread_out"] = spread
        metrics["loss"] = total
        return total, metrics

    def tokens(self, batch) -> int:
        return batch["ids"].size

    def examples(self, batch) -> int:
        return batch["query_lengths"].shape[0]

    def flops(self, batch) -> float:
        return 3 * forward_flops(self.model, *batch["ids"].shape)


@dataclasses.dataclass(frozen=True)
class LoraObjective(ContrastiveObjective):
    """Task LoRA adapters on a frozen encoder (jina-embeddings-v3, v5-text), trained with the
    contrastive losses above.

    Parameters: ``{"base": encoder params, "lora": {task: {module path: {"a", "b"}}}}``
    (``jina_jax.models.lora``). The base is frozen twice: ``stop_gradient`` here (no gradient
    is computed for it) and the optimiser (``optimizer_groups``: no update, no Adam state).
    Each batch names its adapters, ``query_adapter`` and ``passage_adapter`` (int32 scalars,
    indices into ``tasks``; ``jina_jax.training.tasks.AdapterBatches`` adds them per dataset):
    a traced index, so one program serves every dataset and adapter.
    """

    rank: int = 4
    alpha: float = 4.0
    tasks: tuple[str, ...] = lora_lib.V3_TASKS
    targets: tuple[str, ...] = lora_lib.DEFAULT_TARGETS
    # Some dataset uses different adapters for its queries and its documents. Queries and
    # documents share packed rows, so the encoder then runs over all rows once per side (query
    # adapter, passage adapter): 2x the compute of a pairs step. False: one pass.
    two_sided: bool = True

    def init(self, rng: jax.Array, length: int = 8):
        base = super().init(jax.random.fold_in(rng, 0), length)
        lora = lora_lib.init_lora(
            base,
            rank=self.rank,
            tasks=self.tasks,
            targets=self.targets,
            rng=jax.random.fold_in(rng, 1),
        )
        return {"base": base, "lora": lora}

    def optimizer_groups(self):
        """Each task adapter is its own group (its Adam state advances only on steps that
        train it); the base is frozen."""

        def labels(params):
            return {
                "base": jax.tree.map(lambda _: FROZEN, params["base"]),
                "lora": {t: jax.tree.map(lambda _, t=t: t, v) for t, v in params["lora"].items()},
            }

        return self.tasks, labels

    def embed_rows(
        self, params, ids, segments, positions, num_texts: int, rng, train: bool, batch=None
    ):
        """As ``ContrastiveObjective.embed_rows``, with the batch's query adapter for the
        queries (texts ``[0, B)``) and its passage adapter for the documents."""
        base = jax.lax.stop_gradient(params["base"])

        def run(index):
            adapter = lora_lib.select(params["lora"], self.tasks, index)
            variables = {
                "params": base,
                lora_lib.COLLECTION: lora_lib.as_collection(adapter, self.alpha, self.rank),
            }
            return self.encode_rows(variables, ids, segments, positions, num_texts, rng, train)

        queries = run(batch["query_adapter"])
        if not self.two_sided:
            return queries
        documents = run(batch["passage_adapter"])
        b, _, _ = batch_layout(batch)
        return jnp.where((jnp.arange(num_texts) < b)[:, None], queries, documents)

    def flops(self, batch) -> float:
        """Per encoder pass: forward + the activations' backward = 2 x forward (the frozen
        kernels get no weight gradient; the low-rank branch is left out)."""
        passes = 2 if self.two_sided else 1
        return passes * 2 * forward_flops(self.model, *batch["ids"].shape)


@dataclasses.dataclass(frozen=True)
class MLMObjective:
    """Masked-language-model pretraining of the backbone (inputs masked in the data pipeline)."""

    model: EncoderConfig
    max_mask_fraction: float = 0.5  # upper bound on masked tokens per row (30% is the default)

    @property
    def module(self) -> nn.Module:
        return build_mlm(self.model)

    def init(self, rng: jax.Array, length: int = 8):
        ids = jnp.zeros((1, length), jnp.int32)
        return self.module.init(rng, ids, jnp.ones_like(ids))["params"]

    def optimizer_groups(self):
        return None  # every parameter trains

    def _slots(self, length: int) -> int:
        return min(length, int(np.ceil(length * self.max_mask_fraction)))

    def __call__(self, params, batch, rng, train: bool = True):
        rngs = {"dropout": rng} if train else {}
        labels = batch["labels"]
        # Only masked positions reach the vocabulary projection: the first `slots` of each row
        # after sorting masked positions first (slots > mask_prob * L, so none are dropped).
        slots = self._slots(labels.shape[1])
        predict_at = jnp.argsort(labels == IGNORE_INDEX, axis=1, stable=True)[:, :slots]
        logits = self.module.apply(
            {"params": params},
            batch["ids"],
            deterministic=not train,
            rngs=rngs,
            segment_ids=batch["segments"],
            position_ids=batch["positions"],
            predict_at=predict_at,
        )
        return losses.mlm_loss(logits, jnp.take_along_axis(labels, predict_at, axis=1))

    def tokens(self, batch) -> int:
        return batch["ids"].size

    def examples(self, batch) -> int:
        return batch["ids"].shape[0]

    def flops(self, batch) -> float:
        rows, length = batch["ids"].shape
        hidden = self.model.hidden_size
        head = 2 * rows * self._slots(length) * (hidden * hidden + hidden * self.model.vocab_size)
        return 3 * (forward_flops(self.model, rows, length) + head)
