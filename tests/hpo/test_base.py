"""The optimiser contract: validation before recording, exact resume, shared journals."""

import gc
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import pytest

from nnopt_jax import hpo

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORKER = ROOT / "tests" / "helpers" / "study_worker.py"
SPACE = hpo.SearchSpace({"x": hpo.Real(-2.0, 2.0), "n": hpo.Int(1, 8),
                         "act": hpo.Categorical(["relu", "tanh"])})
FAST = dict(n_candidates=256, n_refine=2, refine_steps=10, fit_steps=10, n_initial=4)
FACTORIES = {
    "grid": lambda **kw: hpo.GridSearch(SPACE, n_points=3, **kw),
    "random": lambda **kw: hpo.RandomSearch(SPACE, **kw),
    "bo": lambda **kw: hpo.BayesianOptimizer(SPACE, **FAST, **kw),
}
BRANIN = hpo.get_function("branin")


def branin(p):
    return float(BRANIN.fn([p["x0"], p["x1"]]))


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("params, value, match", [
    ({"x": 3.0, "n": 2, "act": "relu"}, 1.0, "'x': value 3.0 outside"),
    ({"x": 0.0, "n": 2.5, "act": "relu"}, 1.0, "'n': expected an integer"),
    ({"x": 0.0, "n": True, "act": "relu"}, 1.0, "'n': expected an integer"),
    ({"x": "0", "n": 2, "act": "relu"}, 1.0, "'x': expected a real number"),
    ({"x": 0.0, "n": 2, "act": "gelu"}, 1.0, "'act': value 'gelu' is not one of"),
    ({"x": 0.0, "n": 2}, 1.0, "missing \\['act'\\]"),
    ({"x": 0.0, "n": 2, "act": "relu"}, "0.5", "float value"),
])
def test_a_rejected_tell_records_nothing(name, params, value, match, tmp_path):
    journal = tmp_path / "j.jsonl"
    opt = FACTORIES[name](seed=0, journal=journal)
    opt.tell(opt.ask(), 1.0)
    before = journal.read_text()
    with pytest.raises(ValueError, match=match):
        opt.tell(params, value)
    assert len(opt.trials) == 1 and journal.read_text() == before
    for _ in range(5):  # the optimiser keeps working (BO past its initial design)
        opt.tell(opt.ask(), 0.5)
    assert len(hpo.read_journal(journal)[1]) == 6


def test_told_values_are_canonical():
    opt = hpo.RandomSearch(SPACE)
    trial = opt.tell({"x": 1, "n": 3.0, "act": "tanh"}, 0.5)
    assert trial.params == {"x": 1.0, "n": 3, "act": "tanh"}
    assert isinstance(trial.params["x"], float) and isinstance(trial.params["n"], int)


def test_resumed_bo_asks_exactly_what_the_uninterrupted_one_asks(tmp_path):
    space = BRANIN.space()
    journal = tmp_path / "ref.jsonl"
    ref = hpo.BayesianOptimizer(space, seed=0, journal=journal, **FAST)
    asked = []
    for _ in range(21):
        p = ref.ask()
        asked.append(p)
        ref.tell(p, branin(p))
    del ref
    gc.collect()
    lines = journal.read_text().splitlines(keepends=True)
    trial_lines = [i for i, line in enumerate(lines) if '"type": "trial"' in line]
    for n in (5, 12, 20):
        for cut, case in ((trial_lines[n - 1] + 1, "after tell"),
                          (trial_lines[n - 1] + 2, "asked, then killed before tell")):
            copy = tmp_path / f"j{n}_{cut}.jsonl"
            copy.write_text("".join(lines[:cut]))
            resumed = hpo.BayesianOptimizer.resume(copy)  # settings from the header
            assert len(resumed.trials) == n and not resumed.pending
            assert resumed.ask() == asked[n], (n, case)


def test_two_optimisers_sharing_a_journal_see_each_other(tmp_path):
    journal = tmp_path / "j.jsonl"
    a = hpo.BayesianOptimizer(SPACE, seed=0, journal=journal, **FAST)
    b = hpo.BayesianOptimizer(SPACE, seed=0, journal=journal, **FAST)  # another worker
    pa = a.ask()
    pb = b.ask()  # b sees a's pending ask: the next design point, not the same one
    assert pa != pb
    ta = a.tell(pa, 1.0)
    tb = b.tell(pb, 2.0)
    assert (ta.number, tb.number) == (0, 1)
    for _ in range(4):
        a.tell(a.ask(), float(len(a.trials)))
        b.tell(b.ask(), float(len(b.trials)))
    a.refresh()
    assert len(a.trials) == len(b.trials) == 10
    assert sorted(t.number for t in a.trials) == list(range(10))
    assert len({json.dumps(t.params, sort_keys=True) for t in a.trials}) == 10


