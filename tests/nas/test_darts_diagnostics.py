"""Dominant α-Hessian eigenvalue by power iteration; RobustDARTS early stop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt_jax.nas.darts.diagnostics import dominant_eigenvalue, early_stop_epoch, hvp


def test_power_iteration_matches_numpy_eig():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    eig = np.array([5.0, 2.0, 1.0, -0.5, 0.3, 0.1])
    h = (q * eig) @ q.T
    with jax.enable_x64(True):
        hj = jnp.asarray(h)
        # pytree input (two leaves) and a non-quadratic term with zero Hessian
        f = lambda t: 0.5 * (jnp.concatenate([t[0], t[1]]) @ hj @ jnp.concatenate([t[0], t[1]])) \
            + jnp.sum(t[0])
        x = (jnp.ones(2), jnp.zeros(4))
        v = (jnp.arange(2.0), jnp.arange(4.0))
        np.testing.assert_allclose(np.concatenate(hvp(f, x, v)), h @ np.arange(6.0) * 0
                                   + h @ np.concatenate([np.arange(2.0), np.arange(4.0)]),
                                   rtol=1e-12)
        lam = dominant_eigenvalue(f, x, key=jax.random.PRNGKey(0), num_iters=100)
    np.testing.assert_allclose(float(lam), 5.0, rtol=1e-6)


def test_early_stop_rule():
    assert early_stop_epoch([1.0] * 9, window=5) is None  # too short
    assert early_stop_epoch([1.0] * 10, window=5) is None  # flat
    # mean of the last 5 rose from 1 to 2: ratio 0.5 < 0.75 -> keep epoch i - 5
    assert early_stop_epoch([1.0] * 5 + [2.0] * 5, window=5) == 4
    assert early_stop_epoch([1.0] * 5 + [1.2] * 5, window=5) is None  # ratio 0.83
