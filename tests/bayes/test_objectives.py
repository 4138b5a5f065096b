"""SGVLB, KL warm-up, learning-rate schedules and the VNQ level learning rate."""

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
