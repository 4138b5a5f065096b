"""A short sparse-VD compression stage on sklearn digits (for ``nnopt demo``)."""

from __future__ import annotations

import pathlib

from nnopt_jax.config import Config

__all__ = ["demo_config", "run_demo"]


def demo_config(seed: int = 0) -> Config:
    """Sparse VD of a 64-100-10 variational MLP on digits: 30 epochs, warm-up 2 -> 10, Adam 3e-3."""
    return Config(
        name="demo_digits_svd",
        method="sparse_vd",
        seed=seed,
        data=dict(name="digits", data_dir=None, train_subset=0, test_subset=0),
        model=dict(name="mlp", features=(100,), threshold=3.0),
        train=dict(batch_size=64, num_epochs=30, learning_rate=3e-3, schedule="linear", warmup_start=2,
                   warmup_end=10, checkpoint_every=0),
        eval_batch_size=512,
        export=True,
    )


def run_demo(out_dir, *, seed: int = 0, progress: bool = True) -> dict:
    """Trains and compresses the digits MLP into ``out_dir``; returns results.json's dict.

    Prints the test error and compression; writes config.json, metrics.jsonl,
    results.json, curves.png and the CSR export under ``out_dir``.
    """
    from nnopt_jax.bayes.cli import format_summary
    from nnopt_jax.bayes.run import compress

    results = compress(demo_config(seed), out_dir=pathlib.Path(out_dir), overwrite=True,
                       progress=progress)
    if progress:
        print("sparse variational dropout on digits:", format_summary(results), sep="\n")
    return results
