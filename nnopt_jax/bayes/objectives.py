"""Training objective (SGVLB), KL warm-up and learning-rate schedules.

Molchanov et al. (2017), eq. (3)/(9): the stochastic gradient variational lower
bound, written here as a loss to minimise,

    L(phi) = N * mean_i CE(y_i, f(x_i; w_i)) + beta * KL(q_phi(W) || p(W)),

with beta warmed up from 0 (Sønderby et al. 2016). Schedules are functions of the
global step, so they are computed inside jit.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from nnopt_jax.bayes.kl import VNQ_LOG_SIGMA2_RANGE
from nnopt_jax.types import Array, Batch

__all__ = [
    "total_kl",
    "sgvlb",
    "kl_warmup",
    "lenet300_lr_schedule",
    "linear_to_zero_schedule",
    "make_sgvlb_loss",
    "make_optimizer",
    "vnq_funnel_projection",
    "cross_entropy",
]


def total_kl(collections: Any) -> Array:
    """Sum of every KL term sown into a ``"kl"`` collection (0 if none)."""
    leaves = jax.tree.leaves(collections.get("kl", {})) if collections else []
    return sum((jnp.sum(l) for l in leaves), jnp.zeros(()))


def cross_entropy(logits: Array, labels: Array) -> Array:
    """Mean softmax cross-entropy over the batch."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def sgvlb(logits: Array, labels: Array, kl: Array, *, num_train: int, beta: Array | float = 1.0) -> Array:
    """Negative SGVLB: N * mean CE + beta * KL (Molchanov et al. 2017, eq. 3)."""
    return num_train * cross_entropy(logits, labels) + beta * kl


def kl_warmup(step: Array, *, steps_per_epoch: int, start_epoch: float = 5.0, end_epoch: float = 20.0) -> Array:
    """KL weight beta: 0 until ``start_epoch``, then linear to 1 at ``end_epoch``.

    ``end_epoch <= start_epoch`` gives a step from 0 to 1 at ``start_epoch``
    (``start_epoch = end_epoch = 0`` disables the warm-up).
    """
    epoch = jnp.asarray(step, jnp.float32) / steps_per_epoch
    if end_epoch <= start_epoch:
        return (epoch >= start_epoch).astype(jnp.float32)
    return jnp.clip((epoch - start_epoch) / (end_epoch - start_epoch), 0.0, 1.0)


def lenet300_lr_schedule(lr: float, *, steps_per_epoch: int, num_epochs: int, flat_epochs: int = 100) -> optax.Schedule:
    """LeNet-300-100 sparse VD: constant ``lr`` to epoch ``flat_epochs``, then linear to 0."""
    flat = min(flat_epochs, num_epochs) * steps_per_epoch
    decay = max(num_epochs * steps_per_epoch - flat, 1)
    return optax.join_schedules(
        [optax.constant_schedule(lr), optax.linear_schedule(lr, 0.0, decay)], [flat]
    )


def linear_to_zero_schedule(lr: float, *, steps_per_epoch: int, num_epochs: int) -> optax.Schedule:
    """LeNet-5 sparse VD and VNQ: ``lr`` linearly to 0 over the run."""
    return optax.linear_schedule(lr, 0.0, max(num_epochs * steps_per_epoch, 1))


def make_optimizer(
    schedule: optax.Schedule,
    *,
    level_lr_factor: float | None = None,
    level_lr_factor_by_layer: Mapping[str, float] | None = None,
    funnel_clip: bool = False,
    threshold: float = 3.0,
    level_min: float = 0.05,
) -> optax.GradientTransformation:
    """Adam with ``schedule``; VNQ codebook levels ("level" params) get ``level_lr_factor`` x lr.

    Achterhold et al. (2018): the codebook level is learned with a 100x smaller
    learning rate (``level_lr_factor=0.01``), via :func:`optax.multi_transform`.
    ``level_lr_factor_by_layer`` maps a layer's name (as
    :func:`nnopt_jax.bayes.compression.iter_layers` names it, e.g. ``"conv1"``) to
    its own factor; 0 holds that layer's level where it starts.
    ``funnel_clip`` chains :func:`vnq_funnel_projection` after Adam (their sec. 4).
    """
    by_layer = dict(level_lr_factor_by_layer or {})
    if level_lr_factor is None and not by_layer:
        tx = optax.adam(schedule)
    else:
        default = 1.0 if level_lr_factor is None else float(level_lr_factor)

        def labels(params):
            flat, treedef = jax.tree_util.tree_flatten_with_path(params)
            names = [_level_label(path, by_layer) for path, _ in flat]
            return jax.tree_util.tree_unflatten(treedef, names)

        scaled = lambda factor: optax.adam(lambda step: factor * schedule(step))
        transforms = {"weights": optax.adam(schedule), "level": scaled(default)}
        transforms.update({f"level:{name}": scaled(float(f)) for name, f in by_layer.items()})
        tx = optax.multi_transform(transforms, labels)
    if funnel_clip:
        tx = optax.chain(tx, vnq_funnel_projection(threshold=threshold, level_min=level_min))
    return tx


