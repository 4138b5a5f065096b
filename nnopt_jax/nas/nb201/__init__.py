"""Black-box and multi-objective architecture search on NAS-Bench-201.

* :mod:`.space`: the cell space (strings, indices, HPO encoding, mutation).
* :mod:`.table`: the benchmark's accuracy table.
* :mod:`.network`: the Flax network of a cell, its parameters and FLOPs.
* :mod:`.search`: random search, regularised evolution and BO under the
  benchmark's protocol; :func:`run_benchmark`.
* :mod:`.bo`: GP-EI with a categorical overlap kernel over all cells.
* :mod:`.multiobjective`: accuracy vs parameters / FLOPs / latency.
* :mod:`.cli`: the functions behind ``nnopt nas bench201``.

Example::

    from nnopt_jax.nas import nb201
    table = nb201.NB201Table.load("shared/data/nasbench201/nb201_hp12_accuracy.csv")
    traj = nb201.run_search("evolution", table, queries=100, seed=0)
    traj.test[-1]   # cifar10-test of the best-val cell found
"""

from nnopt_jax import jax_cache

jax_cache.enable()  # before anything compiles: see nnopt_jax.jax_cache

from nnopt_jax.nas.nb201.network import NB201Network, build_network, flops, param_count
from nnopt_jax.nas.nb201.search import METHODS, Trajectory, run_benchmark, run_search
from nnopt_jax.nas.nb201.space import (
    EDGES, OPS, arch_to_index, arch_to_params, arch_to_str, index_to_arch, mutate, params_to_arch,
    parse_arch, search_space,
)
from nnopt_jax.nas.nb201.table import NB201Table

__all__ = [
    "EDGES", "METHODS", "NB201Network", "NB201Table", "OPS", "Trajectory", "arch_to_index",
    "arch_to_params", "arch_to_str", "build_network", "flops", "index_to_arch", "mutate",
    "param_count", "params_to_arch", "parse_arch", "run_benchmark", "run_search", "search_space",
]
