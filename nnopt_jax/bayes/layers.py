"""Variational dense and convolution layers (sparse VD and VNQ) in Flax Linen.

Additive reparameterisation w = theta + sigma * eps with parameters ``theta`` and
``log_sigma2`` (Molchanov et al. 2017, sec. 4.3), log alpha = log sigma^2 -
log theta^2 clipped to [-8, 8], and the local reparameterisation trick
(Kingma et al. 2015): the pre-activation b = x W is Gaussian with mean x theta and
variance x^2 (alpha theta^2), sampled with one noise draw per output element.

RNG: training mode draws from the ``"noise"`` RNG collection, which the caller
passes explicitly: ``model.apply(variables, x, train=True, rngs={"noise": key})``.

KL: each layer sows its summed KL term into the ``"kl"`` collection
(``mutable=["kl"]`` collects it; :func:`nnopt_jax.bayes.objectives.total_kl` sums it).

Evaluation (train=False) is deterministic: weights with log alpha >= threshold
(3 by default) are set to zero.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro.distributions.kl import kl_divergence

from nnopt_jax import parallel
from nnopt_jax.bayes import kl as _kl
from nnopt_jax.bayes import priors as _priors
from nnopt_jax.materialize import materialized
from nnopt_jax.models.conv import conv2d, lrt_conv2d
from nnopt_jax.types import Array

__all__ = ["VariationalDense", "VariationalConv", "weight_mask", "standard_normal", "LOG_SIGMA2_INIT"]

LOG_SIGMA2_INIT = {"log_uniform": -10.0, "vnq": -8.0}
VNQ_LOG_SIGMA2_RANGE = _kl.VNQ_LOG_SIGMA2_RANGE


def standard_normal(key, shape, dtype) -> Array:
    """Local-reparameterisation noise ``eps ~ N(0, I)`` of ``shape``.

    On a single CPU device the draw uses JAX's non-partitionable threefry
    scheme (``jax.threefry_partitionable(False)``, scoped to this call): one
    threefry block yields two 32-bit words there, and on XLA:CPU the draw ran
    several times faster than the partitionable scheme's (LeNet-5 sparse VD
    draws 1.5 M normals per step, mostly after conv1). With several devices
    the partitionable scheme is kept, so that a sharded batch's noise is
    generated where it lives (:func:`nnopt_jax.parallel.is_split`: a chunk
    traced for one device of several draws as on a single device). Either way
    the draw is a pure function of the key.
    """
    if jax.default_backend() == "cpu" and not parallel.is_split():
        with jax.threefry_partitionable(False):
            return jax.random.normal(key, shape, dtype)
    return jax.random.normal(key, shape, dtype)


def weight_mask(theta: Array, log_sigma2: Array, threshold: float = 3.0) -> Array:
    """1 where log alpha < threshold (weight kept), 0 where it is pruned."""
    return (_kl.log_alpha(theta, log_sigma2) < threshold).astype(theta.dtype)


class _VariationalBase(nn.Module):
    """Shared parameter handling, prior/posterior and KL for variational layers."""

    prior: Any = "log_uniform"  # "log_uniform" | "vnq" | a numpyro Distribution
    log_sigma2_init: float | None = None  # None: -10 (log-uniform) / -8 (VNQ)
    threshold: float = 3.0
    mask_in_training: bool = False
    mask_noise: bool = True
    level_init: float = 0.2  # VNQ codebook level a
    vnq_kl: str = "windowed"  # VNQ KL form: "windowed" (paper) | "tabulated" (corrected)
    use_bias: bool = True
    kernel_init: Any = nn.initializers.lecun_normal()

    def _prior_name(self) -> str:
        return self.prior if isinstance(self.prior, str) else type(self.prior).__name__

    def _params(self, shape: Sequence[int]):
        theta = self.param("theta", self.kernel_init, tuple(shape))
        init = self.log_sigma2_init
        if init is None:
            init = LOG_SIGMA2_INIT.get(self._prior_name(), -10.0)
        log_sigma2 = self.param("log_sigma2", nn.initializers.constant(init), tuple(shape))
        if self.prior == "vnq":
            log_sigma2 = jnp.clip(log_sigma2, *VNQ_LOG_SIGMA2_RANGE)
            level = self.param("level", nn.initializers.constant(self.level_init), ())
            prior = _priors.VNQPrior(jnp.abs(level), kl=self.vnq_kl)
        elif self.prior == "log_uniform":
            prior = _priors.LogUniform()
        elif isinstance(self.prior, dist.Distribution):
            prior = self.prior
        else:
            raise ValueError(
                f"unknown prior {self.prior!r}; use 'log_uniform', 'vnq' or a "
                "numpyro Distribution with a registered kl_divergence(Normal, prior)"
            )
        q = _priors.posterior(theta, log_sigma2)
        self.sow("kl", "kl", jnp.sum(kl_divergence(q, prior)), reduce_fn=lambda a, b: a + b,
                 init_fn=lambda: jnp.zeros(()))
        log_alpha = _kl.log_alpha(theta, log_sigma2)
        return theta, log_alpha

    def _bias(self, features: int):
        if not self.use_bias:
            return 0.0
        return self.param("bias", nn.initializers.zeros, (features,))

    def _weights(self, theta, log_alpha, train: bool):
        """Mean weights and weight variances alpha theta^2 (masked as configured)."""
        var = jnp.exp(log_alpha) * theta * theta
        if (not train) or self.mask_in_training:
            mask = (log_alpha < self.threshold).astype(theta.dtype)
            theta = theta * mask
            if self.mask_noise or not train:
                var = var * mask
        return theta, var


class VariationalDense(_VariationalBase):
    """Dense layer with a fully factorised Gaussian posterior over its kernel.

    Attributes:
      features: output size.
      prior: "log_uniform" (sparse VD), "vnq" (ternary quantising prior, adds a
        learnable scalar param ``level``), or a numpyro Distribution.
      log_sigma2_init: initial log sigma^2 (-10 for sparse VD, -8 for VNQ).
      threshold: log alpha above which a weight is dropped at evaluation.
      mask_in_training: also apply that mask in training mode.
      mask_noise: with ``mask_in_training``, also remove the pruned weights'
        noise (default). False keeps it, as the sparse-VD authors' dense layer
        does: pruned weights then still cost the data term through their
        variance, which holds sparsity back (LeNet-300-100: see configs).
    """

    features: int = 1

    @nn.compact
    def __call__(self, x: Array, *, train: bool = False) -> Array:
        theta, log_alpha = self._params((x.shape[-1], self.features))
        bias = self._bias(self.features)
        theta, var = self._weights(theta, log_alpha, train)
        mean = x @ theta
        if not train:
            return mean + bias
        out_var = (x * x) @ var
        eps = standard_normal(self.make_rng("noise"), mean.shape, mean.dtype)
        return mean + jnp.sqrt(out_var + 1e-8) * eps + bias


class VariationalConv(_VariationalBase):
    """2-D convolution (NHWC, HWIO kernel) with a Gaussian posterior over its kernel.

    Local reparameterisation: mean conv(x, theta), variance conv(x^2, alpha theta^2),
    in training through :func:`nnopt_jax.models.conv.lrt_conv2d` (on CPU the
    pair's gradients are matrix products over one patch matrix), at
    evaluation through :func:`nnopt_jax.models.conv.conv2d`; ``impl`` chooses
    how the gradients are computed, the numbers are the same.
    """

    features: int = 1
    kernel_size: tuple[int, int] = (3, 3)
    strides: tuple[int, int] = (1, 1)
    padding: str | Sequence[tuple[int, int]] = "VALID"
    impl: str = "auto"

    def _conv(self, x, w):
        return conv2d(x, w, strides=self.strides, padding=self.padding, impl=self.impl)

    @nn.compact
    def __call__(self, x: Array, *, train: bool = False) -> Array:
        shape = (*self.kernel_size, x.shape[-1], self.features)
        theta, log_alpha = self._params(shape)
        bias = self._bias(self.features)
        theta, var = self._weights(theta, log_alpha, train)
        if not train:
            return self._conv(x, theta) + bias
        mean, out_var = lrt_conv2d(x, theta, var, strides=self.strides, padding=self.padding,
                                   impl=self.impl)
        eps = standard_normal(self.make_rng("noise"), mean.shape, mean.dtype)
        # written once: the max-pool's forward and its backward mask both read it, and
        # XLA:CPU would otherwise recompute the noise draw in each (8-17 % of a
        # LeNet-5 sparse-VD step on one core); computed where it is stored, not copied
        return materialized(lambda m, v, e, b: m + jnp.sqrt(v + 1e-8) * e + b,
                            mean, out_var, eps, bias)
