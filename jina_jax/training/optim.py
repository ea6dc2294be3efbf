"""Optimiser from config: AdamW with warmup then linear/cosine decay, global-norm clipping and no
weight decay on biases and layer-norm scales."""

from __future__ import annotations

import jax
import optax
from ml_collections import ConfigDict

NO_DECAY_LEAVES = ("bias", "scale")


def learning_rate_schedule(cfg: ConfigDict, total_steps: int) -> optax.Schedule:
    warmup = int(cfg.warmup_steps)
    peak = float(cfg.lr)
    end = peak * float(cfg.end_lr_ratio)
    decay_steps = max(total_steps - warmup, 1)
    kind = cfg.schedule
    if kind == "linear":
        decay = optax.linear_schedule(peak, end, decay_steps)
    elif kind == "cosine":
        decay = optax.cosine_decay_schedule(peak, decay_steps, alpha=end / peak if peak else 0.0)
    elif kind == "constant":
        decay = optax.constant_schedule(peak)
    else:
        raise ValueError(f"optimizer.schedule must be linear, cosine or constant, got {kind!r}")
    if warmup == 0:
        return decay
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), decay], [warmup])


def weight_decay_mask(params):
    """True where weight decay applies: every kernel and embedding, not biases or norm scales."""

    def decays(path, _):
        return getattr(path[-1], "key", None) not in NO_DECAY_LEAVES

    return jax.tree_util.tree_map_with_path(decays, params)


def make_optimizer(
    cfg: ConfigDict, total_steps: int
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    schedule = learning_rate_schedule(cfg, total_steps)
    tx = optax.chain(
        optax.clip_by_global_norm(float(cfg.clip_norm)),
        optax.adamw(
            schedule,
            b1=float(cfg.b1),
            b2=float(cfg.b2),
            eps=float(cfg.eps),
            weight_decay=float(cfg.weight_decay),
            mask=weight_decay_mask,
        ),
    )
    return tx, schedule
