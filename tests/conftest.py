"""Shared fixtures: where the real data lives, and small helpers."""

import os
import pathlib

import pytest

# `make test` runs two pytest workers on two cores: one thread each avoids
# oversubscription (dense linear algebra in the GP tests is ~20x slower when
# XLA's and OpenBLAS's thread pools fight over the cores). Set before jax loads.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1")
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
# and `nnopt` run by the tests keeps one CPU device (tests/test_cpu_layout.py covers the rest)
os.environ.setdefault("NNOPT_CPU_LAYOUT", "intra_op")

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("NNOPT_SHARED_DIR", ROOT.parent / "shared"))
FASHION_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(scope="session")
def mnist_dir():
    path = SHARED / "data" / "mnist"
    if not (path / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST not found under {path}")
    return path


@pytest.fixture(scope="session")
def nasbench201_csv():
    path = SHARED / "data" / "nasbench201" / "nb201_hp12_accuracy.csv"
    if not path.exists():
        pytest.skip(f"NAS-Bench-201 table not found at {path}")
    return path


@pytest.fixture(scope="session")
def fashion_dir():
    if not FASHION_DIR.exists():
        pytest.skip("dataset-fashion-mnist is not installed")
    return FASHION_DIR
