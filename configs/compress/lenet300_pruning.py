"""Magnitude pruning with retraining (Han et al. 2015), LeNet-300-100 on MNIST.

Dense training, then 5 prune/retrain rounds (10 epochs each, Adam 1e-3) toward per-layer sparsity 92-91-74 %
(Han et al. Table 2: 12x), masks fixed while retraining. Paper: 1.59 % error, 12x.

Run (MNIST from ../shared/data/mnist):
  NNOPT_DATA_DIR=../shared/data nnopt compress --config configs/compress/lenet300_pruning.py --out runs/compress/lenet300_pruning
Smoke (seconds, used by the tests):
  nnopt compress --config configs/compress/lenet300_pruning.py:smoke --out runs/compress/lenet300_pruning_smoke
"""

from nnopt_jax.bayes.run import eval_defaults, smoke_variant
from nnopt_jax.config import Config


def get_config(variant: str = "default") -> Config:
    cfg = Config(
        name="lenet300_pruning",
        method="pruning",
        seed=0,
        data=dict(name="mnist", data_dir=None, train_subset=0, test_subset=0),
        model=dict(name="lenet300_100", threshold=3.0),
        train=dict(batch_size=100, num_epochs=100, learning_rate=1e-3, schedule="constant",
                   warmup_start=5, warmup_end=20, checkpoint_every=0),
        eval_batch_size=1000,
        export=True,
        eval=eval_defaults(),  # --set eval.uncertainty=true: calibration and OOD report
    )
    cfg.pruning = dict(sparsity={'mlp/fc1': 0.92, 'mlp/fc2': 0.91, 'mlp/fc3': 0.74},
                       stages=(0.5, 0.75, 0.9, 0.97, 1.0), retrain_epochs=10, retrain_learning_rate=1e-3)
    if variant == "smoke":
        cfg = smoke_variant(cfg, dataset="digits")
    elif variant != "default":
        raise ValueError(f"unknown variant {variant!r}; use 'default' or 'smoke'")
    return cfg
