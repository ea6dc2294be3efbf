"""MixtureSampler: draw frequencies against the configured weights, one dataset per batch,
random access, epoch-wise sampling without replacement, per-host slices."""

import numpy as np
import pytest

from jina_jax.data.sampler import DatasetSpec, MixtureSampler, feistel_permute

SIZES = {"a": 1000, "b": 3000, "c": 6000}
SPECS = [
    DatasetSpec("a", scale=2.0, batch_size=8),
    DatasetSpec("b", scale=1.0, batch_size=16),
    DatasetSpec("c", scale=0.5, batch_size=32),
]


def test_draw_frequencies_match_size_times_scale_over_10k_batches():
    sampler = MixtureSampler(SIZES, SPECS, seed=0)
    # size * scale = 2000, 3000, 3000 -> 0.25, 0.375, 0.375
    expected = {"a": 0.25, "b": 0.375, "c": 0.375}
    assert sampler.probabilities == pytest.approx(expected)
    steps = 10_000
    counts = {name: 0 for name in SIZES}
    for step in range(steps):
        name, indices = sampler.global_plan(step)
        counts[name] += 1
        # one dataset per batch: a full batch of distinct indices inside that dataset
        spec = sampler.specs[name]
        assert len(indices) == spec.batch_size == len(np.unique(indices))
        assert indices.min() >= 0 and indices.max() < SIZES[name]
    for name, p in expected.items():
        assert abs(counts[name] / steps - p) < 0.02, (name, counts[name] / steps)


def test_plan_is_a_pure_function_of_seed_and_step():
    forward = MixtureSampler(SIZES, SPECS, seed=7)
    plans = [forward.global_plan(step) for step in range(0, 20_000, 97)]
    # A fresh sampler asked in reverse order, and one built from reordered dicts, agree.
    backward = MixtureSampler(dict(reversed(SIZES.items())), SPECS[::-1], seed=7)
    for step, (name, indices) in reversed(list(zip(range(0, 20_000, 97), plans))):
        other_name, other_indices = backward.global_plan(step)
        assert other_name == name
        np.testing.assert_array_equal(other_indices, indices)
    assert MixtureSampler(SIZES, SPECS, seed=8).global_plan(5)[1].tolist() != plans[0][1].tolist()


def test_each_dataset_is_walked_epoch_wise_without_replacement():
    sizes = {"small": 105, "big": 2000}
    specs = [DatasetSpec("small", batch_size=10), DatasetSpec("big", batch_size=10)]
    sampler = MixtureSampler(sizes, specs, seed=3)
    seen = {"small": [], "big": []}
    step = 0
    while len(seen["small"]) < 3 * 10:  # three epochs of 10 batches
        name, indices = sampler.global_plan(step)
        seen[name].append(indices)
        step += 1
    epochs = [np.concatenate(seen["small"][e * 10 : (e + 1) * 10]) for e in range(3)]
    for epoch in epochs:
        # 10 full batches per epoch: 100 distinct records of 105 (5 left out, not repeated)
        assert len(np.unique(epoch)) == 100 and epoch.max() < 105
    assert not np.array_equal(epochs[0], epochs[1])  # a fresh order every epoch
    big = np.concatenate(seen["big"][:200])  # its first epoch: every record exactly once
    np.testing.assert_array_equal(np.sort(big), np.arange(2000))


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000, 12_345])
def test_feistel_permute_is_a_permutation(n):
    keys = np.random.SeedSequence(n).generate_state(4, np.uint64)
    out = feistel_permute(np.arange(n), n, keys)
    np.testing.assert_array_equal(np.sort(out), np.arange(n))
    if n >= 64:
        other = feistel_permute(np.arange(n), n, keys + np.uint64(1))
        assert not np.array_equal(out, other) and not np.array_equal(out, np.arange(n))


def test_hosts_get_contiguous_slices_of_the_global_batch():
    single = MixtureSampler(SIZES, SPECS, seed=1)
    hosts = [
        MixtureSampler(SIZES, SPECS, seed=1, process_index=i, process_count=4) for i in range(4)
    ]
    for step in (0, 1, 2, 500, 12_345):
        name, indices = single.plan(step)
        parts = [host.plan(step) for host in hosts]
        assert {part_name for part_name, _ in parts} == {name}
        np.testing.assert_array_equal(np.concatenate([p for _, p in parts]), indices)
        assert len(parts[0][1]) == single.specs[name].batch_size // 4


def test_configuration_errors():
    with pytest.raises(ValueError, match="not divisible"):
        MixtureSampler({"a": 100}, [DatasetSpec("a", batch_size=6)], seed=0, process_count=4)
    with pytest.raises(ValueError, match="fewer than one batch"):
        MixtureSampler({"a": 5}, [DatasetSpec("a", batch_size=8)], seed=0)
    with pytest.raises(ValueError, match="no DatasetSpec"):
        MixtureSampler({"a": 100, "z": 100}, [DatasetSpec("a")], seed=0)


def test_blocks_are_consecutive_records_and_epochs_still_draw_without_replacement():
    size, block, batch = 1000, 16, 64  # 62 whole blocks an epoch: 992 records, 15 batches
    sampler = MixtureSampler({"a": size}, [DatasetSpec("a", batch_size=batch)], 5, blocks={"a": 16})
    epochs = [
        np.concatenate([sampler.global_plan(e * 15 + s)[1] for s in range(15)]) for e in (0, 1, 2)
    ]
    drawn = set()
    for epoch in epochs:
        assert len(epoch) == 960 and len(np.unique(epoch)) == 960  # no record twice in an epoch
        assert epoch.min() >= 0 and epoch.max() < size
        runs = epoch.reshape(-1, block)  # each block: `block` consecutive records (mod size)
        np.testing.assert_array_equal(
            (runs - runs[:, :1]) % size, np.tile(np.arange(block), (60, 1))
        )
        drawn |= set(epoch.tolist())
    # blocks are aligned ([16 j, 16 j + 16)); the 8 records past the last whole block are never
    # drawn, every other record is drawn within the first three epochs
    assert not (np.concatenate(epochs)[::block] % block).any()
    assert drawn == set(range(992))
    # hosts: O(B / hosts) planning, and the slices laid end to end are the global batch
    hosts = [
        MixtureSampler({"a": size}, [DatasetSpec("a", batch_size=batch)], 5, i, 4, {"a": 16})
        for i in range(4)
    ]
    for step in (0, 7, 16, 44):
        parts = [host.plan(step)[1] for host in hosts]
        np.testing.assert_array_equal(np.concatenate(parts), sampler.global_plan(step)[1])
    with pytest.raises(ValueError, match="in whole blocks of 16"):
        MixtureSampler({"a": 40}, [DatasetSpec("a", batch_size=48)], 0, blocks={"a": 16})
