"""Entry point for ``nnopt hpo`` (the lead's CLI parses and calls this)."""

from __future__ import annotations

import pathlib

from nnopt_jax.hpo.tune import tune


def hpo_command(cfg, out_dir, resume: bool, *, overwrite: bool = False) -> int:
    """Tunes ``cfg`` into ``out_dir``; returns a process exit code."""
    tune(cfg, out_dir=pathlib.Path(out_dir), resume=resume, overwrite=overwrite, progress=True)
    return 0
