"""A small LeNet on sklearn digits: the training stage of ``nnopt demo``.

    nnopt train --config configs/digits_lenet.py
"""

from nnopt_jax.config import Config


def get_config(variant: str = "default") -> Config:
    cfg = Config(
        seed=0,
        data=dict(name="digits", data_dir=None, validation_fraction=0.0, train_subset=0),
        model=dict(name="small_lenet", channels=[16, 32], hidden=64),
        train=dict(optimizer="adam", learning_rate=3e-3, weight_decay=0.0, momentum=0.9,
                   schedule="cosine", batch_size=64, num_epochs=40, checkpoint_every=0,
                   grad_clip=0.0, steps_per_chunk=1, unroll=True),  # XLA:CPU convolutions in loops: slower
        eval_batch_size=512,
    )
    if variant == "smoke":
        cfg.train.num_epochs = 2
    elif variant != "default":
        raise ValueError(f"variant must be 'default' or 'smoke', got {variant!r}")
    return cfg
