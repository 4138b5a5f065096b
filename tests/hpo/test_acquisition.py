import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from nnopt_jax.hpo import acquisition as acq


def test_ei_matches_monte_carlo():
    rng = np.random.default_rng(0)
    for mean, std, best in [(0.3, 0.5, 0.0), (-1.0, 2.0, 0.5), (2.0, 0.7, 1.0)]:
        samples = mean + std * rng.standard_normal(400_000)
        mc = np.mean(np.maximum(best - samples, 0.0))
        se = np.std(np.maximum(best - samples, 0.0)) / np.sqrt(len(samples))
        ei = float(acq.expected_improvement(mean, std, best))
        assert abs(ei - mc) < 4 * se + 1e-6
        pi = float(acq.probability_of_improvement(mean, std, best))
        assert pi == pytest.approx(np.mean(samples < best), abs=5e-3)


def test_log_ei_equals_log_ei_where_representable():
    with jax.enable_x64(True):
        z = jnp.linspace(-30.0, 5.0, 400)
        ref = np.log(np.asarray(acq.h(z)))
        np.testing.assert_allclose(acq.log_h(z), ref, rtol=1e-9, atol=1e-12)
        # vs an independent float64 reference: log(phi(z) + z Phi(z)) via scipy
        zz = np.linspace(-8, 5, 50)
        np.testing.assert_allclose(acq.log_h(jnp.asarray(zz)),
                                   np.log(stats.norm.pdf(zz) + zz * stats.norm.cdf(zz)),
                                   rtol=1e-8)


def test_log_ei_finite_where_ei_underflows_float32():
    z = jnp.array([-15.0, -40.0, -1e3, -1e5], dtype=jnp.float32)
    assert np.all(np.asarray(acq.h(z)) == 0.0)  # plain EI underflows
    lh = np.asarray(acq.log_h(z))
    assert np.all(np.isfinite(lh))
    # asymptotic value log(phi(z)/z^2) (h(z) ~ phi(z)/z^2 as z -> -inf)
    ref = -0.5 * np.float64(z) ** 2 - 0.5 * np.log(2 * np.pi) - 2 * np.log(-np.float64(z))
    np.testing.assert_allclose(lh, ref, rtol=2e-3)
    g = jax.vmap(jax.grad(acq.log_h))(z)
    assert np.all(np.isfinite(np.asarray(g))) and np.all(np.asarray(g) > 0)
    ge = jax.grad(lambda m: acq.log_expected_improvement(m, jnp.float32(0.01), 0.0))(
        jnp.float32(1.0))
    assert np.isfinite(float(ge)) and float(ge) < 0


def test_log_h_gradient_matches_finite_difference():
    with jax.enable_x64(True):
        for z in [-50.0, -5.0, -1.0 - 1e-9, -0.5, 2.0]:
            g = float(jax.grad(acq.log_h)(jnp.float64(z)))
            eps = 1e-6
            fd = (float(acq.log_h(jnp.float64(z + eps))) - float(acq.log_h(jnp.float64(z - eps)))) / (2 * eps)
            assert g == pytest.approx(fd, rel=1e-5)


def test_get_acquisition_names():
    for name in acq.ACQUISITIONS:
        f = acq.get_acquisition(name)
        assert np.isfinite(float(f(0.0, 1.0, -0.1)))
    # larger std with the same mean is better for every acquisition below the incumbent
    for name in acq.ACQUISITIONS:
        f = acq.get_acquisition(name)
        assert float(f(0.5, 2.0, 0.0)) > float(f(0.5, 1.0, 0.0))
    with pytest.raises(ValueError, match="unknown acquisition"):
        acq.get_acquisition("foo")
