"""What a run config contains: every key, its default and what it means, in one place.

A config file (``configs/*.py``) has ``get_config(arg)`` returning ``base_config()`` with some
values changed, locked, so that a misspelt key (in the file or as ``--config.x=y``) is an error
that names the close matches. The code reads these keys as attributes, with no defaults of its
own. ``:local`` (``shrink_for_local``) turns any config into a CPU smoke run of the same stages.

Model fields (``config.model``) are those of the architecture's config class
(``jina_jax.models.BertConfig`` / ``T5Config``, where their defaults live); a field left at None
takes that default, or, with ``init_from``, the imported model's value.
"""

from __future__ import annotations

import dataclasses
import json
import re

from absl import flags
from ml_collections import ConfigDict, config_dict, config_flags

from jina_jax.errors import ConfigError
from jina_jax.models import ARCHITECTURES
from jina_jax.models import lora as lora_lib
from jina_jax.sharding import DEFAULT_RULES

# Sizes from the papers (jina-embeddings v2: Günther et al. 2023, arXiv 2310.19923; v1: Günther
# et al. 2023, arXiv 2307.11224); head_dim is 64 throughout.
JINA_BERT_SIZES = {
    "small": dict(
        hidden_size=512,
        num_layers=4,
        num_heads=8,
        intermediate_size=2048,
        feed_forward_type="geglu",
    ),
    "base": dict(
        hidden_size=768,
        num_layers=12,
        num_heads=12,
        intermediate_size=3072,
        feed_forward_type="geglu",
    ),
    "large": dict(
        hidden_size=1024,
        num_layers=24,
        num_heads=16,
        intermediate_size=4096,
        feed_forward_type="reglu",
    ),
}
T5_SIZES = {
    "small": dict(d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8),
    "base": dict(d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12),
    "large": dict(d_model=1024, d_kv=64, d_ff=4096, num_layers=24, num_heads=16),
}
# A model small enough to train in minutes on 2 CPU cores.
LOCAL_JINA_BERT = dict(
    hidden_size=128, num_layers=2, num_heads=4, intermediate_size=256, feed_forward_type="geglu"
)
LOCAL_T5 = dict(d_model=128, d_kv=32, d_ff=256, num_layers=2, num_heads=4)

STAGE_KINDS = ("mlm", "distill", "pairs", "triplets", "lora")  # training stages; each has a block


def define_config_flag() -> None:
    """``--config=path.py[:arg]`` for the command-line tools (``jina_jax.main``, ``jina_jax.aot``),
    defined once however many of them a process imports."""
    if "config" not in flags.FLAGS:
        config_flags.DEFINE_config_file("config", None, "Path to a config file (path.py[:arg]).")


def parse_args(arg: str | None) -> set[str]:
    """``path.py:local,foo`` -> {"local", "foo"}."""
    return {a.strip() for a in (arg or "").split(",") if a.strip()}


def model_block(arch: str = "bert", **values) -> ConfigDict:
    """``config.model``: ``arch`` plus every field of that architecture's config class, None
    (= the class default, or the imported model's value with ``init_from``) unless given."""
    fields = dataclasses.fields(ARCHITECTURES[arch].config_cls)
    block = {f.name: config_dict.placeholder(_field_type(f)) for f in fields if f.name != "arch"}
    block = ConfigDict({"arch": arch, **block})
    block.update(values)
    return block


def _field_type(field: dataclasses.Field) -> type:
    kind = field.type if isinstance(field.type, type) else type(field.default)
    return kind


def optimizer(
    lr: float, warmup_steps: int, schedule: str = "linear", weight_decay: float = 0.01
) -> ConfigDict:
    """AdamW with warmup then decay, global-norm clipping; no weight decay on biases and norms."""
    return ConfigDict(
        dict(
            lr=lr,  # peak learning rate
            warmup_steps=warmup_steps,  # linear warmup from 0
            schedule=schedule,  # linear | cosine | constant decay after warmup
            end_lr_ratio=0.0,  # final lr as a fraction of the peak
            weight_decay=weight_decay,
            b1=0.9,
            b2=0.999,
            eps=1e-6,
            clip_norm=1.0,  # global-norm gradient clipping
        )
    )


def checkpoint(every: int, keep: int = 3) -> ConfigDict:
    return ConfigDict(
        dict(
            every=every,  # save every this many steps (and at the last step)
            keep=keep,  # newest checkpoints kept
            async_save=True,  # write in the background while training goes on
        )
    )


