"""Dense LeNet-5-Caffe on MNIST: the 'Original' row (paper: 0.80 % error).

Adam 1e-3 linearly to 0, batch 100, 100 epochs.

Run (MNIST from ../shared/data/mnist):
  NNOPT_DATA_DIR=../shared/data nnopt compress --config configs/compress/lenet5_dense.py --out runs/compress/lenet5_dense
Smoke (seconds, used by the tests):
  nnopt compress --config configs/compress/lenet5_dense.py:smoke --out runs/compress/lenet5_dense_smoke
"""

from nnopt_jax.bayes.run import eval_defaults, smoke_variant
from nnopt_jax.config import Config


def get_config(variant: str = "default") -> Config:
    cfg = Config(
        name="lenet5_dense",
        method="dense",
        seed=0,
        data=dict(name="mnist", data_dir=None, train_subset=0, test_subset=0),
        model=dict(name="lenet5", threshold=3.0),
        train=dict(batch_size=100, num_epochs=100, learning_rate=1e-3, schedule="linear",
                   warmup_start=5, warmup_end=20, checkpoint_every=0,
                   steps_per_chunk=1, unroll=True),  # XLA:CPU convolutions in loops: 7x slower
        eval_batch_size=1000,
        export=True,
        eval=eval_defaults(),  # --set eval.uncertainty=true: calibration and OOD report
    )

    if variant == "smoke":
        cfg = smoke_variant(cfg, dataset="mnist")
    elif variant != "default":
        raise ValueError(f"unknown variant {variant!r}; use 'default' or 'smoke'")
    return cfg
