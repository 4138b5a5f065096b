"""DARTS second-order search on Fashion-MNIST, sized for 2 shared CPU cores.

3 cells (normal, reduce, reduce), C = 6, images resized to 16x16, a 1,280-image
subset of the training set split in halves (w / α), batch 32, 20 epochs (400
iterations, about 30 minutes on one core); the
paper's optimisers and exact second-order hypergradient.

Run (part of experiments/darts_fashion.py):
  nnopt nas search --config configs/nas/darts_fashion_search.py --out runs/darts_fashion/search
Smoke (seconds):
  nnopt nas search --config configs/nas/darts_fashion_search.py:smoke --out runs/nas/darts_fashion_search_smoke
"""

from nnopt_jax.config import Config


def get_config(variant: str = "default") -> Config:
    cfg = Config(
        name="darts_fashion_search",
        data=dict(name="fashion_mnist", data_dir=None, num_train=1280, train_portion=0.5,
                  image_size=16),
        model=dict(channels=6, layers=3, steps=4, multiplier=4, stem_multiplier=3),
        search=dict(order="second", epochs=20, batch_size=32, seed=2, lr=0.025, lr_min=0.001,
                    momentum=0.9, weight_decay=3e-4, grad_clip=5.0, arch_lr=3e-4,
                    arch_b1=0.5, arch_b2=0.999, arch_weight_decay=1e-3, fd_r=0.01,
                    eval_batch_size=100, checkpoint_every=10),
        diagnostics=dict(hessian=True, hessian_iters=10, hessian_batch=64, early_stop=False,
                         es_window=2, es_threshold=0.75),
    )
    if variant == "smoke":
        cfg.data.num_train, cfg.data.image_size = 64, 8
        cfg.model.channels, cfg.model.layers = 4, 3
        cfg.model.steps, cfg.model.multiplier = 2, 2
        cfg.search.epochs, cfg.search.batch_size, cfg.search.eval_batch_size = 1, 16, 16
        cfg.search.checkpoint_every = 0
        cfg.diagnostics.hessian_iters, cfg.diagnostics.hessian_batch = 3, 16
    elif variant != "default":
        raise ValueError(f"unknown variant {variant!r}; use 'default' or 'smoke'")
    return cfg
