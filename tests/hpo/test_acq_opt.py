import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt_jax import hpo
from nnopt_jax.hpo.acq_opt import maximize, maximize_exhaustive, sobol


def test_maximizer_finds_known_maximum():
    # two bumps; the global maximum (value 1) is at c1 up to exp(-33) corrections
    c1, c2 = jnp.array([0.731, 0.242, 0.555]), jnp.array([0.2, 0.8, 0.3])
    score = lambda x: (jnp.exp(-jnp.sum((x - c1) ** 2) / 0.02)
                       + 0.6 * jnp.exp(-jnp.sum((x - c2) ** 2) / 0.02))
    cand = jnp.asarray(sobol(256, 3, seed=0))
    pts, vals = jax.jit(lambda c: maximize(score, c, snap=lambda x: jnp.clip(x, 0, 1),
                                           n_refine=4, n_steps=200, learning_rate=0.01))(cand)
    np.testing.assert_allclose(pts[0], c1, atol=2e-3)
    assert float(vals[0]) == pytest.approx(1.0, abs=1e-4)
    assert np.all(np.diff(np.asarray(vals)) <= 1e-12)  # sorted, best first


def test_maximizer_respects_bounds_and_snaps():
    space = hpo.SearchSpace({"x": hpo.Real(0, 1), "n": hpo.Int(1, 5),
                             "c": hpo.Categorical(["a", "b", "c"])})
    target = jnp.asarray(space.to_features({"x": 1.0, "n": 3, "c": "b"}))
    score = lambda x: -jnp.sum((x - target) ** 2) + x[0]  # pushes x past its upper bound
    cand = jnp.asarray(sobol(128, space.n_features, seed=1))
    pts, _ = maximize(score, cand, snap=space.snap_features, n_refine=4, n_steps=100,
                      learning_rate=0.05)
    best = space.from_features(np.asarray(pts[0]))
    assert best["n"] == 3 and best["c"] == "b" and best["x"] == 1.0


def test_exhaustive_maximizer_equals_brute_force_argmax():
    space = hpo.SearchSpace({"n": hpo.Int(0, 9), "m": hpo.Int(1, 30, log=True),
                             "c": hpo.Categorical(["a", "b", "c", "d"])})
    grid = space.grid_features()
    rng = np.random.default_rng(0)
    w, centre = rng.standard_normal(grid.shape[1]), rng.random(grid.shape[1])
    score = lambda x: jnp.sin(3.0 * x @ w) - jnp.sum((x - centre) ** 2)
    allowed = rng.random(len(grid)) > 0.3
    with jax.enable_x64(True):
        pts, vals = jax.jit(lambda g, a: maximize_exhaustive(score, g, a, n_return=5,
                                                             chunk=128))(grid, allowed)
    ref = np.sin(3.0 * grid @ w) - np.sum((grid - centre) ** 2, axis=1)
    ref = np.where(allowed, ref, -np.inf)
    order = np.argsort(-ref)[:5]
    np.testing.assert_array_equal(np.asarray(pts), grid[order])
    np.testing.assert_allclose(np.asarray(vals), ref[order], rtol=1e-12)
    assert np.all(np.isfinite(np.asarray(vals)))
    # with nothing allowed every score is -inf
    _, none = maximize_exhaustive(score, jnp.asarray(grid), jnp.zeros(len(grid), bool))
    assert np.all(np.isneginf(np.asarray(none)))


def test_bo_on_a_finite_space_scores_every_unseen_configuration(monkeypatch):
    space = hpo.SearchSpace({"n": hpo.Int(0, 5), "c": hpo.Categorical(["a", "b", "c", "d"])})
    opt = hpo.BayesianOptimizer(space, seed=0, n_initial=4, fit_steps=5,
                                exhaustive_limit=2**15)
    f = lambda p: (p["n"] - 3.2) ** 2 + "abcd".index(p["c"])
    for _ in range(4):
        p = opt.ask()
        opt.tell(p, f(p))

    def no_fallback(*args):
        raise AssertionError("the exhaustive path left no unseen configuration")

    monkeypatch.setattr(opt, "_random_unseen", no_fallback)
    asked = [tuple(t.params.values()) for t in opt.trials]
    for _ in range(24 - 4):  # every remaining configuration, without repeats
        p = opt.ask()
        opt.tell(p, f(p))
        asked.append(tuple(p.values()))
    assert opt._grid is not None and len(opt._grid) == 24
    assert sorted(asked) == sorted((n, c) for n in range(6) for c in "abcd")
    with pytest.raises(ValueError, match="exhaustive_limit"):
        hpo.BayesianOptimizer(space, exhaustive_limit=-1)
