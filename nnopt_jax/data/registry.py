"""Dataset registry: where datasets are searched for and how they are loaded.

Search order for a dataset's files (first match wins):

1. the explicit ``data_dir`` argument (the CLI's ``--data-dir``),
2. the environment variable ``NNOPT_DATA_DIR``,
3. ``~/.cache/nnopt`` (where ``nnopt data download`` puts files),
4. system locations (``/usr/share/datasets/fashion-mnist`` from the Debian
   package ``dataset-fashion-mnist``).

Within each root the files may sit directly in it or in a sub-directory named
after the dataset (``mnist/``, ``fashion-mnist/``, ``cifar-10-batches-py/``,
...). MNIST and Fashion-MNIST use the same file names, so a directory whose
test labels are known to belong to the other dataset is skipped.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from nnopt_jax.data.catalog import DATASETS, DatasetInfo, canonical_name
from nnopt_jax.data.checksums import file_digests
from nnopt_jax.data.cifar10 import load_cifar10_batches
from nnopt_jax.data.digits import load_digits_arrays
from nnopt_jax.data.errors import DatasetError, DatasetNotFoundError
from nnopt_jax.data.idx import read_idx

__all__ = [
    "ENV_VAR",
    "Dataset",
    "default_cache_dir",
    "find_dataset_dir",
    "load_dataset",
    "search_dirs",
    "split_validation",
]

ENV_VAR = "NNOPT_DATA_DIR"


class Dataset(NamedTuple):
    """A classification dataset held in host memory.

    Images are float32 in [0, 1], NHWC; labels are int32. Arrays returned by
    :func:`load_dataset` are shared between callers and read-only.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int


def default_cache_dir() -> Path:
    """``~/.cache/nnopt``: the default download destination and third search root."""
    return Path.home() / ".cache" / "nnopt"


def _roots(data_dir: str | os.PathLike | None) -> list[Path]:
    roots = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    env = os.environ.get(ENV_VAR)
    if env:
        roots.extend(Path(p).expanduser() for p in env.split(os.pathsep) if p)
    roots.append(default_cache_dir())
    return roots


