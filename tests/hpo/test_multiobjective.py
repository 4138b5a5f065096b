"""ParEGO multi-objective optimiser: scalarisation, ask/tell, Pareto front."""

import numpy as np
import pytest

from nnopt_jax import hpo
from nnopt_jax.hpo.hypervolume import pareto_mask
from nnopt_jax.hpo.multiobjective import ParEGO, chebyshev_scalarize


def test_chebyshev_scalarization_formula():
    values = np.array([[0.0, 10.0], [2.0, 0.0], [1.0, 5.0]])
    w = np.array([0.25, 0.75])
    got = chebyshev_scalarize(values, w, rho=0.1)
    f = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])  # normalised by the observed range
    want = [max(w * r) + 0.1 * sum(w * r) for r in f]
    np.testing.assert_allclose(got, want)


class _Recorder:
    """A trivial base optimiser: proposes the best told point's x nudged; records tells."""

    made = []

    def __init__(self, space, *, seed):
        self.space, self.seed, self.told = space, seed, []
        _Recorder.made.append(self)

    def tell(self, params, value):
        self.told.append((dict(params), value))

    def ask(self):
        best = min((t for t in self.told if np.isfinite(t[1])), key=lambda t: t[1])[0]
        return {"x": float(np.clip(best["x"] + 0.01, 0, 1))}


def _objectives(p):
    x = p["x"]
    return (x**2, (x - 1) ** 2)  # the whole interval [0, 1] is Pareto optimal


def test_ask_tell_front_and_base_sees_scalarised_history():
    space = hpo.SearchSpace({"x": hpo.Real(0.0, 1.0)})
    _Recorder.made.clear()
    opt = ParEGO(space, 2, seed=1, base=_Recorder, n_initial=4)
    for k in range(8):
        p = opt.ask()
        vals = _objectives(p) if k != 5 else (float("nan"), 1.0)
        opt.tell(p, vals)
    assert len(opt.trials) == 8 and len(_Recorder.made) == 4  # base used after 4 initial
    last = _Recorder.made[-1]
    assert len(last.told) == 7 and np.isnan(last.told[5][1])  # failed trial told as nan
    front = opt.pareto_front()
    ok_values = np.array([t.values for t in opt.trials if t.ok])
    assert len(front) == int(pareto_mask(ok_values).sum())
    assert [v for _, v in front] == sorted(v for _, v in front)
    assert opt.hypervolume([1.0, 1.0]) > 0


def test_errors():
    space = hpo.SearchSpace({"x": hpo.Real(0.0, 1.0)})
    with pytest.raises(ValueError, match="num_objectives"):
        ParEGO(space, 1)
    opt = ParEGO(space, 2, seed=0)
    with pytest.raises(ValueError, match="expected 2 objective values"):
        opt.tell({"x": 0.5}, [1.0])
    with pytest.raises(ValueError, match="ref_point"):
        ParEGO(space, 2, ref_point=[1.0, 2.0, 3.0])


def test_default_base_is_the_bayesian_optimizer_past_its_initial_design():
    space = hpo.SearchSpace({"x": hpo.Real(0.0, 1.0)})
    opt = ParEGO(space, 2, seed=0, n_initial=3)
    for _ in range(4):
        p = opt.ask()
        opt.tell(p, _objectives(p))
    xs = [t.params["x"] for t in opt.trials]
    assert len(set(np.round(xs, 9))) == 4 and all(0.0 <= x <= 1.0 for x in xs)
    # the rebuilt base must not serve its own initial design again: the model-based
    # suggestion differs from the first design point of a fresh optimiser with its seed
    rng = np.random.default_rng([0, 3])  # ParEGO's draw at its 4th ask: weights, then seed
    rng.dirichlet(np.ones(2))
    seed = int(rng.integers(2**31))
    fresh = hpo.BayesianOptimizer(space, seed=seed, n_initial=1).ask()
    assert fresh["x"] != xs[3]
