"""KL approximations vs Monte Carlo estimates of the true KL (float64 numpy)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt_jax.bayes import kl as K

# E log|xi| for xi ~ N(0, 1) = -(gamma + log 2) / 2: normalises -KL to 0 at alpha -> inf.
E_LOG_ABS_NORMAL = -0.5 * (np.euler_gamma + np.log(2.0))


@pytest.fixture(scope="module")
def xi():
    return np.random.default_rng(0).standard_normal(400_000)


def true_neg_kl_log_uniform(log_alpha, xi):
    """-KL(N(theta, alpha theta^2) || LogU) + const = 0.5 log alpha - E log|1 + sqrt(alpha) xi| + E log|xi|."""
    vals = np.log(np.abs(1.0 + np.sqrt(np.exp(log_alpha)) * xi))
    return 0.5 * log_alpha - vals.mean() + E_LOG_ABS_NORMAL, vals.std() / np.sqrt(len(xi))


def test_sparse_vd_approximation_matches_monte_carlo(xi):
    # Molchanov et al. (2017) fit the approximation to within ~0.01 nats over log alpha.
    for la in np.linspace(-6.0, 6.0, 13):
        true, se = true_neg_kl_log_uniform(la, xi)
        approx = float(K.neg_kl_log_uniform(jnp.float32(la)))
        assert abs(approx - true) < 0.012 + 5 * se, (la, approx, true)


def test_sparse_vd_kl_limits():
    # -KL -> 0 as alpha -> inf; -KL ~ 0.5 log alpha + const for small alpha (slope 1/2).
    assert abs(float(K.neg_kl_log_uniform(jnp.float32(20.0)))) < 1e-3
    lo = K.neg_kl_log_uniform(jnp.array([-12.0, -11.0]))
    np.testing.assert_allclose(float(lo[1] - lo[0]), 0.5, atol=1e-3)


def test_kl_log_uniform_uses_clipped_log_alpha():
    theta = jnp.array([1.0, 1.0, 0.0])
    log_sigma2 = jnp.array([-30.0, 30.0, -10.0])
    la = K.log_alpha(theta, log_sigma2)
    np.testing.assert_allclose(np.asarray(la), [-8.0, 8.0, 8.0])
    np.testing.assert_allclose(np.asarray(K.kl_log_uniform(theta, log_sigma2)),
                               -np.asarray(K.neg_kl_log_uniform(la)), rtol=1e-6)


def true_neg_kl_vnq(theta, sigma, level, xi):
    """-KL to the multi-spike log-uniform prior at {-a, 0, a} up to the same constant."""
    w = theta + sigma * xi
    lp = np.log(1 / np.abs(w - level) + 1 / np.abs(w) + 1 / np.abs(w + level))
    return lp.mean() + np.log(sigma) + E_LOG_ABS_NORMAL, lp.std() / np.sqrt(len(xi))


@pytest.mark.parametrize("level", [0.2, 0.6])
def test_vnq_approximation_near_each_codebook_value(level, xi):
    s = level / K.VNQ_REFERENCE_LEVEL
    omega_leak = np.exp(-(K.VNQ_REFERENCE_LEVEL**2) / (2 * K.VNQ_TAU**2))  # window of +-a seen at 0
    for c in (-level, 0.0, level):
        for la in (-4.0, -2.0, 0.0, 2.0):
            d = 1e-3 * s
            sigma = d * np.exp(la / 2)
            theta = c + d
            true, se = true_neg_kl_vnq(theta, sigma, level, xi)
            approx = -float(K.kl_vnq(jnp.float32(theta), jnp.float32(2 * np.log(sigma)), level))
            if c != 0.0:
                # Inside the window of c the approximation is sparse VD shifted to c.
                assert abs(approx - true) < 0.03 + 5 * se, (level, c, la, approx, true)
            else:
                # At 0 the Gaussian windows of +-a leak with weight 2*Omega(a) (tau = 0.075):
                # the error is bounded by that leak times the KL gap between the spikes.
                gap = abs(float(K.neg_kl_log_uniform(K.log_alpha(jnp.float32(theta), jnp.float32(2 * np.log(sigma)),
                                                                 center=level)))
                          - float(K.neg_kl_log_uniform(jnp.float32(la))))
                assert abs(approx - true) < 2 * omega_leak * gap + 0.03 + 5 * se, (c, la, approx, true)


def test_vnq_at_a_codebook_value_is_shifted_sparse_vd():
    level = 0.35
    d = jnp.array([1e-4, -3e-4])
    ls2 = jnp.array([-12.0, -14.0])
    for c in (level, -level):
        # Omega(theta - c) ~ 1 there and the other windows vanish (|2a| >> tau s).
        np.testing.assert_allclose(np.asarray(K.kl_vnq(c + d, ls2, level)), np.asarray(K.kl_log_uniform(d, ls2)),
                                   rtol=2e-3)


def test_vnq_is_scale_equivariant():
    theta = jnp.array([0.18, -0.05, 0.0, 0.21])
    ls2 = jnp.array([-9.0, -7.0, -8.0, -6.0])
    s = 3.0
    np.testing.assert_allclose(np.asarray(K.kl_vnq(theta, ls2, 0.2)),
                               np.asarray(K.kl_vnq(s * theta, ls2 + 2 * np.log(s), 0.2 * s)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fn", ["log_uniform", "vnq"])
def test_gradients_finite_at_extreme_log_alpha(fn):
    theta = jnp.array([0.0, 1e-12, 1e3, -1e3, 0.2, 0.5, -0.2])
    ls2 = jnp.array([-30.0, 30.0, -30.0, 30.0, -30.0, 0.0, 50.0])

    def total(theta, ls2, level):
        if fn == "log_uniform":
            return K.kl_log_uniform(theta, ls2).sum()
        return K.kl_vnq(theta, ls2, level).sum()

    grads = jax.grad(total, argnums=(0, 1, 2))(theta, ls2, jnp.float32(0.2))
    for g in grads:
        assert np.all(np.isfinite(np.asarray(g)))
    assert np.isfinite(float(total(theta, ls2, 0.2)))
