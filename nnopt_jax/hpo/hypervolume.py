"""Pareto fronts and hypervolume, for minimisation of every objective.

The hypervolume of a set Y with respect to a reference point r is the
Lebesgue measure of the region dominated by Y and bounded by r,
HV(Y; r) = vol( union_{y in Y, y < r} [y, r] ) (Zitzler & Thiele 1998).

* :func:`hypervolume_2d`: exact, O(n log n) sweep.
* :func:`hypervolume`: exact in any dimension by slicing along the last
  objective (HSO, While et al. 2006), O(n^(d-1) log n): fine for small sets.
* :func:`hypervolume_mc`: Monte Carlo estimate with an explicit PRNG key.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _as_points(points, ref=None) -> tuple[np.ndarray, np.ndarray | None]:
    y = np.asarray(points, dtype=np.float64)
    if y.ndim == 1 and y.size == 0:
        y = y.reshape(0, 0 if ref is None else len(np.atleast_1d(ref)))
    if y.ndim != 2:
        raise ValueError(f"points must be a 2-D array (n_points, n_objectives), got shape {y.shape}")
    if ref is None:
        return y, None
    r = np.asarray(ref, dtype=np.float64).reshape(-1)
    if y.shape[0] and r.shape[0] != y.shape[1]:
        raise ValueError(f"reference point has {r.shape[0]} objectives, points have {y.shape[1]}")
    if not np.all(np.isfinite(r)):
        raise ValueError("reference point must be finite")
    return y, r


def pareto_mask(points) -> np.ndarray:
    """Boolean mask of the non-dominated rows (minimisation).

    Row i is dominated if some row j is <= in every objective and < in one.
    Non-finite rows are never on the front. Equal rows are all kept.
    Rows are visited in lexicographic order, so a row can only be dominated
    by an earlier one and is compared with the current front only:
    O(n log n + n |front|).
    """
    y, _ = _as_points(points)
    mask = np.zeros(len(y), dtype=bool)
    finite = np.flatnonzero(np.all(np.isfinite(y), axis=1))
    if finite.size == 0:
        return mask
    order = finite[np.lexsort(y[finite].T[::-1])]
    front: list[int] = []
    for i in order:
        if front:
            f = y[front]
            if np.any(np.all(f <= y[i], axis=1) & np.any(f < y[i], axis=1)):
                continue
        front.append(i)
    mask[front] = True
    return mask


def pareto_front(points) -> np.ndarray:
    """The non-dominated rows, sorted by the first objective (then the others)."""
    y, _ = _as_points(points)
    front = y[pareto_mask(y)]
    return front[np.lexsort(front.T[::-1])] if len(front) else front


def hypervolume_2d(points, ref) -> float:
    """Exact 2-D hypervolume by a sweep over the first objective."""
    y, r = _as_points(points, ref)
    if y.shape[0] and y.shape[1] != 2:
        raise ValueError(f"hypervolume_2d needs 2 objectives, got {y.shape[1]}")
    y = y[np.all(np.isfinite(y), axis=1)]
    y = y[np.all(y < r, axis=1)]
    if len(y) == 0:
        return 0.0
    y = y[np.lexsort((y[:, 1], y[:, 0]))]  # by f1, ties by f2
    volume, best_f2 = 0.0, r[1]
    for f1, f2 in y:
        if f2 < best_f2:
            volume += (r[0] - f1) * (best_f2 - f2)
            best_f2 = f2
    return float(volume)


def hypervolume(points, ref) -> float:
    """Exact hypervolume in any number of objectives (slicing, HSO).

    Sorting by the last objective, the dominated region between consecutive
    values z_k <= z_{k+1} is the (d-1)-D hypervolume of the points with
    last objective <= z_k times (z_{k+1} - z_k).
    """
    y, r = _as_points(points, ref)
    if y.shape[0] == 0:
        return 0.0
    y = y[np.all(np.isfinite(y), axis=1)]
    y = y[np.all(y < r, axis=1)]
    if len(y) == 0:
        return 0.0
    d = y.shape[1]
    if d == 1:
        return float(r[0] - y[:, 0].min())
    if d == 2:
        return hypervolume_2d(y, r)
    y = pareto_front(y)
    y = y[np.argsort(y[:, -1], kind="stable")]
    volume = 0.0
    for k in range(len(y)):
        upper = y[k + 1, -1] if k + 1 < len(y) else r[-1]
        if upper > y[k, -1]:
            volume += hypervolume(y[: k + 1, :-1], r[:-1]) * (upper - y[k, -1])
    return float(volume)


def hypervolume_mc(points, ref, *, key: jax.Array, num_samples: int = 100_000) -> float:
    """Monte Carlo estimate of the hypervolume (uniform samples in the bounding box).

    The box is [min(points), ref]; the estimate is the box volume times the
    fraction of samples dominated by some point. Standard error is
    box * sqrt(p (1 - p) / num_samples).
    """
    y, r = _as_points(points, ref)
    y = y[np.all(np.isfinite(y), axis=1)]
    y = y[np.all(y < r, axis=1)]
    if len(y) == 0:
        return 0.0
    lo = y.min(axis=0)
    u = jax.random.uniform(key, (int(num_samples), y.shape[1]), minval=jnp.asarray(lo),
                           maxval=jnp.asarray(r))
    dominated = jnp.any(jnp.all(jnp.asarray(y)[None, :, :] <= u[:, None, :], axis=-1), axis=1)
    return float(np.prod(r - lo) * jnp.mean(dominated))
