"""Which records make up training batch `step`: one dataset per batch, drawn in proportion to
`size * scale` (the dataset sampling of jina-embeddings v1, Günther et al. 2023), with random
access so that resuming needs only the step number.

Determinism and random access
-----------------------------
`MixtureSampler.plan(step)` is a pure function of `(seed, step)` and the configuration:
- The dataset of step `s` is drawn from a generator keyed by `(seed, s // CHUNK)`; the draws of a
  chunk are made at once and cached, so a plan costs O(1) after the first visit to a chunk.
- Within a dataset the batches walk epoch-wise through a pseudo-random permutation without
  replacement: the k-th batch drawn from dataset d (k counts the earlier steps that drew d, kept
  as per-chunk running counts) is slot `k % (n_d // B_d)` of epoch `k // (n_d // B_d)`. The
  permutation of each epoch is a keyed Feistel network over the index range, evaluated only at
  the positions a batch needs, so no permutation array of the dataset's size is ever built.
  The last `n_d % B_d` positions of each epoch are left out (a different set each epoch), so
  every batch is full and has no repeated record.
Per host: the global batch of `B_d` indices is cut into `process_count` contiguous slices; host
`process_index` gets its slice, so the hosts' slices laid end to end give the global batch.
`plan(step)` permutes only that slice, so a host's cost is O(B_d / process_count).

Blocks of records (``blocks={name: b}``, default 1)
-------------------------------------------------
With ``b > 1`` an epoch permutes the blocks ``[b j, b (j + 1))`` rather than records: the
epoch's stream is the blocks in permuted order, so a batch is ``B_d / b`` random blocks.
Prepared datasets (``jina_jax.data.prepared``) use blocks of one array_record chunk (16
records): their records are stored in the order of a hash of their texts, so a block is a
random set of pairs, and reading it decompresses one chunk instead of one per record (random
single records: about 15 us each on this machine, whole chunks: about 1.3 us a record). The
costs: the records of a block are always drawn together, and the last ``n_d % b`` records
(fewer than ``b``) are never drawn.
"""

from __future__ import annotations

import dataclasses
import threading
import zlib
from collections.abc import Mapping, Sequence

import numpy as np

CHUNK = 4096  # steps whose dataset draws are made (and cached) together


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """How one training dataset is batched. `batch_size` is the global batch (all hosts)."""

    name: str
    scale: float = 1.0  # s_i in "draw probability ∝ size_i * s_i"
    batch_size: int = 32
    query_prefix: str = ""
    passage_prefix: str = ""
    in_batch_negatives: bool = True
    num_negatives: int = 0  # hard negatives per query (v2 stage 2: 15)


def as_spec_dict(
    specs: Sequence[DatasetSpec] | Mapping[str, DatasetSpec],
) -> dict[str, DatasetSpec]:
    if isinstance(specs, Mapping):
        for name, spec in specs.items():
            if spec.name != name:
                raise ValueError(f"spec for {name!r} is named {spec.name!r}")
        return dict(specs)
    out = {spec.name: spec for spec in specs}
    if len(out) != len(specs):
        raise ValueError("two DatasetSpecs share a name")
    return out


