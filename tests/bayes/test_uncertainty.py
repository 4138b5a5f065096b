"""Calibration / OOD metrics against hand computations and independent references;
MC predictive; the compress wiring (results.json["uncertainty"], reliability.png)."""

import json
import math
import pathlib

import jax
import numpy as np
import pytest
from scipy import special
from sklearn.metrics import roc_auc_score

from nnopt_jax.bayes import uncertainty as U
from nnopt_jax.bayes.models import VariationalMLP
from nnopt_jax.bayes.run import compress
from nnopt_jax.config import apply_overrides, load_config

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "configs" / "compress"

# ----------------------------------------------------------------------------- ECE

# conf .9 (right), .75 (wrong), .7 (right), .55 (right)
HAND_PROBS = np.array([[0.9, 0.1], [0.25, 0.75], [0.3, 0.7], [0.55, 0.45]])
HAND_LABELS = np.array([0, 0, 1, 0])


def test_ece_by_hand():
    # one bin: |acc - conf| = |3/4 - (.9 + .75 + .7 + .55)/4| = |.75 - .725|
    assert U.expected_calibration_error(HAND_PROBS, HAND_LABELS, n_bins=1) == pytest.approx(0.025, abs=1e-12)
    # 15 bins: .9 -> bin 13, .75 -> 11, .7 -> 10, .55 -> 8, one example each:
    # (|1 - .9| + |0 - .75| + |1 - .7| + |1 - .55|) / 4 = 1.6 / 4
    assert U.expected_calibration_error(HAND_PROBS, HAND_LABELS) == pytest.approx(0.4, abs=1e-12)
    b = U.calibration_bins(HAND_PROBS, HAND_LABELS)
    assert [int(i) for i in np.flatnonzero(b["count"])] == [8, 10, 11, 13]
    assert b["accuracy"][11] == 0.0 and b["confidence"][13] == pytest.approx(0.9)
    assert np.isnan(b["accuracy"][0])


def test_ece_bins_are_right_closed():
    # conf exactly 0.5 belongs to (0, .5], exactly 1.0 to the last bin
    probs = np.array([[0.5, 0.5], [1.0, 0.0]])
    b = U.calibration_bins(probs, np.array([0, 0]), n_bins=2)
    assert list(b["count"]) == [1.0, 1.0]
    assert U.expected_calibration_error(probs, np.array([1, 0]), n_bins=2) == pytest.approx(0.25)


def _ece_loop(probs, labels, n_bins):
    """Independent float64 reference: explicit loop over bins (lo, hi]."""
    probs = np.asarray(probs, np.float64)
    conf = probs.max(1)
    correct = probs.argmax(1) == labels
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        sel = [i for i in range(len(conf)) if lo < conf[i] <= hi]
        if sel:
            acc = sum(correct[i] for i in sel) / len(sel)
            avg = sum(conf[i] for i in sel) / len(sel)
            total += len(sel) / len(conf) * abs(acc - avg)
    return total


@pytest.mark.parametrize("n_bins", [1, 10, 15])
def test_ece_matches_float64_loop(n_bins):
    rng = np.random.default_rng(n_bins)
    probs = special.softmax(3.0 * rng.normal(size=(500, 10)), axis=1).astype(np.float32)
    labels = rng.integers(0, 10, 500)
    assert U.expected_calibration_error(probs, labels, n_bins=n_bins) == pytest.approx(
        _ece_loop(probs, labels, n_bins), abs=1e-12)


def test_ece_of_calibrated_perfect_predictions_is_zero():
    assert U.expected_calibration_error(np.eye(4), np.arange(4)) == 0.0


def test_metrics_reject_bad_shapes():
    with pytest.raises(ValueError, match="labels"):
        U.expected_calibration_error(HAND_PROBS, HAND_LABELS[:3])
    with pytest.raises(ValueError, match="labels"):
        U.negative_log_likelihood(HAND_PROBS, np.array([0, 0, 2, 0]))
    with pytest.raises(ValueError, match="n_bins"):
        U.expected_calibration_error(HAND_PROBS, HAND_LABELS, n_bins=0)


