"""Hyper-parameter optimisation: search spaces, grid/random search, Bayesian optimisation.

Example::

    from nnopt_jax import hpo
    space = hpo.SearchSpace({"lr": hpo.Real(1e-5, 1e-1, log=True),
                             "width": hpo.Int(16, 512, log=True),
                             "act": hpo.Categorical(["relu", "tanh"])})
    opt = hpo.BayesianOptimizer(space, seed=0)
    params = opt.ask()
    opt.tell(params, 0.1)
    result = hpo.minimize(fn, space, n_trials=50, method="bo", seed=0)
"""

from nnopt_jax import jax_cache

jax_cache.enable()  # before anything compiles: see nnopt_jax.jax_cache

from nnopt_jax.hpo import acquisition, gp, test_functions
from nnopt_jax.hpo.base import Optimizer
from nnopt_jax.hpo.bo import BayesianOptimizer
from nnopt_jax.hpo import hypervolume
from nnopt_jax.hpo.hypervolume import pareto_front, pareto_mask
from nnopt_jax.hpo.journal import (Journal, JournalError, JournalWarning, Trial,
                                   read_journal)
from nnopt_jax.hpo.minimize import METHODS, MinimizeResult, make_optimizer, minimize
from nnopt_jax.hpo.multiobjective import ParEGO
from nnopt_jax.hpo.search import GridSearch, RandomSearch
from nnopt_jax.hpo.space import Categorical, Int, Real, SearchSpace
from nnopt_jax.hpo.test_functions import FUNCTIONS, TestFunction, get_function
from nnopt_jax.hpo.tune import tune

__all__ = [
    "BayesianOptimizer", "Categorical", "FUNCTIONS", "ForestSurrogate", "GridSearch", "Int",
    "Journal", "JournalError", "JournalWarning", "METHODS", "MinimizeResult", "Optimizer", "ParEGO", "RandomSearch", "Real",
    "SearchSpace", "hypervolume", "pareto_front", "pareto_mask",
    "TestFunction", "Trial", "acquisition", "get_function", "gp", "make_optimizer", "minimize",
    "read_journal", "test_functions", "tune",
]


def __getattr__(name):
    # scikit-learn's import costs half a second; only the "rf" surrogate needs it.
    if name == "ForestSurrogate":
        from nnopt_jax.hpo.forest import ForestSurrogate
        return ForestSurrogate
    raise AttributeError(f"module 'nnopt_jax.hpo' has no attribute {name!r}")
