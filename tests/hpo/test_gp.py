import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from nnopt_jax.hpo import gp


def _matern52_np(X1, X2, ls, amp):
    d = np.sqrt(np.sum(((X1[:, None] - X2[None]) / ls) ** 2, -1))
    r = np.sqrt(5.0) * d
    return amp * (1 + r + r**2 / 3) * np.exp(-r)


def _params(dim, seed=0):
    rng = np.random.default_rng(seed)
    return gp.GPParams(jnp.asarray(rng.normal(-1.0, 0.3, dim)), jnp.asarray(0.3),
                       jnp.asarray(-3.0), jnp.asarray(0.2))


def _data(n=7, dim=3, pad=16, seed=0):
    rng = np.random.default_rng(seed)
    X, y = rng.random((n, dim)), rng.standard_normal(n)
    Xp, yp, m = np.zeros((pad, dim)), np.zeros(pad), np.zeros(pad)
    Xp[:n], yp[:n], m[:n] = X, y, 1.0
    Xp[n:] = rng.random((pad - n, dim))  # garbage in padded rows must not matter
    yp[n:] = 123.0
    return X, y, Xp, yp, m


@pytest.mark.accelerator
def test_posterior_matches_dense_float64_formulas():
    with jax.enable_x64(True):
        X, y, Xp, yp, m = _data()
        p = _params(3)
        post = gp.posterior(p, jnp.asarray(Xp), jnp.asarray(yp), jnp.asarray(m))
        Xs = np.random.default_rng(5).random((4, 3))
        mean, var = jax.vmap(lambda x: gp.predict(post, x))(jnp.asarray(Xs))
        ls, amp = np.exp(np.asarray(p.log_ls)), float(np.exp(p.log_amp))
        noise = 1e-6 + float(np.exp(p.log_noise))
        K = _matern52_np(X, X, ls, amp) + noise * np.eye(len(X))
        Ks = _matern52_np(Xs, X, ls, amp)
        mu_ref = float(p.mean) + Ks @ np.linalg.solve(K, y - float(p.mean))
        var_ref = amp - np.einsum("ij,ji->i", Ks, np.linalg.solve(K, Ks.T))
        np.testing.assert_allclose(mean, mu_ref, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(var, var_ref, rtol=1e-7, atol=1e-10)
        mean_b, var_b = gp.predict_batch(post, jnp.asarray(Xs))  # the matrix-product form
        np.testing.assert_allclose(mean_b, mu_ref, rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(var_b, var_ref, rtol=1e-7, atol=1e-10)


@pytest.mark.accelerator
@pytest.mark.parametrize("kernel", gp.KERNELS)
def test_marginal_likelihood_matches_scipy_and_tinygp(kernel):
    with jax.enable_x64(True):
        X, y, Xp, yp, m = _data()
        p = _params(3, seed=1)
        ll = gp.log_marginal_likelihood(p, jnp.asarray(Xp), jnp.asarray(yp), jnp.asarray(m),
                                        kernel=kernel)
        K = np.asarray(gp.kernel_matrix(p, jnp.asarray(X), jnp.asarray(X), kernel=kernel))
        K = K + (1e-6 + float(np.exp(p.log_noise))) * np.eye(len(X))
        ref = stats.multivariate_normal(np.full(len(X), float(p.mean)), K).logpdf(y)
        np.testing.assert_allclose(ll, ref, rtol=1e-9)
        ll_tiny = gp.log_marginal_likelihood_tinygp(p, jnp.asarray(Xp), jnp.asarray(yp),
                                                   jnp.asarray(m), kernel=kernel)
        np.testing.assert_allclose(ll_tiny, ref, rtol=1e-9)
        if kernel == "matern52":
            np.testing.assert_allclose(K - np.diag(np.diag(K)), _matern52_np(
                X, X, np.exp(np.asarray(p.log_ls)), float(np.exp(p.log_amp)))
                - np.diag(np.full(len(X), float(np.exp(p.log_amp)))), rtol=1e-10, atol=1e-12)


def test_likelihood_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        _, _, Xp, yp, m = _data(seed=2)
        p = _params(3, seed=2)
        f = lambda q: gp.neg_log_posterior(q, jnp.asarray(Xp), jnp.asarray(yp), jnp.asarray(m),
                                           kernel="matern52", min_noise=1e-6)
        value, g = jax.value_and_grad(f)(p)
        # the differentiated (inverse factor) and plain (one solve) forms agree
        np.testing.assert_allclose(value, f(p), rtol=1e-12)
        eps = 1e-6
        for i in range(3):
            e = jnp.zeros(3).at[i].set(eps)
            fd = (f(p._replace(log_ls=p.log_ls + e)) - f(p._replace(log_ls=p.log_ls - e))) / (2 * eps)
            np.testing.assert_allclose(g.log_ls[i], fd, rtol=1e-5)
        fd = (f(p._replace(log_noise=p.log_noise + eps))
              - f(p._replace(log_noise=p.log_noise - eps))) / (2 * eps)
        np.testing.assert_allclose(g.log_noise, fd, rtol=1e-5)


def test_tril_inverse():
    with jax.enable_x64(True):
        A = np.random.default_rng(0).standard_normal((64, 64))
        L = np.linalg.cholesky(A @ A.T + 64 * np.eye(64))
        np.testing.assert_allclose(gp.tril_inverse(jnp.asarray(L)), np.linalg.inv(L), atol=1e-12)


def test_fit_increases_posterior_and_recovers_smooth_function():
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        X = rng.random((14, 2))
        y = np.sin(3 * X[:, 0]) + 0.1 * X[:, 1]
        y = (y - y.mean()) / y.std()
        Xp, yp, m = np.zeros((16, 2)), np.zeros(16), np.zeros(16)
        Xp[:14], yp[:14], m[:14] = X, y, 1
        args = tuple(map(jnp.asarray, (Xp, yp, m)))
        init, _ = gp.prior_mean_std(2)
        p = gp.fit(*args, init, key=jax.random.key(0), n_restarts=2, n_steps=60)
        f = lambda q: gp.neg_log_posterior(q, *args, kernel="matern52", min_noise=1e-6)
        assert f(p) < f(init) - 1.0
        # x1 matters much less than x0: its lengthscale is longer
        assert p.log_ls[1] > p.log_ls[0]


def test_screening_keeps_the_starts_with_the_lowest_posterior_loss():
    """With no Adam steps, fit returns the best of the screened starts, which is
    the best of all ``n_screen`` starts, so never worse than the unscreened fit."""
    with jax.enable_x64(True):
        _, _, Xp, yp, m = _data(n=12, dim=2, seed=3)
        args = tuple(map(jnp.asarray, (Xp, yp, m)))
        f = lambda q: float(gp.neg_log_posterior(q, *args, kernel="matern52", min_noise=1e-6))
        init = _params(2, seed=1)
        key = jax.random.key(5)
        screened = gp.fit(*args, init, key=key, n_restarts=2, n_steps=0, n_screen=16)
        # the 16 starts, rebuilt as fit documents them: init, prior mean, 14 prior draws
        mu, sd = gp.prior_mean_std(2)
        leaves, treedef = jax.tree.flatten(mu)
        keys = jax.random.split(key, len(leaves))
        draws = [mm + ss * jax.random.normal(k, (14,) + mm.shape)
                 for mm, ss, k in zip(leaves, jax.tree.leaves(sd), keys)]
        starts = [init, mu] + [jax.tree.unflatten(treedef, [d[i] for d in draws]) for i in range(14)]
        losses = [f(s) for s in starts]
        assert f(screened) == pytest.approx(min(losses), rel=1e-9)
        plain = gp.fit(*args, init, key=key, n_restarts=2, n_steps=0)
        assert f(screened) <= f(plain)


def test_padded_size_schedule():
    assert [gp.padded_size(n) for n in (1, 16, 17, 33, 64, 65, 500)] == [64, 64, 64, 64, 64, 128, 512]
    assert [gp.padded_size(n, minimum=16) for n in (1, 17, 33)] == [16, 32, 64]


def test_grouped_lengthscales_give_a_hamming_distance_per_categorical():
    """Columns 0-2 one-hot (one lengthscale), column 3 numeric: numpy float64 reference."""
    groups = (0, 0, 0, 1)
    with jax.enable_x64(True):
        rng = np.random.default_rng(3)
        X = np.concatenate([np.eye(3)[rng.integers(3, size=9)], rng.random((9, 1))], axis=1)
        y = rng.standard_normal(9)
        p = gp.GPParams(jnp.asarray([-0.4, 0.7]), jnp.asarray(0.3), jnp.asarray(-3.0),
                        jnp.asarray(0.1))
        ls = np.exp(np.asarray(p.log_ls))[list(groups)]
        amp = float(np.exp(p.log_amp))
        K = np.asarray(gp.kernel_matrix(p, jnp.asarray(X), jnp.asarray(X), groups=groups))
        np.testing.assert_allclose(K, _matern52_np(X, X, ls, amp), rtol=1e-10, atol=1e-12)
        # two rows differing only in their choice are sqrt(2) / l apart: the
        # Matern-5/2 closed form at that distance
        two = np.array([[1.0, 0.0, 0.0, 0.5], [0.0, 1.0, 0.0, 0.5]])
        k01 = float(gp.kernel_matrix(p, jnp.asarray(two), jnp.asarray(two), groups=groups)[0, 1])
        r = np.sqrt(5.0) * np.sqrt(2.0) / ls[0]
        np.testing.assert_allclose(k01, amp * (1 + r + r**2 / 3) * np.exp(-r), rtol=1e-12)
        m = np.ones(9)
        ll = gp.log_marginal_likelihood(p, jnp.asarray(X), jnp.asarray(y), jnp.asarray(m),
                                        groups=groups)
        noise = 1e-6 + float(np.exp(p.log_noise))
        ref = stats.multivariate_normal(np.full(9, float(p.mean)),
                                        _matern52_np(X, X, ls, amp) + noise * np.eye(9)).logpdf(y)
        np.testing.assert_allclose(ll, ref, rtol=1e-9)
        ll_tiny = gp.log_marginal_likelihood_tinygp(p, jnp.asarray(X), jnp.asarray(y),
                                                   jnp.asarray(m), groups=groups)
        np.testing.assert_allclose(ll_tiny, ref, rtol=1e-9)
        init, _ = gp.prior_mean_std(2)
        fitted = gp.fit(jnp.asarray(X), jnp.asarray(y), jnp.asarray(m), init,
                        key=jax.random.key(0), n_restarts=1, n_steps=5, groups=groups)
        assert fitted.log_ls.shape == (2,)


def test_importing_hpo_leaves_the_reference_libraries_unloaded():
    """tinygp (with equinox) and scipy.stats cost a fresh process most of a second
    to import; the BO's hot path needs neither, so ``import nnopt_jax.hpo`` does
    not load them (the tinygp reference path and the Sobol design load them on use)."""
    import subprocess
    import sys

    code = ("import sys, nnopt_jax.hpo; "
            "print(sorted(m for m in ('tinygp', 'equinox', 'scipy.stats') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
