"""Multi-objective recipe search on sklearn digits (tests, ``nnopt demo``, the hypervolume experiment).

A two-hidden-layer MLP of widths (16, 8) x width in 1..4; dense, magnitude
pruning, sparse VD or VNQ; validation error, exported bytes, batch-1 latency.

Run:
  nnopt optimize --config configs/optimize/digits.py --out runs/optimize/digits
Smoke (seconds, used by the tests):
  nnopt optimize --config configs/optimize/digits.py:smoke --out runs/optimize/digits_smoke
"""

from nnopt_jax.config import Config
from nnopt_jax.optimize.recipe import space_spec


def get_config(variant: str = "default") -> Config:
    cfg = Config(
        name="optimize_digits",
        seed=0,
        data=dict(name="digits", data_dir=None, train_subset=0, validation_fraction=0.2),
        model=dict(arch="mlp", base_features=(16, 8)),
        train=dict(batch_size=50, num_epochs=8, pretrain_epochs=2, level_lr_factor=0.01,
                   steps_per_chunk=100),
        pruning=dict(stages=(0.5, 1.0), retrain_epochs=2, retrain_lr_factor=0.1),
        space=space_spec(),
        objectives=("val_error", "size_bytes", "latency"),
        latency=dict(batch_sizes=(1, 100), repeats=10, warmup=2, objective_batch=1),
        optimizer=dict(method="parego", n_trials=20, n_initial=6,
                       ref_point=dict(val_error=1.0, size_bytes=100_000, latency=10.0)),
    )
    if variant == "smoke":
        cfg.train.num_epochs, cfg.train.pretrain_epochs = 2, 1
        cfg.pruning.retrain_epochs = 1
        cfg.latency.repeats, cfg.latency.warmup = 3, 1
        cfg.optimizer.n_trials, cfg.optimizer.n_initial = 4, 2
    elif variant != "default":
        raise ValueError(f"unknown variant {variant!r}; use 'default' or 'smoke'")
    return cfg
