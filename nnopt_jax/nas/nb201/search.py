"""Black-box architecture search on the NAS-Bench-201 table.

Protocol (NAS-Bench-201, section 5): a search method sees only
``cifar10-val``; after each query the reported figure is the ``cifar10-test``
accuracy of the architecture with the best validation accuracy found so far.
The methods run against :class:`ValidationOracle`, which exposes nothing but
validation accuracy and counts queries; test accuracies are looked up only
after the search, for the incumbents.

Methods (one interface, ``run_search(method, table, *, queries, seed)``):

* ``"random"``: uniform sampling without replacement (Bergstra & Bengio 2012).
* ``"evolution"``: regularised evolution (Real et al. 2019, Algorithm 1):
  tournament selection, one-edge mutation, removal of the oldest member.
* ``"bo"``: :class:`nnopt_jax.hpo.BayesianOptimizer` over the six
  categorical choices of :func:`.space.search_space`, minimising -val.
* ``"bo_overlap"``: GP with the categorical overlap kernel and EI maximised
  exactly over all untried cells (:mod:`.bo`).
"""

from __future__ import annotations

import collections
import json
import os
import pathlib
import time
from typing import Callable, NamedTuple, Sequence

import numpy as np

from nnopt_jax.nas.nb201 import space
from nnopt_jax.nas.nb201.table import NB201Table

SELECT_METRIC = "cifar10-val"
REPORT_METRIC = "cifar10-test"


class BudgetExceeded(RuntimeError):
    """Raised when a method asks for more queries than its budget."""


class ValidationOracle:
    """The only view of the table a search method gets: validation accuracy.

    Every call counts as one query, whether or not the cell was seen before.
    """

    def __init__(self, table: NB201Table, budget: int, metric: str = SELECT_METRIC):
        self._table = table
        self._metric = metric
        self.budget = int(budget)
        self.history: list[tuple[int, float]] = []

    @property
    def remaining(self) -> int:
        return self.budget - len(self.history)

    def __call__(self, arch: Sequence[int] | int) -> float:
        if self.remaining <= 0:
            raise BudgetExceeded(f"query budget of {self.budget} exhausted")
        idx = NB201Table.space_index(arch)
        value = self._table.query(idx, self._metric)
        self.history.append((idx, value))
        return value


class Trajectory(NamedTuple):
    """One search run; arrays have one entry per query, in order.

    Attributes:
      method, seed: what ran.
      archs: space indices queried.
      val: their validation accuracies (what the method saw).
      incumbent: space index of the best-val cell so far.
      best_val: its validation accuracy.
      test: its test accuracy (the reported figure).
      seconds: wall time of the search (without the test look-ups).
    """

    method: str
    seed: int
    archs: np.ndarray
    val: np.ndarray
    incumbent: np.ndarray
    best_val: np.ndarray
    test: np.ndarray
    seconds: float

    def to_json(self) -> dict:
        d = self._asdict()
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in d.items()}

    @classmethod
    def from_json(cls, d: dict) -> "Trajectory":
        return cls(**{k: (np.asarray(v) if isinstance(v, list) else v) for k, v in d.items()})


# -- methods: f(oracle, *, rng, seed, **options); they query until the budget is spent ----


def random_search(oracle: ValidationOracle, *, rng: np.random.Generator, seed: int) -> None:
    """Uniform sampling of distinct cells."""
    del seed
    for idx in rng.permutation(space.NUM_ARCHS)[: oracle.budget]:
        oracle(int(idx))


