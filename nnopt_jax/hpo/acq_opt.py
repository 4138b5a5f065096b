"""Acquisition maximisation over the unit feature cube, inside jit.

Candidates (scrambled Sobol points plus perturbations of the incumbents,
generated on the host with fixed shapes) are snapped to valid configurations
and scored in one batch; the best ``n_refine`` seed projected gradient ascent
(Adam with a cosine-decaying step, clipped to ``[0, 1]``, keeping the best
point met) on the relaxed acquisition; refined points are
snapped again and rescored. Snapping after relaxation is how integer and
one-hot categorical dimensions are handled (cf. Garrido-Merchan &
Hernandez-Lobato 2020, who round inside the kernel instead).

A finite space small enough to enumerate (only integers and categoricals,
``SearchSpace.grid_features``) needs neither: :func:`maximize_exhaustive`
scores every configuration and returns the exact arg-max.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax


def maximize(score: Callable[[jax.Array], jax.Array], candidates: jax.Array, *,
             snap: Callable[[jax.Array], jax.Array], n_refine: int = 8, n_steps: int = 50,
             learning_rate: float = 0.02, n_return: int = 16,
             batch_score: Callable[[jax.Array], jax.Array] | None = None,
             ) -> tuple[jax.Array, jax.Array]:
    """Maximises ``score`` over ``[0, 1]^D``.

    Args:
        score: ``x (D,) -> scalar`` to maximise (jax-traceable).
        candidates: ``(M, D)`` starting points in ``[0, 1]^D``.
        snap: projection onto valid encodings (e.g. ``SearchSpace.snap_features``).
        n_refine: number of best candidates refined by gradient ascent.
        n_steps: Adam steps per refinement.
        learning_rate: Adam step size (in unit-cube coordinates).
        n_return: number of best unrefined candidates also returned.
        batch_score: ``X (M, D) -> (M,)``, the same function as ``score`` on
            every row, when it has a faster batched form (e.g. a GP posterior
            as matrix products); default ``jax.vmap(score)``.

    Returns:
        ``(points, scores)``: ``(n_refine + n_return, D)`` snapped points sorted by
        decreasing score, so callers can skip duplicates of observed points.
    """
    batch_score = jax.vmap(score) if batch_score is None else batch_score
    snapped = snap(candidates)
    values = batch_score(snapped)
    values = jnp.where(jnp.isfinite(values), values, -jnp.inf)
    # the best n_refine and n_return, lower index first among ties (as a stable
    # argsort of -values, at a fraction of a full sort's cost on CPU)
    _, top = jax.lax.top_k(values, min(max(n_refine, n_return), values.shape[0]))
    starts = candidates[top[:n_refine]]
    # Adam whose step size decays (cosine) to 1 % of its start, so the ascent
    # settles to a precision well below ``learning_rate``; the best point met
    # on the way is kept (the relaxed ascent need not end at its best).
    opt = optax.adam(optax.cosine_decay_schedule(learning_rate, n_steps, alpha=0.01))

    def ascend(x0):
        def step(carry, _):
            x, state, best_x, best_v = carry
            v, g = jax.value_and_grad(score)(x)
            better = jnp.isfinite(v) & (v > best_v)
            best_x = jnp.where(better, x, best_x)
            best_v = jnp.where(better, v, best_v)
            g = jnp.where(jnp.isfinite(g), -g, 0.0)
            updates, state = opt.update(g, state, x)
            x = jnp.clip(optax.apply_updates(x, updates), 0.0, 1.0)
            return (x, state, best_x, best_v), None

        init = (x0, opt.init(x0), x0, jnp.asarray(-jnp.inf, x0.dtype))
        (x, _, best_x, best_v), _ = jax.lax.scan(step, init, None, length=n_steps)
        v = score(x)
        return jnp.where(jnp.isfinite(v) & (v > best_v), x, best_x)

    refined = snap(jax.vmap(ascend)(starts))
    refined_values = batch_score(refined)
    refined_values = jnp.where(jnp.isfinite(refined_values), refined_values, -jnp.inf)
    points = jnp.concatenate([refined, snapped[top[:n_return]]])
    scores = jnp.concatenate([refined_values, values[top[:n_return]]])
    order = jnp.argsort(-scores)
    return points[order], scores[order]


def maximize_exhaustive(score: Callable[[jax.Array], jax.Array], grid: jax.Array,
                        allowed: jax.Array, *, n_return: int = 16, chunk: int = 2048,
                        batch_score: Callable[[jax.Array], jax.Array] | None = None,
                        ) -> tuple[jax.Array, jax.Array]:
    """Exact maximisation of ``score`` over a finite set of encodings.

    Scores every row of ``grid`` (``lax.map`` over chunks of ``chunk`` rows,
    each chunk one vectorised batch, so memory stays ``O(chunk)`` and shapes
    static) and returns the ``n_return`` best allowed rows:
    ``argmax_{x in grid, allowed(x)} score(x)`` and its runners-up.

    Args:
        score: ``x (D,) -> scalar`` to maximise (jax-traceable).
        grid: ``(M, D)`` encodings, e.g. ``SearchSpace.grid_features()``.
        allowed: ``(M,)`` booleans; a row that is not allowed (already
            evaluated) scores ``-inf``.
        n_return: number of rows returned (at most ``M``).
        chunk: rows scored per batch.
        batch_score: batched ``score`` (as in :func:`maximize`); default
            ``jax.vmap(score)``.

    Returns:
        ``(points, scores)``: ``(n_return, D)`` rows sorted by decreasing
        score (``-inf`` for disallowed or non-finite ones).
    """
    m, d = grid.shape
    chunk = min(chunk, m)
    n_chunks = -(-m // chunk)
    padded = jnp.pad(grid, ((0, n_chunks * chunk - m), (0, 0)))
    batch_score = jax.vmap(score) if batch_score is None else batch_score
    values = jax.lax.map(batch_score, padded.reshape(n_chunks, chunk, d)).reshape(-1)[:m]
    values = jnp.where(allowed & jnp.isfinite(values), values, -jnp.inf)
    scores, top = jax.lax.top_k(values, min(n_return, m))
    return grid[top], scores


def sobol(n: int, dim: int, *, seed) -> np.ndarray:
    """``n`` scrambled Sobol points in ``[0, 1)^dim`` (n rounded up to a power of 2)."""
    from scipy.stats import qmc  # imported on first use: scipy.stats takes ~0.4 s to import

    m = int(np.ceil(np.log2(max(n, 1))))
    return qmc.Sobol(dim, scramble=True, seed=np.random.default_rng(seed)).random_base2(m)[:n]
