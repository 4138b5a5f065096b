"""CIFAR-10 python-batch reader, on batches written here in the official format."""

import pickle

import numpy as np
import pytest

from nnopt_jax.data import DatasetError, load_cifar10_batches, load_dataset, read_cifar10_batch
from nnopt_jax.data.cifar10 import TEST_BATCH, TRAIN_BATCHES

ROWS = 20


def _write_batch(path, data, labels, protocol=2, **extra):
    """The official layout: a dict with bytes keys, pickled (the originals are protocol 2)."""
    batch = {b"batch_label": b"testing batch", b"data": data, b"labels": labels,
             b"filenames": [b"img_%d.png" % i for i in range(len(labels))]}
    batch.update(extra)
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=protocol)


def _make_dir(root, rows=ROWS, seed=0):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name in (*TRAIN_BATCHES, TEST_BATCH):
        data = rng.integers(0, 256, size=(rows, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=rows).tolist()
        _write_batch(root / name, data, labels)
        expected[name] = (data, labels)
    return expected


def _reference_nhwc(data):
    """Pixel (r, c) of channel k sits at column k*1024 + r*32 + c of a row."""
    n = data.shape[0]
    out = np.empty((n, 32, 32, 3), np.uint8)
    for k in range(3):
        for r in range(32):
            out[:, r, :, k] = data[:, k * 1024 + r * 32 : k * 1024 + r * 32 + 32]
    return out


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_single_batch_layout(tmp_path, protocol):
    rng = np.random.default_rng(3)
    data = rng.integers(0, 256, size=(ROWS, 3072), dtype=np.uint8)
    labels = list(range(10)) * 2
    _write_batch(tmp_path / "data_batch_1", data, labels, protocol=protocol)
    x, y = read_cifar10_batch(tmp_path / "data_batch_1")
    assert x.shape == (ROWS, 32, 32, 3) and x.dtype == np.uint8
    assert y.dtype == np.int32
    np.testing.assert_array_equal(x, _reference_nhwc(data))
    np.testing.assert_array_equal(y, labels)


def test_load_all_batches_in_order_from_parent_dir(tmp_path):
    expected = _make_dir(tmp_path / "cifar-10-batches-py")
    x_train, y_train, x_test, y_test = load_cifar10_batches(tmp_path)  # parent dir works
    assert x_train.shape == (5 * ROWS, 32, 32, 3) and x_test.shape == (ROWS, 32, 32, 3)
    data = np.concatenate([expected[n][0] for n in TRAIN_BATCHES])
    np.testing.assert_array_equal(x_train, _reference_nhwc(data))
    np.testing.assert_array_equal(y_train, sum((expected[n][1] for n in TRAIN_BATCHES), []))
    np.testing.assert_array_equal(y_test, expected[TEST_BATCH][1])


def test_registry_loads_cifar10_as_float(tmp_path):
    expected = _make_dir(tmp_path / "cifar10" / "cifar-10-batches-py", seed=1)
    ds = load_dataset("cifar10", tmp_path)
    assert ds.name == "cifar10" and ds.num_classes == 10
    assert ds.x_train.dtype == np.float32 and ds.x_train.shape == (5 * ROWS, 32, 32, 3)
    np.testing.assert_allclose(
        ds.x_test, _reference_nhwc(expected[TEST_BATCH][0]).astype(np.float64) / 255.0, rtol=1e-6
    )
    assert ds.y_test.dtype == np.int32


def test_missing_batch_lists_it(tmp_path):
    _make_dir(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="missing: data_batch_3"):
        load_cifar10_batches(tmp_path)


_DATA = np.zeros((ROWS, 3072), np.uint8)
_LABELS = [0] * ROWS


@pytest.mark.parametrize(
    "obj,match",
    [
        ({b"labels": _LABELS}, "missing key b'data'"),
        ({b"data": _DATA[:, :100], b"labels": _LABELS}, "100 columns, expected 3072"),
        ({b"data": _DATA.astype(np.float32), b"labels": _LABELS}, "must be a uint8 array"),
        ({b"data": _DATA, b"labels": _LABELS[:-1]}, "has 20 rows"),
        ({b"data": _DATA, b"labels": [10] * ROWS}, r"integers in \[0, 10\)"),
        ([_DATA, _LABELS], "expected a pickled dict"),
    ],
)
def test_malformed_batches(tmp_path, obj, match):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(DatasetError, match=match) as info:
        read_cifar10_batch(path)
    assert str(path) in str(info.value)


def test_truncated_pickle(tmp_path):
    path = tmp_path / "test_batch"
    _write_batch(path, np.zeros((ROWS, 3072), np.uint8), [0] * ROWS)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        read_cifar10_batch(path)


class _Evil:
    def __reduce__(self):
        import os

        return (os.getcwd, ())


def test_pickle_with_foreign_globals_is_refused(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}, protocol=2))
    with pytest.raises(DatasetError, match="not allowed"):
        read_cifar10_batch(path)
