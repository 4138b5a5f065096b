"""Retained host memory: after the call a freed large block is reused without page
faults (counted by the kernel, ``ru_minflt``); without it each reuse faults every
page again; and ``NNOPT_MALLOC=default`` opts out."""

import json
import os
import subprocess
import sys

import pytest

from nnopt_jax import host_memory

pytestmark = pytest.mark.skipif(host_memory._libc() is None, reason="needs glibc malloc")

# A fresh process: optionally retains freed memory, then allocates, touches and
# frees a 64 MiB block four times and reports the minor faults of the last three.
CYCLES = """
import ctypes, json, resource, sys
from nnopt_jax import host_memory
applied = host_memory.retain_freed_memory() if sys.argv[1] == "on" else False
libc = host_memory._libc()
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size = 64 * 2**20
def cycle():
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(block)
cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    cycle()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3
print(json.dumps({"applied": applied, "faults_per_cycle": faults, "pages": size // 4096}))
"""


def _cycles(mode: str, **env) -> dict:
    environ = {k: v for k, v in os.environ.items() if k != host_memory.ENV} | env
    out = subprocess.run([sys.executable, "-c", CYCLES, mode], env=environ, capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_freed_block_is_reused_without_page_faults():
    result = _cycles("on")
    assert result["applied"] is True
    assert result["faults_per_cycle"] < 0.01 * result["pages"]


def test_default_malloc_faults_every_page_again():
    # The control: glibc maps a 64 MiB block afresh each time, so the test above
    # measures the setting, not the allocator's ordinary behaviour.
    result = _cycles("off")
    assert result["faults_per_cycle"] > 0.5 * result["pages"]


def test_opt_out_by_environment():
    result = _cycles("on", NNOPT_MALLOC="default")
    assert result["applied"] is False
    assert result["faults_per_cycle"] > 0.5 * result["pages"]
