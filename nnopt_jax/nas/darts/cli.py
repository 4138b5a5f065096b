"""Thin entry points for ``nnopt nas search`` and ``nnopt nas train``
(:mod:`nnopt_jax.cli` parses the flags and calls these)."""

from __future__ import annotations

import json
import pathlib

from nnopt_jax.nas.darts import genotypes


def search_command(cfg, out_dir, resume: bool = False, *, overwrite: bool = False,
                   progress: bool = True) -> int:
    """Run a DARTS search; writes genotype.json, cell plots and results.json to ``out_dir``."""
    from nnopt_jax.nas.darts.search import run_search
    res = run_search(cfg, out_dir=out_dir, resume=resume, overwrite=overwrite,
                     progress=progress)
    print(f"genotype written to {pathlib.Path(out_dir) / 'genotype.json'}")
    print(res["genotype_str"])
    return 0


def train_command(cfg, genotype: str, out_dir, resume: bool = False, *,
                  overwrite: bool = False, progress: bool = True) -> int:
    """Train a genotype (a JSON file path or a published name: DARTS_V1, DARTS_V2)."""
    from nnopt_jax.nas.darts.train import run_train
    geno = genotypes.load_genotype(genotype)
    res = run_train(cfg, geno, out_dir=out_dir, resume=resume, overwrite=overwrite,
                    progress=progress)
    print(json.dumps({k: res[k] for k in ("test_acc", "test_error", "num_params",
                                          "wall_time_s")}, indent=1))
    return 0
