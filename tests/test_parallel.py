"""Data parallelism: a sharded step equals the single-device step, on 4 local
CPU devices and across 2 processes (gloo collectives over 127.0.0.1)."""

import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "helpers" / "train_worker.py"


def _env(n_devices, **extra):
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n_devices}"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def _load(path):
    with np.load(path) as f:
        return [f[k] for k in sorted(f.files, key=lambda s: int(s.split("_")[1]))]


def _run(args, env, timeout=240):
    proc = subprocess.run([sys.executable, str(WORKER), *args], env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def single_device_params(tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "p.npz"
    _run([str(out), "--devices", "1"], _env(1))
    return _load(out)


def test_four_device_step_matches_single_device(tmp_path, single_device_params):
    out = tmp_path / "p4.npz"
    _run([str(out)], _env(4))
    for a, b in zip(_load(out), single_device_params):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_run_matches_single_device(tmp_path, single_device_params):
    port = _free_port()
    out = tmp_path / "p_mh.npz"
    procs = [subprocess.Popen(
        [sys.executable, str(WORKER), str(out)],
        env=_env(2, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
                 JAX_PROCESS_ID=str(i)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    for a, b in zip(_load(out), single_device_params):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_batch_not_divisible_by_devices_is_a_clear_error():
    import jax
    from nnopt_jax import parallel
    mesh = parallel.make_mesh()
    if mesh.size == 1:
        pytest.skip("needs several devices")
    with pytest.raises(ValueError, match="divisible"):
        parallel.shard_batch(np.zeros((mesh.size + 1, 2)), mesh)
