"""Inference time of a compressed model: dense JAX (masked) vs the exported sparse format.

Loads a compression run (``results.json`` + ``export/``), times the dense
deterministic JAX forward pass (jit, masked float32 kernels), the same dense
weights with numpy, and the exported model's scipy.sparse CSR / 2-bit predict on
MNIST-shaped inputs, and checks they agree. Writes JSON + Markdown.

Usage:
  .venv/bin/python benchmarks/sparse_inference.py --run runs/compress/lenet300_svd \
      --batch 100 --out runs/bench/sparse_inference
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import time

import numpy as np


def _time(fn, repeats):
    fn()
    best = []
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(repeats):
            fn()
        best.append((time.perf_counter() - t) / repeats)
    return min(best)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="runs/compress/lenet300_svd")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--out", default="runs/bench/sparse_inference")
    args = ap.parse_args(argv)

    import jax
    import jax.numpy as jnp

    from nnopt_jax.bayes.export import load_export
    from nnopt_jax.bayes.models import ARCHITECTURES

    run = pathlib.Path(args.run)
    exported = load_export(run / "export")
    arch = exported.meta["arch"]
    if arch not in ARCHITECTURES:
        raise SystemExit(f"{run}: architecture {arch!r} has no sparse inference path")
    weights = {a: exported.dense_weights()[exported.resolve(a)]
               for op, a in ARCHITECTURES[arch] if op in ("dense", "conv")}
    biases = {a: exported.biases[exported.resolve(a)] for a in weights}
    x = np.random.default_rng(0).uniform(size=(args.batch, 28, 28, 1)).astype(np.float32)

    def dense_forward(w, b, x):
        for op, arg in ARCHITECTURES[arch]:
            if op == "flatten":
                x = x.reshape(x.shape[0], -1)
            elif op == "dense":
                x = x @ w[arg] + b[arg]
            elif op == "conv":
                x = jax.lax.conv_general_dilated(x, w[arg], (1, 1), "VALID",
                                                 dimension_numbers=("NHWC", "HWIO", "NHWC")) + b[arg]
            elif op == "relu":
                x = jnp.maximum(x, 0)
            elif op == "maxpool":
                n, h, ww, c = x.shape
                x = x.reshape(n, h // arg, arg, ww // arg, arg, c).max((2, 4))
        return x

    jw = {k: jnp.asarray(v) for k, v in weights.items()}
    jb = {k: jnp.asarray(v) for k, v in biases.items()}
    f = jax.jit(dense_forward)
    xj = jnp.asarray(x)
    t_jax = _time(lambda: f(jw, jb, xj).block_until_ready(), args.repeats)
    t_sparse = _time(lambda: exported.predict(x), args.repeats)
    np.testing.assert_allclose(exported.predict(x), np.asarray(f(jw, jb, xj)), rtol=1e-3, atol=1e-3)
    res = {
        "run": str(run), "arch": arch, "format": exported.meta["format"], "batch": args.batch,
        "dense_jax_s": t_jax, "sparse_scipy_s": t_sparse, "speedup_sparse_over_dense": t_jax / t_sparse,
        "export_bytes": exported.nbytes, "dense_float32_bytes": exported.meta["dense_bytes"],
        "size_ratio": exported.meta["dense_bytes"] / exported.nbytes,
        "cpu_count": os.cpu_count(), "load_avg_1min": os.getloadavg()[0],
    }
    if arch != "lenet5":  # numpy dense matmul baseline for the MLPs
        def np_dense():
            h = x.reshape(len(x), -1)
            names = [a for op, a in ARCHITECTURES[arch] if op == "dense"]
            for i, n in enumerate(names):
                h = h @ weights[n] + biases[n]
                if i < len(names) - 1:
                    h = np.maximum(h, 0)
            return h
        res["dense_numpy_s"] = _time(np_dense, args.repeats)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=2))
    md = (f"Inference on a batch of {args.batch} ({arch}, {res['format']} export of {run}):\n\n"
          "| path | ms / batch |\n|---|---|\n"
          f"| dense JAX (jit, masked float32) | {1e3 * t_jax:.3f} |\n"
          + (f"| dense numpy | {1e3 * res['dense_numpy_s']:.3f} |\n" if "dense_numpy_s" in res else "")
          + f"| exported model (scipy CSR per layer below 5 % non-zeros, else dense) | {1e3 * t_sparse:.3f} |\n\n"
          f"size: {res['export_bytes']} bytes exported vs {res['dense_float32_bytes']} dense float32 "
          f"({res['size_ratio']:.1f}x smaller); 1-min load average {res['load_avg_1min']:.1f}\n")
    (out / "results.md").write_text(md)
    print(md)
    return res


if __name__ == "__main__":
    main()
