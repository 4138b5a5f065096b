"""Train a DARTS genotype from scratch on Fashion-MNIST (2 shared CPU cores).

5 cells (reductions at 1 and 3), C = 8, images resized to 16x16, a 20,000-image
training subset, 8 epochs, batch 64 (2,496 steps, about 13 minutes on one core);
the paper's recipe otherwise (SGD 0.025
cosine, wd 3e-4, clip 5, auxiliary head 0.4, drop path 0.2, cutout 4 at this
size, random crop 1). Test on the full 10,000-image test set.

Run (part of experiments/darts_fashion.py):
  nnopt nas train --config configs/nas/darts_fashion_train.py --genotype runs/darts_fashion/search/genotype.json --out runs/darts_fashion/train_searched
Smoke (seconds):
  nnopt nas train --config configs/nas/darts_fashion_train.py:smoke --genotype DARTS_V2 --out runs/nas/darts_fashion_train_smoke
"""

from nnopt_jax.config import Config


def get_config(variant: str = "default") -> Config:
    cfg = Config(
        name="darts_fashion_train",
        data=dict(name="fashion_mnist", data_dir=None, num_train=20000, num_test=0, image_size=16),
        model=dict(channels=8, layers=5, auxiliary=True),
        train=dict(batch_size=64, epochs=8, lr=0.025, momentum=0.9, weight_decay=3e-4,
                   grad_clip=5.0, aux_weight=0.4, drop_path_prob=0.2, cutout=4,
                   crop_padding=1, flip=False, seed=0, checkpoint_every=0,
                   eval_batch_size=1000, eval_every_epoch=False, steps_per_chunk=1,
                   unroll=True),
    )
    if variant == "smoke":
        cfg.data.num_train, cfg.data.num_test, cfg.data.image_size = 64, 64, 8
        cfg.model.channels, cfg.model.layers = 4, 3
        cfg.train.epochs, cfg.train.batch_size, cfg.train.eval_batch_size = 1, 16, 32
        cfg.train.steps_per_chunk, cfg.train.unroll = 4, False
    elif variant != "default":
        raise ValueError(f"unknown variant {variant!r}; use 'default' or 'smoke'")
    return cfg
