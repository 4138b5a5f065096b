"""Architecture search: DARTS (:mod:`nnopt_jax.nas.darts`) and black-box search on
NAS-Bench-201 (:mod:`nnopt_jax.nas.nb201`). Sub-packages load on first use."""

import importlib

_SUBPACKAGES = ("darts", "nb201")


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"nnopt_jax.nas.{name}")
    raise AttributeError(f"module 'nnopt_jax.nas' has no attribute {name!r}")