def dataset(
    source: str,
    *,
    scale: float = 1.0,
    batch_size: int = 32,
    query_prefix: str = "",
    passage_prefix: str = "",
    in_batch_negatives: bool = True,
) -> ConfigDict:
    """One training dataset of a pairs/triplets stage."""
    return ConfigDict(
        dict(
            # starter:<kind>/<name> (the offline starter corpus), a local file or folder
            # (jsonl[.gz], parquet, HF datasets, TFDS), or a hub dataset name
            source=source,
            scale=scale,  # s_i: batches come from dataset i with probability ∝ size_i * s_i
            batch_size=batch_size,  # GLOBAL batch (all hosts and devices), in pairs
            query_prefix=query_prefix,  # prepended to every query (e.g. "query: ")
            passage_prefix=passage_prefix,  # prepended to positives and negatives
            in_batch_negatives=in_batch_negatives,  # other rows' positives count as negatives
        )
    )


def _training_block(steps: int, lr: float, warmup: int, save_every: int, log_every: int) -> dict:
    """Keys every training stage has."""
    return dict(
        steps=steps,  # total optimizer steps of the stage
        optimizer=optimizer(lr, warmup),
        log_every=log_every,  # metrics.jsonl / TensorBoard / progress-bar cadence
        checkpoint=checkpoint(save_every),
        prefetch=2,  # batches built ahead on a host thread while the devices compute
        # Regular expressions over parameter paths ("layer_0/mlp/wo/kernel") that start from a
        # fresh initialisation instead of the starting weights (big_vision's dont_load). Any
        # other parameter the starting weights lack, or hold in another shape, is an error.
        reinit=(),
    )


def mlm_block() -> ConfigDict:
    """Stage 0 of v2: masked-LM pretraining of the backbone (30% whole-word masking, 80/10/10)."""
    return ConfigDict(
        dict(
            **_training_block(100_000, 1e-4, 10_000, save_every=2000, log_every=50),
            batch_size=256,  # documents per global batch
            max_length=512,  # tokens per document (truncated)
            mask_prob=0.3,  # fraction of words masked
            data="starter:mlm",  # text source: starter:mlm[/<name>], a .txt/.jsonl file, ...
        )
    )


def contrastive_block(kind: str) -> ConfigDict:
    """A pairs (stage 1) or triplets (stage 2, hard negatives) block."""
    triplets = kind == "triplets"
    return ConfigDict(
        dict(
            **_training_block(
                10_000 if triplets else 100_000,
                2e-5 if triplets else 5e-5,
                200 if triplets else 1000,
                save_every=1000 if triplets else 2000,
                log_every=50,
            ),
            query_max_length=64,  # query tokens (truncated)
            passage_max_length=512,  # positive / negative tokens (truncated)
            # Several texts per row, attention kept within each text: each embedding equals the
            # unpacked one, with far less padding. Off: one text per row.
            pack=True,
            pack_row_steps=8,  # packed row counts per doubling (fewer: fewer compiled shapes)
            pad_to_max_length=False,  # unpacked rows: pad to the max length (one shape)
            # GradCache (Gao et al. 2021): the gradient of the whole batch computed in chunks of
            # this many rows (packed or not), so memory is bounded by the chunk, not the batch.
            # 0 = off. Rows are rounded up to a multiple of it.
            grad_cache_chunk=0,
            loss="infonce",  # infonce | v1 (InfoNCE + v1's triplet margin term)
            temperature=0.05,  # InfoNCE tau (unconfirmed in the papers)
            margin=0.05,  # v1's triplet margin (unconfirmed)
            triplet_weight=1.0,  # weight of v1's triplet term
            num_negatives=15 if triplets else 0,  # hard negatives per query (v2 uses 15)
            # Matryoshka (jina-embeddings-v3): the loss summed over these nested prefixes of the
            # embedding (the full width always included); weights one per entry, () = all 1
            matryoshka_dims=(),
            matryoshka_weights=(),
            datasets=ConfigDict(),  # name -> dataset(...)
        )
    )


def distill_block() -> ConfigDict:
    """Embedding distillation (jina-embeddings-v5-text, stage 1): the student learns a teacher's
    embeddings of the queries and positives of pair datasets, through a learnt projection."""
    block = contrastive_block("pairs")
    for key in ("loss", "temperature", "margin", "triplet_weight", "grad_cache_chunk"):
        del block[key]
    block.update(
        steps=10_000,
        num_negatives=0,
        teacher="all-MiniLM-L6-v2",  # any model jina_jax loads: HF folder, alias, workdir
        teacher_max_length=256,  # tokens the teacher reads per text
        teacher_batch_size=64,  # texts per teacher forward pass
        # the teacher's compute dtype: bfloat16 halves its cost where the chip (or the CPU's
        # AVX512-BF16) has it; its vectors stay within cos 0.9999 of float32 (benchmarks/encode.py)
        teacher_dtype="float32",
        loss="cosine",  # cosine | mse
        # student: a learnt map from the student's embedding to the teacher's space (the v5
        # paper's best); teacher: from the teacher's to the student's; none: equal widths
        projection="student",
        # the projection's start: random (N(0, 1/d)), or identity (the student's first d
        # dimensions onto the teacher's first d: for a student started from the teacher's layers)
        projection_init="random",
        spread_out_weight=0.0,  # weight of the spread-out regulariser (0 = off)
        cache_dir="",  # where teacher vectors are kept; "" = <data.dir>/teacher_cache
    )
    block.optimizer = optimizer(1e-4, 200)
    return block


