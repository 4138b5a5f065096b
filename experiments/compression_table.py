"""Reruns the Bayesian-compression table (Molchanov et al. 2017; Achterhold et al. 2018) from configs.

Each row is one config in configs/compress/ (with the variant that gives the
row, e.g. ``lenet5_svd.py:authors``); its run goes to RUNS/<run name>/
(resumable), and the table of all rows, beside the papers' numbers, is written
as JSON and Markdown.

Usage:
  NNOPT_DATA_DIR=../shared/data .venv/bin/python experiments/compression_table.py \
      --runs runs/compress --out runs/compress/table [--only lenet300_svd lenet5_vnq_held] \
      [--set train.num_epochs=40] [--collect-only] [--smoke]

``--collect-only`` only gathers existing results.json files (e.g. from runs made
with ``nnopt compress``); ``--smoke`` runs every config's smoke variant.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
ROWS = [  # (config[:variant], run name, model key, method key)
    ("lenet300_dense", "lenet300_dense", "lenet300_100", "dense"),
    ("lenet300_pruning", "lenet300_pruning", "lenet300_100", "pruning"),
    ("lenet300_svd", "lenet300_svd", "lenet300_100", "sparse_vd"),
    ("lenet5_dense", "lenet5_dense", "lenet5", "dense"),
    ("lenet5_pruning", "lenet5_pruning", "lenet5", "pruning"),
    ("lenet5_svd:authors", "lenet5_svd_authors", "lenet5", "sparse_vd"),
    ("lenet5_vnq:held_levels", "lenet5_vnq_held", "lenet5", "vnq"),
]


def config_spec(row_config: str, *, smoke: bool) -> str:
    """The ``--config`` of a row: its file and variant, or the file's smoke variant."""
    name, _, variant = row_config.partition(":")
    path = f"configs/compress/{name}.py"
    if smoke:
        return f"{path}:smoke"
    return f"{path}:{variant}" if variant else path


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="runs/compress")
    ap.add_argument("--out", default="runs/compress/table")
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--collect-only", action="store_true")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)

    from nnopt_jax.bayes.compression import markdown_table
    from nnopt_jax.config import apply_overrides, load_config

    runs = pathlib.Path(args.runs)
    rows = []
    for config, name, model, method in ROWS:
        if args.only and name not in args.only:
            continue
        out = runs / (name + ("_smoke" if args.smoke else ""))
        spec = config_spec(config, smoke=args.smoke)
        if not args.collect_only:
            from nnopt_jax import rundir
            from nnopt_jax.bayes.run import compress

            cfg = apply_overrides(load_config(str(ROOT / spec)), args.set)
            compress(cfg, out_dir=out, resume=rundir.holds_run(out),
                     progress=not args.no_progress)
        if not (out / "results.json").is_file():
            print(f"skipping {name}: no {out / 'results.json'}", file=sys.stderr)
            continue
        res = json.loads((out / "results.json").read_text())
        rows.append({"config": name, "model": model, "method": method, "results": res,
                     "epochs": res.get("epochs_run"), "wall_time_s": res.get("wall_time_s"),
                     "command": f"nnopt compress --config {spec} --out {out}"})
    dest = pathlib.Path(args.out)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "table.json").write_text(json.dumps(rows, indent=2))
    md = markdown_table(rows)
    (dest / "table.md").write_text(md)
    print(md)
    return {"rows": rows, "markdown": md}


if __name__ == "__main__":
    main()
