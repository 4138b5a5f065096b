"""Dataset registry: search path, error messages, real MNIST/Fashion-MNIST, validation split."""

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from nnopt_jax.data import (
    DATASETS,
    DatasetError,
    DatasetNotFoundError,
    find_dataset_dir,
    load_dataset,
    registry,
    search_dirs,
    split_validation,
    write_idx,
)

IDX_FILES = DATASETS["mnist"].file_names
# Published MNIST class frequencies (LeCun et al.).
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _placeholder_dir(path: Path) -> Path:
    """A directory with all four IDX names (tiny, valid-looking files)."""
    path.mkdir(parents=True, exist_ok=True)
    for name in IDX_FILES:
        write_idx(path / name, np.zeros((2,), np.uint8))
    return path


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    return load_dataset("mnist", mnist_dir)


def test_real_mnist(mnist, mnist_dir):
    assert mnist.name == "mnist" and mnist.num_classes == 10
    assert mnist.x_train.shape == (60000, 28, 28, 1) and mnist.x_test.shape == (10000, 28, 28, 1)
    assert mnist.x_train.dtype == np.float32 and mnist.y_train.dtype == np.int32
    assert mnist.x_test.min() >= 0.0 and mnist.x_test.max() <= 1.0
    assert np.bincount(mnist.y_train).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(mnist.y_test).tolist() == MNIST_TEST_COUNTS
    # Independent decode of the first test image: 16-byte header, then row-major bytes.
    with gzip.open(mnist_dir / "t10k-images-idx3-ubyte.gz") as f:
        first = np.frombuffer(f.read(16 + 784)[16:], np.uint8).reshape(28, 28)
    np.testing.assert_array_equal(np.round(mnist.x_test[0, ..., 0] * 255), first)


def test_real_mnist_is_cached_and_read_only(mnist, mnist_dir):
    assert load_dataset("MNIST", mnist_dir) is mnist
    for arr in mnist[1:5]:
        assert not arr.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        mnist.y_train[0] = 3


def test_fashion_mnist_found_at_system_location(fashion_dir):
    assert find_dataset_dir("fashion_mnist") == fashion_dir
    ds = load_dataset("fashion-mnist")
    assert ds.name == "fashion_mnist"
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(ds.y_train).tolist() == [6000] * 10
    assert np.bincount(ds.y_test).tolist() == [1000] * 10


def test_search_order(tmp_path, monkeypatch, _isolated_search_path):
    home_cache = _placeholder_dir(_isolated_search_path / ".cache" / "nnopt" / "mnist")
    assert find_dataset_dir("mnist") == home_cache
    env_root = tmp_path / "env"
    env_dir = _placeholder_dir(env_root / "MNIST")
    monkeypatch.setenv("NNOPT_DATA_DIR", str(env_root))
    assert find_dataset_dir("mnist") == env_dir
    explicit = _placeholder_dir(tmp_path / "explicit")
    assert find_dataset_dir("mnist", explicit) == explicit  # files directly in data_dir
    # The explicit dir comes first, then env, then ~/.cache/nnopt.
    dirs = search_dirs("mnist", explicit)
    assert dirs.index(explicit) < dirs.index(env_root) < dirs.index(home_cache.parent)


def test_fashion_subdir_names_and_uncompressed_files(tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS, "fashion_mnist", DATASETS["fashion_mnist"]._replace(system_dirs=()))
    d = tmp_path / "fashion_mnist"
    d.mkdir()
    for name in IDX_FILES:  # stored without the .gz suffix
        write_idx(d / name.removesuffix(".gz"), np.zeros((2,), np.uint8))
    assert find_dataset_dir("fashion_mnist", tmp_path) == d


