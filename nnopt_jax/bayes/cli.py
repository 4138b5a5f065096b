"""The ``nnopt compress`` verb: a thin wrapper over :func:`nnopt_jax.bayes.run.compress`."""

from __future__ import annotations

import json
import pathlib

__all__ = ["compress_command", "format_summary"]


def format_summary(results: dict) -> str:
    """A few human-readable lines about a compression result."""
    lines = [f"test error {100 * results['test_error']:.2f} %, compression {results['compression']:.1f}x "
             f"({100 * results.get('nonzero_fraction', 1 / results['compression']):.2f} % non-zero)"]
    lines += [f"  {l['name']:>24s}: {l['n_nonzero']:>7d}/{l['n_weights']:<7d} sparsity {100 * l['sparsity']:.1f} %"
              for l in results.get("layers", [])]
    if "export_bytes" in results:
        lines.append(f"export: {results['export_bytes']} bytes (dense float32: {results['dense_float32_bytes']})")
    return "\n".join(lines)


def compress_command(cfg, out_dir, resume: bool = False, *, overwrite: bool = False,
                     progress: bool = True) -> int:
    """Runs ``compress(cfg)`` into ``out_dir``, prints a summary; returns the exit code."""
    from nnopt_jax.bayes.run import compress

    out = pathlib.Path(out_dir)
    results = compress(cfg, out_dir=out, resume=resume, overwrite=overwrite, progress=progress)
    print(format_summary(results))
    print(f"wrote {out / 'results.json'}")
    return 0


def main(argv=None) -> int:
    """Stand-alone entry: ``python -m nnopt_jax.bayes.cli CONFIG[:variant] OUT [--resume] [--overwrite] [--set k=v ...]``."""
    import argparse

    from nnopt_jax.config import apply_overrides, load_config

    ap = argparse.ArgumentParser(prog="python -m nnopt_jax.bayes.cli", description=main.__doc__)
    ap.add_argument("config")
    ap.add_argument("out")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args(argv)
    cfg = apply_overrides(load_config(args.config), args.set)
    return compress_command(cfg, args.out, args.resume, overwrite=args.overwrite,
                            progress=not args.no_progress)


if __name__ == "__main__":
    raise SystemExit(main())
