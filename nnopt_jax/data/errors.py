"""Exceptions raised by :mod:`nnopt_jax.data`.

Every error names the file or directory involved, what is wrong with it and
how to fix it, so that a user can act on the message alone.
"""

from __future__ import annotations

__all__ = ["ChecksumError", "DatasetError", "DatasetNotFoundError", "DownloadError"]


class DatasetError(ValueError):
    """A dataset file exists but its content is malformed, truncated or corrupt."""


class ChecksumError(DatasetError):
    """A file's checksum differs from the published one."""


class DatasetNotFoundError(FileNotFoundError):
    """No directory on the search path holds the files of the requested dataset."""


class DownloadError(OSError):
    """A download failed (no network, unreachable mirror, HTTP error)."""
