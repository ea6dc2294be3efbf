"""Building blocks of the configs in ``configs/``: one place that says what a config contains.

A run config (``ml_collections.ConfigDict``, locked so that a misspelt key is an error that names
the close matches):

    seed, stages                       which stages run, in order: mlm, pairs, triplets, evaluate, export
    model                              encoder fields (jina_jax.models.BertConfig / T5Config)
    tokenizer, init_from               tokenizer source; optional starting weights (HF folder/alias/workdir)
    pooling, normalize, max_length     how the exported embedding model pools and truncates
    data                               where the (starter) corpus lives and how to build it
    mesh, sharding_rules, distributed  device mesh, logical-axis rules, multi-host settings
    mlm, pairs, triplets               one block per training stage (steps, batch, lengths, loss,
                                       datasets, optimizer, checkpoint cadence, grad_cache_chunk)
    evals                              evaluators: name -> dict(type=..., every=...)
    export                             export options
"""

from __future__ import annotations

from ml_collections import ConfigDict

from jina_jax.sharding import DEFAULT_RULES

# Sizes from the papers (SPEC §1, §2); head_dim is 64 throughout.
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


def parse_args(arg: str | None) -> set[str]:
    """``path.py:local,foo`` -> {"local", "foo"}."""
    return {a.strip() for a in (arg or "").split(",") if a.strip()}


