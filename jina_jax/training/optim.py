"""Optimiser from config: AdamW with warmup then linear/cosine decay, global-norm clipping and no
weight decay on biases and layer-norm scales. With parameter groups (a LoRA stage): frozen
parameters get no update and no optimiser state, and each trained group has its own Adam
moments."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import optax
from ml_collections import ConfigDict

NO_DECAY_LEAVES = ("bias", "scale")
FROZEN = "frozen"  # the group label of parameters no step changes

# (trained group labels, params -> a tree of labels, FROZEN or one of those): see make_optimizer
ParamGroups = tuple[Sequence[str], Callable]


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


def only_when_used(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """``inner``, applied only on steps where some gradient of its parameters is non-zero; on the
    others its parameters and state stay as they are. A task adapter that a step's dataset does
    not train gets an exactly-zero gradient: without this, Adam's momentum and the weight decay
    would still move it."""

    def update(updates, state, params=None):
        leaves = jax.tree.leaves(updates)
        if not leaves:
            return inner.update(updates, state, params)
        used = jnp.any(jnp.stack([jnp.any(g != 0) for g in leaves]))
        # lax.cond, not jnp.where over both results: the skipped branch costs nothing, and XLA
        # compiles this several times faster (one where per state leaf fused with Adam's math
        # tripled the LoRA step's compile time on CPU).
        return jax.lax.cond(
            used,
            lambda u, s, p: inner.update(u, s, p),
            lambda u, s, p: (jax.tree.map(jnp.zeros_like, u), s),
            updates,
            state,
            params,
        )

    return optax.GradientTransformation(inner.init, update)


def make_optimizer(
    cfg: ConfigDict, total_steps: int, groups: ParamGroups | None = None
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """Clipping, then AdamW. ``groups`` (an objective's ``optimizer_groups()``): None, every
    parameter trains; else ``(labels, label_fn)``: leaves labelled ``FROZEN`` get a zero update
    and no state (``optax.set_to_zero``); each label in ``labels`` has its own Adam moments and
    weight decay, stepped only when its gradient is non-zero (``only_when_used``: Adam's bias
    correction counts the group's own steps, as torch counts each parameter's); the learning
    rate follows the global step for all of them."""
    schedule = learning_rate_schedule(cfg, total_steps)
    clip = optax.clip_by_global_norm(float(cfg.clip_norm))
    if groups is None:
        adamw = optax.adamw(
            schedule,
            b1=float(cfg.b1),
            b2=float(cfg.b2),
            eps=float(cfg.eps),
            weight_decay=float(cfg.weight_decay),
            mask=weight_decay_mask,
        )
        return optax.chain(clip, adamw), schedule
    labels, label_fn = groups

    def moments_and_decay():  # optax.adamw without its learning rate
        return optax.chain(
            optax.scale_by_adam(b1=float(cfg.b1), b2=float(cfg.b2), eps=float(cfg.eps)),
            optax.add_decayed_weights(float(cfg.weight_decay), weight_decay_mask),
        )

    transforms = {label: only_when_used(moments_and_decay()) for label in labels}
    transforms[FROZEN] = optax.set_to_zero()
    tx = optax.chain(
        clip,
        optax.multi_transform(transforms, label_fn),
        optax.scale_by_learning_rate(schedule),
    )
    return tx, schedule
