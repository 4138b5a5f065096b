"""Hypervolume of multi-objective BO (ParEGO) against random search over recipes, at equal trials.

For each seed, one ``nnopt optimize`` study per method (same config, same
seed, hence the same validation split) runs ``--trials`` trials into
RUNS/<method>_s<seed>/ (resumable). Reported per method, over the seeds: the
hypervolume of all successful trials with respect to the config's
``optimizer.ref_point`` (in the minimised units: validation error,
log10 bytes, log10 latency ms), and the front's best validation error within
each size budget 10^k bytes (the best error of any model of at most that many
bytes). Written as JSON and Markdown to --out.

Usage:
  .venv/bin/python experiments/optimize_hypervolume.py --config configs/optimize/digits.py \\
      --runs runs/optimize_hv --out runs/optimize_hv/table --seeds 0 1 2 3 4 --trials 30
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import platform
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _budgets(rows, decades) -> dict[str, float | None]:
    out = {}
    for k in decades:
        errs = [r["val_error"] for r in rows if r["size_bytes"] <= 10 ** k]
        out[f"1e{k}"] = min(errs) if errs else None
    return out


def _trial_rows(out: pathlib.Path) -> list[dict]:
    rows = []
    for line in (out / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("status") == "ok":
            rows.append(r)
    return rows


def _mean_std(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None, 0
    return float(np.mean(xs)), float(np.std(xs, ddof=1)) if len(xs) > 1 else 0.0, len(xs)


def main(argv=None) -> int:
    sys.path.insert(0, str(ROOT))
    from nnopt_jax.config import apply_overrides, load_config
    from nnopt_jax.optimize.study import optimize

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs/optimize/digits.py"))
    ap.add_argument("--runs", type=pathlib.Path, default=pathlib.Path("runs/optimize_hv"))
    ap.add_argument("--out", type=pathlib.Path, default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--methods", nargs="+", default=["parego", "random"])
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args(argv)
    out_dir = args.out or args.runs / "table"
    out_dir.mkdir(parents=True, exist_ok=True)
    decades = range(2, 7)
    runs = []
    t0 = time.perf_counter()
    for seed in args.seeds:
        for method in args.methods:
            cfg = apply_overrides(load_config(args.config), args.overrides)
            cfg.seed = seed
            cfg.optimizer.method = method
            cfg.optimizer.n_trials = args.trials
            d = args.runs / f"{method}_s{seed}"
            t1 = time.perf_counter()
            res = optimize(cfg, out_dir=d, resume=(d / "journal.jsonl").exists(), progress=False)
            rows = _trial_rows(d)
            runs.append({"method": method, "seed": seed, "hypervolume": res.get("hypervolume"),
                         "n_ok": len(rows), "n_failed": res["n_failed"],
                         "front_size": len(res["front"]),
                         "best_error_within": _budgets(rows, decades),
                         "knee": {k: res["knee"][k] for k in ("trial", "method", "val_error",
                                                             "test_error", "size_bytes")}
                         if res.get("knee") else None,
                         "seconds": time.perf_counter() - t1})
            print(f"{method} seed {seed}: HV {res.get('hypervolume'):.4f}, "
                  f"{len(res['front'])} on the front ({time.perf_counter() - t1:.0f} s)",
                  flush=True)
    ref = res.get("ref_point")
    summary = []
    for method in args.methods:
        mine = [r for r in runs if r["method"] == method]
        hv = _mean_std([r["hypervolume"] for r in mine])
        row = {"method": method, "runs": len(mine), "hv_mean": hv[0], "hv_std": hv[1]}
        for k in decades:
            m = _mean_std([r["best_error_within"][f"1e{k}"] for r in mine])
            row[f"err_le_1e{k}"] = m[0]
            row[f"err_le_1e{k}_runs"] = m[2]
        summary.append(row)
    payload = {"config": args.config, "overrides": args.overrides, "trials": args.trials,
               "seeds": args.seeds, "ref_point": ref,
               "ref_point_units": "val_error (fraction), size in bytes, latency in ms; "
                                  "hypervolume in val_error x log10(bytes) x log10(ms)",
               "machine": f"{platform.node()} {platform.processor() or platform.machine()}",
               "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
               "seconds": time.perf_counter() - t0, "summary": summary, "runs": runs}
    (out_dir / "optimize_hypervolume.json").write_text(json.dumps(payload, indent=2))
    cols = ["method", "runs", "hypervolume (mean ± sd)"] + [f"best val err ≤ 1e{k} B"
                                                           for k in decades]
    lines = [f"Hypervolume at {args.trials} trials, ref point {ref} "
             f"(objectives val_error, log10 bytes, log10 ms); best validation error "
             f"(mean over runs that have such a model; n in brackets).", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in summary:
        cells = [r["method"], str(r["runs"]), f"{r['hv_mean']:.4f} ± {r['hv_std']:.4f}"]
        for k in decades:
            v = r[f"err_le_1e{k}"]
            cells.append("–" if v is None else f"{100 * v:.2f} % ({r[f'err_le_1e{k}_runs']})")
        lines.append("| " + " | ".join(cells) + " |")
    (out_dir / "optimize_hypervolume.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
