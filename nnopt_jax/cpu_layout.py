"""How a CPU run uses the machine's cores: one device, or data-parallel over one per core.

On a CPU host JAX can run a training step on one device, with XLA's intra-op
threads sharing each operation across the cores, or split each batch over one
CPU device per core (the data-parallel mesh of :mod:`nnopt_jax.parallel`).
Neither wins on every model. LeNet-5-Caffe steps, batch 100, ms per step as
this module's probe measured them (2-core AMD EPYC, 2026-12-07, two runs of
``benchmarks/lenet5_vs_torch.py --modes whole_machine``; docs/results.md):

==========  ==========  =============
model       one device  data-parallel
==========  ==========  =============
dense       26.0, 27.6  23.4, 27.2
sparse VD   46.4, 42.9  51.5, 49.1
VNQ         52.3, 48.5  65.2, 61.7
==========  ==========  =============

So the choice is measured for every run, on the run's own compiled step:

* :func:`configure` (``nnopt`` calls it before JAX starts) gives JAX one CPU
  device per core the process may use; XLA's intra-op threads stay on.
* :func:`choose_mesh` (``training.fit(mesh="auto")``) times a few chunks of
  the run's steps on a copy of its state, once on one device and once
  data-parallel, alternating, and keeps the faster. Runs shorter than
  :data:`PROBE_MIN_STEPS` steps are not probed and train on one device, as
  does a batch that does not divide over the devices. A resumed run keeps the
  layout its first probe chose (``layout.json``), so that it continues with the
  same noise draws and reduction order as an uninterrupted run.

``NNOPT_CPU_LAYOUT`` overrides the measurement: ``auto`` (default),
``intra_op`` (one device, no extra devices made) or ``data_parallel`` (every
device). Accelerators and multi-process runs always use the mesh of every
device.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import statistics
import sys
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from nnopt_jax import parallel
from nnopt_jax.types import PyTree

ENV = "NNOPT_CPU_LAYOUT"
LAYOUTS = ("auto", "intra_op", "data_parallel")
PROBE_MIN_STEPS = 2000
"""Shorter runs are not probed (a probe costs a second compilation and a few chunks)."""


def requested() -> str:
    """The layout ``$NNOPT_CPU_LAYOUT`` asks for (default ``"auto"``).

    Raises:
        ValueError: a value other than those in :data:`LAYOUTS`.
    """
    value = os.environ.get(ENV, "").strip().lower() or "auto"
    if value not in LAYOUTS:
        raise ValueError(f"{ENV}={value!r} is not one of {', '.join(LAYOUTS)}; unset it to "
                         "let each run measure which is faster")
    return value


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. under ``taskset``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def configure(*, cores: int | None = None) -> int | None:
    """Gives JAX one CPU device per usable core, before its backends start.

    Does nothing (returns ``None``) when ``$NNOPT_CPU_LAYOUT`` is
    ``intra_op``, when the user already chose a device count
    (``--xla_force_host_platform_device_count`` in ``XLA_FLAGS``, or
    ``JAX_NUM_CPU_DEVICES``), on one core, or when JAX has already run
    something (its devices are fixed then).

    Args:
        cores: devices to make (default :func:`usable_cores`).

    Returns:
        The number of CPU devices set, or ``None``.
    """
    if requested() == "intra_op":
        return None
    if ("xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
            or os.environ.get("JAX_NUM_CPU_DEVICES")):
        return None
    cores = usable_cores() if cores is None else int(cores)
    if cores < 2:
        return None
    try:
        jax.config.update("jax_num_cpu_devices", cores)
    except RuntimeError:  # backends already initialised: keep their devices
        return None
    return cores


def read_report(path: str | pathlib.Path) -> dict | None:
    """A probe's report as :func:`choose_mesh` wrote it; ``None`` when missing or unreadable."""
    try:
        report = json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def _copy(tree: PyTree) -> PyTree:
    """Fresh buffers (the probed chunks donate their input state)."""
    return jax.tree.map(jnp.copy, tree)


