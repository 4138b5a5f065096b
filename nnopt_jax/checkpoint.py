"""Checkpoints of arbitrary pytrees with orbax, robust to interrupted writes.

Typed PRNG keys are stored as their raw key data and re-wrapped on restore.
A checkpoint that cannot be read (truncated, corrupt, from another model) is
skipped with a warning in favour of the previous one; when none is readable a
single :class:`CheckpointError` explains what to do, with the leaves whose
stored shape or dtype differs from the requested state. Orbax's own logging,
warnings and the asyncio tracebacks of its aborted reads are silenced.
"""

from __future__ import annotations

import contextlib
import logging
import pathlib
import sys
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


def _leaf_name(path) -> str:
    """Orbax's name of a leaf: its path keys joined by dots."""
    parts = []
    for key in path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return ".".join(parts)


def _layout_mismatch(step_dir: pathlib.Path, target: PyTree) -> str | None:
    """How the checkpoint in ``step_dir`` differs from ``target`` in leaves,
    shapes or dtypes (None: it matches, or its metadata cannot be read)."""
    try:
        meta = ocp.StandardCheckpointer().metadata(step_dir / "default")
        tree = getattr(meta, "item_metadata", meta)
        tree = getattr(tree, "tree", tree)
        stored = {leaf.name: (tuple(leaf.shape), np.dtype(leaf.dtype))
                  for leaf in jax.tree.leaves(tree, is_leaf=lambda x: hasattr(x, "shape"))}
    except Exception:  # unreadable metadata: the restore attempt reports it
        return None
    if not stored:
        return None
    flat, _ = jax.tree_util.tree_flatten_with_path(target)
    expected = {_leaf_name(path): (tuple(leaf.shape), np.dtype(leaf.dtype))
                for path, leaf in flat}
    problems = []
    # the parameters' differences first (the optimiser state mirrors them)
    for name in sorted(set(stored) | set(expected), key=lambda n: (n.startswith("opt_"), n)):
        if name not in stored:
            problems.append(f"{name} is not stored")
        elif name not in expected:
            problems.append(f"{name} is stored but not expected")
        elif stored[name][0] != expected[name][0]:
            problems.append(f"{name} stored {stored[name][0]}, expected {expected[name][0]}")
        elif stored[name][1] != expected[name][1]:
            problems.append(f"{name} stored {stored[name][1]}, expected {expected[name][1]}")
    if not problems:
        return None
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return "another model's state: " + "; ".join(problems[:3]) + more


_UNRAISABLE_FILTER_ON = False


def _is_aborted_read_report(record: logging.LogRecord) -> bool:
    """Whether ``record`` is asyncio's "Task (or Future) exception was never
    retrieved" for a tensorstore read that an aborted orbax restore left behind."""
    exc = record.exc_info[1] if record.exc_info else None
    first_line = record.getMessage().partition("\n")[0]
    return (first_line.endswith("exception was never retrieved")
            and exc is not None and "tensorstore_spec" in str(exc))


def _drop_closed_loop_errors() -> None:
    """Silences the reports of an aborted orbax read: the "Event loop is closed"
    RuntimeErrors that its tensorstore callbacks raise after orbax closed its
    event loop (one per pending read), and asyncio's "Task/Future exception was
    never retrieved" log records of its failed reads, which the garbage collector
    emits whenever it runs. Every other unraisable error and asyncio record
    still goes through. (After a restore that met unreadable steps, the
    "coroutine ... was never awaited" warnings of its abandoned reads are
    ignored too.)"""
    global _UNRAISABLE_FILTER_ON
    if _UNRAISABLE_FILTER_ON:
        return
    logging.getLogger("asyncio").addFilter(lambda record: not _is_aborted_read_report(record))
    previous = sys.unraisablehook

    def hook(unraisable):
        exc = unraisable.exc_value
        if isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed":
            return
        previous(unraisable)

    sys.unraisablehook = hook
    _UNRAISABLE_FILTER_ON = True


def restore_checkpoint(directory: str | pathlib.Path, like: PyTree,
                       step: int | None = None) -> tuple[PyTree, int]:
    """Restores the newest readable checkpoint into the structure of ``like``.

    Args:
        directory: the checkpoint directory given to :func:`save_checkpoint`.
        like: a pytree with the structure, shapes and dtypes (and shardings) to
            restore into, e.g. a freshly initialised state.
        step: a specific step; default the newest one that can be read.

    Returns:
        ``(tree, step)``. Older checkpoints used in place of unreadable newer
        ones are named in a ``RuntimeWarning``.

    Raises:
        CheckpointError: no readable checkpoint matches ``like``; one message
            naming the directory, what is wrong with each step (for another
            model's state: the leaves whose shapes differ) and the fix.
    """
    directory = pathlib.Path(directory)
    if not directory.exists():
        raise CheckpointError(f"no checkpoint directory at {directory}; run without --resume "
                              "to start a new run")
    _drop_closed_loop_errors()
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, _unwrap_keys(like))
    errors: dict[str, list[int]] = {}
    restored = None
    with warnings.catch_warnings(), _manager(directory) as manager:
        warnings.simplefilter("ignore")
        steps = [step] if step is not None else sorted(manager.all_steps(), reverse=True)
        for candidate in steps:
            problem = _layout_mismatch(directory / str(candidate), target)
            if problem is None:
                try:
                    tree = manager.restore(candidate, args=ocp.args.StandardRestore(target))
                except Exception as err:  # orbax raises many types for corrupt files
                    problem = f"unreadable ({type(err).__name__}: {_first_line(err)})"
            if problem is not None:
                errors.setdefault(problem, []).append(int(candidate))
                continue
            tree = jax.tree.map(lambda x, ref: np.asarray(x) if isinstance(ref, np.ndarray) else x,
                                tree, target)
            restored = _rewrap_keys(tree, like), int(candidate)
            break
    if errors:
        # the aborted reads' coroutines warn when freed, often at exit ("sys:1")
        warnings.filterwarnings("ignore", message=r"coroutine '.*' was never awaited",
                                category=RuntimeWarning)
    detail = "; ".join(f"step{'s' * (len(s) > 1)} {', '.join(map(str, s))}: {problem}"
                       for problem, s in errors.items())
    if restored is not None:
        if errors:
            warnings.warn(f"checkpoints in {directory} skipped ({detail}); resumed from step "
                          f"{restored[1]}", RuntimeWarning, stacklevel=2)
        return restored
    if not errors:
        raise CheckpointError(f"no checkpoint in {directory}; run without --resume to start "
                              "a new run")
    raise CheckpointError(
        f"no readable checkpoint in {directory} ({detail}); resume with the config that "
        "wrote them, or start afresh with --overwrite (or another --out) and without --resume")


def _first_line(err: Exception, limit: int = 160) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
    return text if len(text) <= limit else text[:limit - 3] + "..."


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
