"""Dataset access for DARTS on top of :mod:`nnopt_jax.data` (loading,
augmentation), plus resizing for runs sized to small machines."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Images(NamedTuple):
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int


def load_images(name: str, data_dir=None) -> Images:
    """Train/test images (NHWC float32 in [0, 1]) and int32 labels."""
    from nnopt_jax.data import load_dataset
    ds = load_dataset(name, data_dir)
    return Images(ds.x_train, ds.y_train, ds.x_test, ds.y_test, ds.num_classes)


def augment_ops():
    """``(random_crop, random_flip, cutout)`` from :mod:`nnopt_jax.data.augment`."""
    from nnopt_jax.data.augment import cutout, random_crop, random_flip
    return random_crop, random_flip, cutout


def resize_images(x: np.ndarray, size: int | None, *, chunk: int = 2000) -> np.ndarray:
    """Bilinear (antialiased) resize of NHWC images to ``size``x``size`` (no-op if None/0
    or already that size)."""
    if not size or x.shape[1:3] == (size, size):
        return x
    import jax
    out = [np.asarray(jax.image.resize(x[i:i + chunk], (len(x[i:i + chunk]), size, size,
                                                       x.shape[-1]), "linear"))
           for i in range(0, len(x), chunk)]
    return np.concatenate(out).astype(np.float32)