def choose_mesh(build: Callable, state: PyTree, batch: Callable[[], tuple[np.ndarray, np.ndarray]], *,
                batch_size: int, steps: int, probe_steps: int = 30, min_steps: int | None = None,
                previous: dict | None = None, clock: Callable[[], float] = time.perf_counter,
                log: Callable[[str], None] | None = None):
    """The mesh a run of ``steps`` steps trains on, measured when it matters.

    Args:
        build: ``build(mesh) -> chunk``, the run's compiled chunk
            (``training.make_train_chunk``) for a mesh.
        state: the run's state; it is copied, never advanced.
        batch: ``batch() -> (xs, ys)``, one chunk of host batches
            ``(chunk, batch, ...)``; called only when a probe runs.
        batch_size: the global batch size.
        steps: steps the run has left to train.
        probe_steps: timed steps per layout, at least three chunks (the
            layouts alternate chunk by chunk; the median chunk counts).
        min_steps: runs with fewer ``steps`` are not probed (default
            :data:`PROBE_MIN_STEPS`).
        previous: the report of this run's earlier probe (a resumed run's
            ``layout.json``): its layout is kept, unprobed, when the device
            count it names is still there.
        clock: the timer (tests pass a fake one).
        log: where the one-line decision of a probe goes (default stderr).

    Returns:
        ``(mesh, chunk, report)``: the chosen mesh (``None`` with a single
        device), its chunk (already compiled when probed) and ``report`` (layout, devices, ms per step of
        each layout; ``None`` when nothing was measured).
    """
    n_dev = jax.device_count()
    if n_dev == 1:
        return None, build(None), None
    every = parallel.make_mesh()
    if jax.process_count() > 1 or jax.default_backend() != "cpu":
        return every, build(every), None
    layout = requested()
    one = parallel.make_mesh(jax.devices()[:1])
    divides = batch_size % n_dev == 0
    if layout == "data_parallel":
        return every, build(every), None
    if layout == "intra_op" or not divides:
        return one, build(one), None
    candidates = {"intra_op": one, "data_parallel": every}
    kept = (previous or {}).get("layout")
    if kept in candidates and previous.get("devices") == candidates[kept].size:
        (log or _stderr)(f"nnopt: training on {_describe(kept, n_dev)}, as this run's probe "
                         f"chose; {ENV} overrides")
        return candidates[kept], build(candidates[kept]), None
    if steps < (PROBE_MIN_STEPS if min_steps is None else min_steps):
        return one, build(one), None

    t0 = clock()
    xs, ys = batch()
    rounds = max(3, math.ceil(probe_steps / len(xs)))
    chunks = {name: build(mesh) for name, mesh in candidates.items()}
    states, batches = {}, {}
    for name, mesh in candidates.items():
        states[name] = parallel.replicate(_copy(state), mesh)
        batches[name] = parallel.shard_batch((xs, ys), mesh, axis=1)

    def run(name):  # one chunk on the copy; returns its seconds per step
        t = clock()
        states[name], metrics = chunks[name](states[name], *batches[name])
        jax.block_until_ready((states[name], metrics))
        return (clock() - t) / len(xs)

    for name in candidates:
        run(name)  # compiles
    times = {name: [] for name in candidates}
    for _ in range(rounds):
        for name in candidates:
            times[name].append(run(name))
    ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    best = min(ms, key=lambda k: (ms[k], k != "intra_op"))  # a tie keeps one device
    report = {"layout": best, "devices": candidates[best].size,
              "ms_per_step": {k: round(v, 3) for k, v in ms.items()},
              "probe_s": round(clock() - t0, 3), "rounds": rounds}
    (log or _stderr)(f"nnopt: training on {_describe(best, n_dev)} ({ms['intra_op']:.1f} ms/step on one device, "
                     f"{ms['data_parallel']:.1f} data-parallel; {ENV} overrides)")
    return candidates[best], chunks[best], report


def _describe(layout: str, n_dev: int) -> str:
    return ("one CPU device, intra-op threads" if layout == "intra_op"
            else f"data-parallel over {n_dev} CPU devices")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
