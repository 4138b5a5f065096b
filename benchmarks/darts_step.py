"""Time per DARTS search iteration (α step + w step), first and second order,
JAX (this package) vs a PyTorch implementation of the same step written here,
on the same CPU; with peak memory.

Configurations: "paper" (batch 64, 32x32x3, C = 16, 8 cells) and "small"
(batch 16, 16x16x3, C = 8, 5 cells). Output: JSON + Markdown under --out.

Run:
  python benchmarks/darts_step.py --configs small paper --iters 3 --out runs/bench/darts_step
  python benchmarks/darts_step.py --configs small --frameworks torch --iters 3   # one side only
Each (framework, config, order) runs in its own subprocess so that peak RSS is per case.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import subprocess
import sys
import time

CONFIGS = {"paper": dict(batch=64, size=32, channels=16, layers=8),
           "small": dict(batch=16, size=16, channels=8, layers=5)}
ORDERS = ("first", "second", "second_fd")
PRIMS = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
         "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ----------------------------------------------------------------------------- JAX


def run_jax(cfg: dict, order: str, iters: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from nnopt_jax.nas.darts.search import (SearchHParams, init_search_state, jit_search_step,
                                            make_optimizers, make_search_step)
    from nnopt_jax.nas.darts.search_model import SearchNetwork
    from nnopt_jax.types import Batch

    model = SearchNetwork(num_classes=10, channels=cfg["channels"], layers=cfg["layers"],
                          remat=cfg.get("remat", False))
    apply_fn = lambda p, a, x: model.apply({"params": p}, x, a)
    hp = SearchHParams(order=order)
    w_tx, a_tx, sched = make_optimizers(hp, 1000)
    rng = np.random.default_rng(0)
    shape = (cfg["batch"], cfg["size"], cfg["size"], 3)
    tb = Batch(jnp.asarray(rng.random(shape, np.float32)), jnp.asarray(rng.integers(0, 10, shape[0]), jnp.int32))
    vb = Batch(jnp.asarray(rng.random(shape, np.float32)), jnp.asarray(rng.integers(0, 10, shape[0]), jnp.int32))
    state = init_search_state(model, w_tx, a_tx, tb.x[:2], key=jax.random.PRNGKey(0))
    step = jit_search_step(make_search_step(apply_fn, w_tx, a_tx, sched, hp))
    t = time.perf_counter()
    compiled = step.lower(state, tb, vb).compile()
    compile_s = time.perf_counter() - t
    # XLA:CPU packs every temporary of the step into one allocation of this size
    temp_gb = compiled.memory_analysis().temp_size_in_bytes / 1e9
    state, m = compiled(state, tb, vb)
    jax.block_until_ready(state)
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        state, m = compiled(state, tb, vb)
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t)
    return {"compile_s": compile_s, "step_s": float(np.median(times)), "times": times,
            "peak_rss_mb": _peak_mb(), "xla_temp_gb": temp_gb}


# ----------------------------------------------------------------------------- PyTorch


def run_torch(cfg: dict, order: str, iters: int) -> dict:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.manual_seed(0)

    def bn(c):
        return nn.BatchNorm2d(c, affine=False, track_running_stats=False)

    class ReLUConvBN(nn.Sequential):
        def __init__(self, ci, co, k, s, p):
            super().__init__(nn.ReLU(), nn.Conv2d(ci, co, k, s, p, bias=False), bn(co))

    class Dil(nn.Sequential):
        def __init__(self, c, k, s, p, d):
            super().__init__(nn.ReLU(), nn.Conv2d(c, c, k, s, p, dilation=d, groups=c, bias=False),
                             nn.Conv2d(c, c, 1, bias=False), bn(c))

    class FR(nn.Module):
        def __init__(self, ci, co):
            super().__init__()
            self.a = nn.Conv2d(ci, co // 2, 1, 2, bias=False)
            self.b = nn.Conv2d(ci, co // 2, 1, 2, bias=False)
            self.bn = bn(co)

        def forward(self, x):
            x = F.relu(x)
            return self.bn(torch.cat([self.a(x), self.b(x[:, :, 1:, 1:])], 1))

    class Zero(nn.Module):
        def __init__(self, s):
            super().__init__()
            self.s = s

        def forward(self, x):
            return x[:, :, ::self.s, ::self.s] * 0.0

    def op(name, c, s):
        return {"none": lambda: Zero(s),
                "max_pool_3x3": lambda: nn.Sequential(nn.MaxPool2d(3, s, 1), bn(c)),
                "avg_pool_3x3": lambda: nn.Sequential(nn.AvgPool2d(3, s, 1, count_include_pad=False), bn(c)),
                "skip_connect": lambda: nn.Identity() if s == 1 else FR(c, c),
                "sep_conv_3x3": lambda: nn.Sequential(Dil(c, 3, s, 1, 1), Dil(c, 3, 1, 1, 1)),
                "sep_conv_5x5": lambda: nn.Sequential(Dil(c, 5, s, 2, 1), Dil(c, 5, 1, 2, 1)),
                "dil_conv_3x3": lambda: Dil(c, 3, s, 2, 2),
                "dil_conv_5x5": lambda: Dil(c, 5, s, 4, 2)}[name]()

    class Mixed(nn.Module):
        def __init__(self, c, s):
            super().__init__()
            self.ops = nn.ModuleList(op(p, c, s) for p in PRIMS)

        def forward(self, x, w):
            return sum(wi * o(x) for wi, o in zip(w, self.ops))

    class Cell(nn.Module):
        def __init__(self, cpp, cp, c, red, red_prev):
            super().__init__()
            self.red = red
            self.p0 = FR(cpp, c) if red_prev else ReLUConvBN(cpp, c, 1, 1, 0)
            self.p1 = ReLUConvBN(cp, c, 1, 1, 0)
            self.ops = nn.ModuleList(Mixed(c, 2 if red and j < 2 else 1)
                                     for i in range(4) for j in range(2 + i))

        def forward(self, s0, s1, w):
            st = [self.p0(s0), self.p1(s1)]
            off = 0
            for i in range(4):
                st.append(sum(self.ops[off + j](h, w[off + j]) for j, h in enumerate(st)))
                off += len(st) - 1
            return torch.cat(st[-4:], 1)

    class Net(nn.Module):
        def __init__(self, C, layers):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 3 * C, 3, padding=1, bias=False),
                                      nn.BatchNorm2d(3 * C, track_running_stats=False))
            cpp, cp, c = 3 * C, 3 * C, C
            self.cells = nn.ModuleList()
            rp = False
            for i in range(layers):
                red = i in (layers // 3, 2 * layers // 3)
                c = c * 2 if red else c
                self.cells.append(Cell(cpp, cp, c, red, rp))
                rp = red
                cpp, cp = cp, 4 * c
            self.fc = nn.Linear(cp, 10)

        def forward(self, x, an, ar):
            s0 = s1 = self.stem(x)
            wn, wr = F.softmax(an, -1), F.softmax(ar, -1)
            for cell in self.cells:
                s0, s1 = s1, cell(s0, s1, wr if cell.red else wn)
            return self.fc(s1.mean((2, 3)))

    net = Net(cfg["channels"], cfg["layers"])
    alphas = [(1e-3 * torch.randn(14, 8)).requires_grad_(), (1e-3 * torch.randn(14, 8)).requires_grad_()]
    w_opt = torch.optim.SGD(net.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(alphas, 3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    shape = (cfg["batch"], 3, cfg["size"], cfg["size"])
    xt, xv = torch.rand(shape), torch.rand(shape)
    yt, yv = torch.randint(0, 10, shape[:1]), torch.randint(0, 10, shape[:1])
    params = list(net.parameters())
    lr, mu, wd = 0.025, 0.9, 3e-4

    def buffers():
        return [w_opt.state[p].get("momentum_buffer", torch.zeros_like(p)) for p in params]

    def loss(x, y, ps=None):
        if ps is None:
            return F.cross_entropy(net(x, *alphas), y)
        return F.cross_entropy(torch.func.functional_call(
            net, dict(zip([n for n, _ in net.named_parameters()], ps)), (x, *alphas)), y)

    def step():
        a_opt.zero_grad()
        if order == "first":
            g = torch.autograd.grad(loss(xv, yv), alphas)
        elif order == "second":  # exact: differentiate through the virtual step (create_graph)
            gw = torch.autograd.grad(loss(xt, yt), params, create_graph=True)
            wp = [p - lr * (mu * b + g + wd * p) for p, b, g in zip(params, buffers(), gw)]
            g = torch.autograd.grad(loss(xv, yv, wp), alphas)
        else:  # the paper's Eq. 8, as the authors' architect computes it
            gw = torch.autograd.grad(loss(xt, yt), params)
            with torch.no_grad():
                wp = [(p - lr * (mu * b + g + wd * p)).requires_grad_()
                      for p, b, g in zip(params, buffers(), gw)]
            g_val = torch.autograd.grad(loss(xv, yv, wp), [*alphas, *wp])
            g_alpha, v = g_val[:len(alphas)], g_val[len(alphas):]
            eps = 0.01 / torch.cat([vi.flatten() for vi in v]).norm()
            g_pm = [torch.autograd.grad(loss(xt, yt, [p.detach() + sign * eps * vi
                                                      for p, vi in zip(params, v)]), alphas)
                    for sign in (1.0, -1.0)]
            g = [ga - lr * (gp - gm) / (2 * eps) for ga, gp, gm in zip(g_alpha, *g_pm)]
        for a, gi in zip(alphas, g):
            a.grad = gi
        a_opt.step()
        w_opt.zero_grad()
        l = loss(xt, yt)
        l.backward()
        nn.utils.clip_grad_norm_(params, 5.0)
        w_opt.step()

    step()  # warm-up
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return {"compile_s": 0.0, "step_s": float(np.median(times)), "times": times,
            "peak_rss_mb": _peak_mb(), "torch_threads": torch.get_num_threads()}


def _case(args) -> None:
    fw, cfg_name, order, iters = args.case
    fn = run_jax if fw == "jax" else run_torch
    cfg = {**CONFIGS[cfg_name], **({"batch": args.batch} if args.batch else {}),
           "remat": args.remat}
    res = fn(cfg, order, int(iters))
    print("RESULT " + json.dumps({"framework": fw, "config": cfg_name, "order": order,
                                  "batch": cfg["batch"], "remat": args.remat, **res}))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=["small", "paper"], choices=list(CONFIGS))
    ap.add_argument("--orders", nargs="+", default=["first", "second"], choices=ORDERS,
                    help="second: exact hypergradient; second_fd: the paper's finite "
                         "difference (Eq. 8)")
    ap.add_argument("--frameworks", nargs="+", default=["jax", "torch"])
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--out", default="runs/bench/darts_step")
    ap.add_argument("--batch", type=int, default=None,
                    help="override the configurations' batch size (memory-bound cases)")
    ap.add_argument("--remat", action="store_true",
                    help="JAX: recompute cell activations in the backward pass (SearchNetwork.remat)")
    ap.add_argument("--case", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.case:
        _case(args)
        return 0
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for cfg in args.configs:
        for order in args.orders:
            for fw in args.frameworks:
                cmd = [sys.executable, __file__, "--case", fw, cfg, order, str(args.iters)]
                if args.batch:
                    cmd += ["--batch", str(args.batch)]
                if args.remat:
                    cmd += ["--remat"]
                t = time.perf_counter()
                try:
                    p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
                    line = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
                    row = json.loads(line[-1][7:]) if line else {
                        "framework": fw, "config": cfg, "order": order,
                        "error": p.stderr[-500:] or f"exit status {p.returncode}"}
                except subprocess.TimeoutExpired:
                    row = {"framework": fw, "config": cfg, "order": order,
                           "error": f"timeout after {args.timeout}s"}
                row["wall_s"] = time.perf_counter() - t
                rows.append(row)
                print(json.dumps(row), flush=True)
                (out / "results.json").write_text(json.dumps(
                    {"configs": CONFIGS, "rows": rows, "cpu_count": __import__("os").cpu_count()},
                    indent=2))
    lines = ["| config | batch | order | framework | s / iteration | compile (s) | peak RSS (MB) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['config']} | {args.batch or CONFIGS[r['config']]['batch']} "
                         f"| {r['order']} | {r['framework']} | error: "
                         f"{(r['error'].strip().splitlines() or ['killed (no output)'])[-1][:80]!r} | | |")
        else:
            lines.append(f"| {r['config']} | {r['batch']} | {r['order']} | {r['framework']} "
                         f"| {r['step_s']:.3f} "
                         f"| {r['compile_s']:.1f} | {r['peak_rss_mb']:.0f} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
