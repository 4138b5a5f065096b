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
    np.testing.assert_allclose(np.asarray(kl_divergence(q, VNQPrior(0.2, kl="tabulated"))),
                               np.asarray(K.kl_vnq_tabulated(theta, ls2, 0.2)), rtol=1e-5)
    with pytest.raises(ValueError, match="unknown VNQ KL form 'exact'"):
        VNQPrior(0.2, kl="exact")


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


def test_gaussian_posterior_is_a_normal_whose_kl_uses_its_log_sigma2():
    import jax
    import numpyro.distributions as dist

    from nnopt_jax.bayes import kl as K
    from nnopt_jax.bayes.priors import GaussianPosterior, LogUniform, VNQPrior, kl_divergence, posterior

    rng = np.random.default_rng(4)
    theta = jnp.asarray(rng.normal(size=50) * 0.1, jnp.float32)
    log_sigma2 = jnp.asarray(rng.uniform(-10, 0, size=50), jnp.float32)
    q = posterior(theta, log_sigma2)
    assert isinstance(q, dist.Normal) and isinstance(q, GaussianPosterior)
    np.testing.assert_allclose(q.scale, np.exp(0.5 * np.asarray(log_sigma2)), rtol=1e-6)
    np.testing.assert_array_equal(kl_divergence(q, LogUniform()), K.kl_log_uniform(theta, log_sigma2))
    np.testing.assert_array_equal(kl_divergence(q, VNQPrior(0.2)), K.kl_vnq(theta, log_sigma2, 0.2))
    # a plain Normal goes through its scale, to the same values
    plain = dist.Normal(theta, jnp.exp(0.5 * log_sigma2))
    np.testing.assert_allclose(kl_divergence(plain, LogUniform()), kl_divergence(q, LogUniform()),
                               rtol=1e-4, atol=1e-5)
    leaves, tree = jax.tree.flatten(q)
    back = jax.tree.unflatten(tree, leaves)
    assert isinstance(back, GaussianPosterior)
    np.testing.assert_array_equal(back.log_sigma2, log_sigma2)
