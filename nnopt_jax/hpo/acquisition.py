"""Acquisition functions for minimisation (all returned as "larger is better").

With posterior mean ``mu``, standard deviation ``sigma`` and incumbent ``best``
(the lowest observed value), ``z = (best - mu - xi) / sigma``:

* EI  = sigma * h(z),  h(z) = phi(z) + z Phi(z)    (Jones et al. 1998, eq. 15)
* LogEI = log sigma + log h(z), computed stably      (Ament et al. 2023, eq. 9)
* PI  = Phi(z)                                      (Kushner 1964)
* UCB = -(mu - beta * sigma)  (lower confidence bound, Srinivas et al. 2010)
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax.scipy.special import erfcx, log_ndtr, ndtr

ACQUISITIONS = ("logei", "ei", "pi", "ucb")

_C1 = 0.5 * math.log(2 * math.pi)
_C2 = 0.5 * math.log(math.pi / 2)


def _phi(z):
    return jnp.exp(-0.5 * z * z - _C1)


def h(z):
    """``h(z) = phi(z) + z Phi(z)``, so that ``EI = sigma h(z)``."""
    return _phi(z) + z * ndtr(z)


def _log1mexp(x):
    """``log(1 - exp(x))`` for ``x < 0`` (Maechler 2012)."""
    return jnp.where(x > -math.log(2.0), jnp.log(-jnp.expm1(x)), jnp.log1p(-jnp.exp(x)))


def log_h(z):
    """Numerically stable ``log h(z)`` (Ament et al. 2023, eq. 9).

    For ``z > -1`` the direct formula is accurate. Below, writing
    ``Phi(z) = erfcx(-z/sqrt2) phi(z) sqrt(pi/2)`` gives
    ``log h = log phi(z) + log1mexp(log(|z| erfcx(-z/sqrt2)) + log sqrt(pi/2))``;
    for ``z < -1/sqrt(eps)`` the asymptote ``log phi(z) - 2 log|z|`` is used.
    Branches are evaluated on safe inputs so gradients stay finite.
    """
    z = jnp.asarray(z)
    eps = jnp.finfo(z.dtype).eps
    upper = z > -1.0
    far = z < -1.0 / jnp.sqrt(eps)
    z_up = jnp.where(upper, z, 0.0)
    z_mid = jnp.where(upper | far, -2.0, z)
    z_far = jnp.where(far, z, -1.0 / jnp.sqrt(eps) - 1.0)
    direct = jnp.log(h(z_up))
    mid = (-0.5 * z_mid**2 - _C1
           + _log1mexp(jnp.log(jnp.abs(z_mid) * erfcx(-z_mid / math.sqrt(2.0))) + _C2))
    asym = -0.5 * z_far**2 - _C1 - 2.0 * jnp.log(jnp.abs(z_far))
    return jnp.where(upper, direct, jnp.where(far, asym, mid))


def _z(mean, std, best, xi):
    return (best - mean - xi) / std


def expected_improvement(mean, std, best, xi=0.0):
    return std * h(_z(mean, std, best, xi))


def log_expected_improvement(mean, std, best, xi=0.0):
    return jnp.log(std) + log_h(_z(mean, std, best, xi))


def probability_of_improvement(mean, std, best, xi=0.0):
    return ndtr(_z(mean, std, best, xi))


def log_probability_of_improvement(mean, std, best, xi=0.0):
    return log_ndtr(_z(mean, std, best, xi))


def upper_confidence_bound(mean, std, best=None, beta=2.0):
    """Lower confidence bound for minimisation, negated so larger is better."""
    del best
    return -(mean - beta * std)


def get_acquisition(name: str, *, xi: float = 0.0, beta: float = 2.0):
    """``acq(mean, std, best) -> score`` (larger is better) for a name in :data:`ACQUISITIONS`.

    PI is returned in log space for well-scaled gradients (same maximiser).
    """
    if name == "ei":
        return lambda m, s, b: expected_improvement(m, s, b, xi)
    if name == "logei":
        return lambda m, s, b: log_expected_improvement(m, s, b, xi)
    if name == "pi":
        return lambda m, s, b: log_probability_of_improvement(m, s, b, xi)
    if name == "ucb":
        return lambda m, s, b: upper_confidence_bound(m, s, b, beta)
    raise ValueError(f"unknown acquisition {name!r}; choose from {ACQUISITIONS}")


__all__ = ["ACQUISITIONS", "expected_improvement", "get_acquisition", "h", "log_h",
           "log_expected_improvement", "log_probability_of_improvement",
           "probability_of_improvement", "upper_confidence_bound"]
