"""NNOptSearch: space conversion, suggest/complete, constant liar, JSON save/restore
(unit tests, no Ray started), and one Tune run with 8 trials at once on ray.init."""

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

tune = pytest.importorskip("ray.tune")

from nnopt_jax import hpo  # noqa: E402
from nnopt_jax.hpo.ray import NNOptSearch, convert_search_space  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BRANIN = hpo.get_function("branin")
CONFIG = {"x0": tune.uniform(-5.0, 10.0), "x1": tune.uniform(0.0, 15.0),
          "model": {"act": tune.choice(["relu", "tanh"])}, "epochs": 3}


def loss(config):
    return BRANIN.fn(np.array([config["x0"], config["x1"]])) + (
        0.5 if config["model"]["act"] == "tanh" else 0.0)


def searcher(**kw):
    return NNOptSearch(CONFIG, metric="loss", mode="min", seed=0, **kw)


def test_hpo_does_not_import_ray_and_missing_ray_says_how_to_install():
    script = textwrap.dedent("""
        import sys
        import nnopt_jax.hpo
        assert "ray" not in sys.modules, "import nnopt_jax.hpo imported ray"
        sys.modules["ray"] = None  # as if it were not installed
        try:
            import nnopt_jax.hpo.ray
        except ImportError as err:
            assert 'pip install "nnopt_jax[ray]"' in str(err), str(err)
        else:
            raise AssertionError("no ImportError")
    """)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT,
                   env={**os.environ, "NNOPT_JAX_CACHE": "off"})


def test_convert_search_space():
    codecs = convert_search_space({
        "u": tune.uniform(-1.0, 2.0), "lu": tune.loguniform(1e-4, 1e-1),
        "ri": tune.randint(1, 10), "lri": tune.lograndint(16, 513),
        "qu": tune.quniform(0.0, 1.0, 0.25), "qri": tune.qrandint(0, 20, 5),
        "c": tune.choice(["a", 2, None]), "nested": {"k": tune.uniform(0, 1)}, "const": 7})
    dims = {n: c.dimension for n, c in codecs.items()}
    assert dims == {"u": hpo.Real(-1.0, 2.0), "lu": hpo.Real(1e-4, 1e-1, log=True),
                    "ri": hpo.Int(1, 9), "lri": hpo.Int(16, 512, log=True),
                    "qu": hpo.Int(0, 4), "qri": hpo.Int(0, 4),
                    "c": hpo.Categorical(["a", 2, None]), "nested/k": hpo.Real(0.0, 1.0)}
    assert codecs["qu"].to_engine(3) == 0.75 and codecs["qri"].to_engine(3) == 15
    for bad, match in [({"g": tune.grid_search([1, 2])}, "grid_search"),
                       ({"n": tune.randn(0, 1)}, "Normal"),
                       ({"f": tune.sample_from(lambda _: 1)}, "Function"),
                       ({"q": tune.qloguniform(1e-3, 1.0, 1e-3)}, "qloguniform")]:
        with pytest.raises(ValueError, match=match):
            convert_search_space(bad)
    with pytest.raises(ValueError, match="SearchSpace or a dict"):
        NNOptSearch(space=[1, 2])
    with pytest.raises(ValueError, match="mode"):
        NNOptSearch(CONFIG, metric="loss", mode="minimise")
    with pytest.raises(ValueError, match="running_trials"):
        NNOptSearch(CONFIG, running_trials="ignore")


def test_suggest_complete_follows_the_bayesian_optimizer():
    """One trial at a time, the searcher's suggestions are BayesianOptimizer.ask's."""
    space = hpo.SearchSpace({"x0": hpo.Real(-5.0, 10.0), "x1": hpo.Real(0.0, 15.0)})
    search = NNOptSearch(space, metric="loss", mode="max", seed=4)
    opt = hpo.BayesianOptimizer(space, seed=4)
    for i in range(9):
        config = search.suggest(f"t{i}")
        p = opt.ask()
        assert config == p
        search.on_trial_complete(f"t{i}", {"loss": -BRANIN(config)})  # maximised
        opt.tell(p, BRANIN(p))
    assert [h["value"] for h in search.history] == [t.value for t in opt.trials]


def test_nested_names_constants_and_failed_trials():
    search = searcher(n_initial=3)
    configs = {f"t{i}": search.suggest(f"t{i}") for i in range(3)}
    for config in configs.values():
        assert set(config) == {"x0", "x1", "model"} and set(config["model"]) == {"act"}
    search.on_trial_complete("t0", {"loss": loss(configs["t0"])})
    search.on_trial_complete("t1", None, error=True)
    search.on_trial_complete("t2", {"other": 1.0})  # no metric: failed
    search.on_trial_complete("t2", {"loss": 1.0})  # again: ignored (with a warning)
    assert [h["value"] for h in search.history] == [loss(configs["t0"]), None, None]
    assert search.space.names == ("x0", "x1", "model/act")


def test_concurrent_suggestions_differ():
    search = searcher()
    first = [search.suggest(f"a{i}") for i in range(8)]  # initial design, nothing finished
    keys = {json.dumps(c, sort_keys=True) for c in first}
    assert len(keys) == 8
    for i, c in enumerate(first[:6]):
        search.on_trial_complete(f"a{i}", {"loss": loss(c)})
    more = [search.suggest(f"b{i}") for i in range(4)]  # model-based, 2 + 3 still running
    keys |= {json.dumps(c, sort_keys=True) for c in more}
    assert len(keys) == 12
    assert len(search.running) == 6


