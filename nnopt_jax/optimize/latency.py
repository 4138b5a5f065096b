"""Inference latency on the running machine, as NAS-Bench-201's latency objective.

NAS-Bench-201 (Dong & Yang 2020) reports, per architecture, the time of one
forward pass measured on the machine at hand. :func:`measure_latency` does the
same for any ``predict(x)``: for each batch size it runs ``warmup`` untimed
calls (caches, lazy allocation, JIT compilation), then ``repeats`` timed calls,
and reports the median (robust to the occasional preemption) with every
sample, so a reader can judge the spread. Outputs of JAX functions are blocked
on (``jax.block_until_ready``) so asynchronous dispatch is not mistaken for
speed.

The figures are wall-clock times of this process on this machine: they
depend on the CPU, its load and the thread settings, and are comparable only
within one study.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import numpy as np

__all__ = ["measure_latency", "LATENCY_DEFAULTS", "latency_key"]

LATENCY_DEFAULTS = {"batch_sizes": (1, 100), "repeats": 20, "warmup": 3, "objective_batch": 1}
"""The ``latency`` block of an optimize config: batch sizes measured, timed
repeats and untimed warm-up calls per batch size, and the batch size whose
median enters the optimisation (all measured ones are recorded)."""


def latency_key(batch_size: int) -> str:
    """The result key of the median latency at ``batch_size``, e.g. ``latency_b1_ms``."""
    return f"latency_b{int(batch_size)}_ms"


def _block(out) -> None:
    try:
        import jax

        jax.block_until_ready(out)
    except (ImportError, TypeError):
        pass


def _batch(inputs: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` rows of ``inputs``, tiled when it has fewer."""
    x = np.asarray(inputs)
    if x.shape[0] >= n:
        return np.ascontiguousarray(x[:n])
    reps = -(-n // x.shape[0])
    return np.ascontiguousarray(np.concatenate([x] * reps)[:n])


def measure_latency(predict: Callable[[np.ndarray], object], inputs: np.ndarray, *,
                    batch_sizes: Sequence[int] = (1, 100), repeats: int = 20,
                    warmup: int = 3) -> dict[str, dict]:
    """Median wall-clock time of ``predict`` on batches of ``inputs``.

    Args:
        predict: ``predict(x) -> outputs`` (numpy or JAX); called with arrays of
            shape ``(batch_size, *inputs.shape[1:])``.
        inputs: example inputs, leading axis = examples (tiled when a batch
            size exceeds their number).
        batch_sizes: the batch sizes to time (e.g. ``(1, 100)``).
        repeats: timed calls per batch size (>= 1).
        warmup: untimed calls before the timed ones (>= 0).

    Returns:
        ``{"b<size>": {"batch_size", "median_ms", "times_ms", "repeats",
        "warmup", "per_example_ms"}}`` per batch size.

    Raises:
        ValueError: a batch size or ``repeats`` below 1, ``warmup`` below 0,
            empty ``inputs``, or a ``predict`` whose output's leading axis is
            not the batch size.
    """
    if int(repeats) < 1 or int(warmup) < 0:
        raise ValueError(f"latency needs repeats >= 1 and warmup >= 0, got repeats={repeats}, "
                         f"warmup={warmup}")
    inputs = np.asarray(inputs)
    if inputs.ndim < 1 or inputs.shape[0] == 0:
        raise ValueError("latency needs at least one example input")
    out = {}
    for b in batch_sizes:
        if isinstance(b, bool) or int(b) != b or int(b) < 1:
            raise ValueError(f"latency batch sizes must be positive integers, got {b!r}")
        b = int(b)
        x = _batch(inputs, b)
        for _ in range(int(warmup)):
            _block(predict(x))
        times = []
        for _ in range(int(repeats)):
            t0 = time.perf_counter_ns()
            y = predict(x)
            _block(y)
            times.append((time.perf_counter_ns() - t0) / 1e6)
        shape = np.shape(y)
        if not shape or shape[0] != b:
            raise ValueError(f"predict returned shape {shape} for a batch of {b}; it must "
                             "return one output row per input")
        med = float(np.median(times))
        if not math.isfinite(med):
            raise ValueError(f"latency at batch {b} is not finite: {times}")
        out[f"b{b}"] = {"batch_size": b, "median_ms": med, "times_ms": times,
                        "repeats": int(repeats), "warmup": int(warmup),
                        "per_example_ms": med / b}
    return out
