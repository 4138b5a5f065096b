"""Export round trip: the compressed files predict exactly what the masked model predicts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

from nnopt_jax.bayes import compression as C
from nnopt_jax.bayes import export as E
from nnopt_jax.bayes.models import get_model


def _sparsify(params, rng, frac=0.8):
    """Sets log sigma^2 so that a fraction ``frac`` of every kernel has log alpha >= 3."""

    def rec(p):
        if "theta" in p:
            q = dict(p)
            pruned = rng.uniform(size=p["theta"].shape) < frac
            la = np.where(pruned, 5.0, -5.0)
            q["log_sigma2"] = jnp.asarray(la + np.log(np.asarray(p["theta"]) ** 2 + 1e-8), jnp.float32)
            return q
        return {k: rec(v) for k, v in p.items()}

    return rec(params)


def _init_params(model, x, rng):
    """Random parameters of the right shapes without compiling ``model.init``."""
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)["params"]
    return jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape) * 0.1, s.dtype), shapes)


def test_pack_unpack_2bit_round_trip():
    codes = np.random.default_rng(0).integers(0, 3, size=1001).astype(np.uint8)
    packed = E.pack_2bit(codes)
    assert packed.nbytes == 251
    np.testing.assert_array_equal(E.unpack_2bit(packed, codes.size), codes)


@pytest.mark.parametrize("frac", [0.8, 0.99])  # predict multiplies densely / sparsely
@pytest.mark.parametrize("arch,shape", [("lenet300_100", (5, 28, 28, 1)), ("lenet5", (3, 28, 28, 1)),
                                        ("lenet5_conv_relu", (3, 28, 28, 1))])
def test_sparse_export_round_trip(arch, shape, frac, tmp_path):
    rng = np.random.default_rng(0)
    model = get_model("lenet5", conv_relu=True) if arch == "lenet5_conv_relu" else get_model(arch)
    x = jnp.asarray(rng.uniform(size=shape), jnp.float32)
    params = _sparsify(_init_params(model, x, rng), rng, frac)
    weights = C.deterministic_weights(params)
    biases = {n: np.asarray(p["bias"]) + 0.01 for n, p in C.iter_layers(params)}
    params = {n: dict(p, bias=jnp.asarray(biases[n])) for n, p in params.items()}
    meta = E.export_sparse(weights, biases, tmp_path, arch=arch)
    loaded = E.load_export(tmp_path)
    for name, w in weights.items():
        np.testing.assert_array_equal(loaded.dense_weights()[name], w)
    expected = np.asarray(jax.jit(lambda p, x: model.apply({"params": p}, x))(params, x))
    for backend in ("jax", "scipy"):
        np.testing.assert_allclose(loaded.predict(np.asarray(x), backend=backend), expected,
                                   rtol=1e-4, atol=1e-4)
    assert meta["bytes"] < 0.5 * meta["dense_bytes"]  # 80 % pruned: CSR is really smaller
    sparse = {n: sp.issparse(m) for n, m in loaded.matrices.items()}
    assert all(sparse.values()) if frac == 0.99 else not any(sparse.values())


def test_max_pool_matches_window_maximum():
    x = np.random.default_rng(0).normal(size=(2, 9, 7, 3)).astype(np.float32)
    expected = x[:, :8, :6].reshape(2, 4, 2, 3, 2, 3).max((2, 4))
    np.testing.assert_array_equal(E._max_pool(x, 2), expected)


def test_quantized_export_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    model = get_model("lenet300_100", prior="vnq")
    x = jnp.asarray(rng.uniform(size=(4, 28, 28, 1)), jnp.float32)
    params = _sparsify(_init_params(model, x, rng), rng, frac=0.5)
    q, info = C.quantize_params(params)
    meta = E.export_quantized(q, info, tmp_path, arch="lenet300_100")
    loaded = E.load_export(tmp_path)
    expected = np.asarray(jax.jit(lambda p, x: model.apply({"params": p}, x))(q, x))
    for backend in ("jax", "scipy"):
        np.testing.assert_allclose(loaded.predict(np.asarray(x), backend=backend), expected,
                                   rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="unknown backend 'torch'"):
        loaded.predict(np.asarray(x), backend="torch")
    n_weights = sum(np.asarray(i["codes"]).size for i in info.values())
    assert meta["bytes"] < n_weights / 4 + 4 * 600  # 2 bits per weight + codebooks + biases


def test_quantized_export_with_outliers_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    model = get_model("lenet300_100", prior="vnq")
    x = jnp.asarray(rng.uniform(size=(4, 28, 28, 1)), jnp.float32)
    params = _sparsify(_init_params(model, x, rng), rng, frac=0.5)
    theta = np.asarray(params["fc1"]["theta"]).copy()
    idx = rng.choice(theta.size, 50, replace=False)
    theta.flat[idx] = rng.choice([-1.0, 1.0], 50) * rng.uniform(1.0, 2.0, 50)
    params["fc1"]["theta"] = jnp.asarray(theta)
    q, info = C.quantize_params(params, outlier_factor=3.0)
    n_out = sum(i["outliers"].size for i in info.values())
    assert n_out >= 40  # most planted weights survive pruning
    meta = E.export_quantized(q, info, tmp_path, arch="lenet300_100")
    loaded = E.load_export(tmp_path)
    for name in info:  # every kernel, outliers at their places, as the quantised params hold it
        np.testing.assert_array_equal(loaded.dense_weights()[name], np.asarray(q[name]["theta"]))
    expected = np.asarray(jax.jit(lambda p, x: model.apply({"params": p}, x))(q, x))
    for backend in ("jax", "scipy"):
        np.testing.assert_allclose(loaded.predict(np.asarray(x), backend=backend), expected,
                                   rtol=1e-4, atol=1e-4)
    assert sum(l["outliers"] for l in meta["layers"].values()) == n_out


def test_load_export_missing_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="export directory"):
        E.load_export(tmp_path / "nope")


def test_predict_resolves_prefixed_layer_names(tmp_path):
    # dense/pruning runs export nnopt_jax.models.LeNet300100 kernels named "mlp/fc1" ...
    rng = np.random.default_rng(3)
    shapes = {"mlp/fc1": (784, 300), "mlp/fc2": (300, 100), "mlp/fc3": (100, 10)}
    weights = {n: rng.normal(size=s).astype(np.float32) * (rng.uniform(size=s) < 0.1) for n, s in shapes.items()}
    biases = {n: rng.normal(size=s[-1]).astype(np.float32) for n, s in shapes.items()}
    E.export_sparse(weights, biases, tmp_path, arch="lenet300_100")
    x = rng.uniform(size=(2, 28, 28, 1)).astype(np.float32)
    h = x.reshape(2, -1)
    for i, n in enumerate(shapes):
        h = h @ weights[n] + biases[n]
        h = np.maximum(h, 0) if i < 2 else h
    np.testing.assert_allclose(E.load_export(tmp_path).predict(x), h, rtol=1e-4, atol=1e-4)
