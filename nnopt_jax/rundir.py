"""The output directory of a run: one run per directory, resumed only by the same run.

Every training-type command (``nnopt train``, ``compress``, ``nas search``,
``nas train``) writes into one directory. Before training begins,
:func:`prepare_run_dir` records the run there:

- ``config.json``: the run's config, as the command describes it;
- ``run.json``: ``{"command", "fingerprint", "may_change", "nnopt_jax", "created",
  "updated"}``,
  where ``fingerprint`` is the sha256 of the canonical JSON of the config
  without the keys that may change on resume.

The rules:

- a fresh run (``resume=False``) needs an empty or missing directory;
  ``overwrite=True`` first deletes everything in a directory that holds a
  previous run (``run.json`` or ``config.json``), and refuses to delete the
  contents of a non-empty directory that holds none;
- ``resume=True`` needs a previous run of the same command whose config
  equals the new one except for the keys in ``may_change`` (dotted keys,
  ``fnmatch`` patterns): e.g. ``train.num_epochs`` to extend a finished run,
  ``data.data_dir`` for data that moved. Any other difference is refused with
  the differing keys, old and new values. Directories written before
  ``run.json`` existed are compared on their ``config.json``;
- an output path that is a file, or lies under one, is an error.

Violations raise :class:`RunDirError`, a ``ValueError`` whose message names the
directory and the fix. In a multi-process run only process 0 reads and writes
the directory; the other processes learn its verdict (a collective).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import pathlib
import shutil
from typing import Any, Callable, Iterable, Mapping

from nnopt_jax.config import canonical, config_diff, describe_diff, flatten, matches_any

__all__ = ["RunDirError", "prepare_run_dir", "check_run_dir", "holds_run", "fingerprint",
           "DEFAULT_MAY_CHANGE", "RUN_FILE", "CONFIG_FILE"]

RUN_FILE = "run.json"
CONFIG_FILE = "config.json"
DEFAULT_MAY_CHANGE = ("data.data_dir",)
"""Keys every command lets a resumed run change: where the data lives."""

_FIX_FRESH = "pass --resume to continue it, --overwrite to discard it, or another --out"


class RunDirError(ValueError):
    """The output directory does not fit the requested run (fresh, resumed)."""


def fingerprint(config: Any, may_change: Iterable[str] = ()) -> str:
    """sha256 of the canonical JSON of ``config`` without the ``may_change`` keys."""
    kept = {k: v for k, v in flatten(canonical(config)).items()
            if not matches_any(k, may_change)}
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# ----------------------------------------------------------------------------- directory


def holds_run(out_dir: str | os.PathLike) -> bool:
    """Whether ``out_dir`` holds a run (its ``run.json`` or ``config.json``)."""
    out = pathlib.Path(out_dir)
    return (out / RUN_FILE).is_file() or (out / CONFIG_FILE).is_file()


def _check_path(out: pathlib.Path) -> None:
    if out.exists() and not out.is_dir():
        raise RunDirError(f"output directory {out} is a file, not a directory; "
                          "choose another --out")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise RunDirError(f"output directory {out} lies under {parent}, which is a "
                                  "file; choose another --out")
            break


def _read_json(path: pathlib.Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _check_resume(out: pathlib.Path, config: Any, command: str,
                  patterns: tuple[str, ...], added: Mapping[str, Any]) -> None:
    if not holds_run(out):
        what = "does not exist" if not out.exists() else "holds no run (no run.json)"
        raise RunDirError(f"nothing to resume: {out} {what}; run without --resume to "
                          "start a new run there")
    run = _read_json(out / RUN_FILE) or {}
    old_command = run.get("command")
    if old_command and old_command != command:
        raise RunDirError(f"cannot resume {out} with `nnopt {command}`: it holds a "
                          f"`nnopt {old_command}` run; pass --overwrite to discard it or "
                          "choose another --out")
    old = _read_json(out / CONFIG_FILE)
    if old is None:
        # run.json alone (config.json unreadable): its fingerprint decides
        if run.get("fingerprint") == fingerprint(config, patterns):
            return
        raise RunDirError(f"cannot resume {out}: its {CONFIG_FILE} is missing or unreadable "
                          "and its fingerprint differs from this config; pass --overwrite "
                          "to discard the old run or choose another --out")
    diff = config_diff(old, config, patterns, old_defaults=added)
    if diff:
        raise RunDirError(
            f"cannot resume {out}: it holds a run with another config ({describe_diff(diff)}); "
            f"resume with the same config (only {', '.join(patterns)} may change), or "
            "pass --overwrite to discard the old run, or choose another --out")


def _check(out: pathlib.Path, config: Any, command: str, resume: bool, overwrite: bool,
           patterns: tuple[str, ...], added: Mapping[str, Any]) -> None:
    _check_path(out)
    if resume and overwrite:
        raise RunDirError("--resume continues the run in --out and --overwrite discards it; "
                          "pass only one of them")
    if resume:
        _check_resume(out, config, command, patterns, added)
        return
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        what = "holds a previous run" if holds_run(out) else "is not empty"
        raise RunDirError(f"output directory {out} {what}; {_FIX_FRESH}")
    if not holds_run(out):
        raise RunDirError(f"output directory {out} is not empty and holds no run (no "
                          f"{RUN_FILE} or {CONFIG_FILE}), so --overwrite leaves it alone; "
                          "empty it yourself or choose another --out")


def _clear(out: pathlib.Path) -> None:
    for entry in out.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _write_json(path: pathlib.Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def _on_process_0(fn: Callable[[], None]) -> None:
    """Runs ``fn`` on process 0 only; every process raises if it raised there."""
    import jax
    if jax.process_count() == 1:
        fn()
        return
    import numpy as np
    from jax.experimental import multihost_utils
    error = None
    if jax.process_index() == 0:
        try:
            fn()
        except (RunDirError, OSError) as err:
            error = err
    failed = int(multihost_utils.broadcast_one_to_all(np.int32(error is not None)))
    if error is not None:
        raise error
    if failed:
        raise RunDirError("process 0 refused the output directory (see its error)")


def check_run_dir(out_dir: str | os.PathLike, config: Any, *, command: str, resume: bool,
                  overwrite: bool = False,
                  may_change: Iterable[str] = DEFAULT_MAY_CHANGE,
                  added_keys: Mapping[str, Any] | None = None) -> pathlib.Path:
    """Checks without writing that ``out_dir`` fits the run (see the module docstring);
    call it early, before loading data, and :func:`prepare_run_dir` just before training.

    Args:
        out_dir: the run's output directory.
        config: the run's config (JSON-serialisable; what ``config.json`` holds).
        command: the command's name, e.g. ``"train"``; a resume must match it.
        resume: continue the run in ``out_dir``.
        overwrite: discard the run in ``out_dir`` (a fresh run only).
        may_change: dotted keys (``fnmatch`` patterns) a resumed run may change.
        added_keys: dotted keys that later versions added to the config, with
            the value a run recorded without them had (so that it still resumes).

    Returns:
        ``out_dir`` as a path.

    Raises:
        RunDirError: the directory does not fit the run; the message says why
            and what to pass instead.
    """
    out = pathlib.Path(out_dir)
    patterns = tuple(may_change)
    added = dict(added_keys or {})
    _on_process_0(lambda: _check(out, config, command, resume, overwrite, patterns, added))
    return out


def prepare_run_dir(out_dir: str | os.PathLike, config: Any, *, command: str, resume: bool,
                    overwrite: bool = False,
                    may_change: Iterable[str] = DEFAULT_MAY_CHANGE,
                    added_keys: Mapping[str, Any] | None = None) -> pathlib.Path:
    """Checks ``out_dir`` like :func:`check_run_dir`, empties it when
    ``overwrite``, and writes ``config.json`` and ``run.json`` (process 0 only),
    so that a run killed from here on can be resumed.

    Returns:
        ``out_dir`` as a path (created).

    Raises:
        RunDirError: as :func:`check_run_dir`.
    """
    out = pathlib.Path(out_dir)
    patterns = tuple(may_change)
    added = dict(added_keys or {})

    def prepare():
        _check(out, config, command, resume, overwrite, patterns, added)
        if overwrite and out.is_dir():
            _clear(out)
        out.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        created = ((_read_json(out / RUN_FILE) or {}).get("created") if resume else None) or now
        _write_json(out / CONFIG_FILE, canonical(config))
        from nnopt_jax import __version__
        _write_json(out / RUN_FILE, {
            "command": command, "fingerprint": fingerprint(config, patterns),
            "may_change": list(patterns), "nnopt_jax": __version__,
            "created": created, "updated": now})

    _on_process_0(prepare)
    return out