# ----------------------------------------------------------------------------- NLL, entropy, AUROC


def test_nll_matches_scipy_log_softmax():
    rng = np.random.default_rng(1)
    logits = 2.0 * rng.normal(size=(300, 7))
    labels = rng.integers(0, 7, 300)
    ref = -np.mean(special.log_softmax(logits, axis=1)[np.arange(300), labels])
    assert U.negative_log_likelihood(special.softmax(logits, axis=1), labels) == pytest.approx(ref, rel=1e-12)


def test_nll_floor_keeps_it_finite():
    nll = U.negative_log_likelihood(np.array([[1.0, 0.0]]), np.array([1]))
    assert nll == pytest.approx(-math.log(U.NLL_FLOOR))


def test_entropy_closed_forms():
    for k in (2, 7, 10):
        assert U.predictive_entropy(np.full(k, 1.0 / k)) == pytest.approx(math.log(k), rel=1e-12)
    assert np.all(U.predictive_entropy(np.eye(5)) == 0.0)
    p = np.array([[0.5, 0.25, 0.25]])
    assert U.predictive_entropy(p)[0] == pytest.approx(1.5 * math.log(2))
    assert U.predictive_entropy(np.ones((2, 3, 4)) / 4).shape == (2, 3)


def test_auroc_matches_sklearn_with_ties():
    rng = np.random.default_rng(2)
    pos = np.round(rng.normal(0.5, 1.0, 400), 1)  # rounded: many ties, within and across classes
    neg = np.round(rng.normal(0.0, 1.0, 600), 1)
    ref = roc_auc_score(np.r_[np.ones(400), np.zeros(600)], np.r_[pos, neg])
    assert U.auroc(pos, neg) == pytest.approx(ref, abs=1e-12)


