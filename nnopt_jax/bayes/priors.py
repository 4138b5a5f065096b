"""Priors and variational posteriors as NumPyro distributions, with registered KL.

A variational layer names its prior and posterior; the KL term is obtained by
``numpyro.distributions.kl.kl_divergence(posterior, prior)``, dispatched on the
pair of types. The priors here are improper (log-uniform), so their ``log_prob``
is defined up to an additive constant and they cannot be sampled; the
registered KL divergences are the published approximations
(:mod:`nnopt_jax.bayes.kl`), normalised to tend to 0 as alpha -> infinity.

Example:
  >>> from numpyro.distributions import Normal
  >>> from numpyro.distributions.kl import kl_divergence
  >>> q = Normal(theta, jnp.exp(0.5 * log_sigma2))
  >>> kl = kl_divergence(q, LogUniform()).sum()
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.distributions.kl import kl_divergence

from nnopt_jax.bayes import kl as _kl
from nnopt_jax.types import Array

__all__ = [
    "LogUniform",
    "VNQPrior",
    "posterior",
    "GaussianPosterior",
    "make_prior",
    "PRIORS",
    "kl_divergence",
]


class LogUniform(dist.Distribution):
    """Improper log-uniform (scale-invariant) prior, p(|w|) ∝ 1/|w|.

    Molchanov et al. (2017), sec. 4: the prior of sparse variational dropout.
    ``log_prob`` is -log|w| (up to a constant); sampling is impossible.
    """

    arg_constraints = {}
    support = constraints.real
    reparametrized_params = []

    def __init__(self, batch_shape: tuple[int, ...] = (), *, validate_args=None):
        super().__init__(batch_shape=batch_shape, validate_args=validate_args)

    def log_prob(self, value: Array) -> Array:
        return -jnp.log(jnp.abs(value))

    def sample(self, key, sample_shape=()):
        raise NotImplementedError(
            "LogUniform is an improper prior and cannot be sampled; use it only "
            "as the prior argument of kl_divergence(posterior, prior)."
        )


class VNQPrior(dist.Distribution):
    """Improper multi-spike log-uniform prior at the codebook {-a, 0, a}.

    Achterhold et al. (2018), eq. (6): p(w) ∝ sum_c 1/|w - c|, with a learnable
    level a (passed in; it is a parameter of the layer). ``kl`` picks the KL
    approximation: "windowed" (the paper's eq. 16, :func:`kl.kl_vnq`) or
    "tabulated" (that plus its tabulated error against the exact KL,
    :func:`kl.kl_vnq_tabulated`).
    """

    arg_constraints = {"level": constraints.positive}
    support = constraints.real
    reparametrized_params = ["level"]
    KL_FORMS = ("windowed", "tabulated")

    def __init__(self, level: Array | float = 0.2, *, tau: float = _kl.VNQ_TAU, kl: str = "windowed",
                 validate_args=None):
        if kl not in self.KL_FORMS:
            raise ValueError(f"unknown VNQ KL form {kl!r}; use one of {self.KL_FORMS}")
        self.level = jnp.asarray(level)
        self.tau = tau
        self.kl = kl
        super().__init__(batch_shape=jnp.shape(self.level), validate_args=validate_args)

    @property
    def codebook(self) -> Array:
        return _kl.vnq_codebook(self.level)

    def log_prob(self, value: Array) -> Array:
        value = jnp.asarray(value)
        a = self.level
        return jnp.log(1.0 / jnp.abs(value - a) + 1.0 / jnp.abs(value) + 1.0 / jnp.abs(value + a))

    def sample(self, key, sample_shape=()):
        raise NotImplementedError(
            "VNQPrior is an improper prior and cannot be sampled; use it only "
            "as the prior argument of kl_divergence(posterior, prior)."
        )

    def tree_flatten(self):
        return (self.level,), (self.tau, self.kl)

    @classmethod
    def tree_unflatten(cls, aux, params):
        return cls(params[0], tau=aux[0], kl=aux[1])


class GaussianPosterior(dist.Normal):
    """N(theta, sigma^2) parameterised by ``log_sigma2``, which it keeps.

    A ``Normal`` in every respect (the registered KL divergences dispatch on
    it as one); keeping ``log sigma^2`` lets the KL use the layer's own
    value instead of recomputing ``2 log(exp(log sigma^2 / 2))``, so its
    log alpha is the very expression the layer computes and XLA computes it
    once.
    """

    def __init__(self, loc: Array, log_sigma2: Array, *, validate_args=None):
        self.log_sigma2 = jnp.asarray(log_sigma2)
        super().__init__(loc, jnp.exp(0.5 * self.log_sigma2), validate_args=validate_args)

    def tree_flatten(self):
        return (self.loc, self.log_sigma2), None

    @classmethod
    def tree_unflatten(cls, aux, params):
        return cls(*params)


def posterior(theta: Array, log_sigma2: Array) -> dist.Normal:
    """The fully factorised Gaussian posterior N(theta, sigma^2) of the additive reparameterisation."""
    return GaussianPosterior(theta, log_sigma2)


def _log_sigma2(q: dist.Normal) -> Array:
    if isinstance(q, GaussianPosterior):
        return q.log_sigma2
    return 2.0 * jnp.log(q.scale)


@kl_divergence.register(dist.Normal, LogUniform)
def _kl_normal_log_uniform(q, p):
    """Molchanov et al. (2017), eq. (14), elementwise."""
    return _kl.kl_log_uniform(q.loc, _log_sigma2(q))


@kl_divergence.register(dist.Normal, VNQPrior)
def _kl_normal_vnq(q, p):
    """Achterhold et al. (2018), sec. 3.2, elementwise (or its tabulated correction)."""
    if p.kl == "tabulated":
        return _kl.kl_vnq_tabulated(q.loc, _log_sigma2(q), p.level)
    return _kl.kl_vnq(q.loc, _log_sigma2(q), p.level, tau=p.tau)


PRIORS: dict[str, Callable[..., dist.Distribution]] = {
    "log_uniform": lambda **kw: LogUniform(),
    "vnq": lambda level=0.2, **kw: VNQPrior(level),
}


def make_prior(name: str, **kwargs) -> dist.Distribution:
    """Build a prior by name ("log_uniform" or "vnq")."""
    if name not in PRIORS:
        raise ValueError(f"unknown prior {name!r}; choose one of {sorted(PRIORS)}")
    return PRIORS[name](**kwargs)
