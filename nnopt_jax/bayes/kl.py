"""KL-divergence approximations for sparse variational dropout and VNQ.

Pure functions of arrays; :mod:`nnopt_jax.bayes.priors` wraps them as
NumPyro-style priors with a registered ``kl_divergence``.

References:
  Molchanov, Ashukha, Vetrov (2017), "Variational Dropout Sparsifies Deep
  Neural Networks", eq. (14): the approximation of -KL(q || p) for the
  log-uniform prior.
  Achterhold, Koehler, Schmeink, Genewein (2018), "Variational Network
  Quantization", sec. 3.2: the windowed approximation for the multi-spike
  ("quantizing") prior. :func:`kl_vnq_tabulated` corrects it by a table of its
  error against the exact KL.
"""

from __future__ import annotations

import functools

import jax
import jax.scipy.ndimage
import jax.numpy as jnp

from nnopt_jax.types import Array

K1, K2, K3 = 0.63576, 1.87320, 1.48695
"""Constants of Molchanov et al. (2017), eq. (14)."""

LOG_ALPHA_MIN, LOG_ALPHA_MAX = -8.0, 8.0
"""Clipping range of log alpha (as in the authors' code)."""

VNQ_TAU = 0.075
"""Width of the Gaussian windows at the reference codebook {-0.2, 0, 0.2}."""

VNQ_REFERENCE_LEVEL = 0.2
"""Reference codebook level at which ``VNQ_TAU`` was fitted."""

VNQ_LOG_SIGMA2_RANGE = (-10.0, 1.0)
"""Range to which VNQ clips log sigma^2 (Achterhold et al. 2018, sec. 4)."""

_EPS = 1e-8


def log_alpha(theta: Array, log_sigma2: Array, *, center: Array | float = 0.0) -> Array:
    """Clipped log alpha = log sigma^2 - log (theta - center)^2.

    A small epsilon keeps the log and its gradient finite at theta == center.
    """
    diff = theta - center
    la = log_sigma2 - jnp.log(diff * diff + _EPS)
    return jnp.clip(la, LOG_ALPHA_MIN, LOG_ALPHA_MAX)


def neg_kl_log_uniform(log_alpha_: Array) -> Array:
    """Molchanov et al. (2017), eq. (14): approximate -KL(N(theta, alpha theta^2) || LogU).

    -KL ~= k1 * sigmoid(k2 + k3 log alpha) - 0.5 log(1 + 1/alpha) - k1,
    normalised so that -KL -> 0 as alpha -> infinity.

    Args:
      log_alpha_: log alpha (already clipped by the caller, or not).

    Returns:
      The elementwise approximation of -KL (up to the prior's constant).
    """
    return (
        K1 * jax.nn.sigmoid(K2 + K3 * log_alpha_)
        - 0.5 * jax.nn.softplus(-log_alpha_)  # = 0.5 log1p(1/alpha), stable
        - K1
    )


def kl_log_uniform(theta: Array, log_sigma2: Array) -> Array:
    """Elementwise approximate KL(N(theta, sigma^2) || log-uniform) (eq. 14, negated)."""
    return -neg_kl_log_uniform(log_alpha(theta, log_sigma2))


def vnq_codebook(level: Array | float) -> Array:
    """The ternary codebook {-a, 0, a}."""
    level = jnp.asarray(level)
    return jnp.stack([-level, jnp.zeros_like(level), level])


def kl_vnq(
    theta: Array,
    log_sigma2: Array,
    level: Array | float,
    *,
    tau: float = VNQ_TAU,
    reference_level: float = VNQ_REFERENCE_LEVEL,
) -> Array:
    """Elementwise approximate KL(N(theta, sigma^2) || multi-spike log-uniform at {-a, 0, a}).

    Achterhold et al. (2018), sec. 3.2: the sparse-VD approximation shifted to
    every codebook value c, i.e. evaluated at log alpha_c = log sigma^2 -
    log (theta - c)^2, and blended with Gaussian windows
    Omega(u) = exp(-u^2 / (2 tau^2)) around the non-zero values; the zero spike
    takes the remaining weight 1 - sum_c Omega(theta - c). The windows were
    fitted at the reference codebook +-0.2; for a level a the approximation is
    evaluated at theta / s, sigma / s with s = a / 0.2 (log alpha_c is scale
    invariant, so only the windows change).

    Args:
      theta: posterior means.
      log_sigma2: posterior log variances.
      level: the codebook level a > 0 (learnable).
      tau: window width at the reference codebook.
      reference_level: the reference level (0.2).

    Returns:
      Elementwise KL approximation (>= 0 up to the prior's constant).
    """
    level = jnp.abs(jnp.asarray(level)) + _EPS
    scale = level / reference_level
    u = theta / scale  # theta on the reference scale
    ref = reference_level
    w_pos = jnp.exp(-((u - ref) ** 2) / (2.0 * tau**2))
    w_neg = jnp.exp(-((u + ref) ** 2) / (2.0 * tau**2))
    w_zero = 1.0 - w_pos - w_neg
    kl_zero = kl_log_uniform(theta, log_sigma2)
    kl_pos = -neg_kl_log_uniform(log_alpha(theta, log_sigma2, center=level))
    kl_neg = -neg_kl_log_uniform(log_alpha(theta, log_sigma2, center=-level))
    return w_zero * kl_zero + w_pos * kl_pos + w_neg * kl_neg


@functools.lru_cache(maxsize=1)
def _vnq_residual_table():
    from nnopt_jax.bayes import vnq_kl_table

    return (vnq_kl_table.load_table(), float(vnq_kl_table.U_GRID[0]), float(vnq_kl_table.U_GRID[1] - vnq_kl_table.U_GRID[0]),
            float(vnq_kl_table.V_GRID[0]), float(vnq_kl_table.V_GRID[1] - vnq_kl_table.V_GRID[0]))


def kl_vnq_tabulated(theta: Array, log_sigma2: Array, level: Array | float) -> Array:
    """Elementwise KL to the VNQ prior: the windowed approximation plus its tabulated error.

    ``kl_vnq`` + R(|theta| / a, log(sigma / a)), with R the exact KL (adaptive
    quadrature in float64, :mod:`nnopt_jax.bayes.vnq_kl_table`) minus the windowed
    form, interpolated bilinearly on a 241 x 91 grid (|theta| / a in [0, 6],
    log(sigma / a) in [-5, 4]; beyond it, the nearest edge). Unlike the windowed
    form it is lowest at theta = 0 for broad posteriors, where the prior's three
    spikes look like one (see the module docstring there).
    """
    table, u0, du, v0, dv = _vnq_residual_table()
    level = jnp.abs(jnp.asarray(level)) + _EPS
    u = jnp.abs(theta) / level
    v = 0.5 * log_sigma2 - jnp.log(level)
    coords = [jnp.clip((u - u0) / du, 0.0, table.shape[0] - 1), jnp.clip((v - v0) / dv, 0.0, table.shape[1] - 1)]
    residual = jax.scipy.ndimage.map_coordinates(jnp.asarray(table, theta.dtype), coords, order=1, mode="nearest")
    return kl_vnq(theta, log_sigma2, level) + residual
