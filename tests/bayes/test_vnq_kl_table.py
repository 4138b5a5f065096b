"""The tabulated VNQ KL: the exact KL by quadrature, checked by Monte Carlo, and
the interpolated table against fresh quadrature off its nodes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt_jax.bayes import kl as K
from nnopt_jax.bayes import vnq_kl_table as T


def _log_prior(w, a=1.0):
    return np.log(1.0 / np.abs(w - a) + 1.0 / np.abs(w) + 1.0 / np.abs(w + a))


@pytest.mark.parametrize("u, sigma", [(0.0, 0.3), (0.6, 1.0), (1.0, 0.05), (2.5, 2.0)])
def test_exact_kl_matches_monte_carlo(u, sigma):
    w = u + sigma * np.random.default_rng(0).standard_normal(2_000_000)
    vals = _log_prior(w)
    mc, se = -np.log(sigma) - vals.mean(), vals.std() / np.sqrt(len(w))
    assert T.exact_kl(u, sigma) == pytest.approx(mc, abs=5 * se + 1e-4)


def test_shipped_table_matches_its_nodes():
    table = T.load_table()
    assert table.shape == (len(T.U_GRID), len(T.V_GRID))
    c = T.far_field_offset()
    for i, j in [(0, 0), (40, 50), (37, 12), (120, 90), (240, 45)]:
        u, sigma = T.U_GRID[i], np.exp(T.V_GRID[j])
        expected = T.exact_kl(u, sigma) - float(T.windowed_kl(np.asarray(u), np.asarray(sigma))) - c
        assert table[i, j] == pytest.approx(expected, abs=1e-4), (i, j)


def test_windowed_numpy_form_is_the_jax_one():
    u = np.linspace(0.0, 3.0, 31)
    for sigma in (0.02, 0.3, 3.0):
        jx = np.asarray(K.kl_vnq(jnp.asarray(u, jnp.float32), jnp.full(u.shape, 2 * np.log(sigma), jnp.float32), 1.0))
        np.testing.assert_allclose(jx, T.windowed_kl(u, np.full_like(u, sigma)), atol=2e-4)


@pytest.mark.parametrize("level", [0.07, 0.2])
def test_tabulated_kl_is_the_exact_kl_off_the_nodes(level):
    rng = np.random.default_rng(1)
    u = rng.uniform(0.0, 2.5, 40) * rng.choice([-1.0, 1.0], 40)
    v = rng.uniform(-3.5, 3.0, 40)  # log(sigma / a)
    theta, log_sigma2 = u * level, 2.0 * (v + np.log(level))
    got = np.asarray(K.kl_vnq_tabulated(jnp.asarray(theta, jnp.float32), jnp.asarray(log_sigma2, jnp.float32), level))
    c = T.far_field_offset()
    exact = np.array([T.exact_kl(abs(x), np.exp(y)) for x, y in zip(u, v)]) - c
    # bilinear interpolation on a 0.025 x 0.1 grid; the windowed form alone is off by up to ~0.6 nats here
    np.testing.assert_allclose(got, exact, atol=0.02)


def test_tabulated_kl_prefers_zero_for_broad_posteriors_and_the_windowed_form_does_not():
    a = 0.1
    theta = jnp.array([0.0, a], jnp.float32)
    for sigma in (0.5 * a, a):
        ls2 = jnp.full(2, 2 * np.log(sigma), jnp.float32)
        tab, win = np.asarray(K.kl_vnq_tabulated(theta, ls2, a)), np.asarray(K.kl_vnq(theta, ls2, a))
        exact = [T.exact_kl(0.0, sigma / a), T.exact_kl(1.0, sigma / a)]
        assert exact[1] - exact[0] > 0.2  # +a costs more than 0 ...
        assert tab[1] - tab[0] == pytest.approx(exact[1] - exact[0], abs=0.02)
        assert win[1] - win[0] < 0.0  # ... which the windowed form gets backwards


def test_tabulated_kl_gradients_match_finite_differences():
    jax.config.update("jax_enable_x64", True)
    try:
        f = lambda x: K.kl_vnq_tabulated(x[0], x[1], x[2])
        for point in ([0.031, -6.1, 0.1], [0.093, -4.4, 0.1], [-0.0127, -5.0, 0.08]):
            x = jnp.asarray(point, jnp.float64)  # off the nodes: the interpolant has kinks there
            g = np.asarray(jax.grad(f)(x))
            for k in range(3):
                h = 1e-7 * max(1.0, abs(point[k]))
                e = np.zeros(3)
                e[k] = h
                fd = (float(f(x + e)) - float(f(x - e))) / (2 * h)
                assert g[k] == pytest.approx(fd, rel=1e-3, abs=1e-3), (point, k)
    finally:
        jax.config.update("jax_enable_x64", False)
