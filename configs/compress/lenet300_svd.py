"""Sparse variational dropout, LeNet-300-100 on MNIST (Molchanov et al. 2017, Table 1).

Adam 1e-3 flat to epoch 100 then linear to 0, batch 100, 200 epochs, KL warm-up
0 for 5 epochs then linear to 1 at epoch 20, log sigma^2 init -10.
As in the authors' code: weights N(0, 0.01^2) at init and the log alpha >= 3
mask applied in training too (their train_clip=True) to the mean weights,
not to the noise (their dense layer keeps the pruned weights' variance).
Paper: 1.92 % error, 68x, sparsity 98.9-97.2-62.0 %.

Run (MNIST from ../shared/data/mnist):
  NNOPT_DATA_DIR=../shared/data nnopt compress --config configs/compress/lenet300_svd.py --out runs/compress/lenet300_svd
Smoke (seconds, used by the tests):
  nnopt compress --config configs/compress/lenet300_svd.py:smoke --out runs/compress/lenet300_svd_smoke
"""

from nnopt_jax.bayes.run import eval_defaults, smoke_variant
from nnopt_jax.config import Config


def get_config(variant: str = "default") -> Config:
    cfg = Config(
        name="lenet300_svd",
        method="sparse_vd",
        seed=0,
        data=dict(name="mnist", data_dir=None, train_subset=0, test_subset=0),
        model=dict(name="lenet300_100", threshold=3.0, mask_in_training=True, mask_noise=False,
                   init_std=0.01),
        train=dict(batch_size=100, num_epochs=200, learning_rate=1e-3, schedule="lenet300",
                   warmup_start=5, warmup_end=20, checkpoint_every=0),
        eval_batch_size=1000,
        export=True,
        eval=eval_defaults(),  # --set eval.uncertainty=true: calibration and OOD report
    )
    cfg.train.flat_epochs = 100
    if variant == "smoke":
        cfg = smoke_variant(cfg, dataset="digits")
    elif variant != "default":
        raise ValueError(f"unknown variant {variant!r}; use 'default' or 'smoke'")
    return cfg