def regularized_evolution(oracle: ValidationOracle, *, rng: np.random.Generator, seed: int,
                          population_size: int = 20, sample_size: int = 10) -> None:
    """Regularised evolution (Real et al. 2019, Algorithm 1).

    Defaults (population 20, tournament 10) were picked among
    (10,3) (10,5) (15,5) (20,5) (20,10) (30,10) on 200 runs of 100 queries with
    seeds 1000-1199, disjoint from the benchmark's seeds.

    The population is initialised with ``population_size`` random cells; each
    cycle draws ``sample_size`` members uniformly, mutates one edge of the one
    with the best validation accuracy, adds the child and removes the oldest
    member (ageing).
    """
    del seed
    if not 1 <= sample_size <= population_size:
        raise ValueError(f"need 1 <= sample_size <= population_size, got "
                         f"{sample_size}, {population_size}")
    population: collections.deque[tuple[space.Arch, float]] = collections.deque()
    while len(population) < population_size and oracle.remaining > 0:
        arch = space.random_arch(rng=rng)
        population.append((arch, oracle(arch)))
    while oracle.remaining > 0:
        picks = rng.choice(len(population), size=sample_size, replace=False)
        parent = max((population[i] for i in picks), key=lambda m: m[1])[0]
        child = space.mutate(parent, rng=rng)
        population.append((child, oracle(child)))
        population.popleft()


def _ask_tell(oracle: ValidationOracle, opt) -> None:
    while oracle.remaining > 0:
        params = opt.ask()
        arch = space.params_to_arch(params)
        opt.tell(params, -oracle(arch))


def hpo_bayesian_optimization(oracle: ValidationOracle, *, rng: np.random.Generator, seed: int,
                              **options) -> None:
    """``hpo.BayesianOptimizer`` over the six categorical edges, minimising -val."""
    del rng
    from nnopt_jax import hpo

    _ask_tell(oracle, hpo.BayesianOptimizer(space.search_space(), seed=seed, **options))


def overlap_bayesian_optimization(oracle: ValidationOracle, *, rng: np.random.Generator,
                                  seed: int, n_initial: int = 10) -> None:
    """GP-EI with the categorical overlap kernel, EI maximised over all untried cells."""
    del rng
    from nnopt_jax.nas.nb201.bo import OverlapBO

    _ask_tell(oracle, OverlapBO(seed=seed, n_initial=n_initial))


METHODS: dict[str, Callable[..., None]] = {
    "random": random_search,
    "evolution": regularized_evolution,
    "bo": hpo_bayesian_optimization,
    "bo_overlap": overlap_bayesian_optimization,
}


