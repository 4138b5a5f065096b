"""NNOptSampler: space mapping, equivalence with BayesianOptimizer.ask, quality,
running/failed/pruned trials, warm start, and studies shared by two processes."""

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")

from optuna.distributions import (CategoricalDistribution, FloatDistribution,  # noqa: E402
                                  IntDistribution)
from optuna.trial import TrialState, create_trial  # noqa: E402

from nnopt_jax import hpo  # noqa: E402
from nnopt_jax.hpo import _adapter  # noqa: E402
from nnopt_jax.hpo.optuna import (NNOptSampler, SpaceMap, codec_to_distribution,  # noqa: E402
                                  distribution_to_codec, suggest_space)

optuna.logging.set_verbosity(optuna.logging.WARNING)
BRANIN = hpo.get_function("branin")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# every distribution type Optuna has, with log and step variants
DISTRIBUTIONS = {
    "f": FloatDistribution(-2.0, 3.0),
    "f_log": FloatDistribution(1e-5, 1e-1, log=True),
    "f_step": FloatDistribution(0.0, 1.0, step=0.25),
    "i": IntDistribution(-3, 7),
    "i_log": IntDistribution(1, 1024, log=True),
    "i_step": IntDistribution(0, 20, step=5),
    "c": CategoricalDistribution(["a", 1, 2.5, None, True]),
}
BRANIN_DISTS = {"x0": FloatDistribution(-5.0, 10.0), "x1": FloatDistribution(0.0, 15.0)}
MIXED_DISTS = {"act": CategoricalDistribution(["relu", "tanh", "gelu"]),
               "lr": FloatDistribution(1e-4, 1e-1, log=True),
               "width": IntDistribution(8, 256, log=True)}


def branin_objective(trial):
    return BRANIN.fn(np.array([trial.suggest_float("x0", -5.0, 10.0),
                               trial.suggest_float("x1", 0.0, 15.0)]))


def mixed_value(p):
    return ((math.log10(p["lr"]) + 2.5) ** 2 + (math.log2(p["width"]) - 5) ** 2 / 4
            + {"relu": 0.0, "tanh": 0.5, "gelu": 0.2}[p["act"]])


def mixed_objective(trial):
    return mixed_value({"act": trial.suggest_categorical("act", ["relu", "tanh", "gelu"]),
                        "lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True),
                        "width": trial.suggest_int("width", 8, 256, log=True)})


def _history(dists, n, seed):
    smap = SpaceMap(dists)
    rng = np.random.default_rng(seed)
    return [smap.to_optuna(p) for p in smap.space.sample(n, rng=rng)], smap


def _study_with(dists, params_list, values, direction="minimize", states=None, sampler=None):
    study = optuna.create_study(direction=direction, sampler=sampler)
    states = states or [TrialState.COMPLETE] * len(params_list)
    for p, v, s in zip(params_list, values, states):
        kw = {"value": v} if s == TrialState.COMPLETE else {}
        if s == TrialState.PRUNED:
            kw = {"intermediate_values": {0: v}}
        study.add_trial(create_trial(params=p, distributions=dists, state=s, **kw))
    return study


# -- lazy import ------------------------------------------------------------------
def test_hpo_does_not_import_optuna_and_missing_optuna_says_how_to_install():
    script = textwrap.dedent("""
        import sys
        import nnopt_jax.hpo
        assert "optuna" not in sys.modules, "import nnopt_jax.hpo imported optuna"
        sys.modules["optuna"] = None  # as if it were not installed
        try:
            import nnopt_jax.hpo.optuna
        except ImportError as err:
            assert 'pip install "nnopt_jax[optuna]"' in str(err), str(err)
        else:
            raise AssertionError("no ImportError")
    """)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT,
                   env={**os.environ, "NNOPT_JAX_CACHE": "off"})