def _level_label(path, by_layer: Mapping[str, float]) -> str:
    """``make_optimizer``'s label of one parameter: weights, a level, or a named layer's level."""
    keys = [str(getattr(k, "key", k)) for k in path]
    if keys[-1] != "level":
        return "weights"
    layer = "/".join(keys[:-1])
    return f"level:{layer}" if layer in by_layer else "level"


def _project_vnq_layer(layer: dict, *, threshold: float, level_min: float) -> dict:
    """One VNQ layer's parameters projected onto the funnels' range (see below)."""
    level = jnp.maximum(jnp.abs(layer["level"]), level_min)
    log_sigma2 = jnp.clip(layer["log_sigma2"], *VNQ_LOG_SIGMA2_RANGE)
    bound = level + jnp.exp(0.5 * (log_sigma2 - threshold))  # a + sigma / sqrt(T_alpha)
    return {**layer, "level": level.astype(layer["level"].dtype),
            "theta": jnp.clip(layer["theta"], -bound, bound)}


def vnq_funnel_projection(*, threshold: float = 3.0, level_min: float = 0.05) -> optax.GradientTransformation:
    """Keeps every VNQ layer inside its outer funnels after each step.

    Achterhold et al. (2018), sec. 4: theta is clipped to
    [-(a + sigma / sqrt(T_alpha)), a + sigma / sqrt(T_alpha)] with
    log T_alpha = ``threshold`` (3: a + 0.223 sigma), i.e. no weight lies
    beyond the -a or +a funnel of the shifted log-alpha threshold, and the
    codebook level is kept at |a| >= ``level_min`` (0.05) so that it cannot
    collapse. (The paper's text prints "a <= 0.05"; the bound is read as a
    floor because it follows the remark on collapsing levels, and the levels
    learned on LeNet-5 lie at 0.09-0.19.)

    A projection written as an update: it returns ``P(params + u) - params``,
    so it must come last in a chain. Layers are the sub-dictionaries holding
    ``theta``, ``log_sigma2`` and ``level``; other parameters pass unchanged.
    """

    def project(tree):
        if isinstance(tree, Mapping):
            if {"theta", "log_sigma2", "level"} <= set(tree):
                layer = _project_vnq_layer(dict(tree), threshold=threshold, level_min=level_min)
                return type(tree)(layer)
            return type(tree)({k: project(v) for k, v in tree.items()})
        return tree

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("vnq_funnel_projection needs the parameters: call tx.update(grads, state, params)")
        stepped = jax.tree.map(jnp.add, params, updates)
        projected = project(stepped)
        return jax.tree.map(jnp.subtract, projected, params), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def make_sgvlb_loss(
    model: nn.Module,
    *,
    num_train: int,
    steps_per_epoch: int,
    warmup: tuple[float, float] = (5.0, 20.0),
    kl_weight: float = 1.0,
) -> Callable:
    """A ``loss_fn(params, model_state, batch, *, key, step)`` for ``training.fit``.

    The loss is divided by ``num_train`` (a per-example scale, so Adam sees the
    same problem and logged values are comparable to a cross-entropy); its
    gradient direction equals the SGVLB's.
    """
    start, end = warmup

    def loss_fn(params, model_state, batch: Batch, *, key, step):
        model_state = dict(model_state or {})
        variables = {"params": params, **model_state}
        logits, cols = model.apply(
            variables, batch.x, train=True, rngs={"noise": key}, mutable=["kl", *model_state]
        )
        kl = total_kl(cols)
        model_state = {k: cols[k] for k in model_state}  # e.g. BatchNorm batch_stats
        beta = kl_weight * kl_warmup(step, steps_per_epoch=steps_per_epoch, start_epoch=start, end_epoch=end)
        ce = cross_entropy(logits, batch.y)
        loss = ce + beta * kl / num_train
        err = jnp.mean(jnp.argmax(logits, -1) != batch.y)
        return loss, (model_state, {"ce": ce, "kl": kl, "beta": beta, "train_error": err})

    return loss_fn
