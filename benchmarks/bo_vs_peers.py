"""Benchmark: nnopt BO vs random search, scikit-optimize and Optuna on test functions.

Measures, per (method, function, seed) cell, the simple regret of the best
value after each evaluation and the seconds spent inside the optimiser per
suggestion (time between the end of one objective call and the start of the
next, so the objective itself is excluded). The first model-based suggestion
of each cell is reported separately (it includes jit compilation for this
project's BO when the process has not compiled that shape yet).

Needs the ``bench`` extras (``pip install -e '.[bench]'``).

Usage:
    python benchmarks/bo_vs_peers.py                      # full run (seeds 100-109, 50 evals)
    python benchmarks/bo_vs_peers.py --quick              # tiny smoke run
    python benchmarks/bo_vs_peers.py --functions branin,hartmann6 --seeds 3 \
        --methods nnopt_bo,random --out runs/bench/bo_vs_peers.json

Results are written to ``--out`` (JSON, updated after every cell so an
interrupted run resumes by skipping finished cells) and to the same path with
a ``.md`` suffix (Markdown table).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
# One intra-op thread per library for every method (set before NumPy loads; see _peers).
import _peers  # noqa: E402
import time
import warnings

import numpy as np

METHODS = ("nnopt_bo", "random", "skopt_gp", "optuna_tpe", "optuna_gp")
DEFAULT_FUNCTIONS = ("branin", "hartmann3", "hartmann6", "levy4")


class _Clock:
    """Wraps an objective and records when each call starts and ends."""

    def __init__(self, fn):
        self.fn = fn
        self.starts, self.ends, self.values = [], [], []

    def __call__(self, x):
        self.starts.append(time.perf_counter())
        v = float(self.fn(np.asarray(x, dtype=float)))
        self.values.append(v)
        self.ends.append(time.perf_counter())
        return v

    def suggestion_times(self, t0: float) -> list[float]:
        prev = [t0] + self.ends[:-1]
        return [s - p for s, p in zip(self.starts, prev)]


def _run_nnopt(method, f, n_evals, seed, bo_kwargs=None):
    from nnopt_jax import hpo

    space = f.space()
    opt = (hpo.BayesianOptimizer(space, seed=seed, **(bo_kwargs or {})) if method == "nnopt_bo"
           else hpo.RandomSearch(space, seed=seed))
    clock = _Clock(f.fn)
    t0 = time.perf_counter()
    for _ in range(n_evals):
        p = opt.ask()
        v = clock([p[f"x{i}"] for i in range(f.dim)])
        opt.tell(p, v)
    n_init = getattr(opt, "n_initial", n_evals)
    return clock, t0, n_init


def _run_skopt(f, n_evals, seed):
    import skopt

    clock = _Clock(f.fn)
    t0 = time.perf_counter()
    skopt.gp_minimize(lambda x: clock(x), [tuple(b) for b in f.bounds], n_calls=n_evals,
                      n_initial_points=10, random_state=seed)
    return clock, t0, 10


def _run_optuna(method, f, n_evals, seed):
    _peers.prepare_optuna()  # imports outside the clock
    clock = _Clock(f.fn)
    t0 = time.perf_counter()
    _peers.run_optuna(method, seed, n_evals,
                      lambda trial: [trial.suggest_float(f"x{i}", lo, hi)
                                     for i, (lo, hi) in enumerate(f.bounds)], clock)
    return clock, t0, 10


def run_cell(method: str, fname: str, seed: int, n_evals: int, bo_kwargs=None) -> dict:
    from nnopt_jax.hpo.test_functions import get_function

    f = get_function(fname)
    if method in ("nnopt_bo", "random"):
        clock, t0, n_init = _run_nnopt(method, f, n_evals, seed, bo_kwargs)
    elif method == "skopt_gp":
        clock, t0, n_init = _run_skopt(f, n_evals, seed)
    elif method in ("optuna_tpe", "optuna_gp"):
        clock, t0, n_init = _run_optuna(method, f, n_evals, seed)
    else:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    best = np.minimum.accumulate(np.array(clock.values))
    times = clock.suggestion_times(t0)
    n_init = min(n_init, n_evals)
    model_times = times[n_init:]
    return {"method": method, "function": fname, "seed": seed, "n_evals": n_evals,
            "regret_curve": [float(b - f.optimum_value) for b in best],
            "final_regret": float(best[-1] - f.optimum_value),
            "suggestion_times": times,
            "first_model_suggestion_s": float(model_times[0]) if model_times else None,
            "late_suggestion_s": float(np.mean(times[-10:]))}


def _quartiles(x):
    q = np.percentile(np.asarray(x, dtype=float), [25, 50, 75])
    return [float(v) for v in q]


def summarise(cells: list[dict]) -> dict:
    out = {}
    for c in cells:
        out.setdefault(c["function"], {}).setdefault(c["method"], []).append(c)
    summary = {}
    for fname, by_method in out.items():
        summary[fname] = {}
        for method, cs in by_method.items():
            firsts = [c["first_model_suggestion_s"] for c in cs
                      if c["first_model_suggestion_s"] is not None]
            summary[fname][method] = {
                "n_seeds": len(cs),
                "regret_q25_median_q75": _quartiles([c["final_regret"] for c in cs]),
                "s_per_suggestion_at_50_median": float(np.median(
                    [c["late_suggestion_s"] for c in cs])),
                "first_model_suggestion_s_max": float(max(firsts)) if firsts else None,
            }
    return summary


def markdown(summary: dict, n_evals: int) -> str:
    lines = [f"Simple regret after {n_evals} evaluations (median [q25, q75] over seeds) and "
             "seconds per suggestion over the last 10 suggestions (median over seeds; "
             "objective time excluded). 'first' = slowest first model-based suggestion "
             "(includes jit compilation for nnopt_bo).", "",
             "| function | method | seeds | median regret | [q25, q75] | s/suggestion @50 | first (s) |",
             "|---|---|---|---|---|---|---|"]
    for fname, by_method in summary.items():
        for method in METHODS:
            if method not in by_method:
                continue
            s = by_method[method]
            q25, med, q75 = s["regret_q25_median_q75"]
            first = s["first_model_suggestion_s_max"]
            lines.append(f"| {fname} | {method} | {s['n_seeds']} | {med:.3g} | "
                         f"[{q25:.3g}, {q75:.3g}] | {s['s_per_suggestion_at_50_median']:.4f} | "
                         f"{'-' if first is None else f'{first:.2f}'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/bench/bo_vs_peers.json")
    parser.add_argument("--functions", default=",".join(DEFAULT_FUNCTIONS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=100,
                        help="seeds are first-seed .. first-seed + seeds - 1; the default 100 keeps "
                             "them apart from seeds 0-19 on which this project's defaults were tuned")
    parser.add_argument("--n-evals", type=int, default=50)
    parser.add_argument("--nnopt-kwargs", default="{}",
                        help='JSON of BayesianOptimizer arguments for ablations, e.g. \'{"n_screen": 0}\'')
    parser.add_argument("--quick", action="store_true", help="2 seeds, 15 evals, branin only")
    parser.add_argument("--report-only", default=None,
                        help="comma-separated JSON files to merge into --out's table; runs nothing")
    args = parser.parse_args(argv)
    if args.report_only:
        cells = []
        for path in args.report_only.split(","):
            cells += json.loads(pathlib.Path(path).read_text())["cells"]
        summary = summarise([c for c in cells if c["n_evals"] == args.n_evals])
        out = pathlib.Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"n_evals": args.n_evals, "summary": summary, "cells": cells}))
        md = markdown(summary, args.n_evals)
        out.with_suffix(".md").write_text(md)
        print(md)
        return 0
    functions = args.functions.split(",")
    methods = args.methods.split(",")
    seeds, n_evals = args.seeds, args.n_evals
    if args.quick:
        functions, seeds, n_evals = ["branin"], 2, 15
    for m in methods:
        if m not in METHODS:
            parser.error(f"unknown method {m!r}; choose from {METHODS}")
    warnings.filterwarnings("ignore")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cells = json.loads(out.read_text())["cells"] if out.exists() else []
    done = {(c["method"], c["function"], c["seed"], c["n_evals"]) for c in cells}
    bo_kwargs = json.loads(args.nnopt_kwargs)
    for seed in range(args.first_seed, args.first_seed + seeds):
        for fname in functions:
            for method in methods:
                if (method, fname, seed, n_evals) in done:
                    continue
                t = time.perf_counter()
                cell = run_cell(method, fname, seed, n_evals, bo_kwargs)
                cells.append(cell)
                print(f"{method:>10} {fname:>12} seed {seed}: regret {cell['final_regret']:.4g}, "
                      f"{cell['late_suggestion_s']:.4f} s/suggestion, "
                      f"{time.perf_counter() - t:.1f} s", flush=True)
                summary = summarise([c for c in cells if c["n_evals"] == n_evals])
                tmp = out.with_suffix(".tmp")
                tmp.write_text(json.dumps({"n_evals": n_evals, "summary": summary,
                                           "cells": cells}))
                os.replace(tmp, out)
    summary = summarise([c for c in cells if c["n_evals"] == n_evals])
    md = markdown(summary, n_evals)
    out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
