"""The embedded dataset: scikit-learn's 8x8 handwritten digits (UCI, 1,797 images).

Needs no download. Pixel values are integers in [0, 16] and are scaled to
[0, 1]. The train/test split is fixed: a permutation drawn with
``numpy.random.default_rng(0)``, the last 20 % of it forming the test set.
"""

from __future__ import annotations

import numpy as np

__all__ = ["DIGITS_SEED", "DIGITS_TEST_FRACTION", "load_digits_arrays"]

DIGITS_SEED = 0
DIGITS_TEST_FRACTION = 0.2


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Loads sklearn digits with the package's fixed split.

    Returns:
      ``(x_train, y_train, x_test, y_test)``: float32 images (N, 8, 8, 1) in [0, 1]
      and int32 labels; 1,438 training and 359 test examples.
    """
    from sklearn.datasets import load_digits  # local import: sklearn is slow to import

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / np.float32(16.0))[..., None]
    y = bunch.target.astype(np.int32)
    perm = np.random.default_rng(DIGITS_SEED).permutation(len(x))
    n_test = int(round(DIGITS_TEST_FRACTION * len(x)))
    train_idx, test_idx = perm[:-n_test], perm[-n_test:]
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx]
