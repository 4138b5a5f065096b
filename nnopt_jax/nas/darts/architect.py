"""The DARTS architect: the hypergradient of the bilevel problem (Liu et al.
2018, Sec. 2.3, Eqs. 3-8).

Outer problem ``min_α L_val(w*(α), α)``; inner ``w*(α) = argmin_w L_train(w, α)``.
Three approximations of ``∇α L_val(w*(α), α)``:

* ``first``  — Eq. 6 with ξ = 0: ``∇α L_val(w, α)``.
* ``second`` — Eq. 6-7 exactly: ``∇α L_val(w′(α), α)`` with the virtual step
  ``w′(α) = w − ξ(μ·buf + ∇w L_train(w, α) + λw)`` written as a pure function
  and differentiated by :func:`jax.grad`; this yields
  ``∇α L_val(w′, α) − ξ ∇²_{α,w} L_train(w, α) ∇w′ L_val(w′, α)`` with the
  exact mixed Hessian-vector product.
* ``second_fd`` — the paper's Eq. 8: the mixed Hessian-vector product by a
  central finite difference ``(∇α L_train(w⁺, α) − ∇α L_train(w⁻, α)) / 2ε``
  with ``w± = w ± ε ∇w′ L_val(w′, α)`` and ``ε = r / ‖∇w′ L_val(w′, α)‖``
  (``r = 0.01``). Its error is O(ε²).

All functions are pure and jittable; ``apply_fn(params, alphas, x) -> logits``.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from nnopt_jax.types import Array, Batch, Params

ApplyFn = Callable[[Params, object, Array], Array]
ORDERS = ("first", "second", "second_fd")


def cross_entropy(apply_fn: ApplyFn, params: Params, alphas, batch: Batch) -> Array:
    """Mean softmax cross-entropy of the network on ``batch``."""
    logits = apply_fn(params, alphas, batch.x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, batch.y).mean()


def _tree_axpy(a, x, y):
    return jax.tree.map(lambda xi, yi: a * xi + yi, x, y)


def virtual_step(apply_fn: ApplyFn, params: Params, alphas, momentum: Params,
                 train_batch: Batch, *, xi: Array | float, momentum_coef: float,
                 weight_decay: float) -> Params:
    """One SGD step of the weights as a function of α (Eq. 6 / the authors' unrolled model):
    ``w′ = w − ξ(μ·buf + ∇w L_train(w, α) + λw)``. No gradient clipping (as the authors)."""
    g = jax.grad(cross_entropy, argnums=1)(apply_fn, params, alphas, train_batch)
    return jax.tree.map(lambda w, b, gi: w - xi * (momentum_coef * b + gi + weight_decay * w),
                        params, momentum, g)


def unrolled_val_loss(alphas, params: Params, momentum: Params, train_batch: Batch,
                      val_batch: Batch, *, apply_fn: ApplyFn, xi, momentum_coef: float,
                      weight_decay: float) -> Array:
    """``L_val(w′(α), α)``: the objective whose α-gradient is the second-order hypergradient."""
    w_prime = virtual_step(apply_fn, params, alphas, momentum, train_batch, xi=xi,
                           momentum_coef=momentum_coef, weight_decay=weight_decay)
    return cross_entropy(apply_fn, w_prime, alphas, val_batch)


def first_order_grad(apply_fn: ApplyFn, params: Params, alphas, val_batch: Batch):
    """``(L_val(w, α), ∇α L_val(w, α))`` (first-order DARTS)."""
    return jax.value_and_grad(cross_entropy, argnums=2)(apply_fn, params, alphas, val_batch)


def second_order_grad(apply_fn: ApplyFn, params: Params, alphas, momentum: Params,
                      train_batch: Batch, val_batch: Batch, *, xi, momentum_coef: float = 0.9,
                      weight_decay: float = 3e-4):
    """``(L_val(w′, α), d/dα L_val(w′(α), α))``, exact (Eq. 7, by autodiff through Eq. 6)."""
    return jax.value_and_grad(unrolled_val_loss)(
        alphas, params, momentum, train_batch, val_batch, apply_fn=apply_fn, xi=xi,
        momentum_coef=momentum_coef, weight_decay=weight_decay)


def finite_difference_grad(apply_fn: ApplyFn, params: Params, alphas, momentum: Params,
                           train_batch: Batch, val_batch: Batch, *, xi,
                           momentum_coef: float = 0.9, weight_decay: float = 3e-4,
                           r: float = 0.01):
    """The paper's approximation (Eq. 8) of the second-order hypergradient."""
    w_prime = virtual_step(apply_fn, params, alphas, momentum, train_batch, xi=xi,
                           momentum_coef=momentum_coef, weight_decay=weight_decay)
    loss, (g_alpha, v) = jax.value_and_grad(
        lambda a, w: cross_entropy(apply_fn, w, a, val_batch), argnums=(0, 1))(alphas, w_prime)
    norm = optax.global_norm(v)
    eps = r / jnp.maximum(norm, jnp.finfo(norm.dtype).tiny)

    def grad_alpha_at(step):  # ∇α L_train(w + step·v, α)
        return jax.grad(cross_entropy, argnums=2)(apply_fn, _tree_axpy(step, v, params),
                                                  alphas, train_batch)

    # A loop over (+ε, −ε), not two independent graphs: XLA may interleave
    # independent graphs and hold both sets of activations at once.
    g_pm = jax.lax.map(grad_alpha_at, jnp.stack([eps, -eps]))
    hvp = jax.tree.map(lambda g: (g[0] - g[1]) / (2 * eps), g_pm)
    return loss, jax.tree.map(lambda g, h: g - xi * h, g_alpha, hvp)


def hypergradient(order: str, apply_fn: ApplyFn, params: Params, alphas, momentum: Params,
                  train_batch: Batch, val_batch: Batch, *, xi, momentum_coef: float = 0.9,
                  weight_decay: float = 3e-4, r: float = 0.01):
    """Dispatch on ``order`` in :data:`ORDERS`; returns ``(val_loss, grad_alpha)``."""
    if order == "first":
        return first_order_grad(apply_fn, params, alphas, val_batch)
    kw = dict(xi=xi, momentum_coef=momentum_coef, weight_decay=weight_decay)
    if order == "second":
        return second_order_grad(apply_fn, params, alphas, momentum, train_batch, val_batch, **kw)
    if order == "second_fd":
        return finite_difference_grad(apply_fn, params, alphas, momentum, train_batch,
                                      val_batch, r=r, **kw)
    raise ValueError(f"unknown DARTS order {order!r}; choose one of {ORDERS}")