def lora_block() -> ConfigDict:
    """Task LoRA adapters (jina-embeddings-v3, v5-text): low-rank adapters on the attention and
    MLP projections, one per task, trained on pairs (or hard negatives) with the encoder frozen.
    The pairs block's keys, plus the adapters'."""
    block = contrastive_block("pairs")
    block.update(steps=10_000, log_every=50)
    block.optimizer = optimizer(5e-4, 100)
    block.checkpoint = checkpoint(1000)
    block.update(
        dict(
            rank=4,  # r of every adapter (jina-embeddings-v3: 4)
            alpha=4.0,  # the update is alpha / rank * A @ B
            tasks=lora_lib.V3_TASKS,  # adapter names: one adapter each
            # Dense modules adapted, by module name (jina_jax.models.lora.DEFAULT_TARGETS:
            # attention query/key/value/output, MLP gated_layers/intermediate/wo, T5 wi*)
            targets=lora_lib.DEFAULT_TARGETS,
            # (query adapter, passage adapter) of the datasets not named in `adapters`
            default_adapters=("retrieval.query", "retrieval.passage"),
            # dataset name -> (query adapter, passage adapter), e.g. ("text-matching",) * 2
            adapters=ConfigDict(),
            # the adapter periodic evals (config.evals with `every`) embed through; "" = base
            eval_adapter="",
        )
    )
    return block


def base_config() -> ConfigDict:
    c = ConfigDict()
    c.seed = 0  # parameter init, dropout, batch order
    # Dropout PRNG. "threefry2x32" gives the same masks under any mesh. "rbg" is several times
    # faster on CPU (dropout dominated a MiniLM step there) for single-device runs, but with
    # several CPU devices its sharded bit generation deadlocked XLA's CPU collectives here.
    c.prng_impl = "threefry2x32"
    # In order; each starts from the previous model stage's weights. Training: mlm, pairs,
    # triplets, lora (task adapters on the frozen model). Others: import (init_from as a checkpoint), encode, evaluate, export,
    # verify_export.
    c.stages = ("pairs", "triplets", "export")
    c.model = model_block("bert")
    c.tokenizer = "jina_v2"  # jina_v2 | sentencepiece (trained on the MLM text) | a path or alias
    c.tokenizer_vocab_size = 8000  # for a trained SentencePiece tokenizer
    c.init_from = ""  # starting weights: an HF folder, alias or workdir; "" = random init
    c.pooling = "mean"  # mean | cls: how token states become one embedding
    c.normalize = False  # exported model L2-normalises its embeddings
    c.max_length = 512  # tokens per text when the exported model encodes
    # a model whose word embeddings start the first training stage's (same vocabulary; reduced to
    # the student's width by PCA when narrower); "" = random init
    c.init_word_embeddings = ""
    # DistilBERT-style: these layers of init_word_embeddings' model (a BERT of the student's
    # width, heads and feed-forward size) start the student's layers, with its embeddings,
    # LayerNorms and attention (jina_jax.training.word_init.layer_params); () = word embeddings only
    c.init_source_layers = ()
    c.compilation_cache = False  # persistent XLA cache (~/.cache/jina_jax/xla)

    c.data = ConfigDict(
        dict(
            dir="data_cache/starter",  # the offline starter corpus
            build_starter=True,  # build it on first use when a stage needs it
            max_pairs_per_dataset=0,  # cap per starter pair dataset when building (0 = none)
            # raw (unprepared) files above this many MB are refused: they are read whole on
            # every host; prepare them with `python -m jina_jax.data.prepare` (0 = no limit)
            max_raw_mb=1024,
        )
    )

    c.mesh = ConfigDict(dict(data=-1, fsdp=1, tensor=1))  # device mesh; one axis may be -1
    c.sharding_rules = tuple(tuple(rule) for rule in DEFAULT_RULES)  # logical axis -> mesh axes
    # Multi-host: jax.distributed.initialize() reads the cluster from the environment on TPU pods
    # and SLURM; set coordinator_address/num_processes/process_id for anything else.
    c.distributed = ConfigDict(
        dict(enabled=False, coordinator_address="", num_processes=0, process_id=-1)
    )

    c.mlm = mlm_block()
    c.distill = distill_block()
    c.pairs = contrastive_block("pairs")
    c.triplets = contrastive_block("triplets")
    c.lora = lora_block()

    # name -> dict(type=<evaluator>, every=<steps; 0 = only in the 'evaluate' stage>, args...)
    c.evals = ConfigDict()
    # The 'evaluate' stage (jina_jax.evaluators.evaluation_options fills these into the evals
    # entries that do not set them; metric names like ndcg_at_10/dim_256/binary_rescore).
    c.evaluate = ConfigDict(
        dict(
            # models compared with ours: "tfidf", or any model path/alias
            baselines=("tfidf",),
            # corpus precisions of every retrieval entry (dense models): float32, int8
            # (per-dimension ranges calibrated on the corpus), binary (sign bits, Hamming)
            precisions=("float32",),
            # re-rank this many int8 / binary candidates with float32 queries (0 = off); a
            # second score per quantised precision (int8_rescore, binary_rescore)
            rescore=100,
            # Matryoshka: also score embeddings cut to their first d dims (re-normalised) on
            # retrieval, sts and negation, for ours and dense baselines alike ...
            dims=(),
            # ... and at the dims our model was trained for (its model.json matryoshka_dims)
            model_dims=True,
        )
    )
    c.export = ConfigDict(dict(auto_map="local"))  # local | official (JinaBERT modeling code)
    c.sample_texts = 200  # real sentences embedded by 'encode' and compared by 'verify_export'
    c.encode = ConfigDict(dict(batch_size=32, max_length=256))  # the 'encode' stage
    return c


