"""Train steps under jax.distributed: run as N processes on one machine (CPU collectives) or as
one process; prints the losses and a parameter checksum as JSON.

    python tests/jobs/distributed_step.py PROCESS_ID NUM_PROCESSES PORT DEVICES_PER_PROCESS
"""

from __future__ import annotations

import json
import os
import sys

process_id, num_processes, port, local_devices = (int(x) for x in sys.argv[1:5])
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={local_devices}"

import jax  # noqa: E402

if num_processes > 1:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes, process_id)

import flax.linen as nn  # noqa: E402
import numpy as np  # noqa: E402

from jina_jax import config_lib  # noqa: E402
from jina_jax import sharding as shd  # noqa: E402
from jina_jax.data.pipeline import PairBatches  # noqa: E402
from jina_jax.data.records import PairRecord  # noqa: E402
from jina_jax.data.sampler import DatasetSpec  # noqa: E402
from jina_jax.data.stdlib_text import stdlib_sentences  # noqa: E402
from jina_jax.hf.local_models import minilm_path  # noqa: E402
from jina_jax.models import BertConfig  # noqa: E402
from jina_jax.tokenization import load_tokenizer  # noqa: E402
from jina_jax.training.loop import init_state, jit_train_step  # noqa: E402
from jina_jax.training.objectives import ContrastiveObjective  # noqa: E402
from jina_jax.training.optim import make_optimizer  # noqa: E402
from jina_jax.training.step import make_train_step  # noqa: E402

tokenizer = load_tokenizer(minilm_path())
config = BertConfig(
    vocab_size=tokenizer.vocab_size,
    hidden_size=32,
    num_layers=2,
    num_heads=4,
    intermediate_size=64,
    add_pooler=False,
    # Dropout masks follow the row layout, which differs between one host and two; without
    # dropout the two layouts must give the same numbers.
    hidden_dropout=0.0,
)
objective = ContrastiveObjective(config)
records = [PairRecord(" ".join(s.split()[:4]), s) for s in stdlib_sentences(200)]
batches = PairBatches(
    {"docs": records},
    [DatasetSpec("docs", batch_size=16)],
    tokenizer,
    32,
    64,
    seed=0,
    row_multiple=8,  # packed rows; each process lays out only its records
    process_index=jax.process_index(),
    process_count=jax.process_count(),
)
# Identical starting weights in every process, from a host-side seed.
init = jax.tree.map(
    np.asarray, nn.meta.unbox(jax.jit(objective.init, backend="cpu")(jax.random.key(5)))
)
mesh = shd.make_mesh({"data": -1})
opt = config_lib.optimizer(1e-3, 0, schedule="constant")
tx, schedule = make_optimizer(opt, 10)
key = jax.random.key(0)
state = init_state(objective, tx, mesh, shd.DEFAULT_RULES, key, init)
step = jit_train_step(make_train_step(objective, tx, schedule), state)
losses = []
with jax.set_mesh(mesh):
    for s in range(3):
        host = batches.batch_at(s)
        batch = shd.global_batch(
            {k: v for k, v in host.items() if isinstance(v, np.ndarray) and v.ndim}, mesh
        )
        state, metrics = step(state, batch, key)
        losses.append(float(metrics["loss"]))
    checksum = float(
        jax.jit(
            lambda p: sum(jax.numpy.sum(x * x) for x in jax.tree.leaves(p)),
            out_shardings=shd.replicated(mesh),
        )(state.params)
    )
if jax.process_index() == 0:
    print(
        json.dumps(
            {
                "losses": losses,
                "checksum": checksum,
                "devices": jax.device_count(),
                "processes": jax.process_count(),
                "local_rows": int(host["query_lengths"].shape[0]),
            }
        )
    )
