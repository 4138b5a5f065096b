"""Overlap-kernel GP BO: kernel, closed-form gradient, posterior, search on a toy space."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt_jax.nas.nb201 import bo


def _toy(n=12, d=3, cats=4, seed=0):
    rng = np.random.default_rng(seed)
    size = 16
    x = np.zeros((size, d), np.int32)
    x[:n] = rng.integers(0, cats, (n, d))
    y = np.zeros(size, np.float32)
    y[:n] = rng.normal(size=n)
    mask = np.arange(size) < n
    h = bo.GPHypers(jnp.asarray(0.3), jnp.asarray(rng.normal(size=d) * 0.3 - 0.5, jnp.float32),
                    jnp.asarray(-3.0))
    return x, y, mask, h


def test_overlap_kernel_and_one_hot_product_agree_with_definition():
    x, _, _, h = _toy()
    k = bo.OverlapKernel(jnp.exp(h.log_scale), jnp.exp(h.log_weights))(x, x)
    w = np.exp(np.asarray(h.log_weights, np.float64))
    ref = np.exp(0.3) * np.exp(-((x[:, None, :] != x[None, :, :]) * w).sum(-1))
    np.testing.assert_allclose(k, ref, rtol=1e-5)
    ncat = np.array([4, 4, 4])
    oh = bo.one_hot_codes(x, ncat)
    cross = bo.overlap_cross(h, oh, oh, jnp.asarray(np.repeat(np.arange(3), ncat)))
    np.testing.assert_allclose(cross, ref, rtol=1e-5)


def test_closed_form_gradient_matches_autodiff():
    x, y, mask, h = _toy()
    mismatch = (x[:, None, :] != x[None, :, :]).astype(np.float32)
    value, grad = jax.jit(bo._nlp_and_grad)(h, mismatch, y, mask)
    ref_value, ref_grad = jax.jit(jax.value_and_grad(bo.neg_log_posterior))(h, x, y, mask)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    for g, r in zip(grad, ref_grad):
        np.testing.assert_allclose(g, r, rtol=2e-3, atol=2e-3)


def test_padding_does_not_change_the_marginal_likelihood():
    x, y, mask, h = _toy(n=12)
    nlp = jax.jit(bo.neg_log_posterior)
    np.testing.assert_allclose(nlp(h, x, y, mask), nlp(h, x[:12], y[:12], mask[:12]), rtol=1e-6)


def test_posterior_matches_float64_reference():
    x, y, mask, h = _toy(n=10)
    ncat = np.array([4, 4, 4])
    cands = np.array(list(itertools.product(range(4), repeat=3)), np.int32)
    col = jnp.asarray(np.repeat(np.arange(3), ncat))
    mu, sd = bo.posterior(h, bo.one_hot_codes(x, ncat), y, mask, bo.one_hot_codes(cands, ncat), col)
    s, w, noise = np.exp(0.3), np.exp(np.asarray(h.log_weights, np.float64)), np.exp(-3.0) + 1e-5

    def k(a, b):
        return s * np.exp(-((a[:, None, :] != b[None, :, :]) * w).sum(-1))

    xv, yv = x[:10], y[:10].astype(np.float64)
    kinv = np.linalg.inv(k(xv, xv) + noise * np.eye(10))
    ks = k(cands, xv)
    np.testing.assert_allclose(mu, ks @ kinv @ yv, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(sd, np.sqrt(s - np.einsum("ij,jk,ik->i", ks, kinv, ks)),
                               rtol=1e-3, atol=1e-3)


def test_log_ei_matches_closed_form_and_stays_finite():
    from scipy import stats

    mu = jnp.array([0.5, 0.0, -1.0, -30.0])
    sigma = jnp.array([1.0, 0.3, 2.0, 1.0])
    got = jax.jit(bo.log_expected_improvement)(mu, sigma, jnp.asarray(0.2))
    z = (np.asarray(mu, np.float64) - 0.2) / np.asarray(sigma)
    ei = np.asarray(sigma) * (z * stats.norm.cdf(z) + stats.norm.pdf(z))
    np.testing.assert_allclose(got[:3], np.log(ei[:3]), rtol=1e-4)
    assert np.isfinite(got[3]) and got[3] < got[2]


def test_finds_the_optimum_of_a_toy_categorical_problem_without_repeats():
    cands = np.array(list(itertools.product(range(4), repeat=3)), np.int32)  # 64 candidates
    target = np.array([2, 0, 3])
    opt = bo.FiniteCategoricalBO(cands, seed=0, n_initial=5)
    tried = []
    for _ in range(20):
        i = opt.ask_index()
        tried.append(i)
        opt.tell_index(i, float((cands[i] != target).sum()))  # Hamming distance, minimised
        if (cands[i] == target).all():
            break
    assert len(set(tried)) == len(tried)
    assert (cands[tried[-1]] == target).all()  # random search needs ~32 tries on average


def test_bad_candidates():
    with pytest.raises(ValueError, match="integer array"):
        bo.FiniteCategoricalBO(np.zeros((4, 2)), seed=0)
