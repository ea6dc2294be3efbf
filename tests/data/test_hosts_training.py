"""Per-host reading trains like one host: two simulated hosts (each laying out only its records,
row counts agreed from the global token counts) give the one-host parameters after a few steps,
from prepared shards and from raw records, packed and unpacked."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jina_jax import config_lib
from jina_jax import sharding as shd
from jina_jax.data.pipeline import PairBatches
from jina_jax.data.prepared import PreparedDataset, tokenizer_identity, write_prepared
from jina_jax.data.records import PairRecord
from jina_jax.data.sampler import DatasetSpec
from jina_jax.models import BertConfig
from jina_jax.tokenization import load_tokenizer
from jina_jax.training.loop import init_state, jit_train_step
from jina_jax.training.objectives import ContrastiveObjective
from jina_jax.training.optim import make_optimizer
from jina_jax.training.step import make_train_step

Q, P_LEN = 16, 48


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    return load_tokenizer(minilm_dir)


@pytest.fixture(scope="module")
def sources(tmp_path_factory, tokenizer, real_sentences):
    s = real_sentences
    records = [PairRecord(" ".join(s[i].split()[:6]), s[i], (s[-i - 1],)) for i in range(120)]

    def rows():
        for r in records:
            q, _ = tokenizer.encode_batch([r.query], Q)
            d, _ = tokenizer.encode_batch([r.positive, *r.negatives], P_LEN)
            yield [*q, *d], [r.query, r.positive, *r.negatives]

    folder = write_prepared(
        tmp_path_factory.mktemp("prepared") / "pairs",
        rows(),
        num_records=len(records),
        kind="pairs",
        num_negatives=1,
        tokenizer=tokenizer_identity(tokenizer),
        max_lengths={"query": Q, "passage": P_LEN},
        num_shards=3,
    )
    return {"raw": records, "prepared": PreparedDataset(folder)}


@pytest.fixture(scope="module")
def trainer(tokenizer):
    """One model, initial state and jitted step for every run (each batch shape compiles once;
    the state is copied per run, since the step donates it)."""
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_layers=1,
        num_heads=4,
        intermediate_size=32,
        hidden_dropout=0.0,
        add_pooler=False,
    )
    objective = ContrastiveObjective(config)
    tx, schedule = make_optimizer(config_lib.optimizer(1e-3, 0, schedule="constant"), 10)
    mesh = shd.make_mesh({"data": 8})
    state = init_state(objective, tx, mesh, shd.DEFAULT_RULES, jax.random.key(0))
    step = jit_train_step(make_train_step(objective, tx, schedule), state)
    return mesh, state, step


def _train(trainer, tokenizer, source, hosts: int, pack: bool, k: int, steps: int = 3):
    mesh, initial, step = trainer
    state = jax.tree.map(jnp.copy, initial)
    key = jax.random.key(0)
    spec = DatasetSpec("d", batch_size=16, num_negatives=k)
    batches = [
        PairBatches(
            {"d": source},
            [spec],
            tokenizer,
            Q,
            P_LEN,
            seed=3,
            process_index=h,
            process_count=hosts,
            pack=pack,
            row_multiple=8,
        )
        for h in range(hosts)
    ]
    rows = []
    for s in range(steps):
        parts = [b.batch_at(s) for b in batches]  # what each host would hand to jax
        batch = {
            name: np.concatenate([p[name] for p in parts])
            for name in ("ids", "segments", "positions", "query_lengths", "docs_lengths")
        }
        rows.append(batch["ids"].shape[0])
        with jax.set_mesh(mesh):
            device = {
                n: jax.device_put(v, NamedSharding(mesh, P("data", *([None] * (v.ndim - 1)))))
                for n, v in batch.items()
            }
            state, metrics = step(state, device, key)
    return float(metrics["loss"]), jax.tree.map(np.asarray, state.params), rows


@pytest.mark.parametrize(
    ("kind", "pack", "k"), [("prepared", True, 1), ("raw", True, 0), ("prepared", False, 1)]
)
def test_two_hosts_train_like_one(trainer, tokenizer, sources, kind, pack, k):
    loss_1, params_1, rows_1 = _train(trainer, tokenizer, sources[kind], 1, pack, k)
    loss_2, params_2, rows_2 = _train(trainer, tokenizer, sources[kind], 2, pack, k)
    assert np.isfinite(loss_1) and abs(loss_1 - loss_2) <= 1e-5 * max(1.0, abs(loss_1))
    for a, b in zip(jax.tree.leaves(params_1), jax.tree.leaves(params_2)):
        np.testing.assert_allclose(b, a, atol=2e-5)
    if pack:  # two hosts pad to the shared bound: never fewer rows than one host's packing
        assert all(r2 >= r1 for r1, r2 in zip(rows_1, rows_2))