# -- space mapping ------------------------------------------------------------------
def test_every_distribution_maps_to_a_dimension_and_back():
    smap = SpaceMap(DISTRIBUTIONS)
    dims = smap.space.dims
    assert dims["f"] == hpo.Real(-2.0, 3.0)
    assert dims["f_log"] == hpo.Real(1e-5, 1e-1, log=True)
    assert dims["f_step"] == hpo.Int(0, 4)  # grid index of 0, 0.25, ..., 1
    assert dims["i"] == hpo.Int(-3, 7)
    assert dims["i_log"] == hpo.Int(1, 1024, log=True)
    assert dims["i_step"] == hpo.Int(0, 4)
    assert dims["c"] == hpo.Categorical(["a", 1, 2.5, None, True])
    assert smap.distributions == DISTRIBUTIONS  # rebuilt from the codecs: a round trip
    for name, dist in DISTRIBUTIONS.items():
        assert codec_to_distribution(distribution_to_codec(dist)) == dist, name
    # values: every configuration of the space is a valid Optuna value, and back
    for p in smap.space.sample(50, rng=np.random.default_rng(0)):
        out = smap.to_optuna(p)
        for name, dist in DISTRIBUTIONS.items():
            assert dist._contains(dist.to_internal_repr(out[name])), (name, out[name])
        assert smap.to_nnopt(out) == p
    assert smap.to_optuna(smap.to_nnopt({"f": 0.5, "f_log": 1e-3, "f_step": 0.75, "i": 2,
                                         "i_log": 64, "i_step": 15, "c": None})) == {
        "f": 0.5, "f_log": 1e-3, "f_step": 0.75, "i": 2, "i_log": 64, "i_step": 15, "c": None}
    space = hpo.SearchSpace({"lr": hpo.Real(1e-4, 1e-1, log=True), "n": hpo.Int(2, 9),
                             "act": hpo.Categorical(["relu", "tanh"])})
    assert SpaceMap.from_space(space).space == space


def test_space_mapping_errors():
    with pytest.raises(ValueError, match="single value"):
        distribution_to_codec(FloatDistribution(1.0, 1.0))
    with pytest.raises(ValueError, match="parameter 'i_step'.*grid"):
        SpaceMap(DISTRIBUTIONS).to_nnopt({"f": 0.0, "f_log": 1e-3, "f_step": 0.5, "i": 0,
                                          "i_log": 2, "i_step": 7, "c": "a"})
    with pytest.raises(ValueError, match="parameter 'f'.*outside"):
        SpaceMap(DISTRIBUTIONS).to_nnopt({"f": 9.0, "f_log": 1e-3, "f_step": 0.5, "i": 0,
                                          "i_log": 2, "i_step": 5, "c": "a"})
    with pytest.raises(ValueError, match="running_trials"):
        NNOptSampler(running_trials="believe")
    with pytest.raises(ValueError, match="lie"):
        NNOptSampler(lie="median")
    with pytest.raises(ValueError, match="kernel"):
        NNOptSampler(kernel="cubic")
    with pytest.raises(ValueError, match="invalid BayesianOptimizer setting"):
        NNOptSampler(n_candidate=10)
    with pytest.raises(ValueError, match="set by the adapter"):
        NNOptSampler(n_initial=3)
    with pytest.raises(ValueError, match="seed"):
        NNOptSampler(seed=-1)


def test_suggest_space_runs_a_nnopt_space_in_optuna():
    space = hpo.SearchSpace({"lr": hpo.Real(1e-4, 1e-1, log=True), "n": hpo.Int(2, 9),
                             "act": hpo.Categorical(["relu", "tanh"])})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: suggest_space(t, space)["n"], n_trials=3)
    for t in study.trials:
        assert space.validate(t.params) == t.params


# -- equivalence with BayesianOptimizer.ask ------------------------------------------
@pytest.mark.parametrize("dists,value_fn,direction", [
    (BRANIN_DISTS, lambda p: BRANIN(p), "minimize"),
    (BRANIN_DISTS, lambda p: -BRANIN(p), "maximize"),
    (MIXED_DISTS, mixed_value, "minimize"),
])
def test_next_point_equals_bayesian_optimizer_ask(dists, value_fn, direction):
    params_list, smap = _history(dists, 9, seed=1)
    values = [value_fn(p) for p in params_list]
    study = _study_with(dists, params_list, values, direction,
                        sampler=NNOptSampler(seed=3))
    trial = study.ask(dists)
    opt = hpo.BayesianOptimizer(smap.space, seed=3)
    sign = -1.0 if direction == "maximize" else 1.0
    for p, v in zip(params_list, values):
        opt.tell(smap.to_nnopt(p), sign * v)
    assert trial.params == smap.to_optuna(opt.ask())
    assert trial.params not in params_list


