import itertools

import numpy as np
import pytest

from nnopt_jax import hpo


def test_grid_enumerates_exactly_the_product():
    space = hpo.SearchSpace({"a": hpo.Real(0.0, 1.0), "b": hpo.Int(1, 3),
                             "c": hpo.Categorical(["x", "y"]),
                             "lr": hpo.Real(1e-4, 1e-2, log=True)})
    grid = hpo.GridSearch(space, n_points=3)
    expected = list(itertools.product([0.0, 0.5, 1.0], [1, 2, 3], ["x", "y"],
                                      [1e-4, 1e-3, 1e-2]))
    got = [tuple(p.values()) for p in grid.ask(len(grid))]
    assert len(got) == len(expected) == 54
    for g, e in zip(got, expected):
        assert g[1:3] == e[1:3]
        np.testing.assert_allclose([g[0], g[3]], [e[0], e[3]], rtol=1e-12)
    with pytest.raises(ValueError, match="exhausted"):
        grid.ask()


def test_param_grid_like_sklearn():
    grid = hpo.GridSearch(param_grid={"lr": [0.1, 0.01], "depth": [1, 2, 3]})
    pts = grid.ask(len(grid))
    assert pts == [{"lr": lr, "depth": d} for lr in [0.1, 0.01] for d in [1, 2, 3]]
    space = hpo.SearchSpace({"lr": hpo.Real(1e-3, 1.0), "act": hpo.Categorical(["a", "b"])})
    grid = hpo.GridSearch(space, param_grid={"lr": [0.1, 0.5]})
    assert len(grid) == 4
    with pytest.raises(ValueError):
        hpo.GridSearch(space, param_grid={"lr": [5.0]})  # outside the bounds
    with pytest.raises(ValueError, match="not in the space"):
        hpo.GridSearch(space, param_grid={"zz": [1]})


def test_random_search_is_seeded():
    space = hpo.SearchSpace({"x": hpo.Real(0, 1)})
    a = hpo.RandomSearch(space, seed=3).ask(5)
    b = hpo.RandomSearch(space, seed=3).ask(5)
    c = hpo.RandomSearch(space, seed=4).ask(5)
    assert a == b and a != c
