"""Train a DARTS genotype from scratch on CIFAR-10 (Liu et al. 2018, Sec. 3.2).

20 cells, C = 36, batch 96, 600 epochs, SGD 0.025 cosine, momentum 0.9, wd 3e-4,
clip 5, auxiliary weight 0.4, drop path 0.2, cutout 16, random crop 4 + flip.

Run:
  nnopt nas train --config configs/nas/darts_cifar10_train.py --genotype DARTS_V2 --out runs/nas/darts_v2_cifar10
  nnopt nas train --config configs/nas/darts_cifar10_train.py --genotype runs/nas/darts_cifar10_search/genotype.json
Smoke (seconds, used by the tests; digits, 3 cells, C = 4):
  nnopt nas train --config configs/nas/darts_cifar10_train.py:smoke --genotype DARTS_V2 --out runs/nas/darts_train_smoke
"""

from nnopt_jax.config import Config


def get_config(variant: str = "default") -> Config:
    cfg = Config(
        name="darts_cifar10_train",
        data=dict(name="cifar10", data_dir=None, num_train=0, num_test=0),
        model=dict(channels=36, layers=20, auxiliary=True),
        train=dict(batch_size=96, epochs=600, lr=0.025, momentum=0.9, weight_decay=3e-4,
                   grad_clip=5.0, aux_weight=0.4, drop_path_prob=0.2, cutout=16,
                   crop_padding=4, flip=True, seed=0, checkpoint_every=0,
                   eval_batch_size=500, eval_every_epoch=True, steps_per_chunk=50),
    )
    if variant == "smoke":
        cfg.data.name, cfg.data.num_train, cfg.data.num_test = "digits", 64, 64
        cfg.model.channels, cfg.model.layers = 4, 3
        cfg.train.epochs, cfg.train.batch_size, cfg.train.cutout = 1, 16, 4
        cfg.train.crop_padding, cfg.train.eval_batch_size = 1, 32
        cfg.train.steps_per_chunk = 4
    elif variant != "default":
        raise ValueError(f"unknown variant {variant!r}; use 'default' or 'smoke'")
    return cfg
