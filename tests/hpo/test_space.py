import numpy as np
import pytest
from scipy import stats

from nnopt_jax import hpo


def _space():
    return hpo.SearchSpace({"lr": hpo.Real(1e-5, 1e-1, log=True), "x": hpo.Real(-1.0, 2.0),
                            "width": hpo.Int(16, 512, log=True), "n": hpo.Int(1, 4),
                            "act": hpo.Categorical(["relu", "tanh", "gelu"])})


@pytest.mark.parametrize("make, match", [
    (lambda: hpo.Real(1.0, 1.0), "low < high"),
    (lambda: hpo.Real(2.0, 1.0), "low < high"),
    (lambda: hpo.Real(0.0, 1.0, log=True), "low > 0"),
    (lambda: hpo.Int(0, 10, log=True), "low > 0"),
    (lambda: hpo.Int(1.5, 3), "integers"),
    (lambda: hpo.Categorical([]), "at least one"),
    (lambda: hpo.Categorical(["a", "a"]), "distinct"),
    (lambda: hpo.SearchSpace({}), "non-empty"),
    (lambda: hpo.SearchSpace({"a": (0, 1)}), "Real, Int or Categorical"),
])
def test_invalid_spaces_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_unit_and_feature_round_trip():
    space = _space()
    rng = np.random.default_rng(0)
    for p in space.sample(50, rng=rng):
        assert space.from_unit(space.to_unit(p)) == p
        assert space.from_features(space.to_features(p)) == p
        f = space.to_features(p)
        assert f.shape == (space.n_features,) and np.all((f >= 0) & (f <= 1))
    assert space.n_features == 4 + 3


def test_features_one_hot_and_snap_is_projection():
    space = _space()
    f = space.to_features({"lr": 1e-3, "x": 0.0, "width": 64, "n": 3, "act": "tanh"})
    np.testing.assert_array_equal(f[4:], [0, 1, 0])
    rng = np.random.default_rng(1)
    raw = rng.random((20, space.n_features))
    snapped = np.asarray(space.snap_features(raw))
    for r, s in zip(raw, snapped):
        p = space.from_features(r)
        np.testing.assert_allclose(s, space.to_features(p), atol=1e-6)


def test_log_uniform_sampling_passes_ks():
    space = hpo.SearchSpace({"lr": hpo.Real(1e-5, 1e-1, log=True)})
    x = [p["lr"] for p in space.sample(2000, rng=np.random.default_rng(0))]
    assert stats.kstest(x, stats.loguniform(1e-5, 1e-1).cdf).pvalue > 0.01
    # and it is not uniform
    assert stats.kstest(x, stats.uniform(1e-5, 1e-1 - 1e-5).cdf).pvalue < 1e-6


def test_int_and_categorical_sampling_is_uniform():
    space = hpo.SearchSpace({"n": hpo.Int(1, 4), "c": hpo.Categorical(["a", "b", "c"])})
    ps = space.sample(3000, rng=np.random.default_rng(0))
    counts_n = np.bincount([p["n"] for p in ps], minlength=5)[1:]
    counts_c = np.unique([p["c"] for p in ps], return_counts=True)[1]
    assert stats.chisquare(counts_n).pvalue > 0.001
    assert stats.chisquare(counts_c).pvalue > 0.001


def test_dict_round_trip_and_hash():
    space = _space()
    again = hpo.SearchSpace.from_dict(space.to_dict())
    assert again == space and hash(again) == hash(space)
    with pytest.raises(ValueError, match="params do not match"):
        space.to_features({"lr": 1e-3})
