"""Magnitude pruning with retraining (Han et al. 2015), LeNet-5-Caffe on MNIST.

Dense training, then 5 prune/retrain rounds (10 epochs each, Adam 1e-3) toward per-layer sparsity 34-88-92-81 %
(Han et al. Table 3: 12x), masks fixed while retraining. Paper: 0.77 % error, 12x.

Run (MNIST from ../shared/data/mnist):
  NNOPT_DATA_DIR=../shared/data nnopt compress --config configs/compress/lenet5_pruning.py --out runs/compress/lenet5_pruning
Smoke (seconds, used by the tests):
  nnopt compress --config configs/compress/lenet5_pruning.py:smoke --out runs/compress/lenet5_pruning_smoke
"""

from nnopt_jax.bayes.run import eval_defaults, smoke_variant
from nnopt_jax.config import Config


def get_config(variant: str = "default") -> Config:
    cfg = Config(
        name="lenet5_pruning",
        method="pruning",
        seed=0,
        data=dict(name="mnist", data_dir=None, train_subset=0, test_subset=0),
        model=dict(name="lenet5", threshold=3.0),
        train=dict(batch_size=100, num_epochs=100, learning_rate=1e-3, schedule="linear",
                   warmup_start=5, warmup_end=20, checkpoint_every=0,
                   steps_per_chunk=1, unroll=True),  # XLA:CPU convolutions in loops: 7x slower
        eval_batch_size=1000,
        export=True,
        eval=eval_defaults(),  # --set eval.uncertainty=true: calibration and OOD report
    )
    cfg.pruning = dict(sparsity={'conv1': 0.34, 'conv2': 0.88, 'fc1': 0.92, 'fc2': 0.81},
                       stages=(0.5, 0.75, 0.9, 0.97, 1.0), retrain_epochs=10, retrain_learning_rate=1e-3)
    if variant == "smoke":
        cfg = smoke_variant(cfg, dataset="mnist")
    elif variant != "default":
        raise ValueError(f"unknown variant {variant!r}; use 'default' or 'smoke'")
    return cfg
