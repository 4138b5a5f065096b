"""The ``nnopt optimize`` verb: a thin wrapper over :func:`nnopt_jax.optimize.study.optimize`."""

from __future__ import annotations

import pathlib

__all__ = ["optimize_command"]


def optimize_command(cfg, out_dir, resume: bool = False, *, overwrite: bool = False,
                     progress: bool = True) -> int:
    """Runs the study ``cfg`` into ``out_dir`` and prints its Pareto front."""
    from nnopt_jax.optimize.study import optimize
    from nnopt_jax.report import print_rows

    out = pathlib.Path(out_dir)
    res = optimize(cfg, out_dir=out, resume=resume, overwrite=overwrite, progress=progress)
    rows = [{**r, "knee": "knee" if r["knee"] else ""} for r in res["front"]]
    print_rows(f"Pareto front ({res['n_trials']} trials, {res['n_failed']} failed)", rows,
               ["trial", "method", "width", "val_error", "test_error", "size_bytes",
                "latency_b1_ms", "latency_b100_ms", "knee"])
    if res.get("hypervolume") is not None:
        print(f"hypervolume {res['hypervolume']:.4f} (ref point {res['ref_point']})")
    print(f"wrote {out / 'front.md'}, {out / 'front.png'}, {out / 'results.json'}")
    return 0
