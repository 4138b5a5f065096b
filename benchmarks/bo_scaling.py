"""Benchmark: seconds per BO suggestion as a study grows (50 to 500 trials).

For each history size ``n`` the optimiser is given ``n`` evaluated random
points of Hartmann-6, then times ``--asks`` suggestions (ask, evaluate, tell;
the time inside the optimiser only). For this project's BO one suggestion is
made first and not timed, so compilation for that padded size is excluded
(the measured asks stay inside it). Optuna's ``GPSampler`` is given the same
history through ``study.add_trials``.

With ``--rounds R`` the methods take turns R times per size (a fresh history
seed each round), so a change in the machine's pace during the run reaches
both alike; the median is over every round's suggestions.

Usage:
    python benchmarks/bo_scaling.py                      # n = 50,100,200,500
    python benchmarks/bo_scaling.py --sizes 50 --asks 12 --rounds 5
    python benchmarks/bo_scaling.py --sizes 50,100 --asks 3 --out /tmp/scaling

Writes ``--out``/bo_scaling.json and .md (median seconds per suggestion).
"""

from __future__ import annotations

import argparse
import json
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("XLA_FLAGS",
                      "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
import pathlib
import time
import warnings

import numpy as np

METHODS = ("nnopt_bo", "optuna_gp")


def _history(f, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(seed).random((n, f.dim))
    lo, hi = np.array(f.bounds).T
    x = lo + x * (hi - lo)
    return x, np.array([f.fn(xi) for xi in x])


def time_nnopt(f, n: int, asks: int, seed: int) -> list[float]:
    from nnopt_jax import hpo

    opt = hpo.BayesianOptimizer(f.space(), seed=seed)
    names = [f"x{i}" for i in range(f.dim)]
    xs, ys = _history(f, n, seed)
    for x, y in zip(xs, ys):
        opt.tell(dict(zip(names, map(float, x))), float(y))
    times = []
    for i in range(asks + 1):
        t = time.perf_counter()
        p = opt.ask()
        a = time.perf_counter() - t
        y = float(f.fn(np.array([p[k] for k in names])))
        t = time.perf_counter()
        opt.tell(p, y)
        if i:  # the first ask compiles for this padded size
            times.append(a + time.perf_counter() - t)
    return times


def time_optuna(f, n: int, asks: int, seed: int) -> list[float]:
    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = [f"x{i}" for i in range(f.dim)]
    dists = {k: optuna.distributions.FloatDistribution(lo, hi)
             for k, (lo, hi) in zip(names, f.bounds)}
    study = optuna.create_study(sampler=optuna.samplers.GPSampler(seed=seed))
    xs, ys = _history(f, n, seed)
    study.add_trials([optuna.trial.create_trial(params=dict(zip(names, map(float, x))),
                                                distributions=dists, value=float(y))
                      for x, y in zip(xs, ys)])
    times = []
    for _ in range(asks):
        t = time.perf_counter()
        trial = study.ask(dists)
        a = time.perf_counter() - t
        y = float(f.fn(np.array([trial.params[k] for k in names])))
        t = time.perf_counter()
        study.tell(trial, y)
        times.append(a + time.perf_counter() - t)
    return times


def markdown(rows: list[dict]) -> str:
    sizes = sorted({r["n"] for r in rows})
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    med = {(r["method"], r["n"]): r["median_s"] for r in rows}
    lines = ["Seconds per suggestion (ask + tell, median) with n evaluated points of "
             "Hartmann-6 in the history; compilation excluded.", "",
             "| n | " + " | ".join(methods) + (" | ratio |" if len(methods) == 2 else " |"),
             "|---|" + "---|" * (len(methods) + (len(methods) == 2))]
    for n in sizes:
        cells = [f"{med[(m, n)]:.4f}" if (m, n) in med else "-" for m in methods]
        ratio = ""
        if len(methods) == 2 and all((m, n) in med for m in methods):
            ratio = f" | 1/{med[(methods[1], n)] / med[(methods[0], n)]:.1f}"
        lines.append(f"| {n} | " + " | ".join(cells) + ratio + (" |" if ratio else " |"))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/bench/bo_scaling"))
    parser.add_argument("--sizes", default="50,100,200,500")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--asks", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1,
                        help="turns each method takes per size, alternating")
    parser.add_argument("--seed", type=int, default=100)
    args = parser.parse_args(argv)
    from nnopt_jax.hpo.test_functions import get_function

    warnings.filterwarnings("ignore")
    f = get_function("hartmann6")
    rows = []
    methods = args.methods.split(",")
    for m in methods:
        if m not in METHODS:
            parser.error(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    for n in map(int, args.sizes.split(",")):
        times = {m: [] for m in methods}
        for r in range(args.rounds):
            for m in methods:
                fn = time_nnopt if m == "nnopt_bo" else time_optuna
                times[m] += fn(f, n, args.asks, args.seed + r)
        for m in methods:
            rows.append({"method": m, "n": n, "rounds": args.rounds, "times_s": times[m],
                         "median_s": float(np.median(times[m]))})
            print(f"{m:>9} n={n:4d}: {rows[-1]['median_s']:.4f} s/suggestion", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bo_scaling.json").write_text(json.dumps({"rows": rows}, indent=1))
    md = markdown(rows)
    (args.out / "bo_scaling.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
