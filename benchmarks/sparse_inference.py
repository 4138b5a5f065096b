"""Inference time of compressed models: dense JAX (masked) vs the exported model.

Loads compression runs (``export/`` of each ``--run``), times the dense
deterministic JAX forward pass (jit, masked float32 kernels, XLA's
convolutions), the exported model's default ``predict`` (the compact network:
dead and unused units removed, :mod:`nnopt_jax.bayes.compact`), and its
``backend="scipy"`` path on the compressed format itself, on MNIST-shaped
inputs; checks that all three agree. Writes JSON + Markdown with one row per run.

Usage:
  .venv/bin/python benchmarks/sparse_inference.py --run runs/compress/lenet5_svd \
      --run runs/compress/lenet5_vnq --batch 100 --out runs/bench/sparse_inference
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


def measure(run: pathlib.Path, batch: int, repeats: int) -> dict:
    from nnopt_jax.bayes.compact import compact_layers, make_compact_predict
    from nnopt_jax.bayes.export import load_export
    from nnopt_jax.bayes.models import ARCHITECTURES

    exported = load_export(run / "export")
    arch = exported.meta["arch"]
    if arch not in ARCHITECTURES:
        raise SystemExit(f"{run}: architecture {arch!r} has no exported inference path")
    ops = [(op, exported.resolve(a) if op in ("conv", "dense") else a) for op, a in ARCHITECTURES[arch]]
    weights = exported.dense_weights()
    # the masked dense network through the same forward as the compact one
    dense = make_compact_predict(ops, {n: {"kernel": weights[n], "bias": exported.biases[n]}
                                       for op, n in ops if op in ("conv", "dense")})
    x = np.random.default_rng(0).uniform(size=(batch, 28, 28, 1)).astype(np.float32)
    expected = np.asarray(dense(x))
    for backend in ("jax", "scipy"):
        np.testing.assert_allclose(exported.predict(x, backend=backend), expected, rtol=1e-3, atol=1e-3)
    # both paths from a numpy batch to numpy logits, as a caller of predict has them
    t_dense = _time(lambda: np.asarray(dense(x)), repeats)
    t_compact = _time(lambda: exported.predict(x), repeats)
    t_scipy = _time(lambda: exported.predict(x, backend="scipy"), repeats)
    live = {n: list(layer["kernel"].shape) for n, layer in compact_layers(ops, weights, exported.biases).items()}
    return {
        "run": str(run), "arch": arch, "format": exported.meta["format"], "batch": batch,
        "dense_jax_s": t_dense, "exported_compact_s": t_compact, "exported_scipy_s": t_scipy,
        "speedup_compact_over_dense": t_dense / t_compact, "speedup_scipy_over_dense": t_dense / t_scipy,
        "compact_kernel_shapes": live,
        "export_bytes": exported.nbytes, "dense_float32_bytes": exported.meta["dense_bytes"],
        "size_ratio": exported.meta["dense_bytes"] / exported.nbytes,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="append", help="a compression run directory (repeatable)")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--out", default="runs/bench/sparse_inference")
    args = ap.parse_args(argv)
    runs = [pathlib.Path(r) for r in (args.run or ["runs/compress/lenet300_svd"])]
    rows = [measure(r, args.batch, args.repeats) for r in runs]
    import jax

    meta = {"date": time.strftime("%Y-%m-%d"), "jax_version": jax.__version__, "cpu_count": os.cpu_count(),
            "load_avg_1min": os.getloadavg()[0], "batch": args.batch}
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [f"Inference on a batch of {args.batch}, ms per batch from a numpy batch to numpy logits (dense JAX: masked float32 kernels, jit):", "",
             "| run | format | size ratio | dense JAX | exported (compact, default) | exported (scipy) "
             "| compact speed / dense |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['format']} | {r['size_ratio']:.1f}x | {1e3 * r['dense_jax_s']:.3f} | "
                     f"{1e3 * r['exported_compact_s']:.3f} | {1e3 * r['exported_scipy_s']:.3f} | "
                     f"{r['speedup_compact_over_dense']:.2f}x |")
    md = "\n".join(lines) + (f"\n\n{meta['date']}, jax {meta['jax_version']}, {meta['cpu_count']} CPUs, "
                             f"1-min load average {meta['load_avg_1min']:.1f}\n")
    (out / "results.md").write_text(md)
    print(md)
    return rows


if __name__ == "__main__":
    main()
