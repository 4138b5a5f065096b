"""Variational layers: local reparameterisation, evaluation masking, KL reporting."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt_jax.bayes import kl as K
from nnopt_jax.bayes.layers import VariationalConv, VariationalDense, weight_mask
from nnopt_jax.bayes.objectives import total_kl

N_SAMPLES = 4000


def _params(shape, seed=0, log_alpha_range=(-3.0, 1.0)):
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=shape).astype(np.float32)
    la = rng.uniform(*log_alpha_range, size=shape).astype(np.float32)
    return {"theta": jnp.asarray(theta), "log_sigma2": jnp.asarray(la + np.log(theta**2)),
            "bias": jnp.asarray(rng.normal(size=shape[-1]).astype(np.float32))}


def _zscores(a, b):
    """z statistics of the difference of means and of variances of two sample sets (axis 0)."""
    n = a.shape[0]
    ma, mb, va, vb = a.mean(0), b.mean(0), a.var(0), b.var(0)
    z_mean = (ma - mb) / np.sqrt((va + vb) / n)
    z_var = (va - vb) / np.sqrt(2 * (va**2 + vb**2) / n)
    return np.abs(z_mean).max(), np.abs(z_var).max()


@pytest.mark.accelerator
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_local_reparameterisation_matches_whole_weight_sampling(kind):
    if kind == "dense":
        layer = VariationalDense(features=2)
        x = jnp.asarray(np.random.default_rng(1).normal(size=(3, 4)), jnp.float32)
        params = _params((4, 2))
        forward = lambda w: x @ w + params["bias"]
    else:
        layer = VariationalConv(features=2, kernel_size=(2, 2))
        x = jnp.asarray(np.random.default_rng(1).normal(size=(1, 3, 3, 2)), jnp.float32)
        params = _params((2, 2, 2, 2))
        forward = lambda w: layer._conv(x, w) + params["bias"]
    keys = jax.random.split(jax.random.key(0), N_SAMPLES)
    lrt = jax.jit(jax.vmap(lambda k: layer.apply({"params": params}, x, train=True, rngs={"noise": k})))(keys)
    sigma = jnp.sqrt(jnp.exp(K.log_alpha(params["theta"], params["log_sigma2"]))) * jnp.abs(params["theta"])
    eps = jax.random.normal(jax.random.key(1), (N_SAMPLES, *params["theta"].shape))
    whole = jax.jit(jax.vmap(lambda e: forward(params["theta"] + sigma * e)))(eps)
    z_mean, z_var = _zscores(np.asarray(lrt, np.float64), np.asarray(whole, np.float64))
    assert z_mean < 4.5 and z_var < 4.5, (z_mean, z_var)
    # and against the closed form mean x theta
    closed = np.asarray(forward(params["theta"]))
    se = np.sqrt(np.asarray(lrt).var(0) / N_SAMPLES)
    assert np.abs((np.asarray(lrt).mean(0) - closed) / se).max() < 4.5


def test_one_noise_draw_per_output_element():
    layer = VariationalDense(features=3)
    params = _params((2, 3), log_alpha_range=(0.0, 0.5))
    x = jnp.ones((4, 2))  # identical rows: outputs differ only through independent noise
    y = layer.apply({"params": params}, x, train=True, rngs={"noise": jax.random.key(0)})
    assert len(np.unique(np.asarray(y).round(6))) == y.size


def test_evaluation_zeroes_weights_with_large_log_alpha():
    layer = VariationalDense(features=3)
    params = _params((5, 3), log_alpha_range=(-2.0, 6.0))
    x = jnp.asarray(np.random.default_rng(2).normal(size=(4, 5)), jnp.float32)
    la = np.asarray(K.log_alpha(params["theta"], params["log_sigma2"]))
    assert (la >= 3).any() and (la < 3).any()
    y = layer.apply({"params": params}, x, train=False)
    expected = np.asarray(x) @ (np.asarray(params["theta"]) * (la < 3)) + np.asarray(params["bias"])
    np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(weight_mask(params["theta"], params["log_sigma2"])), la < 3)
    # deterministic: no RNG needed, same output twice
    np.testing.assert_array_equal(np.asarray(y), np.asarray(layer.apply({"params": params}, x)))


def test_mask_in_training_removes_pruned_weights():
    params = _params((4, 2), log_alpha_range=(4.0, 6.0))  # every weight pruned
    x = jnp.ones((3, 4))
    masked = VariationalDense(features=2, mask_in_training=True)
    y = masked.apply({"params": params}, x, train=True, rngs={"noise": jax.random.key(0)})
    np.testing.assert_allclose(np.asarray(y), np.broadcast_to(np.asarray(params["bias"]), (3, 2)), atol=1e-3)
    free = VariationalDense(features=2)
    y2 = free.apply({"params": params}, x, train=True, rngs={"noise": jax.random.key(0)})
    assert np.abs(np.asarray(y2) - np.asarray(params["bias"])).max() > 0.1


def test_mask_noise_false_keeps_pruned_weights_noise_only():
    """Pruned weights drop out of the mean but keep their variance alpha theta^2."""
    params = _params((4, 2), log_alpha_range=(4.0, 6.0))  # every weight pruned
    x = jnp.asarray(np.random.default_rng(2).normal(size=(2000, 4)), jnp.float32)
    layer = VariationalDense(features=2, mask_in_training=True, mask_noise=False)
    y = np.asarray(layer.apply({"params": params}, x, train=True, rngs={"noise": jax.random.key(0)}),
                   np.float64)
    var = np.exp(np.asarray(K.log_alpha(params["theta"], params["log_sigma2"]), np.float64)) \
        * np.asarray(params["theta"], np.float64) ** 2
    z = (y - np.asarray(params["bias"])) / np.sqrt(np.asarray(x, np.float64) ** 2 @ var)
    assert abs(z.mean()) < 0.1 and abs(z.std() - 1) < 0.05, (z.mean(), z.std())
    # evaluation stays deterministic and masked
    y_eval = layer.apply({"params": params}, x[:3])
    np.testing.assert_allclose(y_eval, np.broadcast_to(params["bias"], (3, 2)), atol=1e-6)


def test_training_requires_noise_rng():
    layer = VariationalDense(features=2)
    params = _params((3, 2))
    with pytest.raises(Exception, match="noise"):
        layer.apply({"params": params}, jnp.ones((1, 3)), train=True)


@pytest.mark.parametrize("prior", ["log_uniform", "vnq", "vnq_tabulated"])
def test_layer_sows_its_kl(prior):
    kw = dict(prior="vnq", vnq_kl="tabulated") if prior == "vnq_tabulated" else dict(prior=prior)
    layer = VariationalDense(features=2, **kw)
    variables = layer.init(jax.random.key(0), jnp.ones((1, 3)))
    params = variables["params"]
    assert float(params["log_sigma2"][0, 0]) == (-10.0 if prior == "log_uniform" else -8.0)
    _, cols = layer.apply({"params": params}, jnp.ones((1, 3)), train=True,
                          rngs={"noise": jax.random.key(1)}, mutable=["kl"])
    if prior == "vnq":
        expected = K.kl_vnq(params["theta"], params["log_sigma2"], params["level"]).sum()
    elif prior == "vnq_tabulated":
        expected = K.kl_vnq_tabulated(params["theta"], params["log_sigma2"], params["level"]).sum()
    else:
        expected = K.kl_log_uniform(params["theta"], params["log_sigma2"]).sum()
    np.testing.assert_allclose(float(total_kl(cols)), float(expected), rtol=1e-5)


def test_vnq_clips_log_sigma2():
    layer = VariationalDense(features=2, prior="vnq")
    params = dict(_params((3, 2)), level=jnp.float32(0.2))
    params["log_sigma2"] = jnp.full((3, 2), 5.0)
    _, cols = layer.apply({"params": params}, jnp.ones((1, 3)), train=True, rngs={"noise": jax.random.key(1)},
                          mutable=["kl"])
    expected = K.kl_vnq(params["theta"], jnp.ones((3, 2)), 0.2).sum()  # log sigma^2 clipped to 1
    np.testing.assert_allclose(float(total_kl(cols)), float(expected), rtol=1e-5)


@pytest.mark.accelerator
def test_gradients_finite_through_layer_at_extreme_log_alpha():
    layer = VariationalConv(features=2, kernel_size=(2, 2))
    params = _params((2, 2, 1, 2))
    params["theta"] = params["theta"].at[0, 0, 0, 0].set(0.0)
    params["log_sigma2"] = params["log_sigma2"].at[0, 1, 0, 0].set(40.0).at[1, 0, 0, 1].set(-40.0)
    x = jnp.ones((1, 3, 3, 1))

    def loss(p):
        y, cols = layer.apply({"params": p}, x, train=True, rngs={"noise": jax.random.key(0)}, mutable=["kl"])
        return jnp.sum(y**2) + total_kl(cols)

    g = jax.jit(jax.grad(loss))(params)
    for leaf in jax.tree.leaves(g):
        assert np.all(np.isfinite(np.asarray(leaf)))


def test_standard_normal_noise_is_standard_normal_and_a_function_of_the_key():
    from scipy import stats

    from nnopt_jax.bayes.layers import standard_normal

    key = jax.random.key(5)
    z = np.asarray(standard_normal(key, (200, 50), jnp.float32), np.float64).ravel()
    assert z.dtype == np.float64 and z.size == 10000
    assert stats.kstest(z, "norm").pvalue > 1e-3
    np.testing.assert_array_equal(standard_normal(key, (200, 50), jnp.float32),
                                  jax.jit(lambda k: standard_normal(k, (200, 50), jnp.float32))(key))
    other = np.asarray(standard_normal(jax.random.key(6), (200, 50), jnp.float32)).ravel()
    assert abs(np.corrcoef(z, other)[0, 1]) < 0.05


def test_the_noise_scheme_follows_the_programs_device_count():
    """A chunk traced for one device (of several) draws with the single-device
    scheme; one traced for several with the partitionable one."""
    from nnopt_jax.bayes.layers import standard_normal
    from nnopt_jax.parallel import split_over

    key = jax.random.key(5)
    draw = lambda: np.asarray(standard_normal(key, (64, 8), jnp.float32))
    with split_over(1):
        one = draw()
    with split_over(2):
        several = draw()
    np.testing.assert_array_equal(one, draw())  # this process has one device
    assert not np.array_equal(one, several)
