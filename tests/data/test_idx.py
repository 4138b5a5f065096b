"""IDX reader: round trips, header/length validation, real MNIST."""

import gzip
import hashlib
import struct

import numpy as np
import pytest

from nnopt_jax.data import DatasetError, read_idx, write_idx
from nnopt_jax.data.idx import read_idx_bytes


def _handmade_idx(array: np.ndarray, code: int) -> bytes:
    """Independent encoder: magic, big-endian dims, big-endian payload."""
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("compressed", [False, True])
def test_reads_handmade_uint8_images_and_labels(tmp_path, compressed):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(7,), dtype=np.uint8)
    for name, arr in (("img", images), ("lab", labels)):
        raw = _handmade_idx(arr, 0x08)
        path = tmp_path / (name + (".gz" if compressed else ""))
        path.write_bytes(gzip.compress(raw) if compressed else raw)
        out = read_idx(path)
        assert out.dtype == np.uint8 and out.shape == arr.shape
        np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize(
    "dtype,code",
    [(np.int8, 0x09), (np.int16, 0x0B), (np.int32, 0x0C), (np.float32, 0x0D), (np.float64, 0x0E)],
)
def test_multibyte_dtypes_are_big_endian(dtype, code):
    arr = (np.arange(12).reshape(3, 4) - 5).astype(dtype) * dtype(3)
    out = read_idx_bytes(_handmade_idx(arr, code))
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_write_read_round_trip(tmp_path, suffix):
    arr = np.random.default_rng(1).integers(0, 256, size=(4, 28, 28), dtype=np.uint8)
    path = write_idx(tmp_path / f"x-idx3-ubyte{suffix}", arr)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    np.testing.assert_array_equal(read_idx(path), arr)


def test_truncated_raw_file_names_file_and_sizes(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", 60000, 28, 28)
    path.write_bytes(header + bytes(1000 - len(header)))
    with pytest.raises(DatasetError) as info:
        read_idx(path, hint="re-download it with `nnopt data download mnist`")
    msg = str(info.value)
    assert str(path) in msg
    assert "expected 47040016 bytes, found 1000" in msg
    assert "truncated" in msg and "nnopt data download mnist" in msg


def test_truncated_gzip_stream(tmp_path):
    path = tmp_path / "labels.gz"
    data = gzip.compress(_handmade_idx(np.arange(5000, dtype=np.uint8) % 10, 0x08))
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="gzip stream is truncated or corrupt") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_extra_bytes_are_reported(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(_handmade_idx(np.zeros(4, np.uint8), 0x08) + b"\0\0")
    with pytest.raises(DatasetError, match="expected 12 bytes, found 14.*longer"):
        read_idx(path)


@pytest.mark.parametrize(
    "header,match",
    [
        (b"\x1f\x00\x08\x01", "bad magic number"),
        (b"\x00\x00\x07\x01", "unknown IDX dtype code 0x07"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (b"\x00\x00", "too short"),
        (b"\x00\x00\x08\x03\x00\x00", "truncated"),
    ],
)
def test_bad_headers(tmp_path, header, match):
    path = tmp_path / "bad"
    path.write_bytes(header)
    with pytest.raises(DatasetError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_wrong_dims_against_expected_shape(tmp_path):
    path = write_idx(tmp_path / "x", np.zeros((3, 28, 27), np.uint8))
    read_idx(path, expected_shape=(None, 28, 27))  # wildcard matches
    with pytest.raises(DatasetError, match=r"shape \(3, 28, 27\) does not match the expected \(\*, 28, 28\)"):
        read_idx(path, expected_shape=(None, 28, 28))
    with pytest.raises(DatasetError, match="does not match"):
        read_idx(path, expected_shape=(3,))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        read_idx(tmp_path / "nope")


def test_real_mnist_train_images(mnist_dir):
    path = mnist_dir / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "rb") as f:
        raw = f.read()
    # MD5 of the uncompressed file, as published in the data README.
    assert hashlib.md5(raw).hexdigest() == "6bbc9ace898e44ae57da46a324031adb"
    images = read_idx_bytes(raw, expected_shape=(60000, 28, 28))
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[-1].ravel(), np.frombuffer(raw[-784:], np.uint8))
