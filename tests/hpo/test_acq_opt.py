import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt_jax import hpo
from nnopt_jax.hpo.acq_opt import maximize, sobol


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