def search_dirs(name: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Every directory searched for ``name``'s files, in order (no duplicates)."""
    info = DATASETS[canonical_name(name)]
    dirs: list[Path] = []
    for root in _roots(data_dir):
        dirs.append(root)
        dirs.extend(root / sub for sub in info.subdirs)
    dirs.extend(Path(d) for d in info.system_dirs)
    seen, unique = set(), []
    for d in dirs:
        if d not in seen:
            seen.add(d)
            unique.append(d)
    return unique


def _idx_path(directory: Path, file_name: str) -> Path | None:
    """The stored file for ``file_name`` (``x.gz``), compressed or not."""
    for candidate in (file_name, file_name.removesuffix(".gz")):
        path = directory / candidate
        if path.is_file():
            return path
    return None


def _other_idx_owner(info: DatasetInfo, labels_path: Path) -> str | None:
    """Name of another IDX dataset whose known test labels equal this file's, if any."""
    try:
        digest = file_digests(labels_path, decompress=True)["sha256"]
    except (OSError, DatasetError):
        return None  # unreadable or corrupt: let the reader report it
    for other in DATASETS.values():
        if other.name == info.name:
            continue
        for spec in other.files:
            if spec.name == "t10k-labels-idx1-ubyte.gz" and spec.sha256 == digest:
                return other.name
    return None


def _check_dir(info: DatasetInfo, directory: Path) -> str | None:
    """Returns None if ``directory`` holds the dataset, else the reason it does not."""
    if not directory.is_dir():
        return "does not exist"
    if info.name == "cifar10":
        missing = [f.name for f in info.files if not (directory / f.name).is_file()]
    else:
        missing = [f.name for f in info.files if _idx_path(directory, f.name) is None]
    if missing:
        return "missing " + ", ".join(missing)
    if info.name != "cifar10":
        owner = _other_idx_owner(info, _idx_path(directory, "t10k-labels-idx1-ubyte.gz"))
        if owner is not None:
            return f"holds {DATASETS[owner].title}, not {info.title}"
    return None


def _not_found_message(info: DatasetInfo, tried: list[tuple[Path, str]]) -> str:
    lines = [f"{info.title} not found. Looked in:"]
    lines += [f"  {d}  ({reason})" for d, reason in tried]
    names = ", ".join(info.file_names)
    lines.append(f"Put these files in one of those directories: {names}")
    if info.name in ("mnist", "fashion_mnist"):
        lines.append("  (IDX files may also be stored uncompressed, without '.gz')")
    if info.name == "cifar10":
        lines.append(
            f"  (they are what {info.archive.name} unpacks to, in cifar-10-batches-py/)"
        )
    lines.append(
        f"or run `nnopt data download {info.name}` (saves under {default_cache_dir() / info.name}), "
        f"or pass --data-dir / set {ENV_VAR}."
    )
    if info.name == "fashion_mnist":
        lines.append("On Debian/Ubuntu: apt-get install dataset-fashion-mnist")
    return "\n".join(lines)


def find_dataset_dir(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Returns the first directory on the search path that holds ``name``'s files.

    Raises:
      ValueError: unknown dataset name.
      DatasetNotFoundError: no directory holds the files; the message lists every
        directory searched (with why it did not qualify), the file names to put
        there and the download command.
    """
    info = DATASETS[canonical_name(name)]
    if not info.files:
        raise ValueError(f"{info.title} is embedded and has no data directory")
    tried, missing = [], set()
    for d in search_dirs(info.name, data_dir):
        if any(parent in missing for parent in d.parents):
            continue  # inside a directory already reported as absent
        reason = _check_dir(info, d)
        if reason is None:
            return d
        if not d.is_dir():
            missing.add(d)
            if info.subdirs and d in _roots(data_dir):
                reason = "does not exist, nor do its sub-directories " + ", ".join(
                    f"{sub}/" for sub in info.subdirs
                )
        tried.append((d, reason))
    raise DatasetNotFoundError(_not_found_message(info, tried))


def _to_float(images: np.ndarray, scale: float) -> np.ndarray:
    out = images.astype(np.float32)
    np.divide(out, np.float32(scale), out=out)
    return out


def _check_labels(labels: np.ndarray, n: int, info: DatasetInfo, where: str) -> np.ndarray:
    if labels.shape != (n,):
        raise DatasetError(
            f"{where}: {labels.shape[0]} labels for {n} images; the files do not belong "
            f"together; re-download them with `nnopt data download {info.name}`"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= info.num_classes):
        raise DatasetError(
            f"{where}: labels outside [0, {info.num_classes}); "
            f"re-download with `nnopt data download {info.name}`"
        )
    return labels.astype(np.int32)


def _load_idx_split(info: DatasetInfo, directory: Path, prefix: str, n: int):
    hint = f"re-download it with `nnopt data download {info.name}`"
    h, w, _ = info.image_shape
    images_path = _idx_path(directory, f"{prefix}-images-idx3-ubyte.gz")
    labels_path = _idx_path(directory, f"{prefix}-labels-idx1-ubyte.gz")
    images = read_idx(images_path, expected_shape=(n, h, w), hint=hint)
    labels = read_idx(labels_path, expected_shape=(n,), hint=hint)
    labels = _check_labels(labels, n, info, str(labels_path))
    return _to_float(images, 255.0)[..., None], labels


def _decode(name: str, directory: str) -> Dataset:
    info = DATASETS[name]
    if name == "digits":
        x_train, y_train, x_test, y_test = load_digits_arrays()
    elif name == "cifar10":
        xtr, y_train, xte, y_test = load_cifar10_batches(directory)
        x_train, x_test = _to_float(xtr, 255.0), _to_float(xte, 255.0)
    else:
        d = Path(directory)
        x_train, y_train = _load_idx_split(info, d, "train", info.num_train)
        x_test, y_test = _load_idx_split(info, d, "t10k", info.num_test)
    arrays = [np.ascontiguousarray(a) for a in (x_train, y_train, x_test, y_test)]
    for a in arrays:
        a.flags.writeable = False
    return Dataset(name, *arrays, num_classes=info.num_classes)


def _stamp(info: DatasetInfo, directory: Path) -> tuple:
    """(size, mtime) of every file, so a re-downloaded file invalidates the cache."""
    stamps = []
    for spec in info.files:
        path = _idx_path(directory, spec.name) or directory / spec.name
        st = path.stat()
        stamps.append((str(path), st.st_size, st.st_mtime_ns))
    return tuple(stamps)


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, directory: str, stamp: tuple) -> Dataset:
    del stamp  # part of the cache key only
    return _decode(name, directory)


def load_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """Loads a dataset by name.

    Args:
      name: "mnist", "fashion_mnist", "cifar10" or "digits" (case-insensitive;
        "fashion-mnist" and "cifar-10" are accepted too).
      data_dir: directory to search first (see the module docstring for the
        full search order); ignored for the embedded "digits".

    Returns:
      A :class:`Dataset` with float32 NHWC images in [0, 1] and int32 labels.
      Decoded arrays are cached per (name, directory) and are read-only;
      copy them (``np.array(x)``) before modifying.

    Raises:
      ValueError: unknown dataset name.
      DatasetNotFoundError: the files are nowhere on the search path.
      DatasetError: a file is truncated or corrupt (the message names it).
    """
    key = canonical_name(name)
    if key == "digits":
        return _load_cached(key, "", ())
    directory = find_dataset_dir(key, data_dir)
    return _load_cached(key, str(directory), _stamp(DATASETS[key], directory))


def split_validation(
    x: np.ndarray, y: np.ndarray, fraction: float, *, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Splits off a random validation set.

    Args:
      x: inputs, leading axis = examples.
      y: labels, same leading size as ``x``.
      fraction: share of examples for validation, in (0, 1); the validation
        size is ``round(fraction * n)``, at least 1 and at most n - 1.
      seed: seed of the permutation (``numpy.random.default_rng(seed)``).

    Returns:
      ``(x_train, y_train, x_val, y_val)``, new arrays.
    """
    x, y = np.asarray(x), np.asarray(y)
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"x has {n} examples but y has {y.shape[0]}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    n_val = int(round(fraction * n))
    if not 1 <= n_val <= n - 1:
        raise ValueError(
            f"fraction {fraction} of {n} examples leaves {n_val} for validation and "
            f"{n - n_val} for training; both must be at least 1"
        )
    perm = np.random.default_rng(seed).permutation(n)
    val, train = perm[:n_val], perm[n_val:]
    return x[train], y[train], x[val], y[val]