class MixtureSampler:
    def __init__(
        self,
        sizes: Mapping[str, int],
        specs: Sequence[DatasetSpec] | Mapping[str, DatasetSpec],
        seed: int,
        process_index: int = 0,
        process_count: int = 1,
        blocks: Mapping[str, int] | None = None,
    ):
        specs = as_spec_dict(specs)
        missing = set(sizes) - set(specs)
        if missing:
            raise ValueError(f"no DatasetSpec for {sorted(missing)}")
        if not 0 <= process_index < process_count:
            raise ValueError(f"process_index {process_index} not in [0, {process_count})")
        # Sorted, so the plan does not depend on the order the caller listed the datasets in.
        self.names = sorted(sizes)
        self.specs = {name: specs[name] for name in self.names}
        self.sizes = {name: int(sizes[name]) for name in self.names}
        self.blocks = {name: int((blocks or {}).get(name, 1)) for name in self.names}
        for name in self.names:
            spec, size = self.specs[name], self.sizes[name]
            if self.blocks[name] < 1:
                raise ValueError(f"{name}: block must be >= 1, got {self.blocks[name]}")
            if spec.batch_size % process_count:
                raise ValueError(
                    f"{name}: batch size {spec.batch_size} is not divisible by "
                    f"{process_count} processes"
                )
            if spec.scale > 0 and self._stream(name) < spec.batch_size:
                raise ValueError(
                    f"{name} has {size} records, fewer than one batch of {spec.batch_size}"
                    + (f" in whole blocks of {self.blocks[name]}" if self.blocks[name] > 1 else "")
                )
            if spec.scale < 0:
                raise ValueError(f"{name}: scale must be >= 0, got {spec.scale}")
        mass = np.array([self.sizes[n] * self.specs[n].scale for n in self.names], np.float64)
        if mass.sum() <= 0:
            raise ValueError("every dataset has zero weight (size * scale)")
        self.probabilities = dict(zip(self.names, mass / mass.sum()))
        self._cumulative = np.cumsum(mass / mass.sum())
        self._cumulative[-1] = 1.0
        self.seed = int(seed)
        self.process_index, self.process_count = process_index, process_count
        # _before[c][d]: how many steps in chunks < c drew dataset d (grows as chunks are visited).
        self._before = [np.zeros(len(self.names), np.int64)]
        self._draw_cache: dict[int, np.ndarray] = {}  # chunk -> dataset index per step
        # The prefetch thread and the caller may plan at the same time.
        self._lock = threading.RLock()

    def dataset_at(self, step: int) -> str:
        chunk, offset = divmod(int(step), CHUNK)
        return self.names[self._draws(chunk)[offset]]

    def plan(self, step: int) -> tuple[str, np.ndarray]:
        """(dataset name, this host's record indices [B_d / process_count]) for `step`."""
        name, epoch, within = self._positions(step)
        local = len(within) // self.process_count
        start = self.process_index * local
        return name, self._permute(name, epoch, within[start : start + local])

    def global_plan(self, step: int) -> tuple[str, np.ndarray]:
        """(dataset name, record indices of the whole global batch [B_d]) for `step`."""
        name, epoch, within = self._positions(step)
        return name, self._permute(name, epoch, within)

    # -- internals

    def _stream(self, name: str) -> int:
        """Records an epoch of dataset `name` can draw: its whole blocks."""
        return self.sizes[name] // self.blocks[name] * self.blocks[name]

    def _positions(self, step: int) -> tuple[str, int, np.ndarray]:
        """Dataset of `step`, the epoch of its batch and the positions its batch takes in that
        epoch's stream (a batch never straddles two epochs)."""
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        chunk, offset = divmod(int(step), CHUNK)
        draws = self._draws(chunk)
        d = int(draws[offset])
        k = int(self._counts_before(chunk)[d]) + int(np.count_nonzero(draws[:offset] == d))
        name = self.names[d]
        batch = self.specs[name].batch_size
        per_epoch = self._stream(name) // batch
        epoch, slot = divmod(k, per_epoch)
        return name, epoch, slot * batch + np.arange(batch, dtype=np.int64)

    def _permute(self, name: str, epoch: int, within: np.ndarray) -> np.ndarray:
        """Record indices at positions `within` of epoch `epoch`'s stream."""
        size, block = self.sizes[name], self.blocks[name]
        keys = _epoch_key(self.seed, name, epoch)
        if block == 1:
            return feistel_permute(within, size, keys)
        if not within.size:
            return within.copy()
        # positions are consecutive: permute each block they touch once, then expand the blocks
        first, last = int(within[0]) // block, int(within[-1]) // block
        touched = feistel_permute(np.arange(first, last + 1), size // block, keys)
        records = (touched[:, None] * block + np.arange(block)).ravel()
        return records[within - first * block]

    def _draws(self, chunk: int) -> np.ndarray:
        with self._lock:
            draws = self._draw_cache.get(chunk)
            if draws is None:
                draws = self._draw_chunk(chunk)
                if len(self._draw_cache) >= 64:
                    self._draw_cache.pop(next(iter(self._draw_cache)))
                self._draw_cache[chunk] = draws
            return draws

    def _draw_chunk(self, chunk: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, chunk])
        return np.searchsorted(self._cumulative, rng.random(CHUNK), side="right").astype(np.int32)

    def _counts_before(self, chunk: int) -> np.ndarray:
        with self._lock:
            while len(self._before) <= chunk:
                draws = self._draw_chunk(len(self._before) - 1)
                counts = np.bincount(draws, minlength=len(self.names))
                self._before.append(self._before[-1] + counts)
            return self._before[chunk]


def _epoch_key(seed: int, name: str, epoch: int) -> np.ndarray:
    # crc32 of the name, so that adding a dataset leaves the other datasets' orders unchanged.
    entropy = [seed, zlib.crc32(name.encode("utf-8")), epoch]
    return np.random.SeedSequence(entropy).generate_state(FEISTEL_ROUNDS, np.uint64)


FEISTEL_ROUNDS = 4
_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a cheap, well-mixing bijection on uint64 (wraps on overflow)."""
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


def feistel_permute(index: np.ndarray, n: int, keys: np.ndarray) -> np.ndarray:
    """A keyed pseudo-random permutation of range(n), evaluated at `index` (values in [0, n)).

    A balanced Feistel network on the smallest even number of bits covering n is a bijection on
    [0, 2**bits); values that land at or above n are encrypted again ("cycle walking"), which keeps
    it a bijection on [0, n). The domain is under 4n, so a few rounds of walking suffice.
    """
    index = np.asarray(index, dtype=np.uint64)
    if n <= 1:
        return np.zeros(index.shape, np.int64)
    half = max(1, -(-int(n - 1).bit_length() // 2))
    mask = np.uint64((1 << half) - 1)
    shift = np.uint64(half)
    keys = np.asarray(keys, dtype=np.uint64)

    def encrypt(x: np.ndarray) -> np.ndarray:
        left, right = x >> shift, x & mask
        for key in keys:
            left, right = right, left ^ (_mix(right ^ key) & mask)
        return (left << shift) | right

    out = encrypt(index)
    outside = out >= np.uint64(n)
    while outside.any():
        out[outside] = encrypt(out[outside])
        outside = out >= np.uint64(n)
    return out.astype(np.int64)
