import math

import pytest

from nnopt_jax import hpo

SPACE = hpo.SearchSpace({"x": hpo.Real(-1.0, 1.0), "k": hpo.Categorical(["a", "b", "fail"])})


def sphere(p):
    """Module-level (picklable) objective; raises for one category."""
    if p["k"] == "fail":
        raise RuntimeError("boom")
    return p["x"] ** 2 + (0.5 if p["k"] == "b" else 0.0)


def test_minimize_records_exceptions_as_failures():
    res = hpo.minimize(sphere, SPACE, n_trials=15, method="random", seed=0)
    assert len(res.trials) == 15
    failed = [t for t in res.trials if not t.ok]
    assert failed and all("boom" in t.error for t in failed)
    assert all(t.params["k"] == "fail" for t in failed)
    assert res.best_value == min(v for v in res.history if math.isfinite(v))


def test_minimize_parallel_workers(tmp_path):
    res = hpo.minimize(sphere, SPACE, n_trials=6, method="random", seed=1, n_workers=2,
                       journal=tmp_path / "j.jsonl")
    assert len(res.trials) == 6
    ref = [sphere(t.params) if t.params["k"] != "fail" else None for t in res.trials]
    for t, r in zip(res.trials, ref):
        assert (t.value == pytest.approx(r)) if r is not None else not t.ok
    assert len(hpo.read_journal(tmp_path / "j.jsonl")[1]) == 6


def test_grid_method_caps_trials():
    space = hpo.SearchSpace({"k": hpo.Categorical(["a", "b"])})
    res = hpo.minimize(lambda p: 1.0 if p["k"] == "a" else 0.0, space, 10, method="grid")
    assert len(res.trials) == 2 and res.best_params == {"k": "b"}
