"""Contract tests run over every optimiser implementation."""

import math

import jax
import numpy as np
import pytest

from nnopt_jax import hpo

SPACE = hpo.SearchSpace({"x": hpo.Real(-2.0, 2.0), "lr": hpo.Real(1e-4, 1e-1, log=True),
                         "n": hpo.Int(1, 8), "act": hpo.Categorical(["relu", "tanh"])})
FAST = dict(n_candidates=256, n_refine=4, refine_steps=20, fit_steps=30)


def objective(p):
    return (p["x"] - 0.5) ** 2 + (math.log10(p["lr"]) + 2) ** 2 + 0.1 * p["n"] + (
        0.3 if p["act"] == "tanh" else 0.0)


FACTORIES = {
    "grid": lambda **kw: hpo.GridSearch(SPACE, n_points=3, **kw),
    "random": lambda **kw: hpo.RandomSearch(SPACE, **kw),
    "bo": lambda **kw: hpo.BayesianOptimizer(SPACE, n_initial=4, **FAST, **kw),
    "bo_rf": lambda **kw: hpo.BayesianOptimizer(SPACE, n_initial=4, surrogate="rf", **kw),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_ask_tell_best_and_failures(name, tmp_path):
    opt = FACTORIES[name](seed=0, journal=tmp_path / "j.jsonl")
    with pytest.raises(ValueError, match="no successful trial"):
        opt.best
    values = []
    for i in range(9):
        p = opt.ask()
        assert set(p) == set(SPACE.names)
        v = float("nan") if i == 2 else (float("inf") if i == 5 else objective(p))
        opt.tell(p, v)
        values.append(v)
    assert opt.n_failed == 2 and len(opt.trials) == 9
    best_p, best_v = opt.best
    assert best_v == min(v for v in values if math.isfinite(v))
    assert objective(best_p) == best_v
    batch = opt.ask(3)
    assert len(batch) == 3
    keys = {tuple(SPACE.to_features(p)) for p in batch}
    seen = {tuple(SPACE.to_features(t.params)) for t in opt.trials}
    assert len(keys) == 3 and not keys & seen  # distinct and not repeats of observed points
    for p in batch:
        f = SPACE.to_features(p)  # valid: ints/cats snapped
        np.testing.assert_allclose(SPACE.to_features(SPACE.from_features(f)), f, atol=1e-12)
    # journal: every told trial, resume restores the history and best
    _, trials = hpo.read_journal(tmp_path / "j.jsonl")
    assert len(trials) == 9 and sum(not t.ok for t in trials) == 2
    cls = type(opt)
    kwargs = {"n_points": 3} if name == "grid" else {}
    again = cls.resume(tmp_path / "j.jsonl", SPACE, **kwargs)
    assert again.best == opt.best and len(again.trials) == 9
    again.tell(again.ask(), 1.0)
    assert len(hpo.read_journal(tmp_path / "j.jsonl")[1]) == 10


def test_bo_beats_random_and_plots(tmp_path):
    res_bo = hpo.minimize(objective, SPACE, n_trials=20, method="bo", seed=0, n_initial=4,
                          **FAST)
    res_rs = hpo.minimize(objective, SPACE, n_trials=20, method="random", seed=0)
    assert res_bo.best_value < res_rs.best_value
    assert res_bo.best_value < 0.3  # optimum 0.1 at x=0.5, lr=1e-2, n=1, relu
    assert len(res_bo.history) == 20 and res_bo.best_value == min(res_bo.history)
    png = res_bo.plot_convergence(tmp_path / "conv.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_recompilation_as_trials_grow():
    """Counts XLA compilations over 40 asks: only when the padded size changes."""
    events = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda name, *a, **k: events.append(name) if "backend_compile" in name else None)
    opt = hpo.BayesianOptimizer(SPACE, seed=1, n_initial=4, **FAST)
    per_ask = []
    for _ in range(40):
        n0 = len(events)
        p = opt.ask()
        opt.tell(p, objective(p))
        per_ask.append(len(events) - n0)
    # model-based asks run with 4..39 observations: padded sizes 16, 32, 64
    compiling = [i for i, c in enumerate(per_ask) if c > 0]
    assert len(compiling) <= 3, (compiling, per_ask)
    assert all(c == 0 for c in per_ask[17:32])  # same padded size: no compilation at all


def test_invalid_arguments():
    with pytest.raises(ValueError, match="surrogate"):
        hpo.BayesianOptimizer(SPACE, surrogate="tree")
    with pytest.raises(ValueError, match="acquisition"):
        hpo.BayesianOptimizer(SPACE, acquisition="foo")
    with pytest.raises(ValueError, match="kernel"):
        hpo.BayesianOptimizer(SPACE, kernel="foo")
    with pytest.raises(ValueError, match="positive integer"):
        hpo.RandomSearch(SPACE).ask(0)
    with pytest.raises(ValueError, match="unknown method"):
        hpo.minimize(objective, SPACE, 3, method="tpe")


@pytest.mark.parametrize("shared, n_lengthscales", [(True, 2), (False, 4)])
def test_bo_fits_one_lengthscale_per_categorical_unless_asked_per_column(
        shared, n_lengthscales, tmp_path):
    space = hpo.SearchSpace({"x": hpo.Real(0.0, 1.0), "op": hpo.Categorical(["a", "b", "c"])})
    journal = tmp_path / "study.jsonl"
    opt = hpo.BayesianOptimizer(space, n_initial=4, seed=0, journal=journal, **FAST,
                                shared_categorical_lengthscales=shared)
    for _ in range(6):
        p = opt.ask()
        opt.tell(p, (p["x"] - 0.3) ** 2 + (p["op"] == "b"))
    opt.ask()  # a model suggestion: fits the GP
    state = opt._state()
    assert np.shape(state["gp"]["log_ls"]) == (n_lengthscales,)
    resumed = hpo.BayesianOptimizer.resume(journal)
    assert resumed.shared_categorical_lengthscales is shared
    assert np.shape(resumed._state()["gp"]["log_ls"]) == (n_lengthscales,)  # warm start kept
