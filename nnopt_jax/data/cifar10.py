"""Reader for the CIFAR-10 "python version" batches (Krizhevsky 2009).

The official archive ``cifar-10-python.tar.gz`` unpacks to a directory
``cifar-10-batches-py/`` holding ``data_batch_1`` ... ``data_batch_5`` (the
50,000 training images) and ``test_batch`` (10,000 test images). Each batch
is a pickled dict with ``b"data"``: a uint8 array of shape (N, 3072) whose
rows hold the red, green and blue 32x32 planes in row-major order, and
``b"labels"``: a list of N integers in [0, 10).

Pickle can execute code, so batches are unpickled with an allow-list that
admits only the numpy constructors a real batch needs.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from nnopt_jax.data.errors import DatasetError

__all__ = [
    "CIFAR10_SUBDIR",
    "TEST_BATCH",
    "TRAIN_BATCHES",
    "find_cifar10_dir",
    "load_cifar10_batches",
    "read_cifar10_batch",
]

CIFAR10_SUBDIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
_IMAGE_SIZE = 32 * 32 * 3
_NUM_CLASSES = 10
_HINT = "re-download it with `nnopt data download cifar10`"

# (module, name) pairs a CIFAR-10 batch pickle may reference, written by
# numpy 1.x (the official files) or numpy 2.x (batches written by tests).
_ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"global {module}.{name} is not allowed in a CIFAR-10 batch"
            )
        return super().find_class(module, name)


def _get(d: dict, key: str):
    """Looks up ``key`` as bytes (official files) or str (re-pickled batches)."""
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise KeyError(key)


def read_cifar10_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Reads one CIFAR-10 python batch.

    Any number of rows is accepted as long as ``data`` and ``labels`` agree.

    Args:
      path: a ``data_batch_*`` or ``test_batch`` file.

    Returns:
      ``(images, labels)``: uint8 array (N, 32, 32, 3) (NHWC) and int32 (N,).

    Raises:
      FileNotFoundError: the file does not exist.
      DatasetError: not a pickle of the expected dict, wrong shapes or dtypes,
        or labels outside [0, 10).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10 batch not found: {path}")
    try:
        with open(path, "rb") as f:
            batch = _RestrictedUnpickler(f, encoding="bytes").load()
    except Exception as e:  # a corrupt pickle can fail in many ways; report them all alike
        raise DatasetError(
            f"{path}: cannot unpickle a CIFAR-10 batch ({type(e).__name__}: {e}): "
            f"the file is truncated or corrupt; {_HINT}"
        ) from e
    if not isinstance(batch, dict):
        raise DatasetError(
            f"{path}: expected a pickled dict with keys b'data' and b'labels', "
            f"found {type(batch).__name__}; {_HINT}"
        )
    try:
        data, labels = _get(batch, "data"), _get(batch, "labels")
    except KeyError as e:
        keys = sorted(map(repr, batch))
        raise DatasetError(
            f"{path}: missing key b{str(e.args[0])!r}; found keys {keys}; "
            f"expected b'data' and b'labels'; {_HINT}"
        ) from None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        desc = (
            f"{data.dtype} array of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else type(data).__name__
        )
        raise DatasetError(
            f"{path}: b'data' must be a uint8 array of shape (N, {_IMAGE_SIZE}), "
            f"found {desc}; {_HINT}"
        )
    if data.shape[1] != _IMAGE_SIZE:
        raise DatasetError(
            f"{path}: b'data' has {data.shape[1]} columns, expected {_IMAGE_SIZE} "
            f"(3 colour planes of 32x32); {_HINT}"
        )
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != data.shape[0]:
        raise DatasetError(
            f"{path}: b'labels' has shape {labels.shape} but b'data' has "
            f"{data.shape[0]} rows; {_HINT}"
        )
    if labels.size and (
        not np.issubdtype(labels.dtype, np.integer)
        or labels.min() < 0
        or labels.max() >= _NUM_CLASSES
    ):
        raise DatasetError(
            f"{path}: b'labels' must be integers in [0, {_NUM_CLASSES}); {_HINT}"
        )
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int32)


def find_cifar10_dir(directory: str | os.PathLike) -> Path | None:
    """Returns ``directory`` or its ``cifar-10-batches-py/`` child if it holds all six batches."""
    directory = Path(directory)
    for d in (directory, directory / CIFAR10_SUBDIR):
        if all((d / f).is_file() for f in (*TRAIN_BATCHES, TEST_BATCH)):
            return d
    return None


def load_cifar10_batches(
    directory: str | os.PathLike,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Loads the five training batches and the test batch.

    Args:
      directory: the ``cifar-10-batches-py`` directory, or a directory holding it.

    Returns:
      ``(x_train, y_train, x_test, y_test)`` with uint8 NHWC images and int32 labels.

    Raises:
      FileNotFoundError: a batch file is missing (the message lists them).
      DatasetError: a batch is malformed.
    """
    directory = Path(directory)
    found = find_cifar10_dir(directory)
    if found is None:
        missing = [f for f in (*TRAIN_BATCHES, TEST_BATCH) if not (directory / f).is_file()]
        raise FileNotFoundError(
            f"{directory} does not hold the CIFAR-10 python batches (missing: "
            f"{', '.join(missing)}; also looked in {directory / CIFAR10_SUBDIR}); "
            f"get them with `nnopt data download cifar10`"
        )
    train = [read_cifar10_batch(found / f) for f in TRAIN_BATCHES]
    x_test, y_test = read_cifar10_batch(found / TEST_BATCH)
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, x_test, y_test