def test_sequential_study_follows_the_bayesian_optimizer_trajectory():
    """Same seed, the BO's initial design enqueued: every suggestion equals the BO's
    own ask/tell loop, so the warm start carried between calls is the BO's too."""
    space = SpaceMap(BRANIN_DISTS).space
    opt = hpo.BayesianOptimizer(space, seed=5)
    expected = []
    for _ in range(12):
        p = opt.ask()
        expected.append(p)
        opt.tell(p, BRANIN(p))
    study = optuna.create_study(sampler=NNOptSampler(seed=5))
    for p in expected[:opt.n_initial]:
        study.enqueue_trial(p)
    study.optimize(branin_objective, n_trials=12)
    assert [t.params for t in study.trials] == expected
    # the sampler stored the GP hyperparameters with each model-based trial
    assert all("nnopt:gp_state:0" in t.system_attrs for t in study.trials[opt.n_initial:])


def test_a_fresh_sampler_continues_a_study_from_its_stored_warm_start():
    study = optuna.create_study(sampler=NNOptSampler(seed=2))
    study.optimize(branin_objective, n_trials=9)
    copy = optuna.create_study(sampler=NNOptSampler(seed=2))  # as after a restart
    copy.add_trials(study.trials)
    assert study.ask(BRANIN_DISTS).params == copy.ask(BRANIN_DISTS).params


def test_pruned_and_failed_trials_are_ignored():
    params_list, smap = _history(BRANIN_DISTS, 11, seed=4)
    values = [BRANIN(p) for p in params_list]
    states = [TrialState.COMPLETE] * 11
    states[2] = states[7] = TrialState.FAIL
    states[5] = TrialState.PRUNED
    study = _study_with(BRANIN_DISTS, params_list, values, states=states,
                        sampler=NNOptSampler(seed=0))
    got = study.ask(BRANIN_DISTS).params
    opt = hpo.BayesianOptimizer(smap.space, seed=0)
    for p, v, s in zip(params_list, values, states):
        if s == TrialState.COMPLETE:
            opt.tell(smap.to_nnopt(p), v)
    assert got == smap.to_optuna(opt.ask())


@pytest.mark.parametrize("mode", ["constant_liar", "kriging_believer", "ignore"])
def test_running_trials(mode):
    params_list, smap = _history(BRANIN_DISTS, 8, seed=6)
    values = [BRANIN(p) for p in params_list]
    study = _study_with(BRANIN_DISTS, params_list, values,
                        sampler=NNOptSampler(seed=1, running_trials=mode))
    first = study.ask(BRANIN_DISTS)  # stays running
    second = study.ask(BRANIN_DISTS)
    assert first.params != second.params
    # what the BO asks with the running trial represented as documented (its seed
    # mixed with the trial number, its warm start the fit that suggested `first`)
    opt = hpo.BayesianOptimizer(smap.space, seed=1)
    for p, v in zip(params_list, values):
        opt.tell(smap.to_nnopt(p), v)
    assert first.params == smap.to_optuna(opt.ask())
    warm = opt._state()
    opt = hpo.BayesianOptimizer(smap.space, seed=_adapter.derive_seed(1, second.number))
    opt._load_state(warm)
    for p, v in zip(params_list, values):
        opt.tell(smap.to_nnopt(p), v)
    if mode == "constant_liar":
        opt.tell(smap.to_nnopt(first.params), max(values))  # the worst value
    elif mode == "kriging_believer":
        opt.pending.append(hpo.journal.Ask("r", "w", smap.to_nnopt(first.params)))
    assert second.params == smap.to_optuna(opt.ask())