def run_search(method: str, table: NB201Table, *, queries: int, seed: int,
               **options) -> Trajectory:
    """Runs one search with a budget of ``queries`` table look-ups.

    Args:
      method: a key of :data:`METHODS`.
      table: the benchmark table.
      queries: number of validation-accuracy queries.
      seed: seeds the method's randomness.
      **options: passed to the method (e.g. ``population_size``).

    Returns:
      The :class:`Trajectory`; ``test[q]`` is the reported figure after
      ``q + 1`` queries.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    if queries < 1:
        raise ValueError(f"queries must be >= 1, got {queries}")
    oracle = ValidationOracle(table, queries)
    start = time.perf_counter()
    METHODS[method](oracle, rng=np.random.default_rng(seed), seed=seed, **options)
    seconds = time.perf_counter() - start
    if len(oracle.history) != queries:
        raise RuntimeError(f"{method} stopped after {len(oracle.history)} of {queries} queries")
    archs = np.array([a for a, _ in oracle.history])
    val = np.array([v for _, v in oracle.history])
    best_pos = np.array([int(np.argmax(val[: q + 1])) for q in range(queries)])
    incumbent = archs[best_pos]
    # Only now, and only for the incumbents, is the test accuracy read.
    test_of = {int(i): table.query(int(i), REPORT_METRIC) for i in np.unique(incumbent)}
    test = np.array([test_of[int(i)] for i in incumbent])
    return Trajectory(method, int(seed), archs, val, incumbent, val[best_pos], test, seconds)


def summarize(trajectories: Sequence[Trajectory]) -> dict:
    """Mean and std over runs of the reported figure at each number of queries."""
    test = np.stack([t.test for t in trajectories])
    val = np.stack([t.best_val for t in trajectories])
    return {
        "runs": len(trajectories),
        "queries": int(test.shape[1]),
        "test_mean": test.mean(0).tolist(),
        "test_std": test.std(0).tolist(),
        "val_mean": val.mean(0).tolist(),
        "final_test_mean": float(test[:, -1].mean()),
        "final_test_std": float(test[:, -1].std()),
        "final_val_mean": float(val[:, -1].mean()),
        "seconds_per_run": float(np.mean([t.seconds for t in trajectories])),
    }


def run_benchmark(methods: Sequence[str], queries: int, runs: int, table: NB201Table,
                  out_dir: str | os.PathLike, *, seed: int = 0, progress: bool = True,
                  options: dict[str, dict] | None = None) -> dict:
    """``runs`` independent searches per method; resumable; writes JSON and one PNG.

    Run ``r`` of every method uses seed ``seed + r``. Each run is saved to
    ``out_dir/<method>/run_<r>.json`` as soon as it ends and is skipped if
    present, so an interrupted benchmark continues where it stopped.

    Writes ``out_dir/results.json`` (per method: mean and std of the test
    accuracy of the best-val cell after each query; the table's oracle) and
    ``out_dir/curves.png``.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    options = options or {}
    results: dict = {"queries": int(queries), "runs": int(runs), "seed": int(seed),
                     "select_metric": SELECT_METRIC, "report_metric": REPORT_METRIC,
                     "table": str(table.path), "methods": {}}
    oracle_idx, oracle_test = table.oracle(SELECT_METRIC, REPORT_METRIC)
    results["oracle"] = {"arch": table.arch_strs[oracle_idx],
                         "bench_index": int(table.bench_index[oracle_idx]),
                         "val": table.query(oracle_idx, SELECT_METRIC), "test": oracle_test,
                         "best_test_in_table": float(table.column(REPORT_METRIC).max())}
    for method in methods:
        mdir = out / method
        mdir.mkdir(exist_ok=True)
        trajs = []
        for r in range(runs):
            path = mdir / f"run_{r:03d}.json"
            if path.exists():
                traj = Trajectory.from_json(json.loads(path.read_text()))
                if traj.test.shape[0] == queries and traj.seed == seed + r:
                    trajs.append(traj)
                    continue
            traj = run_search(method, table, queries=queries, seed=seed + r,
                              **options.get(method, {}))
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(traj.to_json()))
            tmp.replace(path)
            trajs.append(traj)
            if progress:
                print(f"[{method}] run {r + 1}/{runs}: final test {traj.test[-1]:.2f} "
                      f"(val {traj.best_val[-1]:.2f}) in {traj.seconds:.1f}s", flush=True)
        results["methods"][method] = summarize(trajs)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    plot_curves(results, out / "curves.png")
    return results


def plot_curves(results: dict, path: str | os.PathLike) -> None:
    """Mean ± std of the reported test accuracy vs number of queries, all methods."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method, s in results["methods"].items():
        q = np.arange(1, s["queries"] + 1)
        m, sd = np.asarray(s["test_mean"]), np.asarray(s["test_std"])
        ax.plot(q, m, label=f"{method} ({s['final_test_mean']:.2f} ± {s['final_test_std']:.2f})")
        ax.fill_between(q, m - sd, m + sd, alpha=0.15)
    ax.axhline(results["oracle"]["test"], color="k", ls="--", lw=1,
               label=f"best-val cell in table ({results['oracle']['test']:.2f})")
    ax.set_xlabel("queries (architectures evaluated)")
    ax.set_ylabel("CIFAR-10 test acc. of best-val arch (%)")
    ax.set_title(f"NAS-Bench-201 (12-epoch table), {results['runs']} runs, mean ± std")
    ax.set_ylim(max(80.0, ax.get_ylim()[0]), results["oracle"]["best_test_in_table"] + 0.5)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
