"""A tiny DARTS search on scikit-learn digits (8x8): about two minutes on 2 CPU
cores, mostly XLA compilation. The network: 3 cells (normal, reduce, reduce),
C = 4, 2 nodes per cell; first order, 2 epochs."""

from __future__ import annotations

import pathlib

from nnopt_jax.config import Config


def demo_config() -> Config:
    return Config(
        name="darts_demo",
        data=dict(name="digits", data_dir=None, num_train=256, train_portion=0.5),
        model=dict(channels=4, layers=3, steps=2, multiplier=2, stem_multiplier=2),
        search=dict(order="first", epochs=2, batch_size=32, seed=0, lr=0.05, lr_min=0.001,
                    momentum=0.9, weight_decay=3e-4, grad_clip=5.0, arch_lr=3e-3,
                    arch_b1=0.5, arch_b2=0.999, arch_weight_decay=1e-3,
                    eval_batch_size=32, checkpoint_every=0),
        diagnostics=dict(hessian=False),
    )


def run_demo(out_dir, *, seed: int = 0, progress: bool = True) -> dict:
    """Search on digits; returns ``{"genotype", "genotype_str", "val_acc", "wall_time_s"}``
    and writes genotype.json and cell plots to ``out_dir``."""
    from nnopt_jax.nas.darts.search import run_search
    cfg = demo_config()
    cfg.search.seed = seed
    res = run_search(cfg, out_dir=pathlib.Path(out_dir), overwrite=True, progress=False)
    out = {k: res[k] for k in ("genotype", "genotype_str", "val_acc", "wall_time_s")}
    if progress:
        print(f"DARTS on digits: val acc {out['val_acc']:.3f} in {out['wall_time_s']:.1f}s")
        print(out["genotype_str"])
    return out
