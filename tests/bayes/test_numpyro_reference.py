"""The layers' ELBO estimate agrees with numpyro.infer.Trace_ELBO on the same variational parameters.

Tiny softmax regression with a N(0, 1) prior on the weights (the layer accepts any
numpyro prior with a registered KL; Normal-Normal is analytic). The layer uses the
local reparameterisation, NumPyro samples whole weight matrices: both are unbiased
for the same ELBO, so they agree in expectation (statistical tolerance).
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import Trace_ELBO

from nnopt_jax.bayes.layers import VariationalDense
from nnopt_jax.bayes.objectives import total_kl


def test_elbo_matches_numpyro_trace_elbo():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(6, 3)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 2, size=6))
    theta = jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)
    log_sigma2 = jnp.asarray(rng.uniform(-2.0, 0.0, size=(3, 2)), jnp.float32)
    bias = jnp.asarray([0.1, -0.2])
    prior = dist.Normal(0.0, 1.0)
    layer = VariationalDense(features=2, prior=prior)
    params = {"theta": theta, "log_sigma2": log_sigma2, "bias": bias}

    def one(key):
        logits, cols = layer.apply({"params": params}, x, train=True, rngs={"noise": key}, mutable=["kl"])
        loglik = jnp.sum(jax.nn.log_softmax(logits)[jnp.arange(6), y])
        return loglik - total_kl(cols)

    n = 20000
    ours = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(0), n)), np.float64)

    def model(x, y):
        w = numpyro.sample("w", dist.Normal(jnp.zeros((3, 2)), 1.0).to_event(2))
        numpyro.sample("y", dist.Categorical(logits=x @ w + bias), obs=y)

    def guide(x, y):
        t = numpyro.param("theta", theta)
        s = numpyro.param("log_sigma2", log_sigma2)
        numpyro.sample("w", dist.Normal(t, jnp.exp(0.5 * s)).to_event(2))

    # Trace_ELBO's own estimate, in independent repeats for its standard error.
    elbo = Trace_ELBO(num_particles=2000)
    loss = jax.jit(lambda k: elbo.loss(k, {"theta": theta, "log_sigma2": log_sigma2}, model, guide, x, y))
    ref = -np.array([float(loss(k)) for k in jax.random.split(jax.random.key(1), 10)])
    se = np.sqrt(ours.var() / n + ref.var(ddof=1) / len(ref))
    assert abs(ours.mean() - ref.mean()) < 4.5 * se, (ours.mean(), ref.mean(), se)
    # the comparison is informative: different parameters give a clearly different ELBO
    assert se < 0.05 * abs(ref.mean())
