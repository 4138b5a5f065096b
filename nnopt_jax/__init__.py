"""nnopt_jax: optimising neural networks for accuracy, speed and size in JAX.

Three pillars share one training core:

* :mod:`nnopt_jax.hpo` -- grid, random and Bayesian hyper-parameter optimisation.
* :mod:`nnopt_jax.nas` -- DARTS and black-box search on NAS-Bench-201.
* :mod:`nnopt_jax.bayes` -- sparse variational dropout and variational network
  quantisation.

Sub-packages are imported lazily so that ``import nnopt_jax`` stays cheap.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("bayes", "data", "hpo", "models", "nas", "parallel", "training")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"nnopt_jax.{name}")
    raise AttributeError(f"module 'nnopt_jax' has no attribute {name!r}")


__all__ = ["__version__", *_SUBMODULES]
