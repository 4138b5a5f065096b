"""Multi-objective recipe search for LeNet-300-100 on MNIST.

Widths (75, 25) x width in 1..4 (4: the original 300-100); dense, magnitude
pruning, sparse VD or VNQ, each a 10-epoch run on 55,000 training images,
scored on 5,000 held-out ones: validation error, exported bytes, batch-1
latency of the exported model (batch 100 recorded too).

Run (MNIST from ../shared/data/mnist):
  nnopt optimize --config configs/optimize/lenet300_mnist.py --data-dir ../shared/data/mnist \\
      --out runs/optimize/lenet300_mnist
Smoke (a minute on a CPU):
  nnopt optimize --config configs/optimize/lenet300_mnist.py:smoke --data-dir ../shared/data/mnist \\
      --out runs/optimize/lenet300_mnist_smoke
"""

from nnopt_jax.config import Config
from nnopt_jax.optimize.recipe import space_spec


def get_config(variant: str = "default") -> Config:
    cfg = Config(
        name="optimize_lenet300_mnist",
        seed=0,
        data=dict(name="mnist", data_dir=None, train_subset=0, validation_fraction=5000 / 60000,
                  test_subset=0),
        model=dict(arch="mlp", base_features=(75, 25)),
        train=dict(batch_size=100, num_epochs=10, pretrain_epochs=2, level_lr_factor=0.01,
                   steps_per_chunk=100),
        pruning=dict(stages=(0.5, 0.8, 1.0), retrain_epochs=2, retrain_lr_factor=0.1),
        space=space_spec(learning_rate=(3e-4, 1e-2), kl_warmup_end=(1.0, 8.0)),
        objectives=("val_error", "size_bytes", "latency"),
        latency=dict(batch_sizes=(1, 100), repeats=20, warmup=3, objective_batch=1),
        optimizer=dict(method="parego", n_trials=40, n_initial=10,
                       ref_point=dict(val_error=1.0, size_bytes=3_000_000, latency=100.0)),
    )
    if variant == "smoke":
        cfg.data.train_subset, cfg.data.test_subset = 3000, 1000
        cfg.train.num_epochs, cfg.train.pretrain_epochs = 2, 1
        cfg.pruning.stages, cfg.pruning.retrain_epochs = (0.5, 1.0), 1
        cfg.latency.repeats = 5
        cfg.optimizer.n_trials, cfg.optimizer.n_initial = 4, 2
    elif variant != "default":
        raise ValueError(f"unknown variant {variant!r}; use 'default' or 'smoke'")
    return cfg
