"""Multi-objective recipe search for LeNet-5-Caffe on Fashion-MNIST.

The LeNet-300-100 study (``lenet300_mnist.py``: space, objectives, latency,
ParEGO, 10-epoch trials on 55,000 images scored on 5,000 held out) with
LeNet-5 widths (5, 12, 125) x width in 1..4 (4: 20-48-500, near the original
20-50-500) on Fashion-MNIST.

Data: Fashion-MNIST from the data catalog (``nnopt data check fashion_mnist``;
the Debian package dataset-fashion-mnist puts it in /usr/share/datasets).

Run:
  nnopt optimize --config configs/optimize/lenet5_fashion.py --out runs/optimize/lenet5_fashion
Smoke (minutes on a CPU):
  nnopt optimize --config configs/optimize/lenet5_fashion.py:smoke --out runs/optimize/lenet5_fashion_smoke
"""

import pathlib

from nnopt_jax.config import Config, load_config


def get_config(variant: str = "default") -> Config:
    if variant not in ("default", "smoke"):
        raise ValueError(f"unknown variant {variant!r}; use 'default' or 'smoke'")
    cfg = load_config(f"{pathlib.Path(__file__).with_name('lenet300_mnist.py')}:{variant}")
    cfg.name = "optimize_lenet5_fashion"
    cfg.data.name = "fashion_mnist"
    cfg.model = Config(arch="lenet5", base_features=(5, 12, 125))
    cfg.train.steps_per_chunk, cfg.train.unroll = 1, True  # XLA:CPU convolutions in loops: slower
    if variant == "smoke":
        cfg.data.train_subset, cfg.data.test_subset = 2000, 500
        cfg.train.num_epochs = 1
        cfg.pruning.stages = (1.0,)
        cfg.optimizer.n_trials = 3
    return cfg
