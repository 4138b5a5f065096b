"""Host-side batch iteration with explicit, resumable randomness.

The order of an epoch is a pure function of ``(seed, epoch)``: the
permutation is drawn from ``numpy.random.default_rng([seed, epoch])``, so a
run resumed in the middle of an epoch replays exactly the batches the
interrupted run would have seen (pass ``start_step`` to skip those already done).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from nnopt_jax.types import Batch

__all__ = ["batch_indices", "epoch_permutation", "iterate_batches", "num_batches"]


def _check_int(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def num_batches(n: int, batch_size: int, *, drop_remainder: bool = True) -> int:
    """Number of batches per epoch."""
    return n // batch_size if drop_remainder else -(-n // batch_size)


def epoch_permutation(n: int, *, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The order of the ``n`` examples in epoch ``epoch`` (identity when not shuffling)."""
    n = _check_int("n", n, 0)
    if not shuffle:
        return np.arange(n)
    seed = _check_int("seed", seed, 0)
    epoch = _check_int("epoch", epoch, 0)
    return np.random.default_rng([seed, epoch]).permutation(n)


def batch_indices(
    n: int,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    drop_remainder: bool = True,
) -> np.ndarray | list[np.ndarray]:
    """Example indices of every batch of one epoch.

    Args:
      n: number of examples.
      batch_size: examples per batch.
      seed: run seed; with ``epoch`` it fixes the order.
      epoch: epoch number (0-based).
      shuffle: permute the examples (else keep their order).
      drop_remainder: drop the last ``n % batch_size`` examples of the
        permutation so every batch has the same (static) shape.

    Returns:
      With ``drop_remainder`` (or when ``batch_size`` divides ``n``) an int array
      of shape ``(steps, batch_size)``, ready for ``lax.scan``; otherwise a list of
      1-D arrays whose last one is shorter. Either way every row is one batch, and
      without ``drop_remainder`` every index appears exactly once.

    Raises:
      ValueError: ``batch_size > n`` with ``drop_remainder`` (no batch at all).
    """
    n = _check_int("n", n, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    if drop_remainder and batch_size > n:
        raise ValueError(
            f"batch_size {batch_size} is larger than the {n} examples: with "
            f"drop_remainder=True an epoch would have no batch; use batch_size <= {n} "
            f"or drop_remainder=False"
        )
    perm = epoch_permutation(n, seed=seed, epoch=epoch, shuffle=shuffle)
    full = n // batch_size
    rect = perm[: full * batch_size].reshape(full, batch_size)
    if drop_remainder or n % batch_size == 0:
        return rect
    return [*rect, perm[full * batch_size :]]


def iterate_batches(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    drop_remainder: bool = True,
    start_step: int = 0,
) -> Iterator[Batch]:
    """Yields the batches of one epoch as ``Batch(x, y)`` numpy arrays.

    Args:
      x: inputs, leading axis = examples.
      y: labels, same leading size.
      batch_size, seed, epoch, shuffle, drop_remainder: see :func:`batch_indices`.
      start_step: index of the first batch to yield (resume mid-epoch).
    """
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
    rows = batch_indices(
        len(x), batch_size, seed=seed, epoch=epoch, shuffle=shuffle, drop_remainder=drop_remainder
    )
    start_step = _check_int("start_step", start_step, 0)
    for idx in rows[start_step:]:
        yield Batch(x[idx], y[idx])
