"""On-device augmentation: shapes, geometry against numpy references, per-example independence."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import chdtrc  # chi-square survival function

from nnopt_jax.data import augment

N, H, W, C = 16, 8, 8, 3


@pytest.fixture(scope="module")
def images():
    return jnp.asarray(np.random.default_rng(0).uniform(0.1, 1.0, (N, H, W, C)).astype(np.float32))


def _np_crop(image, oy, ox, p):
    padded = np.pad(image, ((p, p), (p, p), (0, 0)))
    return padded[oy : oy + image.shape[0], ox : ox + image.shape[1]]


def _np_cutout(image, cy, cx, size):
    """DARTS' Cutout (utils.py) in numpy: clip the square at the borders, zero it."""
    h, w = image.shape[:2]
    y1, y2 = np.clip(cy - size // 2, 0, h), np.clip(cy + size // 2, 0, h)
    x1, x2 = np.clip(cx - size // 2, 0, w), np.clip(cx + size // 2, 0, w)
    out = np.array(image)
    out[y1:y2, x1:x2] = 0.0
    return out


# Tests share padding=2 and size=4 so that each transform is compiled once.


def test_shapes_and_dtypes(images):
    key = jax.random.key(0)
    outs = [
        augment.random_crop(images, key=key, padding=2),
        augment.random_flip(images, key=key),
        augment.cutout(images, key=key, size=4),
        augment.standard_augment(images, key=key, padding=2, cutout_size=4),
    ]
    for out in outs:
        assert out.shape == images.shape and out.dtype == images.dtype
    u8 = jnp.full((H, W, 1), 7, jnp.uint8)
    out = augment.cutout_at(u8, jnp.int32(0), jnp.int32(0), size=4)
    assert out.dtype == jnp.uint8 and int(out.sum()) == 7 * (H * W - 4)


def test_standard_augment_under_jit(images):
    fn = jax.jit(augment.standard_augment, static_argnames=("padding", "flip", "cutout_size"))
    out = fn(images[:2], key=jax.random.key(0), padding=0, flip=False, cutout_size=0)
    np.testing.assert_array_equal(out, images[:2])


def test_flip_twice_is_identity_and_flips_are_mirrors(images):
    key = jax.random.key(1)
    once = np.asarray(augment.random_flip(images, key=key))
    twice = augment.random_flip(jnp.asarray(once), key=key)
    np.testing.assert_array_equal(twice, images)
    x = np.asarray(images)
    flipped = ~np.all(once == x, axis=(1, 2, 3))
    assert 0 < flipped.sum() < N  # independent coin per example (fails with prob 2**-15)
    np.testing.assert_array_equal(once[flipped], x[flipped][:, :, ::-1])


def test_crop_padding_zero_is_identity(images):
    out = augment.random_crop(images, key=jax.random.key(2), padding=0)
    np.testing.assert_array_equal(out, images)
    centre = augment.crop_at(images[0], jnp.int32(2), jnp.int32(2), padding=2)
    np.testing.assert_array_equal(centre, images[0])


def test_crop_at_matches_numpy():
    image = np.random.default_rng(1).uniform(size=(H, W, C)).astype(np.float32)
    for oy, ox in [(0, 0), (0, 8), (8, 8), (3, 5)]:
        out = augment.crop_at(jnp.asarray(image), jnp.int32(oy), jnp.int32(ox), padding=4)
        np.testing.assert_array_equal(out, _np_crop(image, oy, ox, 4))


def test_random_crop_is_a_padded_window_with_independent_offsets(images):
    p = 2
    out = np.asarray(augment.random_crop(images, key=jax.random.key(3), padding=p))
    x = np.asarray(images)
    offsets = []
    for i in range(N):
        matches = [
            (oy, ox)
            for oy in range(2 * p + 1)
            for ox in range(2 * p + 1)
            if np.array_equal(out[i], _np_crop(x[i], oy, ox, p))
        ]
        assert matches, f"example {i} is not a crop of its padded image"
        offsets.append(matches[0])
    assert len(set(offsets)) > 1


@pytest.mark.parametrize("cy,cx,size", [(4, 4, 4), (0, 0, 4), (7, 1, 6), (3, 6, 5), (2, 2, 16)])
def test_cutout_at_fixed_centre_matches_darts(cy, cx, size):
    image = np.random.default_rng(2).uniform(0.1, 1.0, (H, W, C)).astype(np.float32)
    out = augment.cutout_at(jnp.asarray(image), jnp.int32(cy), jnp.int32(cx), size=size)
    np.testing.assert_array_equal(out, _np_cutout(image, cy, cx, size))


def test_random_cutout_zeroes_a_clipped_square_per_example(images):
    size = 4
    out = np.asarray(augment.cutout(images, key=jax.random.key(4), size=size))
    x = np.asarray(images)  # strictly positive, so zeros come from cutout only
    masks = out == 0
    np.testing.assert_array_equal(out[~masks], x[~masks])
    zeroed = masks.all(axis=-1)
    assert np.array_equal(zeroed, masks.any(axis=-1))  # all channels together
    found = []
    for i in range(N):
        rows, cols = np.nonzero(zeroed[i].any(1))[0], np.nonzero(zeroed[i].any(0))[0]
        assert rows.size and cols.size and rows.size <= size and cols.size <= size
        assert zeroed[i].sum() == rows.size * cols.size  # a rectangle
        found.append((rows[0], cols[0], rows.size, cols.size))
    assert len(set(found)) > 1  # independent centres
    np.testing.assert_array_equal(augment.cutout(images, key=jax.random.key(4), size=0), images)


def test_standard_augment_composes(images):
    key = jax.random.key(5)
    k_crop, k_flip, k_cut = jax.random.split(key, 3)
    ref = augment.random_crop(images, key=k_crop, padding=2)
    ref = augment.random_flip(ref, key=k_flip)
    ref = augment.cutout(ref, key=k_cut, size=4)
    out = augment.standard_augment(images, key=key, padding=2, flip=True, cutout_size=4)
    np.testing.assert_array_equal(out, ref)


def test_rejects_non_batch_input(images):
    with pytest.raises(ValueError, match="NHWC batch"):
        augment.random_flip(images[0], key=jax.random.key(0))
    with pytest.raises(ValueError, match="padding must be a non-negative int"):
        augment.random_crop(images, key=jax.random.key(0), padding=-1)


def test_random_draws_are_uniform():
    """Chi-square tests of the integer draws behind crop offsets and cutout centres."""
    draws = np.asarray(augment._uniform_int(jax.random.key(7), (9000, 2), jnp.array([9, 5])))
    table = np.zeros((9, 5))
    np.add.at(table, (draws[:, 0], draws[:, 1]), 1)
    n = table.sum()
    for counts in (table.sum(1), table.sum(0)):  # each column uniform on its range
        expected = n / counts.size
        statistic = ((counts - expected) ** 2 / expected).sum()
        assert chdtrc(counts.size - 1, statistic) > 1e-4
    # Independence of the two columns (contingency table).
    expected = np.outer(table.sum(1), table.sum(0)) / n
    statistic = ((table - expected) ** 2 / expected).sum()
    assert chdtrc((9 - 1) * (5 - 1), statistic) > 1e-4
