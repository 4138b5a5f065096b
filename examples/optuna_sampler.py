"""An Optuna study run by this project's Bayesian optimiser (NNOptSampler).

The objective stands in for a training run: a validation loss over a mixed
space (a float, a log-scaled float, an integer and a categorical). Run::

    python examples/optuna_sampler.py                 # 30 trials, in memory
    python examples/optuna_sampler.py --n-trials 12 --storage sqlite:///study.db

With ``--storage`` (an RDB URL or a journal file path ending in ``.log``),
start the same command in several terminals: the workers share one study.
"""

from __future__ import annotations

import argparse
import math

import optuna

from nnopt_jax.hpo.optuna import NNOptSampler


def objective(trial: optuna.Trial) -> float:
    """A smooth stand-in for a validation loss (minimum 0.05 at lr=3e-3, 3 layers, gelu)."""
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    dropout = trial.suggest_float("dropout", 0.0, 0.5)
    layers = trial.suggest_int("layers", 1, 6)
    act = trial.suggest_categorical("activation", ["relu", "tanh", "gelu"])
    return (0.05 + 0.1 * (math.log10(lr) - math.log10(3e-3)) ** 2
            + (dropout - 0.2) ** 2 + 0.02 * (layers - 3) ** 2
            + {"relu": 0.03, "tanh": 0.08, "gelu": 0.0}[act])


def main(argv=None) -> optuna.Study:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--storage", default=None,
                        help="an RDB URL (sqlite:///study.db) or a journal file (study.log)")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = args.storage
    if storage is not None and storage.endswith(".log"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        storage = JournalStorage(JournalFileBackend(storage))
    study = optuna.create_study(study_name="nnopt-example", storage=storage,
                                load_if_exists=True, sampler=NNOptSampler(seed=args.seed))
    study.optimize(objective, n_trials=args.n_trials)
    print(f"trials: {len(study.trials)}")
    print(f"best value: {study.best_value:.6f}")
    print(f"best params: {study.best_params}")
    return study


if __name__ == "__main__":
    main()