def test_save_restore_continues_identically(tmp_path):
    a = searcher(n_initial=4)
    live = {}
    for i in range(8):
        live[f"t{i}"] = a.suggest(f"t{i}")
        if i >= 2:  # two trials stay running throughout
            done = f"t{i - 2}"
            a.on_trial_complete(done, {"loss": loss(live.pop(done))})
    path = tmp_path / "searcher.json"
    a.save(str(path))
    state = json.loads(path.read_text())  # JSON, not a pickle
    assert len(state["history"]) == 6 and len(state["live"]) == 2
    b = NNOptSearch()
    b.restore(str(path))
    assert b.metric == "loss" and b.mode == "min" and b.space == a.space
    for i in range(8, 12):  # lock-step: same suggestions, same bookkeeping
        ca, cb = a.suggest(f"t{i}"), b.suggest(f"t{i}")
        assert ca == cb
        done = f"t{i - 2}"
        value = loss(live.pop(done))
        live[f"t{i}"] = ca
        a.on_trial_complete(done, {"loss": value})
        b.on_trial_complete(done, {"loss": value})
    assert a.get_state() == b.get_state()
    with pytest.raises(ValueError, match="not an NNOptSearch checkpoint"):
        (tmp_path / "bad.json").write_bytes(b"\x80\x04pickle")
        b.restore(str(tmp_path / "bad.json"))


def test_set_search_properties_and_points_to_evaluate():
    search = NNOptSearch(seed=0, points_to_evaluate=[{"x0": 1.0, "x1": 2.0,
                                                      "model": {"act": "tanh"}}])
    with pytest.raises(RuntimeError, match="no search space"):
        search.suggest("t0")
    assert search.set_search_properties("loss", "min", CONFIG)
    assert search.metric == "loss" and search.mode == "min"
    assert search.suggest("t0") == {"x0": 1.0, "x1": 2.0, "model": {"act": "tanh"}}
    assert not search.set_search_properties(None, None, {"y": tune.uniform(0, 1)})
    assert search.set_search_properties(None, None, {"epochs": 3})  # constants are fine
    no_metric = NNOptSearch(CONFIG)
    with pytest.raises(RuntimeError, match="metric"):
        no_metric.suggest("t0")
    search.add_evaluated_point({"x0": 9.4, "x1": 2.5, "model": {"act": "relu"}}, 0.4)
    assert search.history[-1]["value"] == 0.4
    with pytest.raises(ValueError, match="add_evaluated_point.*outside"):
        search.add_evaluated_point({"x0": 99.0, "x1": 2.5, "model": {"act": "relu"}}, 0.4)


# -- Tune on a local Ray instance ------------------------------------------------------
def test_tune_runs_eight_trials_at_once_and_the_searcher_restores(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    from ray.tune.search import ConcurrencyLimiter

    for var, value in {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0",
                       "RAY_AIR_NEW_OUTPUT": "0", "TUNE_MAX_PENDING_TRIALS_PG": "16"}.items():
        monkeypatch.setenv(var, value)
    barrier = tmp_path / "started"
    barrier.mkdir()

    def trainable(config):  # pickled by value: the workers never import jax or nnopt_jax
        import time
        import uuid

        from ray import tune as _tune

        start = time.time()
        (barrier / uuid.uuid4().hex).touch()
        # wait (at most 40 s) until 8 trials have started, then work for 0.5 s: a
        # Tune that runs fewer than 8 at once fails the overlap assertion below
        while len(list(barrier.iterdir())) < 8 and time.time() - start < 40:
            time.sleep(0.05)
        time.sleep(0.5)
        x0, x1 = config["x0"], config["x1"]
        value = (x1 - 5.1 / (4 * 3.14159265 ** 2) * x0 ** 2 + 5 / 3.14159265 * x0 - 6) ** 2 \
            + 10 * (1 - 1 / (8 * 3.14159265)) * math.cos(x0) + 10
        _tune.report({"loss": value, "start": start, "end": time.time()})

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        search = NNOptSearch(seed=0, n_initial=8)
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 0.25}),
            param_space={"x0": tune.uniform(-5.0, 10.0), "x1": tune.uniform(0.0, 15.0)},
            tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(search, max_concurrent=8),
                                        metric="loss", mode="min", num_samples=12),
            run_config=tune.RunConfig(name="nnopt", storage_path=str(tmp_path / "results"),
                                      verbose=0))
        results = tuner.fit()
    finally:
        ray.shutdown()
    df = results.get_dataframe()
    assert len(df) == 12 and not results.errors
    events = sorted([(s, 1) for s in df["start"]] + [(e, -1) for e in df["end"]])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak >= 8, f"at most {peak} trials ran at once"
    configs = {(round(a, 12), round(b, 12)) for a, b in zip(df["config/x0"], df["config/x1"])}
    assert len(configs) == 12  # the constant liar kept concurrent suggestions apart
    # the searcher checkpoint Tune wrote into the experiment directory
    exp_dir = tmp_path / "results" / "nnopt"
    assert list(exp_dir.glob("searcher-state-*.json"))
    restored = NNOptSearch()
    restored.restore_from_dir(str(exp_dir))
    assert len(restored.history) == 12 and not restored.running
    assert sorted(h["value"] for h in restored.history) == pytest.approx(sorted(df["loss"]))
    again = NNOptSearch()
    again.restore_from_dir(str(exp_dir))
    assert restored.suggest("next") == again.suggest("next")
