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

:class:`ExportedJit` also keeps the traced programs (``jax.export``) under
``<cache dir>/exported/``, so a fresh process neither traces nor compiles
them.

The compilation cache is only read and written by JAX; entries that a host's XLA rejects
are compiled again, never used wrongly. Delete the directory to clear it.
"""

from __future__ import annotations

import functools
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
    return _cache_dir_now()[0]


def _cache_dir_now() -> tuple[pathlib.Path | None, str]:
    return _cache_dir(os.environ.get(ENV, ""), os.environ.get("XDG_CACHE_HOME"),
                      os.environ.get("HOME"))


@functools.lru_cache(maxsize=16)
def _cache_dir(value: str, xdg: str | None, home: str | None) -> tuple[pathlib.Path | None, str]:
    """:func:`cache_dir` and its string for the environment's values (each
    BO suggestion asks twice; building the path took 18 us)."""
    del xdg, home  # read again by default_dir; part of the key only
    value = value.strip()
    if value.lower() in _OFF:
        return None, ""
    path = pathlib.Path(value).expanduser() if value else default_dir()
    return path, str(path)


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


def code_fingerprint(root: str | os.PathLike | None = None) -> str:
    """SHA-256 of every ``.py`` file under ``root`` (default: this package), names included.

    Part of :class:`ExportedJit`'s key, since a traced program embeds the code
    of every function it calls. Computed once per process for the package
    (about a millisecond per hundred files).
    """
    if root is None:
        return _package_fingerprint()
    import hashlib

    root = pathlib.Path(root)
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def _package_fingerprint() -> str:
    return code_fingerprint(pathlib.Path(__file__).resolve().parent)


class ExportedJit:
    """``jax.jit`` whose traced program is also kept on disk, for fresh processes.

    The persistent compilation cache skips XLA's compilation, but every new
    process still traces and lowers each program (about 0.4 s for each of the
    BO's two programs). This wrapper stores the lowered program once per
    argument signature with :func:`jax.export.export` under
    ``<cache dir>/exported/``; a later process deserialises it instead of
    tracing, and XLA's compilation of it is a hit in the persistent cache.
    With the cache off (see :func:`cache_dir`), or where the user chose JAX's
    cache directory, it is a plain ``jax.jit``.

    A file is keyed by the function's name, its static arguments, the
    argument shapes and dtypes, the x64 flag, JAX's version and
    :func:`code_fingerprint` of this package: an edited or upgraded package
    never loads a program traced from other code.

    Args:
        fn: the function; its keyword arguments named in ``static_argnames``
            must be hashable and have a stable ``repr`` (they key the file).
        static_argnames: keyword-only arguments baked into the program.
    """

    def __init__(self, fn, *, static_argnames: tuple[str, ...] = ()):
        import functools

        import jax

        self._fn = fn
        self._static = static_argnames
        self._jit = jax.jit(fn, static_argnames=static_argnames)
        self._calls: dict = {}
        functools.update_wrapper(self, fn)

    def _key(self, args, static) -> str:
        import hashlib

        import jax

        leaves, tree = jax.tree.flatten(args)
        sig = repr((self._fn.__module__, self._fn.__qualname__, sorted(static.items()),
                    str(tree), [(jax.numpy.shape(a), jax.numpy.result_type(a)) for a in leaves],
                    jax.config.jax_enable_x64, jax.__version__, code_fingerprint()))
        return hashlib.sha256(sig.encode()).hexdigest()[:32]

    def __call__(self, *args, **static):
        import functools

        import jax
        import numpy as np

        # only beside this package's own cache: where the user chose JAX's cache
        # directory (or none), nothing is written anywhere else
        root, root_str = _cache_dir_now()
        if root is None or jax.config.jax_compilation_cache_dir != root_str:
            return self._jit(*args, **static)
        # the process-local lookup is keyed cheaply; the file's key (a hash of
        # reprs, ~0.1 ms) is computed once per signature
        leaves, tree = jax.tree.flatten(args)
        local = (tree, tuple((np.shape(a), getattr(a, "dtype", type(a))) for a in leaves),
                 tuple(sorted(static.items())), jax.config.jax_enable_x64)
        call = self._calls.get(local)
        if call is None:
            path = root / "exported" / f"{self._key(args, static)}.bin"
            exp = None
            if path.exists():
                try:
                    exp = jax.export.deserialize(bytearray(path.read_bytes()))
                except Exception:  # damaged, or no flatbuffers: export again
                    exp = None
            if exp is None:
                target = jax.jit(functools.partial(self._fn, **static))
                exp = jax.export.export(target)(*args)
                try:
                    blob = exp.serialize()
                except ImportError:  # serialisation needs the flatbuffers package
                    blob = None
                if blob is not None:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_suffix(f".{os.getpid()}.tmp")
                    tmp.write_bytes(blob)
                    os.replace(tmp, path)
            call = self._calls[local] = jax.jit(exp.call)
        return call(*args)
