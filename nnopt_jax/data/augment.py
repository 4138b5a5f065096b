"""On-device data augmentation for NHWC image batches (CIFAR-style).

Each transform is a pure per-example function, ``vmap``-ed over the batch
with its own random draw per example (so examples are transformed
independently), and jit-compiled with its size arguments static, so output shapes are static.
The recipe follows the standard CIFAR-10 pipeline used by DARTS (Liu et al.
2019, ``train_search.py``/``utils.py``): random crop of a zero-padded image,
horizontal flip with probability 1/2, then Cutout (DeVries & Taylor 2017):
a ``size x size`` square whose centre is uniform over the image, clipped at
the borders, is set to zero.

The per-example helpers :func:`crop_at`, :func:`flip_at` and
:func:`cutout_at` take the random draw as an argument, which makes the
randomness testable separately from the geometry.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from nnopt_jax.types import Array, PRNGKey

__all__ = [
    "crop_at",
    "cutout",
    "cutout_at",
    "flip_at",
    "random_crop",
    "random_flip",
    "standard_augment",
]


def _check_batch(x: Array, fn: str) -> None:
    if x.ndim != 4:
        raise ValueError(
            f"{fn} expects an NHWC batch (4 dimensions), got shape {x.shape}; "
            f"add a batch axis with x[None] for a single image"
        )


def _check_nonneg(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")


# ---------------------------------------------------------------- per example


def crop_at(image: Array, offset_y: Array, offset_x: Array, *, padding: int) -> Array:
    """Crops an (H, W, C) window at ``(offset_y, offset_x)`` of the image zero-padded by ``padding``.

    Offsets lie in ``[0, 2 * padding]``; ``(padding, padding)`` returns the image.
    """
    h, w, c = image.shape
    padded = jnp.pad(image, ((padding, padding), (padding, padding), (0, 0)))
    zero = jnp.zeros((), dtype=jnp.int32)
    return lax.dynamic_slice(
        padded, (offset_y.astype(jnp.int32), offset_x.astype(jnp.int32), zero), (h, w, c)
    )


def flip_at(image: Array, do_flip: Array) -> Array:
    """Mirrors an (H, W, C) image left-right when ``do_flip`` is true."""
    return jnp.where(do_flip, image[:, ::-1, :], image)


def cutout_at(image: Array, centre_y: Array, centre_x: Array, *, size: int) -> Array:
    """Zeroes the square ``[cy - size//2, cy + size//2) x [cx - size//2, cx + size//2)``,
    clipped to the (H, W, C) image, over all channels (DARTS' ``Cutout``)."""
    h, w = image.shape[:2]
    half = size // 2
    y1, y2 = jnp.clip(centre_y - half, 0, h), jnp.clip(centre_y + half, 0, h)
    x1, x2 = jnp.clip(centre_x - half, 0, w), jnp.clip(centre_x + half, 0, w)
    rows, cols = jnp.arange(h), jnp.arange(w)
    inside = ((rows >= y1) & (rows < y2))[:, None] & ((cols >= x1) & (cols < x2))[None, :]
    return jnp.where(inside[..., None], jnp.zeros((), image.dtype), image)


# ---------------------------------------------------------------- batched


def _uniform_int(key: PRNGKey, shape: tuple[int, ...], maxval) -> Array:
    """Integers uniform in ``[0, maxval)``: 32 random bits modulo ``maxval``.

    The modulo bias is below ``maxval / 2**32``, negligible for image sizes, and
    this compiles several times faster on CPU than ``jax.random.randint``.
    """
    bits = jax.random.bits(key, shape, dtype=jnp.uint32)
    return (bits % jnp.asarray(maxval, dtype=jnp.uint32)).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("padding",))
def random_crop(x: Array, *, key: PRNGKey, padding: int = 4) -> Array:
    """Random crop of each zero-padded image back to its size.

    Args:
      x: NHWC batch.
      key: PRNG key; each example gets its own offsets.
      padding: zero padding on each side; offsets are uniform in ``[0, 2 * padding]``.

    Returns:
      A batch with the shape and dtype of ``x`` (``x`` itself when ``padding == 0``).
    """
    _check_batch(x, "random_crop")
    _check_nonneg("padding", padding)
    if padding == 0:
        return x
    # One (offset_y, offset_x) row per example: independent across examples.
    offsets = _uniform_int(key, (x.shape[0], 2), 2 * padding + 1)
    crop = functools.partial(crop_at, padding=padding)
    return jax.vmap(crop)(x, offsets[:, 0], offsets[:, 1])


@jax.jit
def random_flip(x: Array, *, key: PRNGKey) -> Array:
    """Horizontal flip of each image with probability 1/2.

    Args:
      x: NHWC batch.
      key: PRNG key; one Bernoulli draw per example.
    """
    _check_batch(x, "random_flip")
    flips = jax.random.bernoulli(key, 0.5, (x.shape[0],))
    return jax.vmap(flip_at)(x, flips)


@functools.partial(jax.jit, static_argnames=("size",))
def cutout(x: Array, *, key: PRNGKey, size: int = 16) -> Array:
    """Cutout (DeVries & Taylor 2017) as in DARTS: zero a ``size x size`` square per image.

    The centre is uniform over the image's pixels, and the square is clipped at
    the borders (so it may be smaller than ``size x size``).

    Args:
      x: NHWC batch.
      key: PRNG key; each example gets its own centre.
      size: side of the square (``0`` returns ``x``).
    """
    _check_batch(x, "cutout")
    _check_nonneg("size", size)
    if size == 0:
        return x
    n, h, w, _ = x.shape
    centres = _uniform_int(key, (n, 2), jnp.array([h, w]))
    return jax.vmap(functools.partial(cutout_at, size=size))(x, centres[:, 0], centres[:, 1])


def standard_augment(
    x: Array,
    *,
    key: PRNGKey,
    padding: int = 4,
    flip: bool = True,
    cutout_size: int = 0,
) -> Array:
    """The CIFAR-10 training augmentation: random crop, horizontal flip, then cutout.

    Composes the three jitted transforms; it is itself traceable, so call it
    inside a jitted train step (its size arguments are Python values, i.e. static).

    Args:
      x: NHWC batch.
      key: PRNG key, split into one key per transform.
      padding: crop padding (0 disables cropping).
      flip: apply random horizontal flips.
      cutout_size: cutout square side (0 disables it; DARTS evaluation uses 16).
    """
    _check_batch(x, "standard_augment")
    k_crop, k_flip, k_cut = jax.random.split(key, 3)
    x = random_crop(x, key=k_crop, padding=padding)
    if flip:
        x = random_flip(x, key=k_flip)
    return cutout(x, key=k_cut, size=cutout_size)
