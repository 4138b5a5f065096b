"""A persistent XLA compilation cache, on by default.

A fresh process otherwise compiles every program again: the BO's GP fit and
acquisition maximiser alone take seconds, more than a whole study's
suggestions. JAX can keep compiled programs on disk
(``jax_compilation_cache_dir``); importing any of this package's modules that
compile (``hpo``, ``nas``, ``bayes``, ``training``, the CLI) turns that on at

* ``$NNOPT_JAX_CACHE`` when it names a directory,
* else ``$XDG_CACHE_HOME/nnopt/jax`` (``~/.cache/nnopt/jax``),

unless ``NNOPT_JAX_CACHE`` is ``off`` (or ``0``, ``false``, ``no``), or the
user already chose a cache directory (``JAX_COMPILATION_CACHE_DIR`` or
``jax.config.update("jax_compilation_cache_dir", ...)``), which is left as it
is. Programs that compile in under 0.1 s are not stored
(``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` overrides this).

The cache is only read and written by JAX; entries that a host's XLA rejects
are compiled again, never used wrongly. Delete the directory to clear it.
"""

from __future__ import annotations

import os
import pathlib

ENV = "NNOPT_JAX_CACHE"
"""Environment variable: a cache directory, or ``off`` to disable the cache."""

MIN_COMPILE_TIME_S = 0.1
"""Programs compiling faster than this are not worth a disk entry."""

_OFF = {"off", "0", "false", "no"}


def default_dir() -> pathlib.Path:
    """``$XDG_CACHE_HOME/nnopt/jax``, or ``~/.cache/nnopt/jax``."""
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "nnopt" / "jax"


def cache_dir() -> pathlib.Path | None:
    """The directory :func:`enable` would use, or ``None`` where it is turned off."""
    value = os.environ.get(ENV, "").strip()
    if value.lower() in _OFF:
        return None
    return pathlib.Path(value).expanduser() if value else default_dir()


def enable() -> pathlib.Path | None:
    """Turns the persistent compilation cache on, unless the user set one or opted out.

    Idempotent. Effective for every program compiled after the call; the
    modules of this package that compile call it when they are imported.

    Returns:
        The cache directory in use, or ``None`` if the cache stays off.
    """
    import jax

    if jax.config.jax_compilation_cache_dir:
        return pathlib.Path(jax.config.jax_compilation_cache_dir)
    path = cache_dir()
    if path is None:
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S)
    return path
