"""Masks, quantisation, statistics and magnitude pruning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt_jax.bayes import compression as C
from nnopt_jax.bayes import kl as K
from nnopt_jax.bayes import pruning as P


def _vd_params(rng, shapes, vnq=False):
    params = {}
    for name, shape in shapes.items():
        theta = rng.normal(size=shape).astype(np.float32) * 0.3
        la = rng.uniform(-4, 6, size=shape).astype(np.float32)
        params[name] = {"theta": jnp.asarray(theta), "log_sigma2": jnp.asarray(la + np.log(theta**2)),
                        "bias": jnp.zeros(shape[-1])}
        if vnq:
            params[name]["level"] = jnp.float32(0.25)
    return params


def test_layer_stats_and_compression():
    rng = np.random.default_rng(0)
    params = _vd_params(rng, {"fc1": (20, 10), "fc2": (10, 4)})
    weights = C.deterministic_weights(params)
    la = {n: np.asarray(K.log_alpha(p["theta"], p["log_sigma2"])) for n, p in params.items()}
    rows = C.layer_stats(weights)
    for row in rows:
        keep = (la[row["name"]] < 3).sum()
        assert row["n_nonzero"] == keep and row["n_weights"] == la[row["name"]].size
        assert row["sparsity"] == pytest.approx(1 - keep / la[row["name"]].size)
    total = sum(r["n_weights"] for r in rows) / sum(r["n_nonzero"] for r in rows)
    res = C.make_results(0.0123, weights)
    assert res["compression"] == pytest.approx(total)
    assert set(res) >= {"test_error", "compression", "layers"}
    assert set(res["layers"][0]) == {"name", "n_weights", "n_nonzero", "sparsity"}


def test_quantize_params_snaps_to_ternary_codebook():
    rng = np.random.default_rng(1)
    params = _vd_params(rng, {"conv": (3, 3, 2, 4)}, vnq=True)
    q, info = C.quantize_params(params)
    mask = C.variational_masks(params)["conv"]
    w = np.asarray(q["conv"]["theta"])
    assert set(np.unique(w)) <= {-0.25, 0.0, 0.25}
    assert np.all(w[~mask] == 0)
    theta = np.asarray(params["conv"]["theta"])
    expected = np.array([0.0, 0.25, -0.25])[np.argmin(np.abs(theta[..., None] - [0.0, 0.25, -0.25]), -1)]
    np.testing.assert_allclose(w[mask], expected[mask])
    # the quantised params evaluate to the same kernels through the deterministic path
    np.testing.assert_allclose(C.deterministic_weights(q)["conv"], w)
    assert info["conv"]["level"] == pytest.approx(0.25)


def test_markdown_table_lists_paper_numbers():
    res = C.make_results(0.0190, {"fc1": np.eye(4)})
    md = C.markdown_table([{"model": "lenet300_100", "method": "sparse_vd", "results": res, "epochs": 40}])
    assert "1.90 / 1.92" in md and "/ 68" in md


def test_magnitude_masks_reach_target_sparsity():
    rng = np.random.default_rng(2)
    params = {"mlp": {"fc1": {"kernel": jnp.asarray(rng.normal(size=(50, 20))), "bias": jnp.zeros(20)},
                      "fc2": {"kernel": jnp.asarray(rng.normal(size=(20, 5))), "bias": jnp.zeros(5)}}}
    masks = P.magnitude_masks(params, {"mlp/fc1": 0.9, "mlp/fc2": 0.5})
    assert masks["mlp/fc1"].mean() == pytest.approx(0.1, abs=1e-3)
    assert masks["mlp/fc2"].mean() == pytest.approx(0.5, abs=1e-2)
    kept = np.abs(np.asarray(params["mlp"]["fc1"]["kernel"]))[masks["mlp/fc1"] > 0]
    dropped = np.abs(np.asarray(params["mlp"]["fc1"]["kernel"]))[masks["mlp/fc1"] == 0]
    assert kept.min() > dropped.max()
    with pytest.raises(ValueError, match="unknown layers"):
        P.magnitude_masks(params, {"fc9": 0.5})


def test_masked_loss_gives_zero_gradient_to_pruned_weights():
    params = {"d": {"kernel": jnp.ones((3, 2)), "bias": jnp.zeros(2)}}
    masks = {"d": np.array([[1, 0], [0, 1], [1, 1]], np.float32)}

    def loss_fn(p, s, batch, *, key, step):
        return jnp.sum((batch[0] @ p["d"]["kernel"]) ** 2), (s, {})

    wrapped = P.masked_loss(loss_fn, masks)
    g = jax.grad(lambda p: wrapped(p, {}, (jnp.ones((4, 3)), None), key=None, step=0)[0])(params)
    assert np.all(np.asarray(g["d"]["kernel"])[masks["d"] == 0] == 0)
    assert np.all(np.asarray(g["d"]["kernel"])[masks["d"] == 1] != 0)


def test_quantize_params_keeps_outliers_beyond_k_levels():
    rng = np.random.default_rng(2)
    params = _vd_params(rng, {"fc": (40, 30)}, vnq=True)
    theta = np.asarray(params["fc"]["theta"]).copy()
    theta[0, :5] = [1.0, -0.9, 0.6, 0.3, 0.26]  # level 0.25: three beyond 2a, two within
    params["fc"]["theta"] = jnp.asarray(theta)
    params["fc"]["log_sigma2"] = jnp.full_like(params["fc"]["log_sigma2"], -12.0)  # all kept
    plain, _ = C.quantize_params(params)
    q, info = C.quantize_params(params, outlier_factor=2.0)
    w, codes = np.asarray(q["fc"]["theta"]), info["fc"]["codes"]
    far = np.abs(theta) > 0.5
    assert far.sum() >= 3 and np.array_equal(codes == C.OUTLIER_CODE, far)
    np.testing.assert_array_equal(w[far], theta[far])  # kept exactly
    np.testing.assert_array_equal(w[~far], np.asarray(plain["fc"]["theta"])[~far])
    np.testing.assert_array_equal(info["fc"]["outliers"], theta[far])  # C order
    with pytest.raises(ValueError, match="outlier_factor must be > 1"):
        C.quantize_params(params, outlier_factor=1.0)


def test_with_layer_from_swaps_one_nested_layer_only():
    params = {"a": {"theta": 1.0}, "block": {"b": {"theta": 2.0}, "c": {"theta": 3.0}}}
    other = {"a": {"theta": -1.0}, "block": {"b": {"theta": -2.0}, "c": {"theta": -3.0}}}
    mixed = C.with_layer_from(params, other, "block/b")
    assert mixed == {"a": {"theta": 1.0}, "block": {"b": {"theta": -2.0}, "c": {"theta": 3.0}}}
    assert params["block"]["b"] == {"theta": 2.0}  # the inputs are not modified
    assert C.with_layer_from(params, other, "a")["a"] == {"theta": -1.0}
    with pytest.raises(KeyError, match="no layer 'block/d'"):
        C.with_layer_from(params, other, "block/d")


def test_init_levels_uses_each_layers_quantile():
    rng = np.random.default_rng(0)
    params = {name: {"theta": jnp.asarray(rng.normal(size=(n,)), jnp.float32), "level": jnp.float32(0.0),
                     "log_sigma2": jnp.zeros(n)} for name, n in (("conv1", 500), ("fc1", 4000))}
    params["head"] = {"kernel": jnp.ones((2, 2))}
    out = C.init_levels(params, quantile=0.99, quantile_by_layer={"conv1": 0.9})
    for name, q in (("conv1", 0.9), ("fc1", 0.99)):
        want = np.quantile(np.abs(np.asarray(params[name]["theta"], np.float64)), q)
        np.testing.assert_allclose(float(out[name]["level"]), want, rtol=1e-6)
    with pytest.raises(ValueError, match=r"'conv3'.*VNQ layers are 'conv1', 'fc1'"):
        C.init_levels(params, quantile=0.9, quantile_by_layer={"conv3": 0.5})
