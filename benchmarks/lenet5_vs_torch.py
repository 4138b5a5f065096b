"""LeNet-5-Caffe training steps, nnopt_jax against the same step in plain PyTorch.

Three models, each one Adam step on a batch of 100 MNIST-shaped images:

* ``dense``: LeNet-5-Caffe (conv 20@5x5, max-pool, conv 50@5x5, max-pool,
  fc 800-500, ReLU, fc 500-10), softmax cross-entropy;
* ``svd``: sparse variational dropout (Molchanov et al. 2017): every layer with
  the additive reparameterisation, local reparameterisation in the convolutions
  and dense layers, log alpha clipped to [-8, 8], the log alpha >= 3 mask on the
  mean weights in training (``configs/compress/lenet5_svd.py``), and the
  eq. (14) KL over 60,000 examples;
* ``vnq``: the same with the ternary VNQ prior's KL (Achterhold et al. 2018,
  ``nnopt_jax.bayes.kl.kl_vnq``) and a learnable codebook level per layer.

JAX runs ``nnopt_jax``'s own models, loss and ``training.make_train_chunk`` (the
path ``nnopt compress`` takes); PyTorch runs an eager loop written here. Each
configuration runs in its own process, pinned with ``taskset``:

* ``one core each``: JAX with XLA's single-threaded CPU runtime, PyTorch with
  ``torch.set_num_threads(1)``, both on core 0;
* ``whole machine``: JAX with XLA's intra-op threads, JAX data-parallel over
  one CPU device per core (``--xla_force_host_platform_device_count``), JAX
  as ``nnopt`` runs (one CPU device per core, then the layout that
  ``nnopt_jax.cpu_layout.choose_mesh`` measures faster; the probe's figures
  are in the JSON), and PyTorch with one thread per core.

Every worker first calls ``nnopt_jax.host_memory.retain_freed_memory`` (as
``nnopt`` does), PyTorch's as well as JAX's; ``--malloc both`` also runs each
configuration with glibc's default ``malloc`` (a before/after of that setting,
side by side), and every row reports the minor page faults per step.
Compilation and warm-up steps are excluded; an MNIST epoch is 600 steps.
Writes ``results.json`` and ``results.md`` under ``--out`` and prints the table.

Usage:
  .venv/bin/python benchmarks/lenet5_vs_torch.py --steps 30 --out runs/bench/lenet5_vs_torch
  .venv/bin/python benchmarks/lenet5_vs_torch.py --models svd --modes one_core   # a subset
  .venv/bin/python benchmarks/lenet5_vs_torch.py --malloc both   # with and without retained memory
  git worktree add /tmp/before <commit>
  .venv/bin/python benchmarks/lenet5_vs_torch.py --repeat 3 --compare-with /tmp/before   # before/after
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import resource
import time

import numpy as np

STEPS_PER_EPOCH = 600
BATCH = 100
NUM_TRAIN = 60000
K1, K2, K3 = 0.63576, 1.87320, 1.48695
MODELS = ("dense", "svd", "vnq")


# ----------------------------------------------------------------------------- JAX


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _time_steps(run_steps, rounds: int, steps_per_round: int) -> tuple[float, float]:
    """(seconds, minor page faults) per step over ``rounds`` calls of ``run_steps``."""
    faults, t = _minor_faults(), time.perf_counter()
    for _ in range(rounds):
        run_steps()
    n = rounds * steps_per_round
    return (time.perf_counter() - t) / n, (_minor_faults() - faults) / n


def jax_step_time(model_name: str, steps: int, chunk: int, devices: int) -> tuple[float, float, dict | None]:
    """Seconds and minor page faults per training step of nnopt_jax's LeNet-5 ``model_name``,
    and the layout probe's report. ``devices=-1``: as ``nnopt`` runs, one CPU device
    per core and the layout the probe of ``nnopt_jax.cpu_layout`` measures faster."""
    if devices < 0:  # (a --compare-with checkout may predate cpu_layout)
        from nnopt_jax import cpu_layout

        cpu_layout.configure()  # before JAX starts
    import jax
    import jax.numpy as jnp
    import optax

    from nnopt_jax import parallel, training
    from nnopt_jax.bayes import VariationalLeNet5, make_sgvlb_loss
    from nnopt_jax.models.lenet import LeNet5Caffe

    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.uniform(size=(chunk, BATCH, 28, 28, 1)).astype(np.float32))
    ys = jnp.asarray(rng.integers(0, 10, size=(chunk, BATCH)).astype(np.int32))
    if model_name == "dense":
        model = LeNet5Caffe()
        loss = training.cross_entropy_loss(model)
    else:
        kw = dict(threshold=3.0, mask_in_training=True, mask_noise=False, init_std=0.01)
        if model_name == "vnq":
            kw = dict(threshold=3.0, prior="vnq", log_sigma2_init=-8.0)
        model = VariationalLeNet5(**kw)
        loss = make_sgvlb_loss(model, num_train=NUM_TRAIN, steps_per_epoch=STEPS_PER_EPOCH,
                               warmup=(0.0, 0.0))
    params = jax.jit(model.init)(jax.random.key(0), xs[0, :1])["params"]
    tx = optax.adam(1e-3)
    state = training.init_train_state(params, tx, key=jax.random.key(1))
    train_step = training.make_train_step(loss, tx)
    build = lambda m: training.make_train_chunk(train_step, mesh=m, unroll=True)
    report = None
    if devices < 0:
        mesh, run, report = cpu_layout.choose_mesh(build, state, lambda: (np.asarray(xs), np.asarray(ys)),
                                                   batch_size=BATCH, steps=10**9)
    else:
        mesh = parallel.make_mesh() if devices > 1 else None
        run = build(mesh)
    if mesh is not None:
        state = parallel.replicate(state, mesh)
    carry = list(run(state, xs, ys))  # compile + warm-up
    carry = list(run(carry[0], xs, ys))
    jax.block_until_ready(carry)

    def run_chunk():
        carry[:] = run(carry[0], xs, ys)
        jax.block_until_ready(carry[1])

    return (*_time_steps(run_chunk, max(1, steps // chunk), chunk), report)


# ----------------------------------------------------------------------------- PyTorch


def torch_step_time(model_name: str, steps: int, threads: int) -> tuple[float, float]:
    """Seconds and minor page faults per training step of the same LeNet-5 in plain PyTorch."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)

    def log_alpha(theta, log_sigma2, center=0.0):
        return torch.clamp(log_sigma2 - torch.log((theta - center) ** 2 + 1e-8), -8.0, 8.0)

    def neg_kl(la):
        return K1 * torch.sigmoid(K2 + K3 * la) - 0.5 * F.softplus(-la) - K1

    class Variational(torch.nn.Module):
        """A variational conv (``kernel`` given) or dense layer with local reparameterisation."""

        def __init__(self, n_in, n_out, kernel=None, prior="log_uniform"):
            super().__init__()
            shape = (n_out, n_in, kernel, kernel) if kernel else (n_out, n_in)
            self.kernel, self.prior = kernel, prior
            self.theta = torch.nn.Parameter(torch.randn(shape) * 0.01)
            self.log_sigma2 = torch.nn.Parameter(torch.full(shape, -8.0 if prior == "vnq" else -10.0))
            self.bias = torch.nn.Parameter(torch.zeros(n_out))
            if prior == "vnq":
                self.level = torch.nn.Parameter(torch.tensor(0.2))

        def op(self, x, w, bias=None):
            return F.conv2d(x, w, bias) if self.kernel else F.linear(x, w, bias)

        def forward(self, x):
            ls = self.log_sigma2.clamp(-10.0, 1.0) if self.prior == "vnq" else self.log_sigma2
            la = log_alpha(self.theta, ls)
            theta = self.theta
            if self.prior == "log_uniform":  # the config's mask_in_training, mean weights only
                theta = theta * (la < 3.0).to(theta.dtype)
            mean = self.op(x, theta, self.bias)
            var = self.op(x * x, torch.exp(la) * self.theta ** 2)
            return mean + torch.sqrt(var + 1e-8) * torch.randn_like(mean)

        def kl(self):
            if self.prior == "log_uniform":
                return -neg_kl(log_alpha(self.theta, self.log_sigma2)).sum()
            ls = self.log_sigma2.clamp(-10.0, 1.0)
            a = self.level.abs() + 1e-8
            u = self.theta / (a / 0.2)
            tau = 0.075
            w_pos = torch.exp(-((u - 0.2) ** 2) / (2 * tau ** 2))
            w_neg = torch.exp(-((u + 0.2) ** 2) / (2 * tau ** 2))
            kl0 = -neg_kl(log_alpha(self.theta, ls))
            klp = -neg_kl(log_alpha(self.theta, ls, a))
            kln = -neg_kl(log_alpha(self.theta, ls, -a))
            return ((1 - w_pos - w_neg) * kl0 + w_pos * klp + w_neg * kln).sum()

    if model_name == "dense":
        layers = [torch.nn.Conv2d(1, 20, 5), torch.nn.Conv2d(20, 50, 5),
                  torch.nn.Linear(800, 500), torch.nn.Linear(500, 10)]
    else:
        prior = "vnq" if model_name == "vnq" else "log_uniform"
        layers = [Variational(1, 20, 5, prior), Variational(20, 50, 5, prior),
                  Variational(800, 500, None, prior), Variational(500, 10, None, prior)]
    net = torch.nn.ModuleList(layers)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(size=(BATCH, 1, 28, 28)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 10, size=BATCH).astype(np.int64))

    def step():
        h = F.max_pool2d(net[0](x), 2)
        h = F.max_pool2d(net[1](h), 2)
        h = F.relu(net[2](h.flatten(1)))
        loss = F.cross_entropy(net[3](h), y)
        if model_name != "dense":
            loss = loss + sum(layer.kl() for layer in net) / NUM_TRAIN
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    return _time_steps(step, steps, 1)