def shrink_for_local(c: ConfigDict) -> ConfigDict:
    """The ``:local`` variant: same stages and losses, sized for a CPU smoke run."""
    c.mesh = ConfigDict(dict(data=-1, fsdp=1, tensor=1))
    c.data.max_pairs_per_dataset = 20_000
    c.mlm.update(steps=40, batch_size=16, max_length=128, log_every=10)
    c.mlm.optimizer.update(lr=5e-4, warmup_steps=5)
    c.mlm.checkpoint.update(every=20)
    for stage, steps in (("pairs", 60), ("triplets", 30), ("lora", 30)):
        s = c[stage]
        # Packed batches (the default): little padding, and row buckets keep compiles few.
        s.update(
            steps=steps,
            query_max_length=32,
            passage_max_length=128,
            log_every=10,
            pack_row_steps=4,
        )
        s.optimizer.update(lr=1e-4, warmup_steps=5)
        s.checkpoint.update(every=20)
        for ds in s.datasets.values():
            ds.batch_size = min(ds.batch_size, 16)
    c.triplets.num_negatives = min(c.triplets.num_negatives, 3)
    c.lora.optimizer.update(lr=1e-3)
    return c


# Starter-corpus datasets (jina_jax.data.starter) used by the offline configs; a connected
# machine points the same fields at the papers' data (see README).
STARTER_PAIRS = (
    "debian_descriptions",
    "manpages",
    "wordnet_synonyms",
    "wordnet_definitions",
    "wordnet_examples",
    "bible_paraphrase",
    "python_docs",
)
STARTER_TRIPLETS = STARTER_PAIRS


# Starter pair datasets of symmetric paraphrases: the LoRA stage trains "text-matching" on
# them (both sides), the retrieval.query / retrieval.passage pair on the others.
STARTER_PARAPHRASES = ("wordnet_synonyms", "bible_paraphrase")


def _starter_datasets(kind: str, names, batch_size: int) -> ConfigDict:
    out = {name: dataset(f"starter:{kind}/{name}", batch_size=batch_size) for name in names}
    if kind == "triplets":
        out["negation"] = dataset("starter:negation", batch_size=batch_size)
    return ConfigDict(out)


def _starter_lora(c: ConfigDict, args: set[str], batch_size: int) -> None:
    """The LoRA stage on the starter pairs; ``lora`` in the config args runs it (before
    export)."""
    c.lora.datasets = _starter_datasets("pairs", STARTER_PAIRS, batch_size=batch_size)
    c.lora.adapters = ConfigDict({name: ("text-matching",) * 2 for name in STARTER_PARAPHRASES})
    c.lora.grad_cache_chunk = c.pairs.grad_cache_chunk
    if "lora" in args:
        stages = [s for s in c.stages if s != "export"]
        c.stages = (*stages, "lora", *(["export"] if "export" in c.stages else []))


