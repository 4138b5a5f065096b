"""Multi-objective architecture search on NAS-Bench-201: accuracy against size and speed.

Objectives, all minimised: ``-cifar10-val`` (from the table, through the same
:class:`~.search.ValidationOracle` as single-objective search) and one or more
costs of the network of :mod:`.network`:

* ``params``: trainable parameters (millions), analytic;
* ``flops``: multiply-accumulates per image (millions), analytic;
* ``latency``: median wall time (ms) of the jit-compiled inference forward
  pass on this machine, over repeats after a warm-up, cached per cell.

Methods: ``random`` (distinct uniform cells) and ``parego``
(:class:`nnopt_jax.hpo.multiobjective.ParEGO` with the overlap-kernel GP of
:mod:`.bo` as its single-objective optimiser). They are compared by the
hypervolume of the evaluated points after each query, for one reference point
shared by all methods and runs.
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import time
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nnopt_jax.hpo.hypervolume import hypervolume, pareto_front, pareto_mask
from nnopt_jax.hpo.multiobjective import ParEGO
from nnopt_jax.nas.nb201 import network, space
from nnopt_jax.nas.nb201.search import SELECT_METRIC, ValidationOracle
from nnopt_jax.nas.nb201.table import NB201Table

COSTS = ("params", "flops", "latency")
MO_METHODS = ("random", "parego")


# -- latency -------------------------------------------------------------------------


def device_descriptor() -> str:
    """Identifies the machine a latency was measured on (cache key)."""
    dev = jax.devices()[0]
    return f"{platform.node()}|{dev.platform}|{getattr(dev, 'device_kind', '')}"


def measure_latency(arch: Sequence[int] | str, *, batch_size: int = 32, repeats: int = 10,
                    warmup: int = 2, image_size: int = 32, seed: int = 0,
                    **network_kwargs) -> float:
    """Median wall time in ms of the jit-compiled inference forward pass of a cell's network.

    Parameters are random draws of the right shapes (latency does not depend
    on their values); compilation and ``warmup`` calls are not timed.
    ``network_kwargs`` (``channels``, ``cells_per_stage``, ``num_classes``)
    change the skeleton, for tests.
    """
    if repeats < 1 or batch_size < 1:
        raise ValueError(f"repeats and batch_size must be >= 1, got {repeats}, {batch_size}")
    ops = space.parse_arch(arch) if isinstance(arch, str) else space._check_arch(arch)
    model = network.NB201Network(ops, **network_kwargs)
    shape = (batch_size, image_size, image_size, 3)
    variables = network.dummy_variables(model, shape, seed=seed)
    x = jnp.asarray(np.random.default_rng(seed + 1).standard_normal(shape), jnp.float32)
    forward = jax.jit(lambda v, x: model.apply(v, x, train=False))
    for _ in range(max(1, warmup)):
        jax.block_until_ready(forward(variables, x))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(forward(variables, x))
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


class LatencyCache:
    """Measured latencies keyed by machine, batch size and cell; persisted as JSON."""

    def __init__(self, path: str | os.PathLike | None = None, *, batch_size: int = 32,
                 repeats: int = 10, measure: Callable[..., float] | None = None):
        self.path = pathlib.Path(path) if path is not None else None
        self._measure = measure if measure is not None else measure_latency
        self.batch_size, self.repeats = int(batch_size), int(repeats)
        self._data: dict[str, float] = {}
        if self.path is not None and self.path.exists():
            self._data = json.loads(self.path.read_text())

    def _key(self, arch_str: str) -> str:
        return f"{device_descriptor()}|bs{self.batch_size}|{arch_str}"

    def __call__(self, arch: Sequence[int]) -> float:
        key = self._key(space.arch_to_str(arch))
        if key not in self._data:
            self._data[key] = float(self._measure(tuple(arch), batch_size=self.batch_size,
                                                  repeats=self.repeats))
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(json.dumps(self._data, indent=0))
                tmp.replace(self.path)
        return self._data[key]


# -- objectives ----------------------------------------------------------------------


class CostModel:
    """Cost objectives of a cell: params (M), flops (M) analytic; latency (ms) measured."""

    def __init__(self, costs: Sequence[str], latency: Callable[[Sequence[int]], float] | None = None):
        bad = [c for c in costs if c not in COSTS]
        if bad or not costs:
            raise ValueError(f"unknown cost objective(s) {bad or costs}; choose from {COSTS}")
        self.costs = tuple(costs)
        self._tables = {}
        if "params" in costs:
            self._tables["params"] = network.all_param_counts() / 1e6
        if "flops" in costs:
            self._tables["flops"] = network.all_flops() / 1e6
        self._latency = latency if latency is not None else LatencyCache()

    def __call__(self, arch: Sequence[int]) -> tuple[float, ...]:
        idx = space.arch_to_index(arch)
        return tuple(float(self._tables[c][idx]) if c != "latency" else self._latency(arch)
                     for c in self.costs)

    def exact_bounds(self) -> dict[str, tuple[float, float]]:
        """(min, max) over all 15,625 cells of the analytic costs."""
        return {c: (float(t.min()), float(t.max())) for c, t in self._tables.items()}

    def all_values(self, cost: str) -> np.ndarray | None:
        """The analytic cost of every cell (None for latency)."""
        return self._tables.get(cost)


class MOTrajectory(NamedTuple):
    """One multi-objective search: queried cells and their objective vectors (minimised)."""

    method: str
    seed: int
    archs: np.ndarray  # (Q,) space indices
    values: np.ndarray  # (Q, 1 + n_costs): -val, costs...
    seconds: float

    def to_json(self) -> dict:
        return {"method": self.method, "seed": self.seed, "archs": self.archs.tolist(),
                "values": self.values.tolist(), "seconds": self.seconds}

    @classmethod
    def from_json(cls, d: dict) -> "MOTrajectory":
        return cls(d["method"], d["seed"], np.asarray(d["archs"]), np.asarray(d["values"]),
                   d["seconds"])


def run_mo_search(method: str, table: NB201Table, costs: CostModel, *, queries: int,
                  seed: int, fit_steps: int = 60,
                  ref_point: Sequence[float] | None = None) -> MOTrajectory:
    """A multi-objective search of ``queries`` queries (-val accuracy and ``costs``).

    ``ref_point`` (optional) is passed to :class:`ParEGO` to focus its scalarisations.
    """
    if method not in MO_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {MO_METHODS}")
    if queries < 1:
        raise ValueError(f"queries must be >= 1, got {queries}")
    oracle = ValidationOracle(table, queries, SELECT_METRIC)
    rng = np.random.default_rng(seed)
    values = []
    start = time.perf_counter()
    if method == "random":
        for idx in rng.permutation(space.NUM_ARCHS)[:queries]:
            arch = space.index_to_arch(int(idx))
            values.append((-oracle(arch), *costs(arch)))
    else:
        from nnopt_jax.nas.nb201.bo import OverlapBO

        opt = ParEGO(None, 1 + len(costs.costs), seed=seed,
                     base=lambda _, *, seed: OverlapBO(seed=seed, n_initial=1,
                                                       fit_steps=fit_steps),
                     sampler=lambda r: space.arch_to_params(space.random_arch(rng=r)),
                     ref_point=ref_point)
        while oracle.remaining > 0:
            params = opt.ask()
            arch = space.params_to_arch(params)
            v = (-oracle(arch), *costs(arch))
            opt.tell(params, v)
            values.append(v)
    archs = np.array([a for a, _ in oracle.history])
    return MOTrajectory(method, int(seed), archs, np.array(values, dtype=np.float64),
                        time.perf_counter() - start)


def hypervolume_curve(values: np.ndarray, ref: Sequence[float]) -> np.ndarray:
    """Hypervolume of the first q points, for q = 1..Q."""
    return np.array([hypervolume(values[: q + 1], ref) for q in range(len(values))])


def run_mo_benchmark(methods: Sequence[str], costs: Sequence[str], queries: int, runs: int,
                     table: NB201Table, out_dir: str | os.PathLike, *, seed: int = 0,
                     progress: bool = True) -> dict:
    """Runs each method ``runs`` times; resumable; writes results.json and fronts.png.

    Reference point: accuracy objective at ``-median(cifar10-val)`` over the
    table (so the hypervolume measures the better half of the space, where
    the fronts differ); each analytic cost at its maximum over the 15,625 cells; latency at
    1.1 x the largest latency measured in the benchmark. The hypervolume of the
    true front of the whole table (analytic costs only) is reported as the
    attainable maximum.
    """
    for m in methods:
        if m not in MO_METHODS:
            raise ValueError(f"unknown method {m!r}; choose from {MO_METHODS}")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = CostModel(costs, latency=LatencyCache(out / "latency_cache.json")
                      if "latency" in costs else None)
    val = table.column(SELECT_METRIC)
    bounds = model.exact_bounds()
    # The accuracy reference and analytic cost maxima are known before the search;
    # latency's is not (ParEGO then leaves it unclipped).
    search_ref = [-float(np.median(val))] + [
        bounds[c][1] if c != "latency" else float("inf") for c in model.costs]
    trajs: dict[str, list[MOTrajectory]] = {}
    for method in methods:
        mdir = out / method
        mdir.mkdir(exist_ok=True)
        trajs[method] = []
        for r in range(runs):
            path = mdir / f"run_{r:03d}.json"
            if path.exists():
                t = MOTrajectory.from_json(json.loads(path.read_text()))
                if len(t.archs) == queries and t.seed == seed + r:
                    trajs[method].append(t)
                    continue
            t = run_mo_search(method, table, model, queries=queries, seed=seed + r,
                              ref_point=search_ref)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(t.to_json()))
            tmp.replace(path)
            trajs[method].append(t)
            if progress:
                print(f"[{method}] run {r + 1}/{runs} done in {t.seconds:.1f}s", flush=True)

    ref = [-float(np.median(val))]
    for c in model.costs:
        if c == "latency":
            ref.append(1.1 * max(float(t.values[:, 1 + i].max()) for ts in trajs.values()
                                 for t in ts for i in [model.costs.index(c)]))
        else:
            ref.append(bounds[c][1])
    results = {"objectives": ["-" + SELECT_METRIC, *model.costs], "queries": queries,
               "runs": runs, "seed": seed, "reference_point": ref, "methods": {}}
    if "latency" not in model.costs:
        all_vals = np.column_stack([-val] + [model.all_values(c) for c in model.costs])
        true_front = pareto_front(all_vals)
        results["true_front_hypervolume"] = hypervolume(true_front, ref)
        results["true_front_size"] = int(len(true_front))
    for method, ts in trajs.items():
        curves = np.stack([hypervolume_curve(t.values, ref) for t in ts])
        results["methods"][method] = {
            "hv_mean": curves.mean(0).tolist(), "hv_std": curves.std(0).tolist(),
            "final_hv_mean": float(curves[:, -1].mean()),
            "final_hv_std": float(curves[:, -1].std()),
            "runs": len(ts), "seconds_per_run": float(np.mean([t.seconds for t in ts])),
        }
        if "true_front_hypervolume" in results:
            results["methods"][method]["final_hv_ratio_mean"] = float(
                curves[:, -1].mean() / results["true_front_hypervolume"])
    (out / "results.json").write_text(json.dumps(results, indent=1))
    plot_mo(results, trajs, out / "fronts.png",
            true_front=true_front if "latency" not in model.costs else None)
    return results


def plot_mo(results: dict, trajs: dict[str, list[MOTrajectory]], path, *, true_front=None):
    """Left: hypervolume vs queries (mean ± std). Right: the front of run 0 of each method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for method, s in results["methods"].items():
        q = np.arange(1, len(s["hv_mean"]) + 1)
        m, sd = np.asarray(s["hv_mean"]), np.asarray(s["hv_std"])
        ax1.plot(q, m, label=f"{method} ({s['final_hv_mean']:.3g} ± {s['final_hv_std']:.2g})")
        ax1.fill_between(q, m - sd, m + sd, alpha=0.15)
    if "true_front_hypervolume" in results:
        ax1.axhline(results["true_front_hypervolume"], color="k", ls="--", lw=1,
                    label="true front of the table")
    ax1.set_xlabel("queries")
    ax1.set_ylabel("hypervolume")
    ax1.set_title(f"ref = {[round(r, 3) for r in results['reference_point']]}", fontsize=9)
    ax1.legend(fontsize=8)
    cost = results["objectives"][1]
    unit = {"params": "parameters (M)", "flops": "FLOPs (M MACs)", "latency": "latency (ms)"}
    for method, ts in trajs.items():
        v = ts[0].values
        ax2.scatter(v[:, 1], -v[:, 0], s=8, alpha=0.3)
        f = pareto_front(v[:, :2])
        f = f[np.argsort(f[:, 1])]
        ax2.step(f[:, 1], -f[:, 0], where="post", label=f"{method} front (run 0)")
    if true_front is not None and true_front.shape[1] == 2:
        true_front = true_front[np.argsort(true_front[:, 1])]
        ax2.step(true_front[:, 1], -true_front[:, 0], where="post", color="k", ls="--", lw=1,
                 label="true front")
    ax2.set_xlabel(unit.get(cost, cost))
    ax2.set_ylabel("CIFAR-10 val accuracy (%)")
    ax2.set_ylim(bottom=60)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
