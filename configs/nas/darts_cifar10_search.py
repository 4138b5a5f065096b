"""DARTS search on CIFAR-10 at the paper's settings (Liu et al. 2018, Sec. 3.1).

8 cells, C = 16, batch 64, 50 epochs, train set split in halves (w / α),
w: SGD 0.025 cosine to 0.001, momentum 0.9, wd 3e-4, clip 5;
α: Adam 3e-4, betas (0.5, 0.999), wd 1e-3; second order (exact hypergradient).

Run:
  nnopt nas search --config configs/nas/darts_cifar10_search.py --out runs/nas/darts_cifar10_search
  (first order: --set search.order=first; paper's finite difference: --set search.order=second_fd)
Smoke (seconds, used by the tests; digits at 8x8, 3 cells of 2 nodes, C = 4):
  nnopt nas search --config configs/nas/darts_cifar10_search.py:smoke --out runs/nas/darts_search_smoke
"""

from nnopt_jax.config import Config


def get_config(variant: str = "default") -> Config:
    cfg = Config(
        name="darts_cifar10_search",
        data=dict(name="cifar10", data_dir=None, num_train=0, train_portion=0.5),
        # remat: recompute cell activations in the backward pass (less memory, more time)
        model=dict(channels=16, layers=8, steps=4, multiplier=4, stem_multiplier=3, remat=False),
        search=dict(order="second", epochs=50, batch_size=64, seed=2, lr=0.025, lr_min=0.001,
                    momentum=0.9, weight_decay=3e-4, grad_clip=5.0, arch_lr=3e-4,
                    arch_b1=0.5, arch_b2=0.999, arch_weight_decay=1e-3, fd_r=0.01,
                    eval_batch_size=64, checkpoint_every=100),
        diagnostics=dict(hessian=True, hessian_iters=20, hessian_batch=64, early_stop=False,
                         es_window=5, es_threshold=0.75),
    )
    if variant == "smoke":
        cfg.data.name, cfg.data.num_train = "digits", 64
        cfg.model.channels, cfg.model.layers = 4, 3
        cfg.model.steps, cfg.model.multiplier = 2, 2
        cfg.search.epochs, cfg.search.batch_size, cfg.search.eval_batch_size = 2, 16, 16
        cfg.search.checkpoint_every = 0
        cfg.diagnostics.hessian_iters, cfg.diagnostics.hessian_batch = 3, 16
    elif variant != "default":
        raise ValueError(f"unknown variant {variant!r}; use 'default' or 'smoke'")
    return cfg
