"""The HPO stage of ``nnopt demo``: a short Bayesian optimisation of a digits MLP."""

from __future__ import annotations

import pathlib
import time

from nnopt_jax.hpo.tune import tune


def run_demo(out_dir, *, seed: int = 0, progress: bool = True, train_fn=None) -> dict:
    """Tunes an MLP on digits: 6 BO trials of 2-epoch training (``digits_mlp.py:demo``).

    Returns:
        ``{"what", "result", "best_val_error", "best_params", "seconds"}``.
    """
    from nnopt_jax.config import load_config

    root = pathlib.Path(__file__).resolve().parents[2]
    cfg = load_config(f"{root / 'configs' / 'hpo' / 'digits_mlp.py'}:demo")
    cfg.hpo.seed = seed
    cfg.base.seed = seed
    t0 = time.perf_counter()
    out = pathlib.Path(out_dir)
    journal = out / "journal.jsonl"
    res = tune(cfg, out_dir=out, resume=journal.exists(), progress=progress, train_fn=train_fn)
    return {"what": f"BO, {res['n_trials']} trials, MLP on digits",
            "result": f"best val error {res['best_value']:.3f}",
            "best_val_error": res["best_value"], "best_params": res["best_params"],
            "seconds": time.perf_counter() - t0}
