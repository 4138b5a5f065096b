"""The embedded sklearn digits dataset and its fixed split."""

import numpy as np
from sklearn.datasets import load_digits

from nnopt_jax.data import load_dataset
from nnopt_jax.data.digits import load_digits_arrays


def test_shapes_range_and_dtypes():
    ds = load_dataset("digits")
    assert ds.x_train.shape == (1438, 8, 8, 1) and ds.x_test.shape == (359, 8, 8, 1)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.num_classes == 10
    for x in (ds.x_train, ds.x_test):
        assert x.min() == 0.0 and x.max() == 1.0
        np.testing.assert_array_equal(x * 16, np.round(x * 16))  # values are k / 16


def test_split_is_a_fixed_partition_of_sklearn_digits():
    ref = load_digits()
    a, b = load_digits_arrays(), load_digits_arrays()
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    x_train, y_train, x_test, y_test = a
    # Every sklearn image appears exactly once across train and test, with its label.
    ours = np.concatenate([x_train, x_test]).reshape(-1, 64) * 16
    labels = np.concatenate([y_train, y_test])
    order_ours = np.lexsort(np.c_[ours, labels].T)
    order_ref = np.lexsort(np.c_[ref.data, ref.target].T)
    np.testing.assert_array_equal(ours[order_ours], ref.data[order_ref])
    np.testing.assert_array_equal(labels[order_ours], ref.target[order_ref])
    # The test set is the last 20 % of a seed-0 permutation.
    perm = np.random.default_rng(0).permutation(len(ref.data))
    np.testing.assert_array_equal(y_test, ref.target[perm[-359:]])


def test_arrays_are_read_only_and_cached():
    ds = load_dataset("digits")
    assert load_dataset("DIGITS") is ds
    assert not ds.x_train.flags.writeable
    try:
        ds.x_train[0, 0, 0, 0] = 5.0
    except ValueError:
        pass
    else:  # pragma: no cover
        raise AssertionError("cached dataset arrays must be read-only")
