"""An MLP on sklearn digits (embedded, needs no download); the HPO demo's base run.

    nnopt train --config configs/digits_mlp.py
"""

from nnopt_jax.config import Config


def get_config(variant: str = "default") -> Config:
    cfg = Config(
        seed=0,
        data=dict(name="digits", data_dir=None, validation_fraction=0.2, train_subset=0),
        model=dict(name="mlp", width=128, depth=2, activation="relu", dropout=0.0),
        train=dict(optimizer="adam", learning_rate=1e-3, weight_decay=0.0, momentum=0.9,
                   schedule="cosine", batch_size=64, num_epochs=30, checkpoint_every=0,
                   grad_clip=0.0),
        eval_batch_size=512,
    )
    if variant == "smoke":
        cfg.train.num_epochs = 2
    elif variant != "default":
        raise ValueError(f"variant must be 'default' or 'smoke', got {variant!r}")
    return cfg
