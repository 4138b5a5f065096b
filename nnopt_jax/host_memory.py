"""Keep freed host memory in the process, so that XLA:CPU's buffers are not re-faulted.

glibc's ``malloc`` serves every request above ``M_MMAP_THRESHOLD`` (at most
32 MiB) with a fresh ``mmap`` and returns it with ``munmap`` on ``free``; and
each thread may allocate from its own arena, whose heaps are at most 64 MiB,
so larger blocks are mapped afresh there whatever the threshold. XLA:CPU
allocates a program's temporaries as one block per execution (about 300 MB
for ten unrolled LeNet-5 sparse-VD steps), so every execution maps new pages
and the kernel zeroes each 4 KiB page on its first touch: 7,300 minor page
faults per sparse-VD step on this project's reference machine, about 30 MB of
zeroing that the step's convolutions then wait for.

:func:`retain_freed_memory` sets, through ``mallopt(3)``,

* ``M_MMAP_MAX = 0``: no request is served by ``mmap``; all come from the heap;
* ``M_TRIM_THRESHOLD`` to its maximum: freed memory at the top of the heap is
  kept for the next request instead of being returned to the system;
* ``M_ARENA_MAX = 1``: threads created afterwards (XLA's) share the main arena,
  whose heap has no size limit,

after which a repeated program reuses the same pages (no faults per step).
The price is that the process keeps its peak heap until it exits, which is
what a training run does anyway. Every ``nnopt`` command applies it; a script
calls it first thing, before JAX runs anything (threads that already exist
keep their arenas):

    from nnopt_jax.host_memory import retain_freed_memory
    retain_freed_memory()

``NNOPT_MALLOC=default`` in the environment leaves ``malloc`` as it is. On a
platform without glibc the call does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

ENV = "NNOPT_MALLOC"
"""Environment variable: ``default`` leaves ``malloc``'s settings alone."""

# mallopt(3) parameter numbers (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
_INT_MAX = 2**31 - 1

__all__ = ["ENV", "retain_freed_memory"]


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """glibc, or ``None`` where the C library has no ``mallopt`` (macOS, musl)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        libc.mallopt  # noqa: B018 - raises AttributeError without it
        libc.gnu_get_libc_version  # noqa: B018 - glibc only
    except (OSError, AttributeError):
        return None
    return libc


@functools.cache
def retain_freed_memory() -> bool:
    """Tunes glibc ``malloc`` to reuse freed blocks (see the module docstring).

    Idempotent and process-wide.

    Returns:
      True where the settings were applied; False on a platform without
      glibc, or where ``NNOPT_MALLOC=default`` opts out.
    """
    if os.environ.get(ENV, "").strip().lower() == "default":
        return False
    libc = _libc()
    if libc is None:
        return False
    settings = ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, _INT_MAX), (M_ARENA_MAX, 1))
    return all(libc.mallopt(param, value) == 1 for param, value in settings)
