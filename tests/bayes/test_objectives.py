"""SGVLB, KL warm-up, learning-rate schedules, the VNQ level learning rate and funnel projection."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nnopt_jax.bayes import objectives as O


def test_kl_warmup_schedule():
    spe = 10
    steps = jnp.array([0, 49, 50, 125, 200, 1000])
    beta = np.asarray(jax.jit(lambda s: O.kl_warmup(s, steps_per_epoch=spe))(steps))
    np.testing.assert_allclose(beta, [0.0, 0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(np.asarray(O.kl_warmup(jnp.array([0, 5]), steps_per_epoch=spe, start_epoch=0,
                                                      end_epoch=0)), [1.0, 1.0])


def test_lenet300_schedule_flat_then_linear():
    s = O.lenet300_lr_schedule(1e-3, steps_per_epoch=10, num_epochs=200, flat_epochs=100)
    np.testing.assert_allclose([float(s(t)) for t in (0, 999, 1000, 1500, 2000)], [1e-3, 1e-3, 1e-3, 5e-4, 0.0],
                               atol=1e-9)
    lin = O.linear_to_zero_schedule(1e-3, steps_per_epoch=10, num_epochs=10)
    np.testing.assert_allclose([float(lin(t)) for t in (0, 50, 100)], [1e-3, 5e-4, 0.0], atol=1e-9)


def test_sgvlb_value():
    logits = jnp.array([[2.0, 0.0], [0.0, 1.0]])
    labels = jnp.array([0, 0])
    ce = -np.mean([np.log(np.exp(2) / (np.exp(2) + 1)), np.log(1 / (1 + np.e))])
    assert float(O.sgvlb(logits, labels, jnp.float32(7.0), num_train=100, beta=0.5)) == pytest.approx(
        100 * ce + 3.5, rel=1e-5)


def test_level_gets_hundredfold_smaller_learning_rate():
    params = {"layer": {"theta": jnp.ones(3), "level": jnp.float32(0.2)}}
    tx = O.make_optimizer(optax.constant_schedule(1e-2), level_lr_factor=0.01)
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    # Adam's first step moves every parameter by lr * sign(g).
    np.testing.assert_allclose(np.asarray(updates["layer"]["theta"]), -1e-2, rtol=1e-3)
    np.testing.assert_allclose(float(updates["layer"]["level"]), -1e-4, rtol=1e-3)


def test_per_layer_level_factors_hold_or_scale_each_level():
    params = {name: {"theta": jnp.ones(3), "level": jnp.float32(0.2)} for name in ("conv1", "fc1", "fc2")}
    tx = O.make_optimizer(optax.constant_schedule(1e-2), level_lr_factor=0.0,
                          level_lr_factor_by_layer={"conv1": 0.01, "fc2": 0.5})
    grads = jax.tree.map(jnp.ones_like, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    for name in params:  # the weights keep the full rate
        np.testing.assert_allclose(np.asarray(updates[name]["theta"]), -1e-2, rtol=1e-3)
    np.testing.assert_allclose(float(updates["conv1"]["level"]), -1e-4, rtol=1e-3)
    assert float(updates["fc1"]["level"]) == 0.0  # the default 0 holds it
    np.testing.assert_allclose(float(updates["fc2"]["level"]), -5e-3, rtol=1e-3)


def _vnq_layer(rng, n=64):
    return {
        "theta": jnp.asarray(rng.normal(0.0, 0.3, n), jnp.float32),
        "log_sigma2": jnp.asarray(rng.uniform(-12.0, 3.0, n), jnp.float32),  # beyond the clip range too
        "level": jnp.float32(0.1),
        "bias": jnp.asarray(rng.normal(0.0, 1.0, 4), jnp.float32),
    }


def test_funnel_projection_matches_numpy_bound():
    rng = np.random.default_rng(0)
    params = {"conv": _vnq_layer(rng), "dense": {"kernel": jnp.ones((3, 2))}}
    updates = jax.tree.map(lambda p: jnp.asarray(rng.normal(0.0, 0.5, np.shape(p)), jnp.float32), params)
    tx = O.vnq_funnel_projection(threshold=3.0, level_min=0.05)
    out, _ = tx.update(updates, tx.init(params), params)
    new = jax.tree.map(lambda p, u: np.asarray(p + u, np.float64), params, out)
    stepped = jax.tree.map(lambda p, u: np.asarray(p, np.float64) + np.asarray(u, np.float64), params, updates)
    c = stepped["conv"]
    a = max(abs(c["level"]), 0.05)
    sigma = np.sqrt(np.exp(np.clip(c["log_sigma2"], -10.0, 1.0)))
    bound = a + sigma / np.sqrt(np.exp(3.0))  # the shifted log-alpha threshold: a + 0.223 sigma
    np.testing.assert_allclose(new["conv"]["theta"], np.clip(c["theta"], -bound, bound), rtol=1e-5, atol=1e-6)
    assert np.any(np.abs(c["theta"]) > bound) and np.any(np.abs(c["theta"]) < bound)  # both cases occur
    np.testing.assert_allclose(new["conv"]["level"], a, rtol=1e-6)
    for name in ("log_sigma2", "bias"):  # only theta and the level are projected
        np.testing.assert_allclose(new["conv"][name], c[name], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(new["dense"]["kernel"], stepped["dense"]["kernel"], rtol=1e-6)


def test_funnel_projection_keeps_level_floor_and_needs_params():
    rng = np.random.default_rng(1)
    params = {"layer": {**_vnq_layer(rng), "level": jnp.float32(-0.01)}}
    tx = O.vnq_funnel_projection(level_min=0.05)
    zeros = jax.tree.map(jnp.zeros_like, params)
    out, _ = jax.jit(tx.update)(zeros, tx.init(params), params)
    assert float(params["layer"]["level"] + out["layer"]["level"]) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="needs the parameters"):
        tx.update(zeros, tx.init(params))


def test_make_optimizer_chains_funnel_projection_after_adam():
    params = {"layer": {"theta": jnp.array([0.0, 0.2, -0.2]), "log_sigma2": jnp.full(3, -10.0),
                        "level": jnp.float32(0.1)}}
    tx = O.make_optimizer(optax.constant_schedule(0.5), level_lr_factor=0.01, funnel_clip=True)
    grads = {"layer": {"theta": jnp.array([-1.0, -1.0, 1.0]), "log_sigma2": jnp.zeros(3),
                       "level": jnp.float32(0.0)}}
    updates, _ = tx.update(grads, tx.init(params), params)
    theta = np.asarray(params["layer"]["theta"] + updates["layer"]["theta"])
    bound = 0.1 + np.exp(0.5 * (-10.0 - 3.0))
    # Adam's first step moves theta by 0.5 * sign(-g), to 0.5, 0.7, -0.7: all beyond a + 0.223 sigma.
    np.testing.assert_allclose(theta, [bound, bound, -bound], rtol=1e-5)
    plain = O.make_optimizer(optax.constant_schedule(0.5), level_lr_factor=0.01)
    raw, _ = plain.update(grads, plain.init(params), params)
    np.testing.assert_allclose(np.asarray(params["layer"]["theta"] + raw["layer"]["theta"]), [0.5, 0.7, -0.7],
                               rtol=1e-5)
