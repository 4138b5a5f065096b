"""Collapse diagnostics for DARTS (Zela et al. 2020, "Understanding and
robustifying differentiable architecture search", Sec. 4).

* The dominant eigenvalue of ``∇²_α L_val(w, α)`` by power iteration on exact
  Hessian-vector products (reverse-over-reverse: the CPU depthwise convolution
  is a ``custom_vjp``), never forming the Hessian.
* The RobustDARTS early-stopping rule (DARTS-ES): stop at epoch ``i`` when
  ``mean(λ[i-2k+1 .. i-k]) / mean(λ[i-k+1 .. i]) < threshold`` and return the
  architecture of epoch ``i - k``.
* The share of parameter-free operations in the derived genotype
  (:func:`nnopt_jax.nas.darts.genotypes.parameter_free_share`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nnopt_jax.nas.darts.genotypes import parameter_free_share  # noqa: F401 (re-export)
from nnopt_jax.types import Array, PRNGKey


def hvp(f: Callable, x, v):
    """Hessian-vector product ``∇²f(x) v = ∇_x ⟨∇f(x), v⟩`` (reverse-over-reverse)."""
    def inner(x):
        return sum(jnp.vdot(g, vi) for g, vi in zip(jax.tree.leaves(jax.grad(f)(x)),
                                                     jax.tree.leaves(v)))
    return jax.grad(inner)(x)


def _normalise(v):
    n = jnp.sqrt(sum(jnp.vdot(a, a) for a in jax.tree.leaves(v)))
    return jax.tree.map(lambda a: a / n, v), n


def dominant_eigenvalue(f: Callable, x, *, key: PRNGKey, num_iters: int = 20) -> Array:
    """Eigenvalue of largest magnitude of the Hessian of scalar ``f`` at ``x``
    (a pytree) by ``num_iters`` power iterations; returns the Rayleigh quotient
    ``vᵀHv`` of the final unit vector. Jittable."""
    leaves, treedef = jax.tree.flatten(x)
    keys = jax.random.split(key, len(leaves))
    v = jax.tree.unflatten(treedef, [jax.random.normal(k, l.shape, l.dtype)
                                     for k, l in zip(keys, leaves)])
    v, _ = _normalise(v)

    def body(_, v):
        hv = hvp(f, x, v)
        return _normalise(hv)[0]

    v = jax.lax.fori_loop(0, num_iters, body, v)
    hv = hvp(f, x, v)
    return sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(v), jax.tree.leaves(hv)))


def early_stop_epoch(eigenvalues: Sequence[float], *, window: int = 5,
                     threshold: float = 0.75) -> int | None:
    """RobustDARTS' rule on the per-epoch eigenvalue history.

    Returns the (0-based) index of the epoch whose architecture to keep
    (``i - window``) when the rule fires at the last epoch ``i``, else None.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    i = len(lam) - 1
    if len(lam) < 2 * window:
        return None
    prev = lam[i - 2 * window + 1:i - window + 1].mean()
    cur = lam[i - window + 1:i + 1].mean()
    if cur > 0 and prev / cur < threshold:
        return i - window
    return None
