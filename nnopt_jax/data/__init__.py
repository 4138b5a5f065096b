"""Datasets, batching and augmentation.

Readers: IDX (MNIST, Fashion-MNIST), CIFAR-10 python batches, scikit-learn
digits (embedded). :func:`load_dataset` finds files on the search path
(``data_dir``, ``$NNOPT_DATA_DIR``, ``~/.cache/nnopt``, system locations),
:func:`download` fetches and verifies them, :func:`check` verifies and
summarises them. :func:`batch_indices`/:func:`iterate_batches` give a
per-epoch order that is a pure function of ``(seed, epoch)``, and
:mod:`nnopt_jax.data.augment` holds jitted on-device augmentations.
"""

from nnopt_jax.data import augment
from nnopt_jax.data.batching import batch_indices, epoch_permutation, iterate_batches, num_batches
from nnopt_jax.data.catalog import DATASETS, DatasetInfo, FileSpec
from nnopt_jax.data.cifar10 import load_cifar10_batches, read_cifar10_batch
from nnopt_jax.data.digits import load_digits_arrays
from nnopt_jax.data.download import check, destination_dir, download
from nnopt_jax.data.errors import (
    ChecksumError,
    DatasetError,
    DatasetNotFoundError,
    DownloadError,
)
from nnopt_jax.data.idx import read_idx, write_idx
from nnopt_jax.data.registry import (
    Dataset,
    default_cache_dir,
    find_dataset_dir,
    load_dataset,
    search_dirs,
    split_validation,
)

__all__ = [
    "DATASETS",
    "ChecksumError",
    "Dataset",
    "DatasetError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "DownloadError",
    "FileSpec",
    "augment",
    "batch_indices",
    "check",
    "default_cache_dir",
    "destination_dir",
    "download",
    "epoch_permutation",
    "find_dataset_dir",
    "iterate_batches",
    "load_cifar10_batches",
    "load_dataset",
    "load_digits_arrays",
    "num_batches",
    "read_cifar10_batch",
    "read_idx",
    "search_dirs",
    "split_validation",
    "write_idx",
]
