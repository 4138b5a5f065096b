"""Data parallelism over all local devices, and multi-host initialisation.

The mesh is one-dimensional with axis ``"data"``: batches are split along their
leading dimension, parameters and optimiser state are replicated. A train step
jit-compiled with these shardings is the single-device step computed on a
larger machine: XLA inserts the gradient all-reduce.
"""

from __future__ import annotations

import os
from typing import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from nnopt_jax.types import PyTree

DATA_AXIS = "data"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh over ``devices`` (default: every device of every process)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def data_sharding(mesh: Mesh) -> NamedSharding:
    """Splits the leading (batch) dimension across the ``data`` axis."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """A full copy on every device."""
    return NamedSharding(mesh, P())


def _check_divisible(tree: PyTree, mesh: Mesh) -> None:
    n = mesh.size
    for leaf in jax.tree.leaves(tree):
        if np.ndim(leaf) == 0 or np.shape(leaf)[0] % n:
            raise ValueError(
                f"batch dimension {np.shape(leaf)[:1]} is not divisible by the {n} devices of "
                "the mesh; choose a batch size that is a multiple of the device count")


def shard_batch(tree: PyTree, mesh: Mesh, *, axis: int = 0) -> PyTree:
    """Places host arrays on the mesh, split along ``axis`` (default the batch axis).

    In a multi-process run every process passes its *local* slice; the result is
    the global array formed from all processes' slices.
    """
    spec = P(*([None] * axis), DATA_AXIS)
    sharding = NamedSharding(mesh, spec)
    if jax.process_count() == 1:
        _check_divisible(jax.tree.map(lambda a: np.moveaxis(np.asarray(a), axis, 0), tree), mesh)
        return jax.device_put(tree, sharding)
    return jax.tree.map(
        lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a)), tree)


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
    """Places a copy of ``tree`` on every device of the mesh."""
    sharding = replicated_sharding(mesh)
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def put(leaf):
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(put(jax.random.key_data(leaf)),
                                            impl=jax.random.key_impl(leaf))
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    return jax.tree.map(put, tree)


def to_host(tree: PyTree) -> PyTree:
    """Fetches (possibly sharded, possibly multi-process) arrays as numpy arrays."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils
        tree = multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(np.asarray, tree)


_DISTRIBUTED_ENV = ("JAX_COORDINATOR_ADDRESS", "NNOPT_COORDINATOR_ADDRESS")


def initialize_distributed(
    enabled: bool | None = None,
    *,
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Calls :func:`jax.distributed.initialize` when asked or when the environment says so.

    Multi-host runs are requested by ``--distributed``, or by the usual
    variables (``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``,
    ``JAX_PROCESS_ID``; cluster launchers such as SLURM are detected by JAX
    itself). Returns True when the process joined a multi-process run.
    """
    if enabled is None:
        enabled = any(os.environ.get(name) for name in _DISTRIBUTED_ENV)
    if not enabled:
        return False
    env = os.environ
    coordinator_address = coordinator_address or env.get("NNOPT_COORDINATOR_ADDRESS") \
        or env.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is None and "JAX_NUM_PROCESSES" in env:
        num_processes = int(env["JAX_NUM_PROCESSES"])
    if process_id is None and "JAX_PROCESS_ID" in env:
        process_id = int(env["JAX_PROCESS_ID"])
    # CPU collectives across processes go over gloo (no effect on GPU/TPU).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
    return True
