"""Variational network quantisation (ternary), LeNet-300-100 on MNIST.

The VNQ paper (Achterhold et al. 2018) has no LeNet-300-100 row; this is its
LeNet-5 recipe (``lenet5_vnq.py``) on the dense network, at half the length:
pre-train 5 epochs (KL off), then 95 epochs with KL warm-up over the first 15,
batch 100, Adam 1e-3 linearly to 0, codebook level a learned with a 100x
smaller learning rate, log sigma^2 init -8 clipped to (-10, 1). After
training: prune log alpha >= 3, snap to {-a, 0, a} (2 bits), except the kept
weights beyond 2a (0.5 % of them here, at up to 16a), which stay float32
under the spare fourth code: strict ternary (quantize.outlier_factor=None)
loses 1.5 % test error on this network, the outliers cost 4 bytes each.

Run (MNIST from ../shared/data/mnist):
  NNOPT_DATA_DIR=../shared/data nnopt compress --config configs/compress/lenet300_vnq.py --out runs/compress/lenet300_vnq
Smoke (seconds, used by the tests):
  nnopt compress --config configs/compress/lenet300_vnq.py:smoke --out runs/compress/lenet300_vnq_smoke
"""

from nnopt_jax.bayes.run import eval_defaults, smoke_variant
from nnopt_jax.config import Config


def get_config(variant: str = "default") -> Config:
    cfg = Config(
        name="lenet300_vnq",
        method="vnq",
        seed=0,
        data=dict(name="mnist", data_dir=None, train_subset=0, test_subset=0),
        model=dict(name="lenet300_100", threshold=3.0, log_sigma2_init=-8.0),
        train=dict(batch_size=100, num_epochs=95, learning_rate=1e-3, schedule="linear",
                   warmup_start=0, warmup_end=15, checkpoint_every=0,
                   pretrain_epochs=5, level_lr_factor=0.01),
        eval_batch_size=1000,
        export=True,
        quantize=dict(outlier_factor=2.0),  # weights beyond 2a kept in float32 (docs/compression.md)
        eval=eval_defaults(),  # --set eval.uncertainty=true: calibration and OOD report
    )
    if variant == "smoke":
        cfg = smoke_variant(cfg, dataset="digits")
    elif variant != "default":
        raise ValueError(f"unknown variant {variant!r}; use 'default' or 'smoke'")
    return cfg
