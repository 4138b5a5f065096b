"""Dense LeNet-300-100 on MNIST: the 'Original' row (paper: 1.64 % error).

Adam 1e-3 constant, batch 100, 100 epochs.

Run (MNIST from ../shared/data/mnist):
  NNOPT_DATA_DIR=../shared/data nnopt compress --config configs/compress/lenet300_dense.py --out runs/compress/lenet300_dense
Smoke (seconds, used by the tests):
  nnopt compress --config configs/compress/lenet300_dense.py:smoke --out runs/compress/lenet300_dense_smoke
"""

from nnopt_jax.bayes.run import eval_defaults, smoke_variant
from nnopt_jax.config import Config


def get_config(variant: str = "default") -> Config:
    cfg = Config(
        name="lenet300_dense",
        method="dense",
        seed=0,
        data=dict(name="mnist", data_dir=None, train_subset=0, test_subset=0),
        model=dict(name="lenet300_100", threshold=3.0),
        train=dict(batch_size=100, num_epochs=100, learning_rate=1e-3, schedule="constant",
                   warmup_start=5, warmup_end=20, checkpoint_every=0),
        eval_batch_size=1000,
        export=True,
        eval=eval_defaults(),  # --set eval.uncertainty=true: calibration and OOD report
    )

    if variant == "smoke":
        cfg = smoke_variant(cfg, dataset="digits")
    elif variant != "default":
        raise ValueError(f"unknown variant {variant!r}; use 'default' or 'smoke'")
    return cfg
