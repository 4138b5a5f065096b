"""What the benchmarks that run Optuna share: single-threaded libraries, one study per run.

Importing this module sets ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
``MKL_NUM_THREADS`` and ``XLA_FLAGS`` to one intra-op thread (unless already
set), so import it before NumPy or JAX: the development machine's two cores
are shared, and thread pools that spin-wait on descheduled workers make every
method (XLA, OpenBLAS, torch) slower by an order of magnitude under load.

The benchmark scripts import it as a sibling module (``benchmarks/`` is on
``sys.path`` when a script there runs).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Mapping


def single_threaded() -> None:
    """One intra-op thread per library (environment defaults; set values are kept)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("XLA_FLAGS",
                          "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")


single_threaded()

OPTUNA_METHODS = ("optuna_tpe", "optuna_gp", "nnopt_sampler")
"""Methods that run as an Optuna study: TPE, GPSampler, and this project's NNOptSampler."""


def prepare_optuna() -> None:
    """Imports Optuna (and torch, for GPSampler) quietly, one torch thread.

    Call it before a benchmark's clock starts, so that no method's first
    suggestion pays for these imports; :func:`run_optuna` calls it too.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        import torch

        torch.set_num_threads(1)  # GPSampler's linear algebra
    except ImportError:
        pass


def optuna_sampler(method: str, seed: int):
    """The Optuna sampler of ``method`` (one of :data:`OPTUNA_METHODS`), at its defaults.

    Raises:
        ValueError: an unknown method.
    """
    import optuna

    if method == "optuna_tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if method == "optuna_gp":
        return optuna.samplers.GPSampler(seed=seed)
    if method == "nnopt_sampler":
        from nnopt_jax.hpo.optuna import NNOptSampler

        return NNOptSampler(seed=seed)
    raise ValueError(f"unknown Optuna method {method!r}; choose from {OPTUNA_METHODS}")


def run_optuna(method: str, seed: int, n_trials: int, suggest: Callable[[Any], Any],
               evaluate: Callable[[Any], float], *,
               enqueue: Iterable[Mapping[str, Any]] = ()):
    """Runs one minimisation study of ``n_trials`` trials with ``method``'s sampler.

    Args:
        method: one of :data:`OPTUNA_METHODS`.
        seed: the sampler's seed.
        n_trials: trials to run.
        suggest: ``trial -> x``: suggests the parameters (``trial.suggest_*``).
        evaluate: ``x -> value`` (minimised); record what the benchmark needs here.
        enqueue: parameter dicts to run first (``study.enqueue_trial``), e.g. an
            initial design.

    Returns:
        The finished ``optuna.Study``.
    """
    import optuna

    prepare_optuna()
    study = optuna.create_study(sampler=optuna_sampler(method, seed))
    for params in enqueue:
        study.enqueue_trial(dict(params))
    study.optimize(lambda trial: evaluate(suggest(trial)), n_trials=n_trials)
    return study


def choices(parser, value: str, allowed, what: str) -> list[str]:
    """``value`` split at commas, each checked against ``allowed`` (``parser.error`` otherwise)."""
    items = value.split(",")
    for item in items:
        if item not in allowed:
            parser.error(f"unknown {what} {item!r}; choose from {', '.join(allowed)}")
    return items