def test_auroc_extremes():
    assert U.auroc([2.0, 3.0], [0.0, 1.0]) == 1.0
    assert U.auroc([0.0, 1.0], [2.0, 3.0]) == 0.0
    assert U.auroc([1.0, 1.0], [1.0]) == 0.5
    with pytest.raises(ValueError):
        U.auroc([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        U.auroc([np.nan], [1.0])


# ----------------------------------------------------------------------------- MC predictive


@pytest.fixture(scope="module")
def mlp():
    model = VariationalMLP(features=(16,), num_classes=4, log_sigma2_init=-3.0)
    x = jax.random.normal(jax.random.key(0), (20, 6))
    variables = model.init(jax.random.key(1), x)
    return model, {"params": variables["params"]}, np.asarray(x)


def test_mc_without_noise_equals_deterministic(mlp):
    model, variables, x = mlp
    det = lambda v, xb: model.apply(v, xb, train=False)
    ref = U.deterministic_predictive(det, variables, x)
    np.testing.assert_allclose(ref, jax.nn.softmax(model.apply(variables, x)), atol=1e-6)
    mc = U.mc_predictive(lambda v, xb, k: det(v, xb), variables, x, key=jax.random.key(3), n_samples=5,
                         batch_size=7)  # chunks of 7: the padded last chunk is dropped
    np.testing.assert_allclose(mc, ref, atol=1e-6)


def test_mc_with_identical_samples_equals_one_sample(mlp):
    model, variables, x = mlp
    fixed = jax.random.key(9)
    one = lambda v, xb, k: model.apply(v, xb, train=True, rngs={"noise": fixed})
    mc = U.mc_predictive(one, variables, x, key=jax.random.key(3), n_samples=6)
    single = jax.nn.softmax(one(variables, x, None))
    np.testing.assert_allclose(mc, single, atol=1e-6)
    assert np.abs(mc - U.deterministic_predictive(
        lambda v, xb: model.apply(v, xb), variables, x)).max() > 1e-3  # the noise is on


def test_mc_average_converges_as_samples_grow(mlp):
    model, variables, x = mlp
    sto = lambda v, xb, k: model.apply(v, xb, train=True, rngs={"noise": k})
    spread = {}
    for s in (1, 4, 16):
        runs = np.stack([U.mc_predictive(sto, variables, x, key=jax.random.key(r), n_samples=s)
                         for r in range(12)])
        np.testing.assert_allclose(runs.sum(-1), 1.0, atol=1e-5)
        spread[s] = runs.var(axis=0).mean()
    # Var of a mean of S independent samples ~ Var/S (a loose factor for 12 replicates)
    assert spread[1] > 2 * spread[4] > 4 * spread[16] > 0
    assert spread[1] / spread[16] == pytest.approx(16, rel=0.5)


def test_mc_rejects_bad_sample_counts(mlp):
    model, variables, x = mlp
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="n_samples"):
            U.mc_predictive(lambda v, xb, k: model.apply(v, xb), variables, x, key=jax.random.key(0),
                            n_samples=bad)


# ----------------------------------------------------------------------------- report, plot, OOD


def test_report_and_reliability_diagram(tmp_path):
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 50)
    confident = lambda x: np.where(np.arange(3) == x[:, :1].astype(int), 0.9, 0.05)
    x = np.concatenate([y[:, None], np.zeros((50, 1))], 1).astype(np.float32)
    x_ood = np.full((30, 2), -1.0, np.float32)  # -1 -> the uniform prediction below

    def fn(xx):
        p = confident(np.maximum(xx, 0))
        return np.where(xx[:, :1] < 0, 1 / 3, p)

    rep = U.uncertainty_report({"dense": fn, "mc": fn}, x, y, x_ood=x_ood)
    assert list(rep) == ["mc", "dense"]  # MODES order
    r = rep["mc"]
    assert set(r) == {"nll", "ece", "accuracy", "auroc_ood", "entropy_in", "entropy_ood", "reliability"}
    assert r["accuracy"] == 1.0 and r["auroc_ood"] == 1.0
    assert r["ece"] == pytest.approx(0.1) and r["nll"] == pytest.approx(-math.log(0.9))
    assert r["entropy_ood"] == pytest.approx(math.log(3))
    assert sum(r["reliability"]["count"]) == 50 and len(r["reliability"]["count"]) == 15
    json.dumps(rep, allow_nan=False)  # empty bins are None, not NaN
    png = U.reliability_diagram(rep, tmp_path / "rel.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert U.uncertainty_report({"dense": fn}, x, y)["dense"]["auroc_ood"] is None


def test_load_ood_uniform_noise_and_reasons(tmp_path, monkeypatch):
    like = np.zeros((6, 8, 8, 1), np.float32)
    a, why = U.load_ood(U.UNIFORM_NOISE, like)
    b, _ = U.load_ood(U.UNIFORM_NOISE, like)
    assert why is None and a.shape == like.shape and a.dtype == np.float32
    assert np.array_equal(a, b) and 0.0 <= a.min() and a.max() < 1.0
    x, why = U.load_ood("digits", like)
    assert why is None and x.shape == like.shape
    x, why = U.load_ood("digits", np.zeros((6, 28, 28, 1), np.float32))
    assert x is None and "shape" in why
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NNOPT_DATA_DIR", raising=False)
    x, why = U.load_ood("mnist", like, data_dir=tmp_path)
    assert x is None and "unavailable" in why and "MNIST not found" in why


# ----------------------------------------------------------------------------- compress wiring


def test_compress_uncertainty_vnq_modes_and_skips(tmp_path):
    # the wiring only: a log-uniform model stands in for VNQ (its KL compiles much faster),
    # its parameters with theta halved for the quantised ones
    model = VariationalMLP(features=(8,), num_classes=3)
    x = np.asarray(jax.random.uniform(jax.random.key(0), (30, 4, 4, 1)))
    params = model.init(jax.random.key(1), x)["params"]
    snapped = jax.tree_util.tree_map_with_path(
        lambda path, v: v / 2 if path[-1].key == "theta" else v, params)
    (tmp_path / "nodense").mkdir()
    u = U.compress_uncertainty(
        method="vnq", model=model, params=params, model_state={}, final_params=snapped,
        x_test=x, y_test=np.arange(30) % 3, seed=0, out_dir=tmp_path, data_name="digits",
        eval_cfg={"uncertainty_samples": 3, "ood_dataset": "digits", "dense_baseline": str(tmp_path / "nodense")})
    assert list(u["modes"]) == ["mc", "deterministic", "quantized"]
    assert u["modes"]["quantized"]["nll"] != u["modes"]["deterministic"]["nll"]  # final_params are used
    assert "before snapping" in u["notes"]["deterministic"] and "3 training-mode passes" in u["notes"]["mc"]
    assert "not an export directory" in u["notes"]["dense"]
    assert "shape" in u["ood_skipped"] and u["n_ood"] == 0  # digits are 8x8
    assert all(m["auroc_ood"] is None for m in u["modes"].values())
    assert (tmp_path / "reliability.png").is_file()


def test_compress_smoke_writes_uncertainty(tmp_path):
    """A dense run (its own "dense" mode), then sparse VD with that run as its dense baseline."""
    common = ["eval.uncertainty=true", "eval.ood_dataset=uniform_noise", "eval.uncertainty_samples=4"]
    dense = apply_overrides(load_config(f"{CONFIGS / 'lenet300_dense'}.py:smoke"), common)
    compress(dense, out_dir=tmp_path / "dense", progress=False)
    ud = json.loads((tmp_path / "dense" / "results.json").read_text())["uncertainty"]
    assert list(ud["modes"]) == ["dense"] and "not applicable" in ud["notes"]["mc"]

    cfg = load_config(f"{CONFIGS / 'lenet300_svd'}.py:smoke")
    cfg.model.name, cfg.model.features = "mlp", (32,)  # a small variational MLP keeps the smoke fast
    cfg = apply_overrides(cfg, common + [f"eval.dense_baseline={tmp_path / 'dense'}"])
    res = compress(cfg, out_dir=tmp_path / "svd", progress=False)
    saved = json.loads((tmp_path / "svd" / "results.json").read_text())
    u = saved["uncertainty"]
    assert u == json.loads(json.dumps(res["uncertainty"]))
    assert set(u) == {"modes", "notes", "n_samples", "n_bins", "n_test", "ood_dataset", "n_ood",
                      "ood_skipped", "plot", "wall_time_s"}
    assert list(u["modes"]) == ["mc", "deterministic", "dense"]
    assert (u["n_samples"], u["n_bins"], u["n_test"], u["n_ood"], u["ood_skipped"]) == (4, 15, 200, 200, None)
    for m in u["modes"].values():
        assert set(m) >= {"nll", "ece", "accuracy", "auroc_ood"}
        assert 0 <= m["ece"] <= 1 and m["nll"] > 0 and 0 <= m["auroc_ood"] <= 1
    # the deterministic mode is the masked network compress evaluates
    det = u["modes"]["deterministic"]
    last = json.loads((tmp_path / "svd" / "metrics.jsonl").read_text().splitlines()[-1])
    assert det["accuracy"] == pytest.approx(1 - saved["test_error"], abs=1e-12)
    assert det["nll"] == pytest.approx(last["test_loss"], rel=1e-4)
    # the dense mode, from the dense run's export, is that run's own network
    for k in ("nll", "ece", "accuracy", "auroc_ood"):
        assert u["modes"]["dense"][k] == pytest.approx(ud["modes"]["dense"][k], rel=1e-5, abs=1e-6)
    assert u["plot"] == "reliability.png" and (tmp_path / "svd" / "reliability.png").is_file()
    # the experiment's table reads both runs
    from tests.helpers.scripts import load_script

    table = load_script("experiments/uncertainty_table.py")
    out = table.main(["--run", f"dense={tmp_path / 'dense'}", "--run", f"svd={tmp_path / 'svd'}",
                      "--out", str(tmp_path / "table")])
    assert [(r["run"], r["mode"]) for r in out["rows"]] == [("dense", "dense"), ("svd", "mc"),
                                                            ("svd", "deterministic"), ("svd", "dense")]
    assert "| svd | sparse_vd | mc (S=4) |" in (tmp_path / "table" / "table.md").read_text()
