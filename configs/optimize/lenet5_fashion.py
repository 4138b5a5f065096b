"""Multi-objective recipe search for LeNet-5-Caffe on Fashion-MNIST.

Widths (5, 12, 125) x width in 1..4 (4: 20-48-500, near the original
20-50-500); dense, magnitude pruning, sparse VD or VNQ, each a 10-epoch run on
55,000 training images, scored on 5,000 held-out ones: validation error,
exported bytes, batch-1 latency of the exported model (batch 100 recorded too).

Data: Fashion-MNIST from the data catalog (``nnopt data check fashion_mnist``;
the Debian package dataset-fashion-mnist puts it in /usr/share/datasets).

Run:
  nnopt optimize --config configs/optimize/lenet5_fashion.py --out runs/optimize/lenet5_fashion
Smoke (minutes on a CPU):
  nnopt optimize --config configs/optimize/lenet5_fashion.py:smoke --out runs/optimize/lenet5_fashion_smoke
"""

from nnopt_jax.config import Config
from nnopt_jax.optimize.recipe import space_spec


def get_config(variant: str = "default") -> Config:
    cfg = Config(
        name="optimize_lenet5_fashion",
        seed=0,
        data=dict(name="fashion_mnist", data_dir=None, train_subset=0,
                  validation_fraction=5000 / 60000, test_subset=0),
        model=dict(arch="lenet5", base_features=(5, 12, 125)),
        train=dict(batch_size=100, num_epochs=10, pretrain_epochs=2, level_lr_factor=0.01,
                   steps_per_chunk=1, unroll=True),  # XLA:CPU convolutions in loops: slower
        pruning=dict(stages=(0.5, 0.8, 1.0), retrain_epochs=2, retrain_lr_factor=0.1),
        space=space_spec(learning_rate=(3e-4, 1e-2), kl_warmup_end=(1.0, 8.0)),
        objectives=("val_error", "size_bytes", "latency"),
        latency=dict(batch_sizes=(1, 100), repeats=20, warmup=3, objective_batch=1),
        optimizer=dict(method="parego", n_trials=40, n_initial=10,
                       ref_point=dict(val_error=1.0, size_bytes=3_000_000, latency=100.0)),
    )
    if variant == "smoke":
        cfg.data.train_subset, cfg.data.test_subset = 2000, 500
        cfg.train.num_epochs, cfg.train.pretrain_epochs = 1, 1
        cfg.pruning.stages, cfg.pruning.retrain_epochs = (1.0,), 1
        cfg.latency.repeats = 5
        cfg.optimizer.n_trials, cfg.optimizer.n_initial = 3, 2
    elif variant != "default":
        raise ValueError(f"unknown variant {variant!r}; use 'default' or 'smoke'")
    return cfg
