"""Reader and writer for the IDX format of MNIST and Fashion-MNIST.

The format (LeCun et al., http://yann.lecun.com/exdb/mnist/) is a 4-byte
magic number ``0x00 0x00 <dtype code> <ndim>``, then ``ndim`` big-endian
uint32 dimensions, then the values in row-major order, big-endian. Files may
be gzip-compressed (``.gz``) or raw.

The reader validates everything it can: the two zero bytes of the magic
number, the dtype code, the number of dimensions, optionally the expected
shape, and the exact byte length, so that a truncated download or a file of
the wrong kind fails loudly with a message that names the file.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nnopt_jax.data.errors import DatasetError

__all__ = ["IDX_DTYPES", "is_gzip", "read_idx", "read_idx_bytes", "write_idx"]

# dtype code (third byte of the magic number) -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}


def is_gzip(path: str | os.PathLike) -> bool:
    """Whether the file starts with the gzip magic bytes."""
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _read_bytes(path: Path, hint: str) -> bytes:
    """Reads a file, decompressing it when it is gzip (detected by its magic bytes)."""
    try:
        if is_gzip(path):
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DatasetError(
            f"{path}: the gzip stream is truncated or corrupt ({e}){hint}"
        ) from e


def _hint_suffix(hint: str | None) -> str:
    return f"; {hint}" if hint else ""


def read_idx_bytes(
    data: bytes,
    *,
    source: str = "<bytes>",
    expected_shape: Sequence[int | None] | None = None,
    hint: str | None = None,
) -> np.ndarray:
    """Parses an uncompressed IDX byte string.

    Args:
      data: the raw (decompressed) file content.
      source: name used in error messages (usually the file path).
      expected_shape: optional shape to enforce; ``None`` entries match any size.
      hint: optional advice appended to error messages (e.g. how to re-download).

    Returns:
      The array in native byte order, with the file's dtype and shape.

    Raises:
      DatasetError: bad magic number, unknown dtype code, unexpected shape, or a
        byte length different from the one the header announces.
    """
    suffix = _hint_suffix(hint)
    if len(data) < 4:
        raise DatasetError(
            f"{source}: file has {len(data)} bytes, too short for an IDX header "
            f"(needs at least 4): the file is truncated or empty{suffix}"
        )
    zero0, zero1, code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0:
        raise DatasetError(
            f"{source}: bad magic number 0x{data[:4].hex()}: an IDX file starts with two "
            f"zero bytes; this is not an IDX file (or it is compressed with something "
            f"other than gzip){suffix}"
        )
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DatasetError(
            f"{source}: unknown IDX dtype code 0x{code:02X} in the magic number "
            f"(known codes: {known}){suffix}"
        )
    if ndim == 0:
        raise DatasetError(f"{source}: the IDX header declares 0 dimensions{suffix}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(
            f"{source}: expected a {header}-byte header for {ndim} dimensions, found "
            f"{len(data)} bytes: the file is truncated{suffix}"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header])
    if expected_shape is not None:
        expected = tuple(expected_shape)
        ok = len(expected) == ndim and all(
            e is None or e == s for e, s in zip(expected, shape, strict=True)
        )
        if not ok:
            want = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
            raise DatasetError(
                f"{source}: IDX shape {shape} does not match the expected {want}: "
                f"wrong file for this dataset or split{suffix}"
            )
    dtype = IDX_DTYPES[code]
    expected_len = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected_len:
        what = "truncated" if len(data) < expected_len else "longer than its header says (corrupt)"
        raise DatasetError(
            f"{source}: expected {expected_len} bytes, found {len(data)}: "
            f"the file is {what}{suffix}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    if dtype.itemsize > 1:
        arr = arr.astype(dtype.newbyteorder("="))
    return arr


def read_idx(
    path: str | os.PathLike,
    *,
    expected_shape: Sequence[int | None] | None = None,
    hint: str | None = None,
) -> np.ndarray:
    """Reads an IDX file, gzip-compressed or raw.

    Args:
      path: the file; gzip is detected from its content, not its name.
      expected_shape: optional shape to enforce; ``None`` entries match any size.
      hint: optional advice appended to error messages, e.g.
        "re-download it with `nnopt data download mnist`".

    Returns:
      A numpy array in native byte order (uint8 data is a read-only view).

    Raises:
      FileNotFoundError: the file does not exist.
      DatasetError: the file is truncated, corrupt or not the expected IDX array.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    return read_idx_bytes(
        _read_bytes(path, _hint_suffix(hint)),
        source=str(path),
        expected_shape=expected_shape,
        hint=hint,
    )


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Writes ``array`` as an IDX file, gzip-compressed when ``path`` ends in ``.gz``.

    Args:
      path: destination file.
      array: an array whose dtype is one of uint8, int8, int16, int32, float32,
        float64, with 1 to 255 dimensions.

    Returns:
      The path written.
    """
    path = Path(path)
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODES:
        raise ValueError(f"dtype {array.dtype} has no IDX code; use one of {sorted(map(str, _CODES))}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"IDX arrays have 1 to 255 dimensions, got {array.ndim}")
    code = _CODES[native]
    payload = (
        bytes([0, 0, code, array.ndim])
        + struct.pack(f">{array.ndim}I", *array.shape)
        + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()
    )
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(payload)
    return path