def jina_v2_config(size: str, args: set[str]) -> ConfigDict:
    """JinaBERT: MLM pretraining (stage 0), pairs (InfoNCE), hard negatives (InfoNCE + 15 negatives)."""
    c = base_config()
    c.model.update(
        vocab_size=30528,
        position_embedding_type="alibi",
        max_position_embeddings=8192,
        dtype="bfloat16",
        attention_impl="auto",
        remat=True,
        # One scanned layer: compile time flat in depth. Checkpoints of scanned and unscanned
        # models differ in layout ("layers/..." stacked vs "layer_<i>/..."): switching this is a
        # config change that old checkpoints do not resume across (HF import/export map both).
        scan_layers=True,
        **JINA_BERT_SIZES[size],
    )
    c.tokenizer = "jina_v2"
    c.max_length = 8192
    c.stages = ("mlm", "pairs", "triplets", "export")
    # Pod settings: global batch 4096 pairs at 512 tokens (v2-base); FSDP for large, over 4
    # chips so that every slice from v4-8 (4 chips) up divides (`python -m jina_jax.aot` checks
    # the fit per topology; benchmarks/RESULTS.md has the table).
    c.mesh = ConfigDict(dict(data=-1, fsdp=1 if size != "large" else 4, tensor=1))
    c.pairs.datasets = _starter_datasets("pairs", STARTER_PAIRS, batch_size=4096)
    # Packed rows in GradCache chunks: the global batch in chunk-sized memory. v2-large in
    # chunks of 256 rows: with 512, its pairs step left 10% of a v4 chip's HBM on v4-8 (AOT).
    c.pairs.grad_cache_chunk = 256 if size == "large" else 512
    c.triplets.datasets = _starter_datasets("triplets", STARTER_TRIPLETS, batch_size=128)
    # The starter corpus mines one hard negative per query; the paper's data has 15.
    c.triplets.num_negatives = 1
    _starter_lora(c, args, batch_size=1024)
    if "mlm_only" in args:
        c.stages = ("mlm",)
    if "local" in args:
        c.model.update(dtype="float32", remat=False, scan_layers=False, **LOCAL_JINA_BERT)
        c.max_length = 512
        # Packed GradCache in chunks of 8 rows, as the pod runs it in chunks of 512.
        c.pairs.grad_cache_chunk = c.lora.grad_cache_chunk = 8
        shrink_for_local(c)
    c.lock()
    return c


def heldout_evals(every: int = 0, max_queries: int | None = None) -> ConfigDict:
    """The starter corpus's held-out sets: FAQ / man-page / package retrieval, Lee STS,
    negation. ``every`` > 0 also runs them during training."""
    evals = {
        name: dict(type="retrieval", dataset=name, every=every, max_length=256)
        for name in ("python_faq", "debian_faq", "manpages", "debian_descriptions")
    }
    if max_queries:
        for entry in evals.values():
            entry["max_queries"] = max_queries
    evals["lee_sts"] = dict(type="sts", dataset="lee_sts", every=every)
    evals["negation"] = dict(type="negation", dataset="test", every=every)
    return ConfigDict(evals)


def jina_v1_config(size: str, args: set[str]) -> ConfigDict:
    """T5 encoder: pairs (InfoNCE), then triplets with v1's loss (InfoNCE + reverse + margin)."""
    c = base_config()
    # scan_layers: see jina_v2_config (scanned checkpoints are stacked "blocks/...").
    # Pod settings as in v2: bf16 compute and remat (in float32 without remat, v1-base's
    # triplets step needed 19 GiB of temporaries per v5e chip), packed pairs in GradCache
    # chunks of 512 rows.
    c.model = model_block(
        "t5",
        vocab_size=32128,
        feed_forward_proj="relu",
        dtype="bfloat16",
        remat=True,
        scan_layers=True,
        **T5_SIZES[size],
    )
    c.tokenizer = "sentencepiece"  # or the t5 folder's spiece.model when init_from is set
    c.max_length = 512
    c.stages = ("pairs", "triplets", "export")
    c.pairs.datasets = _starter_datasets("pairs", STARTER_PAIRS, batch_size=1024)
    c.pairs.grad_cache_chunk = 512
    c.triplets.datasets = _starter_datasets("triplets", STARTER_TRIPLETS, batch_size=256)
    c.triplets.loss = "v1"
    c.triplets.num_negatives = 1
    _starter_lora(c, args, batch_size=1024)
    if "local" in args:
        c.model.update(dtype="float32", remat=False, scan_layers=False, **LOCAL_T5)
        c.pairs.grad_cache_chunk = c.lora.grad_cache_chunk = 8  # packed GradCache, as v2's
        c.model.vocab_size = c.tokenizer_vocab_size = 4000
        shrink_for_local(c)
    c.lock()
    return c


def model_overrides(config: ConfigDict) -> dict:
    """The model fields a config sets (None = the architecture default / the imported value)."""
    return {k: v for k, v in config.model.to_dict().items() if v is not None}


# Keys of a training block that may change when a stage resumes: they do not change what the
# steps already taken computed. Every other key is part of the stage's fingerprint.
RESUMABLE_KEYS = ("steps", "log_every", "checkpoint", "prefetch")
# Run-level keys that decide what every stage produces (mesh, sharding and multi-host settings
# do not: a run may resume on another cluster).
IDENTITY_KEYS = (
    "seed",
    "prng_impl",
    "model",
    "tokenizer",
    "tokenizer_vocab_size",
    "init_from",
    "pooling",
    "normalize",
    "max_length",
    "init_word_embeddings",
    "init_source_layers",
    "data",
)
# What each non-training stage's result depends on, besides the model it is given.
STAGE_KEYS = {
    "import": (),
    "encode": ("encode", "sample_texts"),
    "evaluate": ("evals", "evaluate"),
    "export": ("export",),
    "verify_export": ("sample_texts",),
}


def _plain(value):
    return value.to_dict() if isinstance(value, ConfigDict) else value