def test_a_study_of_other_settings_is_refused(tmp_path):
    journal = tmp_path / "j.jsonl"
    opt = hpo.BayesianOptimizer(SPACE, seed=0, journal=journal, **FAST)
    opt.tell(opt.ask(), 1.0)
    with pytest.raises(hpo.JournalError, match="seed: 0 -> 1"):
        hpo.BayesianOptimizer(SPACE, seed=1, journal=journal, **FAST).ask()
    with pytest.raises(hpo.JournalError, match="optimizer: 'BayesianOptimizer' -> 'RandomSearch'"):
        hpo.RandomSearch.resume(journal)
    with pytest.raises(hpo.JournalError, match="settings.kernel: 'matern52' -> 'rbf'"):
        hpo.BayesianOptimizer.resume(journal, kernel="rbf")
    with pytest.raises(hpo.JournalError, match="already holds a study"):
        hpo.minimize(lambda p: 0.0, SPACE, 3, journal=journal)
    with pytest.raises(hpo.JournalError, match="nothing to resume"):
        hpo.RandomSearch.resume(tmp_path / "missing.jsonl")


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_trials=2.5), "n_trials must be a positive integer"),
    (dict(n_trials="3"), "n_trials must be a positive integer"),
    (dict(n_trials=0), "n_trials must be a positive integer"),
    (dict(n_trials=3, n_workers=0), "n_workers must be a positive integer"),
    (dict(n_trials=3, seed=1.5), "seed must be a non-negative integer"),
    (dict(n_trials=3, n_canddates=5), "unknown setting"),
])
def test_minimize_arguments_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        hpo.minimize(lambda p: 0.0, SPACE, **kwargs)


def test_categorical_of_a_string_is_refused():
    with pytest.raises(ValueError, match="list of choices"):
        hpo.Categorical("relu")


def _run_worker(journal, n_trials, *, method="bo", sleep=0.0, env=None):
    return subprocess.Popen([sys.executable, str(WORKER), str(journal), str(n_trials),
                             "--method", method, "--sleep", str(sleep)], env=env)


def _cache_env(tmp_path):
    # Restarted workers load the compiled GP programs instead of compiling again.
    return {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax_cache"),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def test_two_worker_processes_share_one_study(tmp_path):
    journal = tmp_path / "j.jsonl"
    # Same seed in both: without the shared pending asks they would draw the same points.
    procs = [_run_worker(journal, 16, method="random", sleep=0.1) for _ in range(2)]
    assert [p.wait(timeout=240) for p in procs] == [0, 0]
    _, trials, asks = hpo.journal.scan_journal(journal)
    assert sorted(t.number for t in trials) == list(range(16))  # exactly 16, numbered once
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 16  # none repeated
    assert len({t.worker.rsplit(":", 1)[0] for t in trials}) == 2  # both processes told


def _told(journal):
    return hpo.journal.scan_journal(journal, quiet=True)[1] if journal.exists() else []


def _wait_for_records(journal, proc, n_new, timeout=120.0):
    """Waits until ``journal`` has ``n_new`` more lines (asks or tells) or ``proc`` ends."""
    lines = lambda: journal.read_bytes().count(b"\n") if journal.exists() else 0
    target, deadline = lines() + n_new, time.monotonic() + timeout
    while lines() < target and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)


def test_a_study_killed_at_random_moments_ends_as_the_uninterrupted_one(tmp_path):
    """SIGKILL 10 times, at random moments: during import, or just after one or two
    new journal records (while evaluating, compiling the next ask or writing); after
    some kills the last record is also cut in half, as a kill inside its write would
    leave it. Each kill is placed so that the worker cannot have finished. The
    resumed study must end with exactly the requested trials, each readable and
    numbered once, equal to the uninterrupted study's."""
    n_trials, env = 10, _cache_env(tmp_path)
    journal = tmp_path / "j.jsonl"
    rng = random.Random(0)
    kills = torn = 0
    while kills < 10:
        done = len(_told(journal))
        proc = _run_worker(journal, n_trials, sleep=0.05, env=env)
        if done >= n_trials - 2 or rng.random() < 0.3:
            time.sleep(rng.uniform(0.1, 0.5))  # during import or compilation
        else:  # after one or two more records, some of them mid-write
            _wait_for_records(journal, proc, rng.randint(1, 2))
            time.sleep(rng.uniform(0.0, 0.05))
        assert proc.poll() is None, "the worker finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        if rng.random() < 0.3 and journal.exists() and journal.stat().st_size:
            data = journal.read_bytes()
            start = data[:-1].rfind(b"\n") + 1
            journal.write_bytes(data[:start + (len(data) - start) // 2])
            torn += 1
    assert kills >= 10 and torn >= 1, (kills, torn)
    assert _run_worker(journal, n_trials, env=env).wait(timeout=240) == 0
    ref = tmp_path / "ref.jsonl"
    assert _run_worker(ref, n_trials, env=env).wait(timeout=240) == 0
    _, trials, _ = hpo.journal.scan_journal(journal)
    _, expected, _ = hpo.journal.scan_journal(ref)
    assert sorted(t.number for t in trials) == list(range(n_trials))
    assert [(t.params, t.value) for t in trials] == [(t.params, t.value) for t in expected]
