"""Entry point for ``nnopt hpo`` (:mod:`nnopt_jax.cli` parses the flags and calls this)."""

from __future__ import annotations

import pathlib

from nnopt_jax.hpo.tune import tune


def hpo_command(cfg, out_dir, resume: bool, *, overwrite: bool = False,
                progress: bool = True) -> int:
    """Tunes ``cfg`` into ``out_dir`` (one line per trial unless ``progress`` is false);
    returns a process exit code."""
    tune(cfg, out_dir=pathlib.Path(out_dir), resume=resume, overwrite=overwrite,
         progress=progress)
    return 0
