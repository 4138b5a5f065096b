"""Command functions behind ``nnopt nas bench201`` (with and without ``--objectives``).

:mod:`nnopt_jax.cli` parses the flags and calls these; they return a process exit code.

Examples::

    nnopt nas bench201 --method all --queries 100 --runs 100 --out runs/nb201/search
    nnopt nas bench201 --method random,parego --objectives params --queries 100 --runs 20
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Sequence

from nnopt_jax.nas.nb201 import search
from nnopt_jax.nas.nb201.table import NB201Table


def _methods(method: str | Sequence[str], known: Sequence[str]) -> list[str]:
    names = list(known) if method == "all" else (
        method.split(",") if isinstance(method, str) else list(method))
    unknown = [m for m in names if m not in known]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {list(known)} or 'all'")
    return names


def bench201_command(method: str | Sequence[str], queries: int, runs: int,
                     data_path: str | None, out_dir: str, seed: int = 0) -> int:
    """Runs ``runs`` searches of ``queries`` queries per method and writes the results.

    Args:
      method: a method of :data:`.search.METHODS`, a comma-separated list, or "all".
      queries: budget of each search.
      runs: independent searches per method (run r uses seed ``seed + r``).
      data_path: the table CSV (or its folder); None looks in the default places.
      out_dir: output folder; finished runs found there are reused (resume).
      seed: first seed.

    Returns:
      0 on success, 2 on bad input (the error is printed).
    """
    try:
        methods = _methods(method, list(search.METHODS))
        if queries < 1 or runs < 1:
            raise ValueError(f"--queries and --runs must be >= 1, got {queries}, {runs}")
        table = NB201Table.load(data_path)
    except (ValueError, FileNotFoundError) as e:
        print(f"nnopt: error: {e}", file=sys.stderr)
        return 2
    results = search.run_benchmark(methods, queries, runs, table, out_dir, seed=seed)
    print(f"best-val cell in the table: val {results['oracle']['val']:.2f}, "
          f"test {results['oracle']['test']:.2f}")
    for name, s in results["methods"].items():
        print(f"{name:>12}: test acc of best-val arch after {queries} queries = "
              f"{s['final_test_mean']:.2f} ± {s['final_test_std']:.2f} ({s['runs']} runs)")
    print(f"wrote {pathlib.Path(out_dir) / 'results.json'} and curves.png")
    return 0


def bench201_mo_command(method: str | Sequence[str], objectives: str | Sequence[str],
                        queries: int, runs: int, data_path: str | None, out_dir: str,
                        seed: int = 0) -> int:
    """Multi-objective search (val accuracy vs ``objectives``), compared by hypervolume.

    Args:
      method: "random", "parego" (comma-separated or "all").
      objectives: second objective(s): "params", "flops", "latency" (comma-separated).
      queries, runs, data_path, out_dir, seed: as in :func:`bench201_command`.
    """
    from nnopt_jax.nas.nb201 import multiobjective as mo

    try:
        methods = _methods(method, list(mo.MO_METHODS))
        objs = objectives.split(",") if isinstance(objectives, str) else list(objectives)
        table = NB201Table.load(data_path)
        results = mo.run_mo_benchmark(methods, objs, queries, runs, table, out_dir, seed=seed)
    except (ValueError, FileNotFoundError) as e:
        print(f"nnopt: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({m: {k: r[k] for k in ("final_hv_mean", "final_hv_std")}
                      for m, r in results["methods"].items()}, indent=1))
    print(f"reference point {results['reference_point']}; wrote {out_dir}")
    return 0