def stage_fingerprint(config: ConfigDict, stage: str) -> dict:
    """The config values that decide what ``stage`` produces: the run-level identity keys, and
    for this stage and every model stage before it (they made its starting weights) their
    blocks. A training stage's own ``RESUMABLE_KEYS`` are left out, so a run can resume with
    more steps; earlier stages' steps are in. JSON-plain (lists, not tuples)."""
    stages = list(config.stages)
    chain = stages[: stages.index(stage) + 1]
    blocks = {}
    for name in chain:
        if name in STAGE_KINDS:
            block = config[name].to_dict()
            if name == stage:
                block = {k: v for k, v in block.items() if k not in RESUMABLE_KEYS}
            blocks[name] = block
        elif name == stage:
            blocks[name] = {k: _plain(config[k]) for k in STAGE_KEYS.get(name, ()) if k in config}
    out = {k: _plain(config[k]) for k in IDENTITY_KEYS if k in config}
    out["stages"] = blocks
    return json.loads(json.dumps(out, default=str))


# --------------------------------------------------------------------------- validation

KNOWN_STAGES = ("import", *STAGE_KINDS, "encode", "evaluate", "export", "verify_export")
SCHEDULES = ("linear", "cosine", "constant")
POOLINGS = ("mean", "cls")
CONTRASTIVE_LOSSES = ("infonce", "v1")
# jina_jax.evaluators.quantization.PRECISIONS (config_lib sits below the evaluators)
EVAL_PRECISIONS = ("float32", "int8", "binary")


class _Checks:
    """Collects every problem of a config, each naming the key and what is allowed."""

    def __init__(self, config: ConfigDict):
        self.config = config
        self.problems: list[str] = []

    def get(self, key: str):
        node = self.config
        for part in key.split("."):
            node = node[part]
        return node

    def number(self, key: str, *, low=None, high=None, low_open=False, integer=False) -> None:
        value = self.get(key)
        kind = "an integer" if integer else "a number"
        ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type:
            self.problems.append(f"{key}={value!r}: expected {kind}")
            return
        if value != value:  # NaN
            self.problems.append(f"{key}={value!r}: expected {kind}")
            return
        bad_low = low is not None and (value <= low if low_open else value < low)
        bad_high = high is not None and value > high
        if bad_low or bad_high:
            left = "(" if low_open else "["
            lo = "-inf" if low is None else f"{low:g}"
            hi = "inf" if high is None else f"{high:g}"
            self.problems.append(f"{key}={value!r}: allowed range {left}{lo}, {hi}]")

    def choice(self, key: str, allowed) -> None:
        value = self.get(key)
        if value not in allowed:
            self.problems.append(f"{key}={value!r}: one of {', '.join(map(repr, allowed))}")


