"""Pooling without XLA's slow paths: average pooling that excludes the zero
padding from the mean, and non-overlapping max-pooling as a reshape.

``flax.linen.avg_pool(..., count_include_pad=False)`` divides by a second
``reduce_window`` over an array of ones. That array is a compile-time
constant, and XLA sometimes constant-folds the whole window sum: 17-40 s per
compilation, seen 6 times in the ~180 compilations of the NAS-Bench-201
latency benchmark (32 x 32 x 16 pooling windows on this CPU). The
divisor only depends on the static shape, so it is computed here with numpy:
for an axis of length ``n``, window ``k``, stride ``s`` and padding ``p``,
output ``i`` averages input rows ``[i s - p, i s - p + k)`` clipped to
``[0, n)``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from nnopt_jax.types import Array


def _counts(n: int, window: int, stride: int, padding: int) -> np.ndarray:
    starts = np.arange((n + 2 * padding - window) // stride + 1) * stride - padding
    return np.minimum(starts + window, n) - np.maximum(starts, 0)


def avg_pool_exclude_padding(x: Array, window: int, stride: int, padding: int) -> Array:
    """Mean over each ``window x window`` patch of NHWC ``x``, padding not counted."""
    # A concrete zero (not a traced one) makes jax pick reduce_window_sum, which
    # has autodiff rules; the generic reduce_window has none.
    total = lax.reduce_window(x, np.zeros((), x.dtype), lax.add, (1, window, window, 1),
                              (1, stride, stride, 1),
                              ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    rows = _counts(x.shape[1], window, stride, padding)
    cols = _counts(x.shape[2], window, stride, padding)
    count = (rows[:, None] * cols[None, :]).astype(np.float32)[None, :, :, None]
    return total / jnp.asarray(count, x.dtype)


def max_pool(x: Array, window: int) -> Array:
    """Non-overlapping ``window x window`` max-pool of NHWC ``x`` (stride = window, VALID).

    Same values as ``flax.linen.max_pool(x, (k, k), (k, k))``, written as a
    reshape and a max over two axes. Its gradient is an elementwise select
    instead of XLA's ``select_and_scatter``, which on XLA:CPU cost about a
    sixth of a LeNet-5 sparse-VD training step. (With tied maxima in a
    window the gradient is split evenly between them rather than given to
    one; ties have probability zero for continuous pre-activations.)
    Rows and columns beyond a multiple of ``window`` are dropped, as VALID
    pooling does.
    """
    n, h, w, c = x.shape
    ho, wo = h // window, w // window
    x = x[:, : ho * window, : wo * window, :]
    return jnp.max(x.reshape(n, ho, window, wo, window, c), axis=(2, 4))
