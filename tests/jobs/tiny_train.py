"""A tiny v2 training run on a local pair file, as a separate process (for resume/fault tests).

python tests/jobs/tiny_train.py WORKDIR PAIRS.jsonl STEPS [key=value ...]
"""

from __future__ import annotations

import sys

from ml_collections import ConfigDict

from jina_jax import config_lib
from jina_jax.main import quiet_libraries, run


def tiny_config(pairs_file: str, steps: int, overrides: dict[str, str]) -> ConfigDict:
    c = config_lib.jina_v2_config("small", {"local"})
    c.unlock()
    c.stages = ("pairs",)
    c.model.update(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64)
    c.pairs.datasets = ConfigDict({"local": config_lib.dataset(pairs_file, batch_size=8)})
    c.pairs.update(steps=steps, query_max_length=32, passage_max_length=32, log_every=2)
    c.pairs.checkpoint.update(every=2, keep=2)
    for key, value in overrides.items():
        node, *path = key.split(".")
        target = c
        for part in [node, *path][:-1]:
            target = target[part]
        target[[node, *path][-1]] = type(target[[node, *path][-1]])(value)
    c.lock()
    return c


if __name__ == "__main__":
    workdir, pairs_file, steps, *rest = sys.argv[1:]
    quiet_libraries()
    overrides = dict(arg.split("=", 1) for arg in rest)
    run(tiny_config(pairs_file, int(steps), overrides), workdir)