# ----------------------------------------------------------------------------- driver

# (label, framework, threads or devices, cores to pin)
MODES = {
    "one_core": [("JAX, 1 thread", "jax", dict(threads=1, devices=1), "0"),
                 ("PyTorch, 1 thread", "torch", dict(threads=1), "0")],
    "whole_machine": [("JAX, intra-op threads", "jax", dict(threads=0, devices=1), "all"),
                      ("JAX, data-parallel", "jax", dict(threads=1, devices=0), "all"),
                      ("JAX, measured choice (nnopt)", "jax", dict(threads=0, devices=-1), "all"),
                      ("PyTorch, 1 thread per core", "torch", dict(threads=0), "all")],
}


def _worker(args) -> None:
    try:
        from nnopt_jax.host_memory import retain_freed_memory
    except ImportError:  # a --compare-with checkout from before it existed
        pass
    else:
        retain_freed_memory()  # unless NNOPT_MALLOC=default; before JAX or PyTorch start threads
    report = None
    if args.framework == "jax":
        t, faults, report = jax_step_time(args.model, args.steps, args.chunk, args.devices)
    else:
        t, faults = torch_step_time(args.model, args.steps, args.threads)
    print(json.dumps({"s_per_step": t, "faults_per_step": faults, "layout": report}))


