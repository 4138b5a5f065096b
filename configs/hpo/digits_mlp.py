"""HPO of an MLP on sklearn digits (embedded data; no download).

    nnopt hpo --config configs/hpo/digits_mlp.py --out runs/hpo/digits_mlp
    nnopt hpo --config configs/hpo/digits_mlp.py --out runs/hpo/digits_mlp --resume
    nnopt hpo --config configs/hpo/digits_mlp.py:smoke      # seconds, for tests

Tunes learning rate (log), weight decay (log), width (int, log), dropout and
activation of ``configs/digits_mlp.py`` by Bayesian optimisation of the
validation error.
"""

import pathlib

from nnopt_jax.config import Config, load_config

SPACE = {
    "train.learning_rate": dict(type="real", low=1e-4, high=3e-2, log=True),
    "train.weight_decay": dict(type="real", low=1e-6, high=1e-2, log=True),
    "model.width": dict(type="int", low=16, high=512, log=True),
    "model.dropout": dict(type="real", low=0.0, high=0.5),
    "model.activation": dict(type="categorical", choices=["relu", "tanh", "gelu"]),
}


def get_config(variant: str = "default") -> Config:
    base = load_config(pathlib.Path(__file__).resolve().parents[1] / "digits_mlp.py")
    base.train.optimizer = "adamw"
    cfg = Config(base=base, hpo=dict(method="bo", n_trials=30, seed=0, metric="val_error",
                                     space=SPACE))
    if variant == "smoke":
        cfg.base.train.num_epochs = 1
        cfg.hpo.n_trials = 4
    elif variant == "demo":
        cfg.base.train.num_epochs = 2
        cfg.hpo.n_trials = 6
    elif variant != "default":
        raise ValueError(f"variant must be 'default', 'demo' or 'smoke', got {variant!r}")
    return cfg
