"""Variational models: layer options reach every layer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt_jax.bayes.models import get_model


@pytest.mark.parametrize("name,shape", [("lenet300_100", (1, 28, 28, 1)), ("lenet5", (1, 28, 28, 1))])
def test_init_std_sets_every_kernel_scale(name, shape):
    model = get_model(name, num_classes=10, init_std=0.01)
    params = model.init(jax.random.key(0), jnp.zeros(shape))["params"]
    for layer, p in params.items():
        theta = np.asarray(p["theta"])
        # sample std of a N(0, 0.01^2) draw with >= 500 entries is within 15 % of 0.01
        assert abs(theta.std() / 0.01 - 1) < 0.15, (layer, theta.std())
    default = get_model(name, num_classes=10).init(jax.random.key(0), jnp.zeros(shape))["params"]
    fan_in = np.prod(default["fc1"]["theta"].shape[:-1])
    assert abs(np.asarray(default["fc1"]["theta"]).std() * np.sqrt(fan_in) - 1) < 0.15


def test_mask_in_training_reaches_layers():
    x = jnp.asarray(np.random.default_rng(0).random((4, 28, 28, 1)), jnp.float32)
    model = get_model("lenet300_100", num_classes=10, mask_in_training=True)
    params = model.init(jax.random.key(0), x)["params"]
    # every weight pruned (log alpha = 8 >= 3): the training-mode output is the bias (plus the 1e-4 noise floor)
    params = {k: dict(v, log_sigma2=jnp.log(v["theta"] ** 2) + 8.0) for k, v in params.items()}
    out, _ = model.apply({"params": params}, x, train=True, rngs={"noise": jax.random.key(1)},
                         mutable=["kl"])
    np.testing.assert_allclose(out, np.broadcast_to(params["fc3"]["bias"], out.shape), atol=1e-3)