def optimizer(
    lr: float, warmup_steps: int, schedule: str = "linear", weight_decay: float = 0.01
) -> ConfigDict:
    return ConfigDict(
        dict(
            lr=lr,
            warmup_steps=warmup_steps,
            schedule=schedule,
            end_lr_ratio=0.0,
            weight_decay=weight_decay,
            b1=0.9,
            b2=0.999,
            eps=1e-6,
            clip_norm=1.0,
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
    """One training dataset: ``source`` is ``starter:<name>`` (the offline starter corpus), a local
    file/folder (jsonl[.gz], parquet, HF datasets folder) or a hub dataset name."""
    return ConfigDict(
        dict(
            source=source,
            scale=scale,
            batch_size=batch_size,
            query_prefix=query_prefix,
            passage_prefix=passage_prefix,
            in_batch_negatives=in_batch_negatives,
        )
    )


def base_config() -> ConfigDict:
    c = ConfigDict()
    c.seed = 0
    # Dropout PRNG. "threefry2x32" gives the same masks under any mesh. "rbg" is several times
    # faster on CPU (dropout dominated a MiniLM step there) for single-device runs, but with
    # several CPU devices its sharded bit generation deadlocked XLA's CPU collectives here.
    c.prng_impl = "threefry2x32"
    c.stages = ("pairs", "triplets", "export")
    c.model = ConfigDict(dict(arch="bert"))
    c.tokenizer = "jina_v2"  # jina_v2 | sentencepiece (trained on the MLM text) | a path or alias
    c.tokenizer_vocab_size = 8000  # for a trained SentencePiece tokenizer
    c.init_from = ""
    c.pooling = "mean"
    c.normalize = False
    c.max_length = 512

    c.data = ConfigDict(dict(dir="data_cache/starter", build_starter=True, max_pairs_per_dataset=0))

    c.mesh = ConfigDict(dict(data=-1, fsdp=1, tensor=1))
    c.sharding_rules = tuple(tuple(rule) for rule in DEFAULT_RULES)
    # Multi-host: jax.distributed.initialize() reads the cluster from the environment on TPU pods
    # and SLURM; set coordinator_address/num_processes/process_id for anything else.
    c.distributed = ConfigDict(
        dict(enabled=False, coordinator_address="", num_processes=0, process_id=-1)
    )

    c.mlm = ConfigDict(
        dict(
            steps=100_000,
            batch_size=256,
            max_length=512,
            mask_prob=0.3,
            data="starter:mlm",
            optimizer=optimizer(1e-4, 10_000, weight_decay=0.01),
            log_every=50,
            grad_cache_chunk=0,
            checkpoint=ConfigDict(dict(every=2000, keep=3)),
        )
    )
    c.pairs = ConfigDict(
        dict(
            steps=100_000,
            query_max_length=64,
            passage_max_length=512,
            pad_to_max_length=False,
            # Several texts per row (attention kept within each text): far less padding than
            # padding every text to the batch's longest (2.1x sentence-transformers' training
            # speed for MiniLM on CPU, benchmarks/RESULTS.md); excludes GradCache.
            pack=True,
            pack_row_steps=8,  # packed row counts: this many buckets per doubling
            loss="infonce",
            temperature=0.05,  # (unconfirmed) SPEC §3
            margin=0.05,
            triplet_weight=1.0,
            num_negatives=0,
            datasets=ConfigDict(),
            optimizer=optimizer(5e-5, 1000),
            log_every=50,
            grad_cache_chunk=0,
            checkpoint=ConfigDict(dict(every=2000, keep=3)),
        )
    )
    c.triplets = ConfigDict(
        dict(
            steps=10_000,
            query_max_length=64,
            passage_max_length=512,
            pad_to_max_length=False,
            # Several texts per row (attention kept within each text): far less padding than
            # padding every text to the batch's longest (2.1x sentence-transformers' training
            # speed for MiniLM on CPU, benchmarks/RESULTS.md); excludes GradCache.
            pack=True,
            pack_row_steps=8,  # packed row counts: this many buckets per doubling
            loss="infonce",
            temperature=0.05,  # (unconfirmed)
            margin=0.05,  # (unconfirmed) v1's triplet margin
            triplet_weight=1.0,
            num_negatives=15,
            datasets=ConfigDict(),
            optimizer=optimizer(2e-5, 200),
            log_every=50,
            grad_cache_chunk=0,
            checkpoint=ConfigDict(dict(every=1000, keep=3)),
        )
    )
    c.evals = ConfigDict()
    c.evaluate = ConfigDict(dict(baselines=("tfidf",)))  # compared with the model in 'evaluate'
    c.export = ConfigDict(dict(auto_map="local"))
    return c


def shrink_for_local(c: ConfigDict) -> ConfigDict:
    """The ``:local`` variant: same stages and losses, sized for a CPU smoke run."""
    c.mesh = ConfigDict(dict(data=-1, fsdp=1, tensor=1))
    c.data.max_pairs_per_dataset = 20_000
    c.mlm.update(steps=40, batch_size=16, max_length=128, log_every=10)
    c.mlm.optimizer.update(lr=5e-4, warmup_steps=5)
    c.mlm.checkpoint.update(every=20)
    for stage, steps in (("pairs", 60), ("triplets", 30)):
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


def _starter_datasets(kind: str, names, batch_size: int) -> ConfigDict:
    out = {name: dataset(f"starter:{kind}/{name}", batch_size=batch_size) for name in names}
    if kind == "triplets":
        out["negation"] = dataset("starter:negation", batch_size=batch_size)
    return ConfigDict(out)


def jina_v2_config(size: str, args: set[str]) -> ConfigDict:
    """JinaBERT: MLM pretraining (stage 0), pairs (InfoNCE), hard negatives (InfoNCE + 15 negatives)."""
    c = base_config()
    c.model.update(
        arch="bert",
        vocab_size=30528,
        position_embedding_type="alibi",
        max_position_embeddings=8192,
        dtype="bfloat16",
        attention_impl="auto",
        remat=True,
        **JINA_BERT_SIZES[size],
    )
    c.tokenizer = "jina_v2"
    c.max_length = 8192
    c.stages = ("mlm", "pairs", "triplets", "export")
    # Pod settings: global batch 4096 pairs at 512 tokens (v2-base); FSDP for large.
    c.mesh = ConfigDict(dict(data=-1, fsdp=1 if size != "large" else 8, tensor=1))
    c.pairs.datasets = _starter_datasets("pairs", STARTER_PAIRS, batch_size=4096)
    c.pairs.update(grad_cache_chunk=512, pack=False)  # GradCache splits rows, so no packing
    c.triplets.datasets = _starter_datasets("triplets", STARTER_TRIPLETS, batch_size=128)
    # The starter corpus mines one hard negative per query; the paper's data has 15.
    c.triplets.num_negatives = 1
    if "mlm_only" in args:
        c.stages = ("mlm",)
    if "local" in args:
        c.model.update(dtype="float32", remat=False, **LOCAL_JINA_BERT)
        c.max_length = 512
        c.pairs.update(grad_cache_chunk=0, pack=True)
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
    c.model.update(arch="t5", vocab_size=32128, feed_forward_proj="relu", **T5_SIZES[size])
    c.tokenizer = "sentencepiece"  # or the t5 folder's spiece.model when init_from is set
    c.max_length = 512
    c.stages = ("pairs", "triplets", "export")
    c.pairs.datasets = _starter_datasets("pairs", STARTER_PAIRS, batch_size=1024)
    c.triplets.datasets = _starter_datasets("triplets", STARTER_TRIPLETS, batch_size=256)
    c.triplets.loss = "v1"
    c.triplets.num_negatives = 1
    if "local" in args:
        c.model.update(**LOCAL_T5)
        c.model.vocab_size = c.tokenizer_vocab_size = 4000
        shrink_for_local(c)
    c.lock()
    return c