# -- behaviour in studies ------------------------------------------------------------
def test_beats_random_search_on_branin():
    """Median simple regret after 30 trials over 3 seeds: at least 10x below random's."""
    regrets = {"nnopt": [], "random": []}
    for seed in range(3):
        for name, sampler in (("nnopt", NNOptSampler(seed=seed)),
                              ("random", optuna.samplers.RandomSampler(seed=seed))):
            study = optuna.create_study(sampler=sampler)
            study.optimize(branin_objective, n_trials=30)
            regrets[name].append(BRANIN.regret(study.best_value))
    assert np.median(regrets["nnopt"]) < 0.1 * np.median(regrets["random"]), regrets


def test_categorical_and_int_space_and_dynamic_parameters():
    def objective(trial):
        v = mixed_objective(trial)
        if trial.params["act"] == "gelu":  # a conditional parameter: sampled independently
            v += trial.suggest_float("approx", 0.0, 1.0)
        return v

    study = optuna.create_study(sampler=NNOptSampler(seed=0, warn_independent_sampling=False))
    study.optimize(objective, n_trials=14)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    n_startup = 8  # min(10, 2 * 3 + 2)
    for t in study.trials[n_startup:]:  # the model chose act, lr and width
        assert "nnopt:relative_params:0" in t.system_attrs
    keys = {tuple(sorted((k, t.params[k]) for k in MIXED_DISTS)) for t in study.trials}
    assert len(keys) == len(study.trials)
    assert study.best_value < 1.0


def test_multi_objective_study_is_refused():
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=NNOptSampler())
    with pytest.raises(ValueError, match="single objective.*ParEGO"):
        study.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0), n_trials=1)


def test_seed_and_reseed():
    a = optuna.create_study(sampler=NNOptSampler(seed=7))
    b = optuna.create_study(sampler=NNOptSampler(seed=7))
    a.optimize(branin_objective, n_trials=3)
    b.optimize(branin_objective, n_trials=3)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    sampler = NNOptSampler(seed=7)
    sampler.reseed_rng()
    c = optuna.create_study(sampler=sampler)
    c.optimize(branin_objective, n_trials=3)
    assert [t.params for t in c.trials] != [t.params for t in a.trials]


# -- one study shared by two worker processes ------------------------------------------
WORKER = textwrap.dedent("""
    import sys, time
    import numpy as np
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from nnopt_jax.hpo.optuna import NNOptSampler
    from nnopt_jax.hpo.test_functions import BRANIN

    kind, where, n_trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(where)) if kind == "journal" else where

    def objective(trial):
        x = np.array([trial.suggest_float("x0", -5.0, 10.0), trial.suggest_float("x1", 0.0, 15.0)])
        time.sleep(0.05)  # so that the workers' trials overlap
        return BRANIN.fn(x)

    study = optuna.load_study(study_name="shared", storage=storage,
                              sampler=NNOptSampler(seed=0, n_startup_trials=4))
    study.optimize(objective, n_trials=n_trials)
""")


@pytest.mark.parametrize("kind", ["rdb", "journal"])
def test_two_workers_share_one_study(kind, tmp_path):
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    if kind == "rdb":
        where = f"sqlite:///{tmp_path / 'study.db'}"
        storage = RDBStorage(where)
    else:
        where = str(tmp_path / "study.log")
        storage = JournalStorage(JournalFileBackend(where))
    optuna.create_study(study_name="shared", storage=storage)
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, kind, where, "8"], cwd=ROOT,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for w in workers:
        _, err = w.communicate(timeout=240)
        assert w.returncode == 0, err
    trials = optuna.load_study(study_name="shared", storage=storage).trials
    assert sorted(t.number for t in trials) == list(range(16))  # each recorded once
    assert all(t.state == TrialState.COMPLETE for t in trials)
    points = {(t.params["x0"], t.params["x1"]) for t in trials}
    assert len(points) == 16  # no suggestion handed out twice (same seed in both workers)
    assert sum("nnopt:gp_state:0" in t.system_attrs for t in trials) >= 1  # the model ran
