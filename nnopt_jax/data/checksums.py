"""File digests and verification against the published checksums in the catalog."""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from pathlib import Path

from nnopt_jax.data.catalog import FileSpec
from nnopt_jax.data.errors import ChecksumError, DatasetError
from nnopt_jax.data.idx import is_gzip

__all__ = ["file_digests", "verify_file"]

_CHUNK = 1 << 20


def file_digests(path: str | os.PathLike, *, decompress: bool = False) -> dict[str, str]:
    """SHA-256 and MD5 of a file, streamed.

    Args:
      path: the file.
      decompress: hash the gunzipped content when the file is gzip (a raw file
        is hashed as is, so a stored-uncompressed IDX file gives the same digest).

    Returns:
      ``{"sha256": hex, "md5": hex}``.

    Raises:
      DatasetError: the gzip stream is truncated or corrupt.
    """
    path = Path(path)
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    opener = gzip.open if decompress and is_gzip(path) else open
    try:
        with opener(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                sha.update(chunk)
                md5.update(chunk)
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DatasetError(f"{path}: the gzip stream is truncated or corrupt ({e})") from e
    return {"sha256": sha.hexdigest(), "md5": md5.hexdigest()}


def verify_file(path: str | os.PathLike, spec: FileSpec, *, fix: str = "") -> dict[str, str]:
    """Checks a file against ``spec``'s SHA-256 (and MD5 when published).

    Args:
      path: the file to check.
      spec: its catalog entry.
      fix: advice appended to the error message.

    Returns:
      The digests (see :func:`file_digests`).

    Raises:
      ChecksumError: a digest differs (the message names the file and both digests).
    """
    digests = file_digests(path, decompress=spec.hash_decompressed)
    what = "decompressed content" if spec.hash_decompressed else "file"
    for algo in ("sha256", "md5"):
        want = getattr(spec, algo)
        if want is not None and digests[algo] != want:
            raise ChecksumError(
                f"{path}: {algo} of the {what} is {digests[algo]}, expected {want}: the "
                f"file is corrupt or not the official {spec.name}" + (f"; {fix}" if fix else "")
            )
    return digests
