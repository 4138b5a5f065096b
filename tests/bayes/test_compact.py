"""Compact inference: dead and unused units removed, the logits unchanged."""

import numpy as np
import pytest

from nnopt_jax.bayes.compact import compact_layers, make_compact_predict
from nnopt_jax.bayes.models import ARCHITECTURES


def _reference(ops, kernels, biases, x):
    """Float64 numpy forward of the full network (VALID convolutions as explicit tap sums)."""
    x = np.asarray(x, np.float64)
    for op, arg in ops:
        if op == "flatten":
            x = x.reshape(len(x), -1)
        elif op == "dense":
            x = x @ kernels[arg] + biases[arg]
        elif op == "conv":
            w = kernels[arg]
            kh, kw = w.shape[:2]
            ho, wo = x.shape[1] - kh + 1, x.shape[2] - kw + 1
            y = np.zeros((len(x), ho, wo, w.shape[3]))
            for i in range(kh):
                for j in range(kw):
                    y += np.einsum("nhwc,cf->nhwf", x[:, i:i + ho, j:j + wo], w[i, j])
            x = y + biases[arg]
        elif op == "relu":
            x = np.maximum(x, 0.0)
        elif op == "maxpool":
            n, h, w_, c = x.shape
            x = x[:, : h // arg * arg, : w_ // arg * arg].reshape(n, h // arg, arg, w_ // arg, arg, c).max((2, 4))
    return x


def _lenet5_with_dead_units(rng):
    shapes = {"conv1": (5, 5, 1, 20), "conv2": (5, 5, 20, 50), "fc1": (800, 500), "fc2": (500, 10)}
    k = {n: rng.normal(size=s) * 0.1 for n, s in shapes.items()}
    b = {n: rng.normal(size=s[-1]) for n, s in shapes.items()}
    k["conv1"][..., :12] = 0.0  # 12 dead filters: constant maps equal to their bias
    k["conv2"][:, :, 12:15, :] = 0.0  # conv1 filters 12-14 never read: unused
    k["conv2"][..., :30] = 0.0  # 30 dead conv2 filters
    fc1 = k["fc1"].reshape(4, 4, 50, 500)
    fc1[:, :, 30:35, :] = 0.0  # conv2 channels 30-34 unused
    k["fc1"] = fc1.reshape(800, 500)
    k["fc1"][:, :400] = 0.0  # 400 dead units: ReLU(bias), some positive
    k["fc2"][450:, :] = 0.0  # fc1 units 450-499 unused
    return k, b


def test_lenet5_compact_predict_equals_the_full_network_and_is_smaller():
    rng = np.random.default_rng(0)
    kernels, biases = _lenet5_with_dead_units(rng)
    ops = ARCHITECTURES["lenet5"]
    layers = compact_layers(ops, kernels, biases)
    assert layers["conv1"]["kernel"].shape == (5, 5, 1, 5)  # filters 15-19 alive and read
    assert layers["conv2"]["kernel"].shape == (5, 5, 5, 15)  # 5 live inputs; 20 - 5 unused alive
    assert layers["fc1"]["kernel"].shape == (16 * 15, 50)  # units 400-449 alive and read
    assert layers["fc2"]["kernel"].shape == (50, 10)
    x = rng.uniform(size=(7, 28, 28, 1)).astype(np.float32)
    out = np.asarray(make_compact_predict(ops, layers)(x))
    np.testing.assert_allclose(out, _reference(ops, kernels, biases, x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dead_last_hidden", [False, True])
def test_mlp_folds_relu_of_dead_units_and_keeps_every_logit(dead_last_hidden):
    rng = np.random.default_rng(1)
    shapes = {"fc1": (784, 300), "fc2": (300, 100), "fc3": (100, 10)}
    k = {n: rng.normal(size=s) * 0.05 for n, s in shapes.items()}
    b = {n: rng.normal(size=s[-1]) for n, s in shapes.items()}
    k["fc1"][:, :250] = 0.0
    if dead_last_hidden:
        k["fc2"][:] = 0.0  # every fc2 unit constant: the logits are constant too
    k["fc3"][:, 3] = 0.0  # a dead logit stays (its bias)
    ops = ARCHITECTURES["lenet300_100"]
    layers = compact_layers(ops, k, b)
    assert layers["fc3"]["kernel"].shape[1] == 10
    x = rng.uniform(size=(4, 28, 28, 1)).astype(np.float32)
    out = np.asarray(make_compact_predict(ops, layers)(x))
    np.testing.assert_allclose(out, _reference(ops, k, b, x), rtol=1e-4, atol=1e-4)
