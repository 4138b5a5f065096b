"""NumPyro priors/posteriors and the registered KL dispatch."""

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from numpyro.distributions.kl import kl_divergence

from nnopt_jax.bayes import kl as K
from nnopt_jax.bayes.priors import LogUniform, VNQPrior, make_prior, posterior


def test_registered_kl_matches_functions():
    theta = jnp.array([0.3, -0.01, 0.19])
    ls2 = jnp.array([-10.0, -6.0, -8.0])
    q = posterior(theta, ls2)
    assert isinstance(q, dist.Normal)
    np.testing.assert_allclose(np.asarray(kl_divergence(q, LogUniform())),
                               np.asarray(K.kl_log_uniform(theta, ls2)), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(kl_divergence(q, VNQPrior(0.2))),
                               np.asarray(K.kl_vnq(theta, ls2, 0.2)), rtol=1e-5)


def test_log_probs_and_improperness():
    assert float(LogUniform().log_prob(jnp.float32(np.e))) == pytest.approx(-1.0)
    v = VNQPrior(0.5)
    np.testing.assert_allclose(np.asarray(v.codebook), [-0.5, 0.0, 0.5])
    assert float(v.log_prob(jnp.float32(0.25))) == pytest.approx(np.log(4 + 4 + 4 / 3), rel=1e-5)
    import jax

    with pytest.raises(NotImplementedError, match="improper"):
        LogUniform().sample(jax.random.key(0))


def test_make_prior_errors_on_unknown_name():
    assert isinstance(make_prior("vnq", level=0.3), VNQPrior)
    with pytest.raises(ValueError, match="unknown prior"):
        make_prior("laplace")
