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


# -- conditional dimensions -------------------------------------------------------------
def _conditional_space():
    return hpo.SearchSpace({
        "method": hpo.Categorical(["dense", "pruning", "svd", "vnq"]),
        "lr": hpo.Real(1e-4, 1e-1, log=True),
        "kl_end": hpo.Real(0.5, 5.0, condition=("method", {"svd", "vnq"})),
        "rate": hpo.Real(0.5, 0.99, condition=("method", "pruning")),
        "bits": hpo.Categorical([2, 3], condition=("method", ["vnq"])),
    })


def _active(p):
    return {"dense": set(), "pruning": {"rate"}, "svd": {"kl_end"},
            "vnq": {"kl_end", "bits"}}[p["method"]] | {"method", "lr"}


def test_conditional_inactive_dimensions_are_never_sampled():
    space = _conditional_space()
    samples = space.sample(400, rng=np.random.default_rng(0))
    assert {p["method"] for p in samples} == {"dense", "pruning", "svd", "vnq"}
    for p in samples:
        assert set(p) == _active(p), p
        assert space.validate(p) == p
    # the BO initial design and its model suggestions obey the conditions too
    opt = hpo.BayesianOptimizer(space, seed=0, n_initial=4, n_candidates=256, n_refine=2,
                                refine_steps=5)
    for i in range(7):
        p = opt.ask()
        assert set(p) == _active(p), p
        opt.tell(p, float(np.log(p["lr"])) + (p.get("kl_end", 0.0) or 0.0))


def test_conditional_inactive_dimensions_have_a_fixed_neutral_encoding():
    space = _conditional_space()
    layout = dict(zip(space.names, space.layout))
    dense = [p for p in space.sample(200, rng=np.random.default_rng(1)) if p["method"] == "dense"]
    feats = np.stack([space.to_features(p) for p in dense])
    for name in ("kl_end", "rate"):
        assert np.all(feats[:, layout[name][1]] == hpo.space.INACTIVE_FEATURE)
    _, start, size = layout["bits"]
    assert np.all(feats[:, start:start + size] == 0.0)
    # the jitted snap gives candidates the same encoding as the trials
    snapped = np.asarray(space.snap_features(np.random.default_rng(2).random(
        (300, space.n_features))))
    for row in snapped:
        p = space.from_features(row)
        np.testing.assert_allclose(row, space.to_features(p), atol=1e-12)
    # the GP's training inputs hold that constant column for every dense trial
    opt = hpo.BayesianOptimizer(space, seed=0)
    for p in dense[:5]:
        opt.tell(p, p["lr"])
    X, _ = opt._data()
    assert np.all(X[:, layout["kl_end"][1]] == hpo.space.INACTIVE_FEATURE)


def test_conditional_inactive_dimensions_are_never_journaled(tmp_path):
    import json

    space = _conditional_space()
    journal = tmp_path / "journal.jsonl"
    opt = hpo.RandomSearch(space, seed=3, journal=journal)
    for _ in range(20):
        p = opt.ask()
        opt.tell(p, 1.0)
    with pytest.raises(ValueError, match="'rate' is inactive"):
        opt.tell({"method": "dense", "lr": 1e-3, "rate": 0.9}, 1.0)
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    trials = [r for r in records if r["type"] in ("trial", "ask")]
    assert len(trials) == 40
    for r in trials:
        assert set(r["params"]) == _active(r["params"]), r
    header = records[0]["space"]
    assert header["kl_end"]["condition"] == {"parent": "method", "values": ["svd", "vnq"]}
    assert hpo.SearchSpace.from_dict(header) == space
    resumed = hpo.RandomSearch.resume(journal)
    assert len(resumed.trials) == 20 and resumed.space == space


@pytest.mark.parametrize("dims, match", [
    ({"x": hpo.Real(0, 1, condition=("m", ["a"]))}, "not in the space"),
    ({"x": hpo.Real(0, 1, condition=("m", ["a"])), "m": hpo.Categorical(["a"])}, "defined after"),
    ({"m": hpo.Real(0, 1), "x": hpo.Real(0, 1, condition=("m", [0.5]))}, "must be Categorical"),
    ({"m": hpo.Categorical(["a"]), "x": hpo.Real(0, 1, condition=("m", ["b"]))}, "not one of"),
])
def test_conditional_space_errors(dims, match):
    with pytest.raises(ValueError, match=match):
        hpo.SearchSpace(dims)


def test_conditional_validate_names_missing_and_nested_conditions():
    space = hpo.SearchSpace({"a": hpo.Categorical(["x", "y"]),
                             "b": hpo.Categorical(["u", "v"], condition=("a", "y")),
                             "c": hpo.Int(1, 4, condition=("b", "v"))})
    assert space.validate({"a": "x"}) == {"a": "x"}
    assert space.validate({"a": "y", "b": "u"}) == {"a": "y", "b": "u"}
    with pytest.raises(ValueError, match=r"missing \['c'\]"):
        space.validate({"a": "y", "b": "v"})
    with pytest.raises(ValueError, match="'c' is inactive"):
        space.validate({"a": "x", "c": 2})
    samples = space.sample(200, rng=np.random.default_rng(0))
    assert {tuple(sorted(p)) for p in samples} == {("a",), ("a", "b"), ("a", "b", "c")}


# -- enumeration of finite spaces ----------------------------------------------------------
def _brute_force_features(space):
    """Every configuration's features by Python enumeration and ``to_features``, deduplicated."""
    import itertools

    values = [d.choices if isinstance(d, hpo.Categorical) else range(d.low, d.high + 1)
              for d in space.dims.values()]
    rows = {}
    for combo in itertools.product(*values):
        p = {}
        for n, v in zip(space.names, combo):
            p[n] = v
        p = {n: p[n] for n in space.active_names(p)}
        rows.setdefault(tuple(space.to_features(p)), None)
    return np.array(list(rows))


def test_grid_features_enumerates_every_configuration_once():
    space = hpo.SearchSpace({"n": hpo.Int(1, 4), "w": hpo.Int(8, 64, log=True),
                             "c": hpo.Categorical(["a", "b", "c"])})
    grid = space.grid_features()
    assert space.n_configurations() == 4 * 57 * 3 == len(grid)
    np.testing.assert_array_equal(grid, _brute_force_features(space))  # same rows, same order
    assert len(np.unique(grid, axis=0)) == len(grid)
    # every sampled configuration is a row, and every row decodes to a configuration
    rows = {tuple(r) for r in grid}
    for p in space.sample(50, rng=np.random.default_rng(0)):
        assert tuple(space.to_features(p)) in rows
    for r in grid[::37]:
        np.testing.assert_array_equal(space.to_features(space.from_features(r)), r)
    assert space.grid_features(max_size=len(grid) - 1) is None
    assert _space().grid_features() is None and _space().n_configurations() is None  # a Real


def test_grid_features_under_conditions():
    space = hpo.SearchSpace({
        "method": hpo.Categorical(["dense", "svd", "vnq"]),
        "rank": hpo.Int(1, 3, condition=("method", {"svd", "vnq"})),
        "bits": hpo.Categorical([2, 3], condition=("method", "vnq")),
        "depth": hpo.Int(2, 3),
    })
    grid = space.grid_features()
    # dense: 2 depths; svd: 3 ranks x 2 depths; vnq: 3 ranks x 2 bits x 2 depths
    assert len(grid) == 2 + 6 + 12 < space.n_configurations() == 36
    expected = _brute_force_features(space)
    assert {tuple(r) for r in grid} == {tuple(r) for r in expected}
    assert len(np.unique(grid, axis=0)) == len(grid)
