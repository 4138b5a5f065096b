"""Batch order: deterministic in (seed, epoch), full coverage, drop_remainder, resume."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnopt_jax.data import batch_indices, iterate_batches, num_batches
from nnopt_jax.types import Batch


def test_deterministic_in_seed_and_epoch():
    a = batch_indices(100, 10, seed=3, epoch=2)
    np.testing.assert_array_equal(a, batch_indices(100, 10, seed=3, epoch=2))
    assert not np.array_equal(a, batch_indices(100, 10, seed=3, epoch=3))
    assert not np.array_equal(a, batch_indices(100, 10, seed=4, epoch=2))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 60),
    batch_size=st.integers(1, 70),
    seed=st.integers(0, 2**31),
    epoch=st.integers(0, 50),
)
def test_every_index_once_without_drop_remainder(n, batch_size, seed, epoch):
    rows = batch_indices(n, batch_size, seed=seed, epoch=epoch, drop_remainder=False)
    assert len(rows) == num_batches(n, batch_size, drop_remainder=False)
    assert all(len(r) == batch_size for r in rows[:-1]) and 1 <= len(rows[-1]) <= batch_size
    np.testing.assert_array_equal(np.sort(np.concatenate(list(rows))), np.arange(n))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), batch_size=st.integers(1, 60), seed=st.integers(0, 100))
def test_drop_remainder_is_rectangular_and_distinct(n, batch_size, seed):
    if batch_size > n:
        with pytest.raises(ValueError, match="larger than the"):
            batch_indices(n, batch_size, seed=seed, epoch=0)
        return
    rows = batch_indices(n, batch_size, seed=seed, epoch=0)
    assert isinstance(rows, np.ndarray) and rows.shape == (n // batch_size, batch_size)
    assert len(np.unique(rows)) == rows.size and rows.min() >= 0 and rows.max() < n


def test_no_shuffle_keeps_order():
    rows = batch_indices(7, 3, seed=0, epoch=5, shuffle=False, drop_remainder=False)
    assert [r.tolist() for r in rows] == [[0, 1, 2], [3, 4, 5], [6]]


def test_batch_larger_than_data_message():
    msg = "batch_size 128 is larger than the 100 examples.*drop_remainder=False"
    with pytest.raises(ValueError, match=msg):
        batch_indices(100, 128, seed=0, epoch=0)
    assert len(batch_indices(100, 128, seed=0, epoch=0, drop_remainder=False)) == 1


@pytest.mark.parametrize("bad", [dict(batch_size=0), dict(seed=-1), dict(epoch=1.5)])
def test_bad_arguments(bad):
    kwargs = dict(n=10, batch_size=2, seed=0, epoch=0) | bad
    with pytest.raises((ValueError, TypeError)):
        batch_indices(**kwargs)


def test_iterate_batches_pairs_rows_and_resumes():
    x = np.arange(23)[:, None] * np.ones((1, 2), np.float32)
    y = np.arange(23)
    batches = list(iterate_batches(x, y, 5, seed=1, epoch=4))
    assert len(batches) == 4 and all(isinstance(b, Batch) for b in batches)
    rows = batch_indices(23, 5, seed=1, epoch=4)
    for b, idx in zip(batches, rows, strict=True):
        np.testing.assert_array_equal(b.y, idx)
        np.testing.assert_array_equal(b.x[:, 0], idx)
    resumed = list(iterate_batches(x, y, 5, seed=1, epoch=4, start_step=2))
    for b, ref in zip(resumed, batches[2:], strict=True):
        np.testing.assert_array_equal(b.y, ref.y)
    with pytest.raises(ValueError, match="x has 23 examples but y has 22"):
        next(iterate_batches(x, y[:-1], 5, seed=1, epoch=0))