def test_mnist_files_are_not_taken_for_fashion(tmp_path, monkeypatch, mnist_dir):
    monkeypatch.setitem(DATASETS, "fashion_mnist", DATASETS["fashion_mnist"]._replace(system_dirs=()))
    d = _placeholder_dir(tmp_path / "data")
    shutil.copy(mnist_dir / "t10k-labels-idx1-ubyte.gz", d)
    with pytest.raises(DatasetNotFoundError, match="holds MNIST, not Fashion-MNIST"):
        find_dataset_dir("fashion_mnist", d)
    assert find_dataset_dir("mnist", d) == d


def test_missing_dataset_lists_every_searched_dir(tmp_path, monkeypatch, _isolated_search_path):
    env_root = tmp_path / "env"
    (env_root / "mnist").mkdir(parents=True)
    (env_root / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"")
    monkeypatch.setenv("NNOPT_DATA_DIR", str(env_root))
    explicit = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", explicit)
    assert isinstance(info.value, FileNotFoundError)
    msg = str(info.value)
    for d in (explicit, env_root, env_root / "mnist", _isolated_search_path / ".cache" / "nnopt"):
        assert f"  {d}  (" in msg
    assert "missing train-labels-idx1-ubyte.gz" in msg  # env_root/mnist is partly filled
    for name in IDX_FILES:
        assert name in msg
    assert "nnopt data download mnist" in msg and "NNOPT_DATA_DIR" in msg


def test_truncated_file_names_file_and_fix(tmp_path):
    d = _placeholder_dir(tmp_path)
    header = bytes([0, 0, 8, 3]) + (60000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    (d / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + bytes(1000 - 16)))
    with pytest.raises(DatasetError) as info:
        load_dataset("mnist", d)
    msg = str(info.value)
    assert str(d / "train-images-idx3-ubyte.gz") in msg
    assert "expected 47040016 bytes, found 1000" in msg
    assert "nnopt data download mnist" in msg


def test_wrong_shape_file_is_rejected(tmp_path):
    d = _placeholder_dir(tmp_path)
    with pytest.raises(DatasetError, match=r"does not match the expected \(60000, 28, 28\)"):
        load_dataset("mnist", d)


def test_unknown_name():
    with pytest.raises(ValueError, match="known datasets: mnist, fashion_mnist, cifar10, digits"):
        load_dataset("imagenet")


def test_cache_key_includes_file_stamp(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(registry, "_decode", lambda name, d: calls.append(d) or name)
    registry._load_cached.cache_clear()
    d = _placeholder_dir(tmp_path)
    load_dataset("mnist", d)
    load_dataset("mnist", d)
    assert len(calls) == 1
    write_idx(d / IDX_FILES[0], np.zeros((3,), np.uint8))  # size changes: "re-downloaded"
    load_dataset("mnist", d)
    assert len(calls) == 2
    registry._load_cached.cache_clear()


def test_split_validation_partitions():
    x = np.arange(50)[:, None] * np.ones((1, 3))
    y = np.arange(50)
    x_tr, y_tr, x_val, y_val = split_validation(x, y, 0.2, seed=0)
    assert len(y_val) == 10 and len(y_tr) == 40
    assert sorted(np.concatenate([y_tr, y_val]).tolist()) == list(range(50))
    np.testing.assert_array_equal(x_val[:, 0], y_val)  # rows stay paired
    again = split_validation(x, y, 0.2, seed=0)
    np.testing.assert_array_equal(again[3], y_val)
    other = split_validation(x, y, 0.2, seed=1)
    assert not np.array_equal(other[3], y_val)


@pytest.mark.parametrize(
    "fraction,match", [(0.0, r"in \(0, 1\)"), (1.0, r"in \(0, 1\)"), (0.001, "at least 1")]
)
def test_split_validation_errors(fraction, match):
    with pytest.raises(ValueError, match=match):
        split_validation(np.zeros((10, 2)), np.zeros(10), fraction, seed=0)
    with pytest.raises(ValueError, match="10 examples but y has 9"):
        split_validation(np.zeros((10, 2)), np.zeros(9), 0.5, seed=0)
