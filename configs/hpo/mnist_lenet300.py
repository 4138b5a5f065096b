"""HPO of a LeNet-300-100-shaped MLP (two hidden layers) on MNIST.

    nnopt hpo --config configs/hpo/mnist_lenet300.py --data-dir ../shared/data/mnist
    nnopt hpo --config configs/hpo/mnist_lenet300.py --resume     # continue the journal
    nnopt hpo --config configs/hpo/mnist_lenet300.py:smoke        # tiny, for tests

The ``lenet300`` model has fixed 300-100 widths and no dropout/activation
options, so the tuned model is the ``mlp`` of depth 2 (LeNet-300-100 is its
width-300 member); the space covers learning rate (log), weight decay (log),
width (int, log), dropout and activation. 10 % of the training set is held out
for validation.
"""

import pathlib

from nnopt_jax.config import Config, load_config

SPACE = {
    "train.learning_rate": dict(type="real", low=1e-4, high=1e-2, log=True),
    "train.weight_decay": dict(type="real", low=1e-6, high=1e-2, log=True),
    "model.width": dict(type="int", low=64, high=1024, log=True),
    "model.dropout": dict(type="real", low=0.0, high=0.5),
    "model.activation": dict(type="categorical", choices=["relu", "tanh", "gelu"]),
}


def get_config(variant: str = "default") -> Config:
    base = load_config(pathlib.Path(__file__).resolve().parents[1] / "mnist_lenet300.py")
    base.model = Config(name="mlp", width=300, depth=2, activation="relu", dropout=0.0)
    base.data.validation_fraction = 0.1
    base.train.optimizer = "adamw"
    base.train.num_epochs = 10
    cfg = Config(base=base, hpo=dict(method="bo", n_trials=25, seed=0, metric="val_error",
                                     space=SPACE))
    if variant == "smoke":
        cfg.base.data.train_subset = 1000
        cfg.base.train.num_epochs = 1
        cfg.hpo.n_trials = 3
    elif variant != "default":
        raise ValueError(f"variant must be 'default' or 'smoke', got {variant!r}")
    return cfg
