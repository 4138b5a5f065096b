"""DARTS on Fashion-MNIST on 2 CPU cores: a second-order search, then the derived
genotype and random genotypes (the paper's random baseline) trained from scratch
with the same budget; each run's test accuracy, wall time and command go to
``OUT/summary.json`` and ``OUT/summary.md``.

Run (resumable: rerun the same command after an interruption):
  nohup python experiments/darts_fashion.py --out runs/darts_fashion > runs/darts_fashion/log.txt 2>&1 &
On two cores, train the random genotypes beside the search (the summary is
rebuilt from every finished run on disk, so parallel processes can share OUT):
  taskset -c 0 python experiments/darts_fashion.py --runs random --out runs/darts_fashion &
  taskset -c 1 python experiments/darts_fashion.py --runs search,searched --out runs/darts_fashion &
Several training seeds per genotype (the same genotype moves by about 1 % between
seeds at this budget; the summary adds mean and standard deviation per genotype):
  taskset -c 0 python experiments/darts_fashion.py --runs searched,random --seeds 0,1,2 --out runs/darts_fashion
(split the trainings between processes with ``--genotypes searched,random_0``).
Smoke (tiny, seconds):
  python experiments/darts_fashion.py --variant smoke --out runs/darts_fashion_smoke
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load(path: str, variant: str):
    from nnopt_jax.config import load_config
    return load_config(f"{path}:{variant}")


def _done(out: pathlib.Path) -> dict | None:
    p = out / "results.json"
    return json.loads(p.read_text()) if p.exists() else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/darts_fashion")
    ap.add_argument("--variant", default="default", choices=["default", "smoke"])
    ap.add_argument("--num-random", type=int, default=3)
    ap.add_argument("--runs", default="search,searched,random",
                    help="comma-separated subset of: search, searched (train the derived "
                         "genotype; needs the search), random (train the random genotypes)")
    ap.add_argument("--genotypes", default=None,
                    help="comma-separated subset of the genotypes to train (searched, random_0, ...), "
                         "e.g. to split the trainings between processes")
    ap.add_argument("--seeds", default="0",
                    help="comma-separated training seeds (train.seed); each genotype is trained "
                         "once per seed, into train_NAME (seed 0) or train_NAME_seedS")
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    # compiled steps are cached on disk, so a resumed run does not compile again
    import jax
    jax.config.update("jax_compilation_cache_dir", str(out / "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)

    from nnopt_jax import rundir
    from nnopt_jax.nas.darts import genotypes
    from nnopt_jax.nas.darts.search import run_search
    from nnopt_jax.nas.darts.train import run_train

    search_cfg = _load(str(ROOT / "configs/nas/darts_fashion_search.py"), args.variant)
    train_cfg = _load(str(ROOT / "configs/nas/darts_fashion_train.py"), args.variant)
    runs = set(args.runs.split(","))
    unknown = runs - {"search", "searched", "random"}
    if unknown:
        ap.error(f"unknown --runs {sorted(unknown)}; choose from search, searched, random")
    try:
        seeds = [int(v) for v in args.seeds.split(",")]
    except ValueError:
        ap.error(f"--seeds must be comma-separated integers, got {args.seeds!r}")

    candidates = []
    if runs & {"search", "searched"}:
        res = _done(out / "search")
        if res is None:
            t = time.time()
            res = run_search(search_cfg, out_dir=out / "search",
                             resume=rundir.holds_run(out / "search"))
            print(f"[experiment] search finished in {time.time() - t:.0f}s", flush=True)
        if "searched" in runs:
            candidates.append(("searched", genotypes.from_dict(res["genotype"])))
    if "random" in runs:
        rng = np.random.default_rng(12345)
        candidates += [(f"random_{i}", genotypes.random_genotype(rng))
                       for i in range(args.num_random)]
    if args.genotypes:
        wanted = set(args.genotypes.split(","))
        unknown = wanted - {name for name, _ in candidates}
        if unknown:
            ap.error(f"--genotypes {sorted(unknown)} not among {[n for n, _ in candidates]} (check --runs)")
        candidates = [(name, geno) for name, geno in candidates if name in wanted]
    from nnopt_jax.config import apply_overrides
    for seed in seeds:
        for name, geno in candidates:
            t_out = out / (f"train_{name}" + (f"_seed{seed}" if seed else ""))
            if _done(t_out) is None:
                cfg = apply_overrides(train_cfg, [f"train.seed={seed}"])
                run_train(cfg, geno, out_dir=t_out, resume=rundir.holds_run(t_out))
                genotypes.save_genotype(geno, t_out / "genotype.json")
            _write(out, command)
    _write(out, command)
    return 0


def _rows(out: pathlib.Path) -> list[dict]:
    """One row per finished run under ``out`` (search first, then trainings by name)."""
    from nnopt_jax.nas.darts import genotypes
    rows = []
    res = _done(out / "search")
    if res is not None:
        rows.append({"run": "search (second order)", "val_acc_search": res.get("val_acc"),
                     "wall_time_s": res.get("wall_time_s"),
                     "genotype": genotypes.format_genotype(genotypes.from_dict(res["genotype"])),
                     "param_free_share": res.get("param_free_share")})
    for t_out in sorted(out.glob("train_*")):
        r = _done(t_out)
        if r is None:
            continue
        geno = genotypes.from_dict(r["genotype"])
        name, _, seed = t_out.name[len("train_"):].partition("_seed")
        rows.append({"run": f"train {name}", "genotype_name": name, "seed": int(seed or 0),
                     "test_acc": r["test_acc"],
                     "wall_time_s": r["wall_time_s"], "num_params": r["num_params"],
                     "epochs": r["epochs"],
                     "param_free_share": genotypes.parameter_free_share(geno),
                     "genotype": genotypes.format_genotype(geno)})
    return rows


def _per_genotype(rows: list[dict]) -> list[dict]:
    """Test accuracy over training seeds, per genotype: mean, sample std, n."""
    by_name: dict[str, list[float]] = {}
    for r in rows:
        if "genotype_name" in r:
            by_name.setdefault(r["genotype_name"], []).append(r["test_acc"])
    return [{"genotype": name, "n": len(a), "mean_test_acc": float(np.mean(a)),
             "std_test_acc": float(np.std(a, ddof=1)) if len(a) > 1 else None}
            for name, a in by_name.items()]


def _write(out: pathlib.Path, command: str) -> None:
    rows = _rows(out)
    means = _per_genotype(rows)
    (out / "summary.json").write_text(json.dumps({"command": command, "rows": rows,
                                                  "per_genotype": means}, indent=2))
    lines = [f"Command: `{command}`", "", "| run | seed | test acc | search val acc | wall time (s) | "
             "params | param-free share |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        def f(k, fmt):
            return fmt.format(r[k]) if r.get(k) is not None else ""
        lines.append(f"| {r['run']} | {f('seed', '{:d}')} | {f('test_acc', '{:.4f}')} "
                     f"| {f('val_acc_search', '{:.4f}')} "
                     f"| {f('wall_time_s', '{:.0f}')} | {f('num_params', '{:d}')} "
                     f"| {f('param_free_share', '{:.2f}')} |")
    lines += ["", "| genotype | seeds | mean test acc | std |", "|---|---|---|---|"]
    for m in means:
        std = f"{m['std_test_acc']:.4f}" if m["std_test_acc"] is not None else ""
        lines.append(f"| {m['genotype']} | {m['n']} | {m['mean_test_acc']:.4f} | {std} |")
    genotype_lines = {f"- {r['run']}: {r['genotype']}".replace("\n", "; "): None for r in rows}
    lines += ["", "Genotypes:", ""] + list(genotype_lines)  # once per genotype, in order
    (out / "summary.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
