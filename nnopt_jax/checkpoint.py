"""Checkpoints of arbitrary pytrees with orbax, robust to interrupted writes.

Typed PRNG keys are stored as their raw key data and re-wrapped on restore.
A checkpoint that cannot be read (truncated, corrupt, from another model) is
skipped with a warning in favour of the previous one; when none is readable a
:class:`CheckpointError` explains what to do.
"""

from __future__ import annotations

import contextlib
import logging
import pathlib
import warnings

import jax
import numpy as np
import orbax.checkpoint as ocp

from nnopt_jax.types import PyTree

logging.getLogger("absl").setLevel(logging.ERROR)


class CheckpointError(RuntimeError):
    """No readable checkpoint matches the requested state."""


def _is_key(leaf) -> bool:
    return isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype,
                                                                  jax.dtypes.prng_key)


def _unwrap_keys(tree: PyTree) -> PyTree:
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _rewrap_keys(tree: PyTree, like: PyTree) -> PyTree:
    def wrap(x, ref):
        return jax.random.wrap_key_data(x, impl=jax.random.key_impl(ref)) if _is_key(ref) else x
    return jax.tree.map(wrap, tree, like)


@contextlib.contextmanager
def _quiet_absl():
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _manager(directory: pathlib.Path, max_to_keep: int | None = 3):
    """An orbax manager (synchronous saves); orbax's absl logging of unreadable
    metadata is silenced since the callers report such problems themselves."""
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False)
    with _quiet_absl(), ocp.CheckpointManager(directory.resolve(), options=options) as manager:
        yield manager


def save_checkpoint(directory: str | pathlib.Path, tree: PyTree, *, step: int,
                    max_to_keep: int | None = 3) -> None:
    """Writes ``tree`` as checkpoint ``step`` under ``directory`` (atomically),
    replacing an older checkpoint of the same step (e.g. an unreadable one)."""
    with _manager(pathlib.Path(directory), max_to_keep) as manager:
        if int(step) in manager.all_steps():
            manager.delete(int(step))
        manager.save(int(step), args=ocp.args.StandardSave(_unwrap_keys(tree)), force=True)
        manager.wait_until_finished()


def latest_step(directory: str | pathlib.Path) -> int | None:
    """The newest checkpoint step under ``directory``, or None."""
    directory = pathlib.Path(directory)
    if not directory.exists():
        return None
    with _manager(directory) as manager:
        return manager.latest_step()


def restore_checkpoint(directory: str | pathlib.Path, like: PyTree,
                       step: int | None = None) -> tuple[PyTree, int]:
    """Restores the newest readable checkpoint into the structure of ``like``.

    Args:
        directory: the checkpoint directory given to :func:`save_checkpoint`.
        like: a pytree with the structure, shapes and dtypes (and shardings) to
            restore into, e.g. a freshly initialised state.
        step: a specific step; default the newest one that can be read.

    Returns:
        ``(tree, step)``.

    Raises:
        CheckpointError: no readable checkpoint matches ``like``.
    """
    directory = pathlib.Path(directory)
    if not directory.exists():
        raise CheckpointError(f"no checkpoint directory at {directory}; run without --resume "
                              "to start a new run")
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, _unwrap_keys(like))
    errors = []
    with _manager(directory) as manager:
        steps = [step] if step is not None else sorted(manager.all_steps(), reverse=True)
        for candidate in steps:
            try:
                tree = manager.restore(candidate, args=ocp.args.StandardRestore(target))
            except Exception as err:  # orbax raises many types for corrupt files
                errors.append(f"step {candidate}: {type(err).__name__}: {str(err)[:200]}")
                warnings.warn(f"checkpoint {directory}/{candidate} is unreadable ({err!r:.120}); "
                              "trying an older one", RuntimeWarning, stacklevel=2)
                continue
            tree = jax.tree.map(lambda x, ref: np.asarray(x) if isinstance(ref, np.ndarray) else x,
                                tree, target)
            return _rewrap_keys(tree, like), int(candidate)
    detail = "; ".join(errors) if errors else "the directory holds no checkpoint"
    raise CheckpointError(
        f"no readable checkpoint in {directory} ({detail}). Delete the directory (or pass a "
        "new --out) and run without --resume to start afresh.")


def resume_or_start(directory: str | pathlib.Path | None, state: PyTree, *,
                    resume: bool) -> tuple[PyTree, int]:
    """``(state, step)`` to start a run from: the newest readable checkpoint in
    ``directory`` when ``resume`` and one exists, else ``(state, 0)``.

    Raises:
        ValueError: ``resume`` without a directory to resume from.
    """
    if not resume:
        return state, 0
    if directory is None:
        raise ValueError("resume=True needs an out_dir holding checkpoints")
    if latest_step(directory) is None:
        return state, 0
    return restore_checkpoint(directory, state)
