"""Variational network quantisation (ternary) of a small DenseNet on CIFAR-10.

The paper's CIFAR-10 row (Achterhold et al. 2018) uses DenseNet-121 (6.81 %
original, 8.83 % after pruning + ternary quantisation, 46 % non-zero). This config
trains a small DenseNet (growth 12, three blocks of 8 layers) with VNQ: pre-train
10 epochs without KL, then 150 epochs with KL warm-up over 15, Adam 1e-3 linearly
to 0, level learning rate 100x smaller. Needs a GPU and the CIFAR-10 python
batches (cifar-10-batches-py).

Run:
  NNOPT_DATA_DIR=/path/to/data nnopt compress --config configs/compress/densenet_cifar10_vnq.py \
      --out runs/compress/densenet_cifar10_vnq
Smoke (CPU, seconds; the tests run it on CIFAR-format files they write):
  nnopt compress --config configs/compress/densenet_cifar10_vnq.py:smoke --out runs/compress/densenet_smoke
"""

from nnopt_jax.config import Config


def get_config(variant: str = "default") -> Config:
    cfg = Config(
        name="densenet_cifar10_vnq",
        method="vnq",
        seed=0,
        data=dict(name="cifar10", data_dir=None, train_subset=0, test_subset=0),
        model=dict(name="densenet", threshold=3.0, growth=12, blocks=(8, 8, 8), log_sigma2_init=-8.0),
        train=dict(batch_size=64, num_epochs=150, learning_rate=1e-3, schedule="linear", warmup_start=0,
                   warmup_end=15, pretrain_epochs=10, level_lr_factor=0.01, funnel_clip=True,
                   checkpoint_every=0),
        eval_batch_size=500,
        export=True,
        quantize=dict(outlier_factor=None),  # strict ternary, as the paper
    )
    if variant == "smoke":
        cfg.model.growth, cfg.model.blocks = 4, (1,)
        cfg.data.train_subset, cfg.data.test_subset = 64, 32
        cfg.train.num_epochs, cfg.train.batch_size, cfg.train.pretrain_epochs = 1, 32, 1
        cfg.train.warmup_end = 1
        cfg.eval_batch_size = 32
    elif variant != "default":
        raise ValueError(f"unknown variant {variant!r}; use 'default' or 'smoke'")
    return cfg
