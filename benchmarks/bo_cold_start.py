"""Benchmark: a whole BO study in a fresh process, cold and warm compilation cache.

Each measurement is a new Python process that imports its library, runs a
50-trial study on Hartmann-6 and reports: the import time, the seconds
spent inside the optimiser (ask + tell, since scikit-optimize fits in tell)
for the first trial, the first model-based trial (after the initial design)
and the median of the last ten, and the whole study's wall time (import
included). Methods:

- ``nnopt_cold``: this project's ``BayesianOptimizer`` with an empty
  persistent compilation cache (``NNOPT_JAX_CACHE`` set to a fresh folder);
- ``nnopt_warm``: the same, with the folder the cold run filled;
- ``nnopt_nocache``: ``NNOPT_JAX_CACHE=off`` (every process compiles);
- ``optuna_gp``: Optuna's ``GPSampler``;
- ``skopt_gp``: scikit-optimize's ``gp_minimize``.

Every process runs with one intra-op thread and is pinned by the caller
(``taskset``) if wanted; processes run one after another, never two at once.

Usage:
    python benchmarks/bo_cold_start.py                  # 3 repeats, 50 trials
    python benchmarks/bo_cold_start.py --repeats 1 --trials 15 --out /tmp/cold

Writes ``--out``/bo_cold_start.json and .md (medians over repeats).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

METHODS = ("nnopt_cold", "nnopt_warm", "nnopt_nocache", "optuna_gp", "skopt_gp")

# The child: times its own imports and the study, prints one JSON line.
_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
method, n_trials, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
import numpy as np
# Hartmann-6 on [0, 1]^6 (minimum -3.32237), written here so that the peers'
# processes import only their own library.
A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
              [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                     [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
def hartmann6(x):
    x = np.asarray(x, dtype=float)
    return float(-ALPHA @ np.exp(-(A * (x - P) ** 2).sum(axis=1)))
names = [f"x{i}" for i in range(6)]
spent = []  # seconds inside the optimiser (ask + tell) per trial
if method == "nnopt":
    from nnopt_jax import hpo
    t_import = time.perf_counter() - t0
    opt = hpo.BayesianOptimizer(hpo.SearchSpace({k: hpo.Real(0.0, 1.0) for k in names}),
                                seed=seed)
    n_init = opt.n_initial
    for _ in range(n_trials):
        t = time.perf_counter(); p = opt.ask(); a = time.perf_counter() - t
        y = hartmann6([p[k] for k in names])
        t = time.perf_counter(); opt.tell(p, y); spent.append(a + time.perf_counter() - t)
elif method == "optuna_gp":
    import optuna, torch
    torch.set_num_threads(1)
    t_import = time.perf_counter() - t0
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.GPSampler(seed=seed))
    n_init = 10
    for _ in range(n_trials):
        t = time.perf_counter()
        trial = study.ask()
        x = [trial.suggest_float(k, 0.0, 1.0) for k in names]
        a = time.perf_counter() - t
        y = hartmann6(x)
        t = time.perf_counter(); study.tell(trial, y); spent.append(a + time.perf_counter() - t)
elif method == "skopt_gp":
    import skopt
    t_import = time.perf_counter() - t0
    opt = skopt.Optimizer([(0.0, 1.0)] * 6, base_estimator="GP", n_initial_points=10,
                          random_state=seed)
    n_init = 10
    for _ in range(n_trials):
        t = time.perf_counter(); x = opt.ask(); a = time.perf_counter() - t
        y = hartmann6(x)
        # skopt fits its GP in tell: the time until the next suggestion is ask + tell
        t = time.perf_counter(); opt.tell(x, y); spent.append(a + time.perf_counter() - t)
print(json.dumps({"import_s": t_import, "first_s": spent[0],
                  "first_model_s": spent[n_init] if len(spent) > n_init else None,
                  "steady_s": float(np.median(spent[-10:])) if len(spent) >= 10 else None,
                  "study_s": time.perf_counter() - t0}))
"""


def _child_env(method: str, cache: pathlib.Path) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    env["NNOPT_JAX_CACHE"] = "off" if method == "nnopt_nocache" else str(cache)
    return env


def measure(method: str, n_trials: int, seed: int, cache: pathlib.Path) -> dict:
    """One fresh process running ``method``; its timings as a dict."""
    engine = "nnopt" if method.startswith("nnopt") else method
    out = subprocess.run([sys.executable, "-c", _CHILD, engine, str(n_trials), str(seed)],
                         env=_child_env(method, cache),
        capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{method} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(methods, n_trials: int, repeats: int, seed: int) -> dict:
    rows = {m: [] for m in methods}
    for r in range(repeats):
        with tempfile.TemporaryDirectory(prefix="nnopt_cache_") as tmp:
            cache = pathlib.Path(tmp)
            for m in methods:  # the cold run fills the cache the warm run reads
                if m == "nnopt_warm" and "nnopt_cold" not in methods and r == 0:
                    measure("nnopt_cold", n_trials, seed, cache)
                rows[m].append(measure(m, n_trials, seed + r, cache))
                print(m, r, json.dumps(rows[m][-1]), flush=True)
    keys = ("import_s", "first_s", "first_model_s", "steady_s", "study_s")
    return {m: {k: float(np.median([x[k] for x in xs if x[k] is not None]))
                for k in keys if any(x[k] is not None for x in xs)} | {"repeats": len(xs)}
            for m, xs in rows.items()}


def markdown(summary: dict, n_trials: int) -> str:
    lines = [f"A {n_trials}-trial Hartmann-6 study in a fresh process (median over repeats; "
             "seconds). 'study' includes the imports.", "",
             "| method | import | first suggestion | first model suggestion | "
             "steady suggestion | whole study |", "|---|---|---|---|---|---|"]
    for m, s in summary.items():
        lines.append(f"| {m} | {s['import_s']:.2f} | {s['first_s']:.3f} | "
                     f"{s.get('first_model_s', float('nan')):.3f} | "
                     f"{s.get('steady_s', float('nan')):.4f} | {s['study_s']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/bench/bo_cold_start"))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=100)
    args = parser.parse_args(argv)
    methods = args.methods.split(",")
    for m in methods:
        if m not in METHODS:
            parser.error(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    summary = run(methods, args.trials, args.repeats, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bo_cold_start.json").write_text(json.dumps(
        {"trials": args.trials, "repeats": args.repeats, "summary": summary}, indent=1))
    md = markdown(summary, args.trials)
    (args.out / "bo_cold_start.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
