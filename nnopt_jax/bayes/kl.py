"""KL-divergence approximations for sparse variational dropout and VNQ.

Pure functions of arrays; :mod:`nnopt_jax.bayes.priors` wraps them as
NumPyro-style priors with a registered ``kl_divergence``.

References:
  Molchanov, Ashukha, Vetrov (2017), "Variational Dropout Sparsifies Deep
  Neural Networks", eq. (14): the approximation of -KL(q || p) for the
  log-uniform prior.
  Achterhold, Koehler, Schmeink, Genewein (2018), "Variational Network
  Quantization", sec. 3.2: the windowed approximation for the multi-spike
  ("quantizing") prior.
"""

from __future__ import annotations

import jax
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
