"""What the posterior knows (issue 22): NLL, ECE and OOD AUROC of compressed LeNet-300-100s.

Reads ``results.json["uncertainty"]`` of ``nnopt compress`` runs (see
:mod:`nnopt_jax.bayes.uncertainty`) and writes one Markdown table, a row per
run and prediction mode: ``mc`` (S-sample posterior predictive), ``deterministic``
(the masked posterior mean that compress evaluates), ``quantized`` (VNQ's ternary
net), ``dense`` (the dense baseline). OOD: MNIST test images vs Fashion-MNIST
test images, scored by predictive entropy. The compression column is that of
the network that predicts (none for ``mc``: its samples follow the model's
``mask_in_training`` / ``mask_noise``, and lenet300_svd keeps the pruned weights'
noise, so its MC predictive is over the posterior, not the compressed net).

There is no LeNet-300-100 VNQ config in configs/compress/ (VNQ exists for
LeNet-5, ``lenet5_vnq.py``, and the DenseNet); pass any VNQ run with ``--run``.

Usage:
  # 1. the runs, with the report (``--set eval.uncertainty=true``):
  export NNOPT_DATA_DIR=../shared/data
  nnopt compress --config configs/compress/lenet300_dense.py --out runs/compress/lenet300_dense \\
      --set eval.uncertainty=true
  nnopt compress --config configs/compress/lenet300_svd.py --out runs/compress/lenet300_svd \\
      --set eval.uncertainty=true --set eval.dense_baseline=runs/compress/lenet300_dense
  # 2. the table; --compute adds the report to runs made without it (or with other
  #    settings) by resuming them: their finished training is restored, not redone
  .venv/bin/python experiments/uncertainty_table.py --run dense=runs/compress/lenet300_dense \\
      --run sparse_vd=runs/compress/lenet300_svd [--run vnq=runs/compress/lenet5_vnq] \\
      [--compute --dense dense --samples 30 --ood fashion_mnist] --out runs/uncertainty
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

MODES = ("mc", "deterministic", "quantized", "dense")


def _fmt(v, scale=1.0, digits=3):
    return "–" if v is None else f"{scale * v:.{digits}f}"


def compute(run_dir: pathlib.Path, *, samples: int, ood: str, dense_dir: pathlib.Path | None) -> dict:
    """Resumes the finished run in ``run_dir`` with ``eval.uncertainty`` on; returns its results."""
    from nnopt_jax.bayes.run import EVAL_DEFAULTS, compress
    from nnopt_jax.config import Config

    cfg = Config(json.loads((run_dir / "config.json").read_text()))
    ev = {**EVAL_DEFAULTS, **cfg.get("eval", {}), "uncertainty": True, "uncertainty_samples": samples,
          "ood_dataset": ood}
    if cfg.method in ("sparse_vd", "vnq") and dense_dir is not None:
        ev["dense_baseline"] = str(dense_dir)
    cfg.eval = ev
    return compress(cfg, out_dir=run_dir, resume=True, progress=False)


def table_rows(runs: dict[str, pathlib.Path]) -> list[dict]:
    """One row per (run, mode) from the runs' results.json."""
    rows = []
    for label, d in runs.items():
        res = json.loads((d / "results.json").read_text())
        u = res.get("uncertainty")
        if not u:
            print(f"skipping {label}: {d / 'results.json'} has no uncertainty report "
                  "(pass --compute, or rerun with --set eval.uncertainty=true)", file=sys.stderr)
            continue
        own = res.get("method") in ("dense", "pruning")
        for mode, m in u["modes"].items():
            # the compression of the network that predicts: the run's own masked / quantised / dense net
            comp = res.get("compression") if mode in ("deterministic", "quantized") or own else None
            rows.append({"run": label, "dir": str(d), "model": res.get("model"), "method": res.get("method"),
                         "mode": mode, "compression": comp, "n_samples": u["n_samples"],
                         "ood_dataset": u["ood_dataset"], "n_test": u["n_test"], "n_ood": u["n_ood"],
                         "ood_skipped": u["ood_skipped"], "notes": u["notes"],
                         **{k: m[k] for k in ("nll", "ece", "accuracy", "auroc_ood", "entropy_in",
                                              "entropy_ood")}})
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| run | method | mode | compression | test error (%) | NLL | ECE (%) | AUROC (OOD by entropy) "
             "| entropy in / OOD (nats) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        mode = f"mc (S={r['n_samples']})" if r["mode"] == "mc" else r["mode"]
        comp = "–" if r["compression"] is None else f"{r['compression']:.1f}×"
        lines.append(f"| {r['run']} | {r['method']} | {mode} | {comp} "
                     f"| {_fmt(1 - r['accuracy'], 100, 2)} | {_fmt(r['nll'], digits=4)} | {_fmt(r['ece'], 100, 2)} "
                     f"| {_fmt(r['auroc_ood'], digits=4)} | {_fmt(r['entropy_in'])} / {_fmt(r['entropy_ood'])} |")
    seen = {}
    for r in rows:
        seen.setdefault(r["run"], r)
    for label, r in seen.items():
        ood = (f"OOD {r['ood_dataset']} ({r['n_ood']} images)" if not r["ood_skipped"]
               else f"OOD skipped: {r['ood_skipped']}")
        notes = "; ".join(f"{k}: {v}" for k, v in r["notes"].items())
        lines.append(f"\n{label} ({r['dir']}): {r['n_test']} test images, {ood}. {notes}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="append", default=[], metavar="LABEL=DIR",
                    help="a compress out dir and its row label (repeat)")
    ap.add_argument("--out", default="runs/uncertainty")
    ap.add_argument("--compute", action="store_true",
                    help="(re)compute each run's report by resuming it with eval.uncertainty=true")
    ap.add_argument("--dense", help="label of the --run that serves as the dense baseline (with --compute)")
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--ood", default="fashion_mnist")
    args = ap.parse_args(argv)

    runs = {}
    for item in args.run:
        label, sep, d = item.partition("=")
        if not sep or not label or not d:
            ap.error(f"--run {item!r} is not LABEL=DIR")
        if not (pathlib.Path(d) / "results.json").is_file():
            ap.error(f"--run {item!r}: {d} holds no results.json; run `nnopt compress ... --out {d}` first")
        runs[label] = pathlib.Path(d)
    if not runs:
        ap.error("pass at least one --run LABEL=DIR")
    if args.dense is not None and args.dense not in runs:
        ap.error(f"--dense {args.dense!r} is none of the --run labels {sorted(runs)}")
    if args.compute:
        dense_dir = runs.get(args.dense) if args.dense else None
        for label, d in sorted(runs.items(), key=lambda kv: kv[0] != args.dense):  # the baseline first
            print(f"computing the uncertainty report of {label} ({d})", file=sys.stderr)
            compute(d, samples=args.samples, ood=args.ood, dense_dir=None if label == args.dense else dense_dir)

    rows = table_rows(runs)
    dest = pathlib.Path(args.out)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "table.json").write_text(json.dumps(rows, indent=2))
    md = markdown(rows)
    (dest / "table.md").write_text(md)
    print(md)
    return {"rows": rows, "markdown": md}


if __name__ == "__main__":
    main()
