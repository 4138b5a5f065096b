"""Minimise a mixed-space stand-in for a validation loss with ``samplers/nnopt_bo``.

From the registry:  python example.py
From this checkout: python example.py --local   (loads the package from examples/optunahub)
"""

from __future__ import annotations

import math
import pathlib
import sys

import optuna
import optunahub


def objective(trial: optuna.Trial) -> float:
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    layers = trial.suggest_int("layers", 1, 6)
    act = trial.suggest_categorical("activation", ["relu", "tanh", "gelu"])
    return ((math.log10(lr) + 2.5) ** 2 + 0.1 * (layers - 3) ** 2
            + {"relu": 0.1, "tanh": 0.3, "gelu": 0.0}[act])


def main(n_trials: int = 20, local: bool = False) -> optuna.Study:
    if local:
        module = optunahub.load_local_module(
            package="samplers/nnopt_bo", registry_root=str(pathlib.Path(__file__).parents[2]))
    else:
        module = optunahub.load_module(package="samplers/nnopt_bo")
    study = optuna.create_study(sampler=module.NNOptSampler(seed=0))
    study.optimize(objective, n_trials=n_trials)
    print(f"best value {study.best_value:.4f} at {study.best_params}")
    return study


if __name__ == "__main__":
    main(local="--local" in sys.argv[1:])