def _run_worker(model: str, framework: str, threads: int, devices: int, cores: str,
                steps: int, chunk: int, malloc: str, library: str | None = None) -> dict:
    ncpu = os.cpu_count() or 1
    env = dict(os.environ, NNOPT_MALLOC=malloc)
    if library:
        env["PYTHONPATH"] = os.pathsep.join([library, *filter(None, [env.get("PYTHONPATH")])])
    flags = env.get("XLA_FLAGS", "")
    if devices == -1:  # nnopt's default, whatever this shell sets
        env.pop("NNOPT_CPU_LAYOUT", None)
    threads = threads or ncpu
    devices = devices or ncpu
    if framework == "jax":
        if threads == 1:
            flags += " --xla_cpu_multi_thread_eigen=false"
        if devices > 1:
            flags += f" --xla_force_host_platform_device_count={devices}"
        env["XLA_FLAGS"] = flags.strip()
    cmd = [sys.executable, __file__, "--worker", framework, "--model", model, "--steps", str(steps),
           "--chunk", str(chunk), "--threads", str(threads), "--devices", str(devices)]
    pin = "0" if cores == "0" else f"0-{ncpu - 1}"
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", pin, *cmd]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{framework} {model} worker failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def markdown(rows: list[dict]) -> str:
    lines = ["| model | mode | malloc | implementation | ms / step | s / epoch (600 steps) | "
             "page faults / step | time / PyTorch's |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = r.get("ratio_to_torch")
        lines.append(f"| {r['model']} | {r['mode'].replace('_', ' ')} | {r['malloc']} | "
                     f"{r['implementation']} | {1e3 * r['s_per_step']:.1f} | "
                     f"{STEPS_PER_EPOCH * r['s_per_step']:.1f} | {r['faults_per_step']:.0f} | "
                     f"{'' if ratio is None else f'{ratio:.2f}x'} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of dense,svd,vnq")
    ap.add_argument("--modes", default="one_core,whole_machine", help="one_core and/or whole_machine")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per configuration")
    ap.add_argument("--chunk", type=int, default=1, help="JAX steps per compiled chunk (the configs use 1)")
    ap.add_argument("--malloc", choices=("retain", "default", "both"), default="retain",
                    help="glibc malloc: retained freed memory (as nnopt runs), its default, or both")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds over all configurations, interleaved; rows report the median")
    ap.add_argument("--compare-with", metavar="DIR",
                    help="also time the JAX rows with the nnopt_jax package found in DIR (e.g. a "
                         "git worktree of an earlier commit), with glibc's default malloc where "
                         "that package has no nnopt_jax.host_memory")
    ap.add_argument("--compare-label", default="earlier checkout",
                    help="how the --compare-with rows are labelled")
    ap.add_argument("--out", default="runs/bench/lenet5_vs_torch")
    ap.add_argument("--worker", choices=("jax", "torch"), help=argparse.SUPPRESS)
    ap.add_argument("--model", choices=MODELS, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        args.framework = args.worker
        return _worker(args)

    configs = []  # (model, mode, malloc, label, framework, kw, cores, library)
    mallocs = ("default", "retain") if args.malloc == "both" else (args.malloc,)
    for model in args.models.split(","):
        for mode in args.modes.split(","):
            for malloc in mallocs:
                for label, framework, kw, cores in sorted(MODES[mode], key=lambda m: m[1] != "torch"):
                    configs.append((model, mode, malloc, label, framework, kw, cores, None))
                    if framework == "jax" and args.compare_with and kw.get("devices") != -1:
                        configs.append((model, mode, malloc, f"{label}, {args.compare_label}",
                                        framework, kw, cores, args.compare_with))
    samples = {c[:4]: [] for c in configs}
    groups = {}  # the rows compared with each other: one (model, mode, malloc)
    for c in configs:
        groups.setdefault(c[:3], []).append(c)
    for round_ in range(args.repeat):
        # Interleaved, so slow drifts of the machine hit every row alike, and each
        # group's order rotated per round, so no row always runs first or last.
        order = [g[(i + round_) % len(g)] for g in groups.values() for i in range(len(g))]
        for model, mode, malloc, label, framework, kw, cores, library in order:
            r = _run_worker(model, framework, kw.get("threads", 1), kw.get("devices", 1), cores,
                            args.steps, args.chunk, malloc, library)
            samples[model, mode, malloc, label].append(r)
            chosen = f" -> {r['layout']['layout']} {r['layout']['ms_per_step']}" if r.get("layout") else ""
            print(f"[{round_ + 1}/{args.repeat}] {model:6s} {mode:14s} {malloc:8s} {label:36s} "
                  f"{1e3 * r['s_per_step']:7.1f} ms/step {r['faults_per_step']:8.0f} faults/step{chosen}",
                  flush=True)
    rows, torch_time = [], {}
    for (model, mode, malloc, label), runs in samples.items():
        t = float(np.median([r["s_per_step"] for r in runs]))
        if label.startswith("PyTorch"):
            torch_time[model, mode, malloc] = t
        rows.append(dict(model=model, mode=mode, malloc=malloc, implementation=label, s_per_step=t,
                         s_per_step_runs=[r["s_per_step"] for r in runs],
                         faults_per_step=float(np.median([r["faults_per_step"] for r in runs])),
                         layouts=[r.get("layout") for r in runs],
                         ratio_to_torch=None if label.startswith("PyTorch")
                         else t / torch_time[model, mode, malloc]))
    import jax

    meta = {"date": time.strftime("%Y-%m-%d"), "jax_version": jax.__version__,
            "torch_version": _installed_version("torch"), "cpu_count": os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
            "load_avg_1min": os.getloadavg()[0], "steps_timed": args.steps, "chunk": args.chunk,
            "repeat": args.repeat, "compare_with": args.compare_with}
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    md = markdown(rows) + (f"\n{meta['date']}, jax {meta['jax_version']}, PyTorch {meta['torch_version']}, "
                           f"{meta['cpu_count']} CPUs, 1-min load average {meta['load_avg_1min']:.1f}\n")
    (out / "results.md").write_text(md)
    print(md)
    return rows


def _installed_version(package):
    """The installed version of ``package``, or ``None``, without importing it."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