def validate(config: ConfigDict, *, batch_shards: int = 1) -> None:
    """Checks every value the stages will use, before anything runs or is written; raises one
    ``ConfigError`` naming each bad key with what is allowed. ``batch_shards``: how many ways the
    mesh splits a batch (global batch sizes must divide evenly)."""
    check = _Checks(config)
    stages = list(config.stages)
    if not stages:
        check.problems.append("stages is empty: list at least one stage")
    for stage in stages:
        if stage not in KNOWN_STAGES:
            check.problems.append(
                f"stages: unknown stage {stage!r}; known: {', '.join(KNOWN_STAGES)}"
            )
    check.number("seed", integer=True)
    check.choice("pooling", POOLINGS)
    check.number("max_length", low=1, integer=True)
    check.number("data.max_raw_mb", low=0)
    for axis, size in config.mesh.items():
        if not isinstance(size, int) or (size != -1 and size < 1):
            check.problems.append(f"mesh.{axis}={size!r}: a positive integer, or -1 (the rest)")
    _check_source_layers(check, config)
    limit = _position_limit(config)
    for stage in stages:
        if stage not in STAGE_KINDS:
            continue
        p = f"{stage}."
        check.number(p + "steps", low=1, integer=True)
        check.number(p + "log_every", low=1, integer=True)
        check.number(p + "prefetch", low=0, integer=True)
        check.number(p + "checkpoint.every", low=1, integer=True)
        check.number(p + "checkpoint.keep", low=1, integer=True)
        o = p + "optimizer."
        check.number(o + "lr", low=0)
        check.number(o + "warmup_steps", low=0, integer=True)
        check.choice(o + "schedule", SCHEDULES)
        check.number(o + "end_lr_ratio", low=0, high=1)
        check.number(o + "weight_decay", low=0)
        check.number(o + "b1", low=0, high=1)
        check.number(o + "b2", low=0, high=1)
        check.number(o + "eps", low=0, low_open=True)
        check.number(o + "clip_norm", low=0, low_open=True)
        for pattern in config[stage].reinit:
            try:
                re.compile(pattern)
            except re.error as e:
                check.problems.append(f"{p}reinit: {pattern!r} is not a regular expression ({e})")
        if stage == "mlm":
            check.number(p + "batch_size", low=1, integer=True)
            check.number(p + "max_length", low=4, high=limit, integer=True)
            check.number(p + "mask_prob", low=0, high=1, low_open=True)
            _divisible(check, p + "batch_size", batch_shards)
            continue
        check.number(p + "query_max_length", low=4, high=limit, integer=True)
        check.number(p + "passage_max_length", low=4, high=limit, integer=True)
        check.number(p + "pack_row_steps", low=1, integer=True)
        steps = config[stage].pack_row_steps
        if isinstance(steps, int) and steps >= 1 and steps & (steps - 1):
            check.problems.append(f"{p}pack_row_steps={steps}: a power of two")
        if stage == "distill":
            check.choice(p + "loss", ("cosine", "mse"))
            check.choice(p + "projection", ("student", "teacher", "none"))
            check.choice(p + "projection_init", ("random", "identity"))
            check.number(p + "spread_out_weight", low=0)
            check.number(p + "teacher_max_length", low=4, integer=True)
            check.number(p + "teacher_batch_size", low=1, integer=True)
            check.choice(p + "teacher_dtype", ("float32", "bfloat16"))
            if not str(config[stage].teacher).strip():
                check.problems.append(f"{p}teacher is empty: name the teacher model")
        else:
            check.number(p + "grad_cache_chunk", low=0, integer=True)
            check.choice(p + "loss", CONTRASTIVE_LOSSES)
            check.number(p + "temperature", low=0, low_open=True)
            check.number(p + "margin", low=0)
            check.number(p + "triplet_weight", low=0)
        check.number(p + "num_negatives", low=0, integer=True)
        _check_matryoshka(check, config, stage)
        if config[stage].pack and config[stage].pad_to_max_length:
            check.problems.append(f"{p}pack and {p}pad_to_max_length exclude each other")
        if not config[stage].datasets:
            check.problems.append(f"{p}datasets is empty: name at least one dataset")
        for name in config[stage].datasets:
            d = f"{p}datasets.{name}."
            check.number(d + "batch_size", low=1, integer=True)
            check.number(d + "scale", low=0, low_open=True)
            if not str(check.get(d + "source")).strip():
                check.problems.append(f"{d}source is empty")
            _divisible(check, d + "batch_size", batch_shards)
        block = config[stage]
        chunk = block.grad_cache_chunk if "grad_cache_chunk" in block else 0  # distill: none
        if isinstance(chunk, int) and chunk > 0 and chunk % batch_shards:
            check.problems.append(
                f"{p}grad_cache_chunk={chunk}: a multiple of the {batch_shards} batch shards "
                "(each chunk takes rows from every shard)"
            )
        if stage == "lora":
            _check_lora(check, config.lora)
    _check_evaluate(check, config)
    if check.problems:
        raise ConfigError("bad config values: " + "; ".join(check.problems))


def _check_source_layers(check: _Checks, config: ConfigDict) -> None:
    layers = config.get("init_source_layers", ())
    if not layers:
        return
    key = "init_source_layers"
    if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in layers):
        check.problems.append(f"{key}={tuple(layers)!r}: layer indices (integers >= 0)")
    elif len(set(layers)) != len(layers):
        check.problems.append(f"{key}={tuple(layers)!r}: each layer once")
    if not str(config.init_word_embeddings).strip():
        check.problems.append(
            f"{key}={tuple(layers)!r} needs init_word_embeddings: the model the layers come from"
        )
    if config.init_from:
        check.problems.append(f"{key} and init_from exclude each other (both set the start)")
    layers_in_model = config.model.get("num_layers")
    if layers_in_model is not None and layers_in_model != len(layers):
        check.problems.append(
            f"{key}={tuple(layers)!r} names {len(layers)} layers; model.num_layers is "
            f"{layers_in_model}"
        )
    if config.model.get("scan_layers"):
        check.problems.append(f"{key} needs model.scan_layers=False (unscanned layers)")


def _check_matryoshka(check: _Checks, config: ConfigDict, stage: str) -> None:
    dims, weights = config[stage].matryoshka_dims, config[stage].matryoshka_weights
    key = f"{stage}.matryoshka_dims"
    if any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims):
        check.problems.append(f"{key}={dims!r}: positive integers")
    width = config.model.get("hidden_size") or config.model.get("d_model")
    if width and any(isinstance(d, int) and d > width for d in dims):
        check.problems.append(f"{key}={dims!r}: each at most the model's width {width}")
    if weights and len(weights) != len(dims):
        check.problems.append(
            f"{stage}.matryoshka_weights={weights!r}: one weight per dimension of {key}"
        )


