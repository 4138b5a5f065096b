"""A 2-D convolution whose input gradient is a matrix product (fast on XLA:CPU).

XLA lowers the input gradient of a stride-1 convolution to a dense
convolution of the output cotangent, padded by ``k - 1`` on each side, with
the flipped kernel. That costs ``(H_in W_in) / (H_out W_out)`` times the
forward's multiply-adds (2.25x for LeNet-5's second convolution) and on
XLA:CPU ran at a third of the forward's speed. Here the input gradient is

    dP = g W^T,        dx = col2im(dP),

one matrix product over the flattened ``(kh, kw, c_in)`` patch axis and the
adjoint of patch extraction (each input pixel sums the ``kh * kw`` patch
entries that read it), written to memory once (:mod:`nnopt_jax.materialize`:
XLA:CPU otherwise fuses that sum into each of its consumers and recomputes
it, which made the dense LeNet-5 step slower than with XLA's gradient). The
forward and the kernel gradient stay XLA's.

``impl="auto"`` takes this path on CPU and XLA's own gradient elsewhere
(accelerator libraries have fast transposed convolutions); ``"gemm"`` and
``"xla"`` force one. Strides other than 1 always use XLA's.

:func:`lrt_conv2d` is the pair of convolutions of the local
reparameterisation trick (Kingma et al. 2015, eq. 6 for convolutions),

    mu = conv(x, theta),        s2 = conv(x^2, v),

whose whole backward pass is matrix products over one patch matrix
``P`` (``(kh kw c_in) x (n h_out w_out)``, built once from ``x``; the patches
of ``x^2`` are ``P^2``):

    d theta = P g_mu,    d v = P^2 g_s2,    dP = theta g_mu^T + 2 P (v g_s2^T),    dx = col2im(dP).

XLA's kernel gradients of the two convolutions instead transpose both the
input and the output cotangent and run at a fraction of a matrix product's
speed on XLA:CPU, and its two input gradients are two transposed
convolutions; here the input gradient is one ``col2im``.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from nnopt_jax.materialize import materialized
from nnopt_jax.types import Array

__all__ = ["conv2d", "lrt_conv2d", "Conv", "IMPLS"]

IMPLS = ("auto", "gemm", "xla")
_DIMS = ("NHWC", "HWIO", "NHWC")
Padding = str | Sequence[tuple[int, int]]


def _xla_conv(x: Array, w: Array, strides=(1, 1), padding: Padding = "VALID") -> Array:
    return jax.lax.conv_general_dilated(x, w, window_strides=tuple(strides), padding=padding,
                                        dimension_numbers=_DIMS)


def _explicit_padding(padding: Padding, kernel_shape) -> tuple[tuple[int, int], tuple[int, int]]:
    """(low, high) spatial padding of a stride-1 convolution."""
    if isinstance(padding, str):
        if padding == "VALID":
            return (0, 0), (0, 0)
        if padding == "SAME":
            return tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel_shape[:2])
        raise ValueError(f"unknown padding {padding!r}; use 'VALID', 'SAME' or ((lo, hi), (lo, hi))")
    (a, b), (c, d) = padding
    return (int(a), int(b)), (int(c), int(d))


def _shifted_sum(parts: list[Array], axis: int) -> Array:
    """``sum_i parts[i]`` shifted by ``i`` along ``axis`` (the result is ``len(parts) - 1`` longer)."""
    k, out = len(parts), None
    for i, part in enumerate(parts):
        pads = [(0, 0)] * part.ndim
        pads[axis] = (i, k - 1 - i)
        term = jnp.pad(part, pads)
        out = term if out is None else out + term
    return out


def _col2im(patch_grads: Array, kh: int, kw: int) -> Array:
    """Adjoint of extracting stride-1 ``kh x kw`` patches.

    Separable: the ``kw`` column shifts first (written to memory once), then
    the ``kh`` row shifts; 5.1 ms against 8.3 ms for one sum of ``kh * kw``
    shifted copies on LeNet-5's second layer here (and 16.3 ms for XLA's
    transposed convolution).

    Args:
      patch_grads: ``(n, h_out, w_out, kh, kw, c)``.

    Returns:
      ``(n, h_out + kh - 1, w_out + kw - 1, c)``.
    """
    rows = materialized(lambda pg: _shifted_sum([pg[:, :, :, :, j, :] for j in range(kw)], axis=2),
                        patch_grads)
    return materialized(lambda r: _shifted_sum([r[:, :, :, i, :] for i in range(kh)], axis=1), rows)


@jax.custom_vjp
def _conv_valid(x: Array, w: Array) -> Array:
    return _xla_conv(x, w)


def _conv_valid_fwd(x, w):
    return _xla_conv(x, w), (x, w)


def _conv_valid_bwd(res, g):
    x, w = res
    d_w = jax.vjp(lambda k: _xla_conv(x, k), w)[1](g)[0]
    kh, kw, c_in, c_out = w.shape
    n, ho, wo, _ = g.shape
    patch_grads = (g.reshape(-1, c_out) @ w.reshape(-1, c_out).T).reshape(n, ho, wo, kh, kw, c_in)
    return _col2im(patch_grads, kh, kw), d_w


_conv_valid.defvjp(_conv_valid_fwd, _conv_valid_bwd)


def _patches_t(x: Array, kh: int, kw: int) -> Array:
    """Stride-1 patches as a ``(kh kw c, n h_out w_out)`` matrix.

    Row ``(i kw + j) c + ci`` holds ``x[:, i:i + h_out, j:j + w_out, ci]``
    flattened, the order of an HWIO kernel's ``reshape(-1, c_out)``; each
    row is written in runs of ``w_out`` contiguous values (a column layout
    would write runs of ``c`` values, one for the first layer). Built in two
    stages, the ``kw`` column shifts and then the ``kh`` row shifts of those
    (2.5 ms against 8.5 ms for ``kh kw`` slices of ``x`` stacked at once, for
    LeNet-5's second layer on one core here).
    """
    n, h, w, _ = x.shape
    ho, wo = h - kh + 1, w - kw + 1
    xt = jnp.moveaxis(x, -1, 0)  # (c, n, h, w)
    cols = jnp.stack([xt[..., j:j + wo] for j in range(kw)])  # (kw, c, n, h, w_out)
    taps = jnp.stack([cols[:, :, :, i:i + ho, :] for i in range(kh)])  # (kh, kw, c, n, h_out, w_out)
    return taps.reshape(-1, n * ho * wo)


def _col2im_t(patch_grads: Array, x_shape, kh: int, kw: int) -> Array:
    """Adjoint of :func:`_patches_t`: ``(kh kw c, n h_out w_out)`` to ``x_shape`` (NHWC)."""
    n, h, w, c = x_shape
    taps = patch_grads.reshape(kh, kw, c, n, h - kh + 1, w - kw + 1)
    rows = materialized(lambda t: jnp.stack([_shifted_sum([t[i, j] for j in range(kw)], axis=3)
                                             for i in range(kh)]), taps)  # (kh, c, n, h_out, w)
    return jnp.moveaxis(_shifted_sum([rows[i] for i in range(kh)], axis=2), 0, -1)


@jax.custom_vjp
def _lrt_conv_valid(x: Array, theta: Array, var: Array) -> tuple[Array, Array]:
    return _xla_conv(x, theta), _xla_conv(x * x, var)


def _lrt_conv_valid_fwd(x, theta, var):
    return _lrt_conv_valid(x, theta, var), (x, theta, var)


def _lrt_conv_valid_bwd(res, cotangents):
    x, theta, var = res
    g_mean, g_var = cotangents
    kh, kw, _, c_out = theta.shape
    p = materialized(lambda v: _patches_t(v, kh, kw), x)  # (K, N), written once: p and p * p read it
    g_mean, g_var = g_mean.reshape(-1, c_out), g_var.reshape(-1, c_out)  # (N, c_out)
    d_theta = (p @ g_mean).reshape(theta.shape)
    d_var = ((p * p) @ g_var).reshape(var.shape)
    nt = (((1,), (1,)), ((), ()))  # A B^T without a transposed copy
    d_p = (jax.lax.dot_general(theta.reshape(-1, c_out), g_mean, nt)
           + 2.0 * p * jax.lax.dot_general(var.reshape(-1, c_out), g_var, nt))
    return _col2im_t(d_p, x.shape, kh, kw), d_theta, d_var


_lrt_conv_valid.defvjp(_lrt_conv_valid_fwd, _lrt_conv_valid_bwd)


def _resolve(impl: str) -> str:
    if impl not in IMPLS:
        raise ValueError(f"unknown convolution impl {impl!r}; choose one of {IMPLS}")
    if impl == "auto":
        return "gemm" if jax.default_backend() == "cpu" else "xla"
    return impl


def _pad_for_valid(x: Array, padding: Padding, kernel_shape) -> Array:
    (a, b), (c, d) = _explicit_padding(padding, kernel_shape)
    if a or b or c or d:
        x = jnp.pad(x, ((0, 0), (a, b), (c, d), (0, 0)))
    return x


def lrt_conv2d(x: Array, theta: Array, var: Array, *, strides: Sequence[int] = (1, 1),
               padding: Padding = "VALID", impl: str = "auto") -> tuple[Array, Array]:
    """The local reparameterisation's mean and variance convolutions (module docstring).

    Args:
      x: ``(n, h, w, c_in)`` input.
      theta: ``(kh, kw, c_in, c_out)`` posterior mean kernel.
      var: posterior variance kernel, the shape of ``theta``.
      strides, padding, impl: as for :func:`conv2d`.

    Returns:
      ``(conv(x, theta), conv(x * x, var))``, the same numbers whichever ``impl``.
    """
    impl = _resolve(impl)
    if impl == "xla" or tuple(strides) != (1, 1):
        return _xla_conv(x, theta, strides, padding), _xla_conv(x * x, var, strides, padding)
    return _lrt_conv_valid(_pad_for_valid(x, padding, theta.shape), theta, var)


def conv2d(x: Array, w: Array, *, strides: Sequence[int] = (1, 1), padding: Padding = "VALID",
           impl: str = "auto") -> Array:
    """NHWC input, HWIO kernel convolution; see the module docstring for ``impl``.

    Args:
      x: ``(n, h, w, c_in)``.
      w: ``(kh, kw, c_in, c_out)``.
      strides: spatial strides.
      padding: "VALID", "SAME" or explicit ``((lo, hi), (lo, hi))``.
      impl: "auto", "gemm" or "xla".

    Returns:
      ``(n, h_out, w_out, c_out)``, the same numbers whichever ``impl``.
    """
    impl = _resolve(impl)
    if impl == "xla" or tuple(strides) != (1, 1):
        return _xla_conv(x, w, strides, padding)
    return _conv_valid(_pad_for_valid(x, padding, w.shape), w)


class Conv(nn.Module):
    """``flax.linen.Conv`` (NHWC, HWIO ``kernel``, ``bias``; same names, shapes and
    initialisers) through :func:`conv2d`."""

    features: int
    kernel_size: tuple[int, int] = (3, 3)
    strides: tuple[int, int] = (1, 1)
    padding: Padding = "SAME"
    use_bias: bool = True
    impl: str = "auto"
    kernel_init: Any = nn.initializers.lecun_normal()
    bias_init: Any = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: Array) -> Array:
        kernel = self.param("kernel", self.kernel_init, (*self.kernel_size, x.shape[-1], self.features))
        y = conv2d(x, kernel, strides=self.strides, padding=self.padding, impl=self.impl)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,))
        return y
