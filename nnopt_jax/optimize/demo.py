"""The optimize stage of ``nnopt demo``: a short multi-objective recipe search on digits."""

from __future__ import annotations

import pathlib
import time


def run_demo(out_dir, *, seed: int = 0, progress: bool = True) -> dict:
    """Four recipes (``configs/optimize/digits.py:smoke``, narrow MLPs) for error, bytes and latency.

    Returns:
        ``{"what", "result", "knee", "seconds"}``.
    """
    from nnopt_jax.config import apply_overrides, load_config
    from nnopt_jax.optimize.study import optimize

    root = pathlib.Path(__file__).resolve().parents[2]
    cfg = apply_overrides(load_config(f"{root / 'configs' / 'optimize' / 'digits.py'}:smoke"),
                          ["model.base_features=(8, 4)", "space.width.high=2",
                           "optimizer.n_initial=3", "latency.repeats=3"])
    cfg.seed = seed
    t0 = time.perf_counter()
    res = optimize(cfg, out_dir=out_dir, overwrite=True, progress=progress)
    k = res["knee"]
    return {"what": f"ParEGO over recipes, {res['n_trials']} trials, MLP on digits",
            "result": (f"front of {len(res['front'])}; knee: {k['method']} x{k['width']}, "
                       f"val error {100 * k['val_error']:.1f} %, {k['size_bytes']} B, "
                       f"{k['latency_b1_ms']:.3f} ms at batch 1") if k else "no successful trial",
            "knee": k, "seconds": time.perf_counter() - t0}
