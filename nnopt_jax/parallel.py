"""Data parallelism over all local devices, and multi-host initialisation.

The mesh is one-dimensional with axis ``"data"``: batches are split along their
leading dimension, parameters and optimiser state are replicated. A train step
jit-compiled with these shardings is the single-device step computed on a
larger machine: XLA inserts the gradient all-reduce.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import sys
import time
from typing import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from nnopt_jax.types import PyTree

DATA_AXIS = "data"


_SPLIT: contextvars.ContextVar[bool | None] = contextvars.ContextVar("nnopt_split", default=None)


@contextlib.contextmanager
def split_over(n_devices: int):
    """Marks what is traced inside as a program run on ``n_devices`` devices.

    Code that lowers differently on one device and on several
    (:mod:`nnopt_jax.materialize`'s fusion barriers, the layers' noise draws)
    asks :func:`is_split`; ``training.make_train_chunk`` traces its chunk
    inside this, so a chunk compiled for one device of several is traced as
    a single-device program.
    """
    token = _SPLIT.set(n_devices > 1)
    try:
        yield
    finally:
        _SPLIT.reset(token)


def is_split() -> bool:
    """Whether the program being traced runs on several devices: as
    :func:`split_over` says, else whether JAX has several devices."""
    split = _SPLIT.get()
    return jax.device_count() > 1 if split is None else split


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
TIMEOUT_ENV = "NNOPT_DISTRIBUTED_TIMEOUT"
DEFAULT_TIMEOUT_S = 300
_USAGE = ("set JAX_COORDINATOR_ADDRESS=HOST:PORT (process 0's address), JAX_NUM_PROCESSES "
          "and JAX_PROCESS_ID on every process, or start them with a launcher JAX detects "
          "(e.g. SLURM); without those, run without --distributed")


class DistributedError(RuntimeError):
    """A multi-host run could not be set up (no coordinator, or it never answered)."""


def distributed_timeout() -> int:
    """Seconds to wait for the coordinator: ``$NNOPT_DISTRIBUTED_TIMEOUT``, default 300."""
    text = os.environ.get(TIMEOUT_ENV, "")
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = int(float(text))
    except ValueError:
        value = 0
    if value < 1:
        raise DistributedError(f"{TIMEOUT_ENV}={text!r} must be a positive number of seconds")
    return value


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise DistributedError(f"coordinator address {address!r} is not HOST:PORT; {_USAGE}")
    return host.strip("[]"), int(port)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def wait_for_coordinator(address: str, timeout_s: float, *, log=_log) -> float:
    """Waits until something accepts TCP connections at ``address`` (HOST:PORT).

    JAX aborts the whole process (no Python exception) when a non-coordinator
    process cannot reach the coordinator within its ``initialization_timeout``;
    this check turns that case into a :class:`DistributedError`.

    Returns:
        The seconds left of ``timeout_s``.

    Raises:
        DistributedError: no answer within ``timeout_s`` seconds.
    """
    import socket
    host, port = _split_address(address)
    log(f"nnopt: waiting up to {timeout_s:.0f} s for the coordinator at {address} "
        f"({TIMEOUT_ENV} sets the timeout)")
    t0 = time.monotonic()
    last = None
    while True:
        left = timeout_s - (time.monotonic() - t0)
        if left <= 0:
            break
        try:
            with socket.create_connection((host, port), timeout=min(2.0, max(left, 0.1))):
                return max(left, 1.0)
        except OSError as err:
            last = err
            time.sleep(min(0.5, max(left, 0.0)))
    raise DistributedError(
        f"the coordinator at {address} did not answer within {timeout_s:.0f} s ({last}); "
        f"start process 0 (JAX_PROCESS_ID=0) there first, check the address and port, or "
        f"raise {TIMEOUT_ENV}")


def initialize_distributed(
    enabled: bool | None = None,
    *,
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    timeout_s: float | None = None,
) -> bool:
    """Calls :func:`jax.distributed.initialize` when asked or when the environment says so.

    Multi-host runs are requested by ``--distributed``, or by the usual
    variables (``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``,
    ``JAX_PROCESS_ID``; cluster launchers such as SLURM are detected by JAX
    itself). A process other than 0 first waits for the coordinator to answer
    (at most ``timeout_s``, default ``$NNOPT_DISTRIBUTED_TIMEOUT`` or 300 s);
    the same timeout bounds JAX's own handshake. Returns True when the process
    joined a multi-process run.

    Raises:
        DistributedError: no coordinator address (and no launcher JAX
            detects), a malformed setting, or a coordinator that never answered.
    """
    if enabled is None:
        enabled = any(os.environ.get(name) for name in _DISTRIBUTED_ENV)
    if not enabled:
        return False
    env = os.environ
    coordinator_address = coordinator_address or env.get("NNOPT_COORDINATOR_ADDRESS") \
        or env.get("JAX_COORDINATOR_ADDRESS")
    try:
        if num_processes is None and env.get("JAX_NUM_PROCESSES"):
            num_processes = int(env["JAX_NUM_PROCESSES"])
        if process_id is None and env.get("JAX_PROCESS_ID"):
            process_id = int(env["JAX_PROCESS_ID"])
    except ValueError as err:
        raise DistributedError(f"JAX_NUM_PROCESSES and JAX_PROCESS_ID must be integers "
                               f"({err})") from None
    timeout_s = distributed_timeout() if timeout_s is None else timeout_s
    if coordinator_address and process_id not in (None, 0):
        timeout_s = wait_for_coordinator(coordinator_address, timeout_s)
    elif coordinator_address:
        _log(f"nnopt: waiting up to {timeout_s:.0f} s for the {num_processes or '?'} "
             f"processes of the run to join the coordinator at {coordinator_address} "
             f"({TIMEOUT_ENV} sets the timeout)")
    # CPU collectives across processes go over gloo (no effect on GPU/TPU).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator_address=coordinator_address,
                                   num_processes=num_processes, process_id=process_id,
                                   initialization_timeout=max(1, int(math.ceil(timeout_s))))
    except ValueError as err:  # e.g. "coordinator_address should be defined."
        raise DistributedError(f"--distributed needs a coordinator ({str(err).rstrip('.')}): "
                               f"{_USAGE}") from None
    return True
