"""Sparse variational dropout, LeNet-5-Caffe on MNIST (Molchanov et al. 2017, Table 1).

Adam 1e-3 linearly to 0, batch 100, 200 epochs, KL warm-up 5->20 epochs.
As in the authors' code: weights N(0, 0.01^2) at init and the log alpha >= 3
mask applied in training too (their train_clip=True) to the mean weights, not
to the noise, as in their dense layers (which hold 93 % of the weights; their
convolutions mask the noise too).
Paper: 0.75 % error, 280x, sparsity 67-98-99.8-95 %.

Variant "authors": the convolutions of the authors' experiments/lenet/lenet5-ard.py
(a ReLU after each, Glorot-uniform kernels, the pruned weights' noise masked).

Run (MNIST from ../shared/data/mnist):
  NNOPT_DATA_DIR=../shared/data nnopt compress --config configs/compress/lenet5_svd.py --out runs/compress/lenet5_svd
  NNOPT_DATA_DIR=../shared/data nnopt compress --config configs/compress/lenet5_svd.py:authors --out runs/compress/lenet5_svd_authors
Smoke (seconds, used by the tests):
  nnopt compress --config configs/compress/lenet5_svd.py:smoke --out runs/compress/lenet5_svd_smoke
"""

from nnopt_jax.bayes.run import eval_defaults, smoke_variant
from nnopt_jax.config import Config


def get_config(variant: str = "default") -> Config:
    cfg = Config(
        name="lenet5_svd",
        method="sparse_vd",
        seed=0,
        data=dict(name="mnist", data_dir=None, train_subset=0, test_subset=0),
        model=dict(name="lenet5", threshold=3.0, mask_in_training=True, mask_noise=False,
                   init_std=0.01),
        train=dict(batch_size=100, num_epochs=200, learning_rate=1e-3, schedule="linear",
                   warmup_start=5, warmup_end=20, checkpoint_every=0,
                   steps_per_chunk=1, unroll=True),  # XLA:CPU convolutions in loops: 7x slower
        eval_batch_size=1000,
        export=True,
        eval=eval_defaults(),  # --set eval.uncertainty=true: calibration and OOD report
    )

    if variant == "smoke":
        cfg = smoke_variant(cfg, dataset="mnist")
    elif variant == "authors":
        cfg.name = "lenet5_svd_authors"
        cfg.model.conv_relu, cfg.model.conv_init, cfg.model.conv_mask_noise = True, "glorot_uniform", True
    elif variant != "default":
        raise ValueError(f"unknown variant {variant!r}; use 'default', 'authors' or 'smoke'")
    return cfg
