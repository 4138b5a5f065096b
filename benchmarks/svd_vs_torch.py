"""Seconds per epoch of the sparse-VD LeNet-300-100 training step: nnopt_jax vs plain PyTorch.

Both sides train the same network (784-300-100-10, additive reparameterisation,
local reparameterisation, Molchanov KL, Adam 1e-3, batch 100) on the same random
MNIST-shaped data on this CPU. JAX runs fused ``lax.scan`` chunks through
``nnopt_jax.training.make_train_chunk``; PyTorch runs an eager loop. Compile /
warm-up steps are excluded; an MNIST epoch is 600 steps.

Usage:
  .venv/bin/python benchmarks/svd_vs_torch.py --steps 200 --out runs/bench/svd_vs_torch
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import time

import numpy as np

STEPS_PER_EPOCH = 600
K1, K2, K3 = 0.63576, 1.87320, 1.48695


def bench_jax(x, y, steps, chunk):
    import jax
    import jax.numpy as jnp
    import optax

    from nnopt_jax import training
    from nnopt_jax.bayes import VariationalLeNet300100, make_sgvlb_loss

    model = VariationalLeNet300100()
    params = jax.jit(model.init)(jax.random.key(0), jnp.asarray(x[:1]))["params"]
    tx = optax.adam(1e-3)
    state = training.init_train_state(params, tx, key=jax.random.key(1))
    loss = make_sgvlb_loss(model, num_train=60000, steps_per_epoch=STEPS_PER_EPOCH, warmup=(0.0, 0.0))
    run = training.make_train_chunk(training.make_train_step(loss, tx))
    xs = jnp.asarray(x[: chunk * 100].reshape(chunk, 100, *x.shape[1:]))
    ys = jnp.asarray(y[: chunk * 100].reshape(chunk, 100))
    state, m = run(state, xs, ys)  # compile + warm-up
    jax.block_until_ready(m)
    t = time.perf_counter()
    for _ in range(steps // chunk):
        state, m = run(state, xs, ys)
    jax.block_until_ready(m)
    return (time.perf_counter() - t) / (steps // chunk * chunk)


def bench_torch(x, y, steps, threads=None):
    import torch
    import torch.nn.functional as F

    if threads:
        torch.set_num_threads(threads)

    class LinearSVDO(torch.nn.Module):
        def __init__(self, n_in, n_out):
            super().__init__()
            self.theta = torch.nn.Parameter(torch.empty(n_out, n_in))
            torch.nn.init.kaiming_normal_(self.theta, nonlinearity="linear")
            self.log_sigma2 = torch.nn.Parameter(torch.full((n_out, n_in), -10.0))
            self.bias = torch.nn.Parameter(torch.zeros(n_out))

        def log_alpha(self):
            return torch.clamp(self.log_sigma2 - torch.log(self.theta**2 + 1e-8), -8, 8)

        def forward(self, x):
            la = self.log_alpha()
            mu = F.linear(x, self.theta, self.bias)
            var = F.linear(x * x, torch.exp(la) * self.theta**2)
            return mu + torch.sqrt(var + 1e-8) * torch.randn_like(mu)

        def kl(self):
            la = self.log_alpha()
            return -(K1 * torch.sigmoid(K2 + K3 * la) - 0.5 * F.softplus(-la) - K1).sum()

    layers = torch.nn.ModuleList([LinearSVDO(784, 300), LinearSVDO(300, 100), LinearSVDO(100, 10)])
    opt = torch.optim.Adam(layers.parameters(), lr=1e-3)
    xt = torch.from_numpy(x.reshape(len(x), -1))
    yt = torch.from_numpy(y.astype(np.int64))

    def step(i):
        b = slice((i % (len(x) // 100)) * 100, (i % (len(x) // 100) + 1) * 100)
        h = xt[b]
        for j, l in enumerate(layers):
            h = l(h)
            if j < 2:
                h = F.relu(h)
        loss = F.cross_entropy(h, yt[b]) + sum(l.kl() for l in layers) / 60000
        opt.zero_grad()
        loss.backward()
        opt.step()

    for i in range(20):
        step(i)
    t = time.perf_counter()
    for i in range(steps):
        step(i)
    return (time.perf_counter() - t) / steps, torch.get_num_threads(), torch.__version__


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--chunk", type=int, default=50)
    ap.add_argument("--out", default="runs/bench/svd_vs_torch")
    ap.add_argument("--torch-threads", type=int, default=None,
                    help="torch.set_num_threads (default: torch's own choice)")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(args.chunk * 100, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, size=args.chunk * 100).astype(np.int32)
    import jax

    t_jax = bench_jax(x, y, args.steps, args.chunk)
    t_torch, threads, tv = bench_torch(x, y, args.steps, args.torch_threads)
    res = {
        "jax_s_per_step": t_jax, "torch_s_per_step": t_torch,
        "jax_s_per_epoch": t_jax * STEPS_PER_EPOCH, "torch_s_per_epoch": t_torch * STEPS_PER_EPOCH,
        "ratio_jax_over_torch": t_jax / t_torch, "steps_timed": args.steps,
        "jax_version": jax.__version__, "torch_version": tv, "torch_threads": threads,
        "cpu_count": os.cpu_count(), "machine": platform.processor() or platform.machine(),
        "load_avg_1min": os.getloadavg()[0],
    }
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=2))
    md = ("| implementation | s / step | s / epoch (600 steps) |\n|---|---|---|\n"
          f"| nnopt_jax (jit + lax.scan) | {t_jax:.4f} | {t_jax * 600:.1f} |\n"
          f"| PyTorch {tv} eager ({threads} threads) | {t_torch:.4f} | {t_torch * 600:.1f} |\n"
          f"\nratio JAX / PyTorch: {t_jax / t_torch:.2f}x (1-min load average {res['load_avg_1min']:.1f}, "
          f"{res['cpu_count']} CPUs)\n")
    (out / "results.md").write_text(md)
    print(md)
    return res


if __name__ == "__main__":
    main()
