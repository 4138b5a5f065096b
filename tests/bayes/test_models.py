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


def test_the_sparse_vd_authors_convolutions():
    """conv_init='glorot_uniform': U(-b, b), b = sqrt(6 / (fan_in + fan_out)), receptive field
    included (Lasagne's GlorotUniform); the dense layers keep init_std."""
    model = get_model("lenet5", num_classes=10, init_std=0.01, conv_init="glorot_uniform")
    params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
    for name, (cin, cout) in {"conv1": (1, 20), "conv2": (20, 50)}.items():
        theta = np.asarray(params[name]["theta"])
        bound = np.sqrt(6.0 / (25 * cin + 25 * cout))
        assert np.abs(theta).max() <= bound
        assert np.abs(theta).max() > 0.95 * bound  # fills the interval (500+ draws)
        assert abs(theta.std() / (bound / np.sqrt(3)) - 1) < 0.15  # the uniform's std
    assert abs(np.asarray(params["fc1"]["theta"]).std() / 0.01 - 1) < 0.15
    with pytest.raises(ValueError, match="conv_init must be None or 'glorot_uniform'"):
        get_model("lenet5", conv_init="he").init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))


@pytest.mark.parametrize("conv_mask_noise", [True, False])
def test_conv_mask_noise_overrides_the_models_mask_noise_in_the_convolutions(conv_mask_noise):
    x = jnp.asarray(np.random.default_rng(0).random((2, 28, 28, 1)), jnp.float32)
    model = get_model("lenet5", num_classes=10, mask_in_training=True, mask_noise=False,
                      conv_mask_noise=conv_mask_noise)
    params = model.init(jax.random.key(0), x)["params"]
    # conv1 fully pruned (log alpha = 8): with its noise masked its output is its bias
    params = dict(params, conv1=dict(params["conv1"], log_sigma2=jnp.log(params["conv1"]["theta"] ** 2) + 8.0))
    _, state = model.apply({"params": params}, x, train=True, rngs={"noise": jax.random.key(1)},
                           mutable=["kl", "intermediates"], capture_intermediates=True)
    conv1 = np.asarray(state["intermediates"]["conv1"]["__call__"][0])
    spread = np.abs(conv1 - np.asarray(params["conv1"]["bias"])).max()
    if conv_mask_noise:
        assert spread < 1e-3  # the 1e-8 variance floor only
    else:
        assert spread > 1e-2  # the pruned weights' noise