def _check_evaluate(check: _Checks, config: ConfigDict) -> None:
    """``evaluate``'s precisions / rescore / dims, and the same keys where an ``evals`` entry
    sets its own (ConfigDict's own type checks refuse e.g. a string for model_dims)."""
    blocks = [("evaluate.", config.evaluate)] if "evaluate" in config else []
    blocks += [(f"evals.{name}.", entry) for name, entry in config.get("evals", {}).items()]
    width = config.model.get("hidden_size") or config.model.get("d_model")
    for prefix, block in blocks:
        if "precisions" in block:
            precisions = block.precisions
            if isinstance(precisions, str):
                precisions = (precisions,)
            bad = [p for p in precisions if p not in EVAL_PRECISIONS]
            if bad or not precisions or len(set(precisions)) != len(precisions):
                check.problems.append(
                    f"{prefix}precisions={block.precisions!r}: distinct names of "
                    f"{', '.join(map(repr, EVAL_PRECISIONS))}, at least one (on the command "
                    f'line: --config.{prefix}precisions=\'("float32", "int8", "binary")\')'
                )
        if "rescore" in block:
            check.number(prefix + "rescore", low=0, integer=True)
            # the precisions the entry runs with: its own; else, in training (every > 0), float32,
            # and in the 'evaluate' stage alone evaluate.precisions
            own = block.get("precisions") or (
                ("float32",) if block.get("every") else config.evaluate.get("precisions", ())
            )
            own = (own,) if isinstance(own, str) else own
            if prefix != "evaluate." and block.rescore and set(own) <= {"float32"}:
                check.problems.append(
                    f"{prefix}rescore={block.rescore!r}: re-ranks int8 / binary candidates, so "
                    f"set {prefix}precisions to include int8 or binary (or rescore=0)"
                )
        if block.get("dims") is not None:
            dims = block.dims
            dims = (dims,) if isinstance(dims, int) else dims
            if (
                isinstance(dims, str)
                or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims)
                or len(set(dims)) != len(dims)
            ):
                check.problems.append(f"{prefix}dims={block.dims!r}: distinct positive integers")
            elif width and any(d > width for d in dims):
                check.problems.append(
                    f"{prefix}dims={block.dims!r}: each at most the model's width {width}"
                )


def _check_lora(check: _Checks, cfg: ConfigDict) -> None:
    if cfg.matryoshka_dims:  # the key comes with the pairs block; LoraObjective has no prefixes
        check.problems.append(
            f"lora.matryoshka_dims={tuple(cfg.matryoshka_dims)!r}: not supported by the lora "
            "stage yet; set it to () (train Matryoshka dims in pairs / triplets / distill)"
        )
    check.number("lora.rank", low=1, integer=True)
    check.number("lora.alpha", low=0, low_open=True)
    tasks = cfg.tasks
    if not isinstance(tasks, tuple | list) or not tasks:
        check.problems.append(f"lora.tasks={tasks!r}: a non-empty tuple of adapter names")
        return
    bad = [t for t in tasks if not isinstance(t, str) or not t or "/" in t]
    if bad or len(set(tasks)) != len(tasks):
        check.problems.append(f"lora.tasks={tuple(tasks)!r}: distinct non-empty names without '/'")
    targets = cfg.targets
    if not isinstance(targets, tuple | list) or not targets:
        check.problems.append(f"lora.targets={targets!r}: a non-empty tuple of module names")
    else:
        unknown = [t for t in targets if t not in lora_lib.DEFAULT_TARGETS]
        if unknown:
            check.problems.append(
                f"lora.targets: unknown module {', '.join(map(repr, unknown))}; known: "
                f"{', '.join(lora_lib.DEFAULT_TARGETS)}"
            )

    def pair(key: str, value) -> None:
        if not (isinstance(value, tuple | list) and len(value) == 2):
            check.problems.append(f"{key}={value!r}: a (query adapter, passage adapter) pair")
        elif any(v not in tasks for v in value):
            check.problems.append(f"{key}={tuple(value)!r}: adapters of lora.tasks {tuple(tasks)}")

    pair("lora.default_adapters", cfg.default_adapters)
    for name, value in cfg.adapters.items():
        if name not in cfg.datasets:
            check.problems.append(
                f"lora.adapters.{name}: no such dataset in lora.datasets "
                f"({', '.join(cfg.datasets) or 'none'})"
            )
        pair(f"lora.adapters.{name}", value)
    if cfg.eval_adapter and cfg.eval_adapter not in tasks:
        check.problems.append(
            f"lora.eval_adapter={cfg.eval_adapter!r}: one of lora.tasks, or '' (the base)"
        )


def _divisible(check: _Checks, key: str, shards: int) -> None:
    value = check.get(key)
    if isinstance(value, int) and value >= 1 and value % shards:
        check.problems.append(
            f"{key}={value}: must be divisible by the {shards} batch shards of the mesh"
        )


def _position_limit(config: ConfigDict) -> int | None:
    """The model's hard limit on sequence length (absolute positions), when the config sets it."""
    model = config.model
    if model.arch == "bert" and model.position_embedding_type == "absolute":
        return model.max_position_embeddings or 512
    return None
