"""DARTS: differentiable architecture search (Liu, Simonyan, Yang 2018).

* :mod:`.operations` — the eight candidate operations.
* :mod:`.search_model` — MixedOp, search cell, search network, α (:class:`ArchParams`).
* :mod:`.architect` — first-order, exact second-order and finite-difference hypergradients.
* :mod:`.genotypes` — derivation rule, published cells, JSON, pictures.
* :mod:`.eval_model` — the network built from a genotype (auxiliary head, drop path).
* :mod:`.diagnostics` — α-Hessian dominant eigenvalue, RobustDARTS early stop.
* :mod:`.search` / :mod:`.train` — the search loop and final training.
"""

from nnopt_jax import jax_cache

jax_cache.enable()  # before anything compiles: see nnopt_jax.jax_cache

from nnopt_jax.nas.darts.architect import (finite_difference_grad, first_order_grad,
                                           hypergradient, second_order_grad, unrolled_val_loss,
                                           virtual_step)
from nnopt_jax.nas.darts.diagnostics import dominant_eigenvalue, early_stop_epoch
from nnopt_jax.nas.darts.eval_model import EvalNetwork
from nnopt_jax.nas.darts.genotypes import (DARTS_V1, DARTS_V2, Genotype, derive_genotype,
                                           load_genotype, parameter_free_share, plot_genotype,
                                           random_genotype, save_genotype)
from nnopt_jax.nas.darts.operations import PRIMITIVES
from nnopt_jax.nas.darts.search_model import (ArchParams, SearchNetwork, count_params,
                                              init_alphas)

__all__ = [
    "PRIMITIVES", "ArchParams", "SearchNetwork", "EvalNetwork", "Genotype", "DARTS_V1",
    "DARTS_V2", "init_alphas", "count_params", "derive_genotype", "load_genotype",
    "save_genotype", "plot_genotype", "random_genotype", "parameter_free_share",
    "first_order_grad", "second_order_grad", "finite_difference_grad", "hypergradient",
    "unrolled_val_loss", "virtual_step", "dominant_eigenvalue", "early_stop_epoch",
    "run_search", "run_train",
]


def __getattr__(name):
    if name == "run_search":
        from nnopt_jax.nas.darts.search import run_search
        return run_search
    if name == "run_train":
        from nnopt_jax.nas.darts.train import run_train
        return run_train
    raise AttributeError(f"module 'nnopt_jax.nas.darts' has no attribute {name!r}")
