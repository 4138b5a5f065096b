"""OptunaHub package ``samplers/nnopt_bo``: nnopt_jax's Bayesian optimiser as an Optuna sampler."""

from __future__ import annotations

from nnopt_jax.hpo.optuna import NNOptSampler

__all__ = ["NNOptSampler"]
