"""LeNet-5-Caffe on MNIST, the dense "Original" row of the compression tables.

    nnopt train --config configs/mnist_lenet5.py --data-dir ../shared/data/mnist
    nnopt train --config configs/mnist_lenet5.py:smoke     # seconds, for tests
"""

from nnopt_jax.config import Config


def get_config(variant: str = "default") -> Config:
    cfg = Config(
        seed=0,
        data=dict(name="mnist", data_dir=None, validation_fraction=0.0, train_subset=0),
        model=dict(name="lenet5"),
        train=dict(optimizer="adam", learning_rate=1e-3, weight_decay=0.0, momentum=0.9,
                   schedule="cosine", batch_size=100, num_epochs=20, checkpoint_every=0,
                   grad_clip=0.0, steps_per_chunk=1, unroll=True),  # XLA:CPU convolutions in loops: slower
        eval_batch_size=1000,
    )
    if variant == "smoke":
        cfg.data.train_subset = 2000
        cfg.train.num_epochs = 2
    elif variant != "default":
        raise ValueError(f"variant must be 'default' or 'smoke', got {variant!r}")
    return cfg
