"""The training core: a functional train state, a jit-compiled scan over steps,
data parallelism, JSONL metrics, orbax checkpoints and exact resume.

The hot path is one compiled function per chunk of steps::

    state, metrics = train_chunk(state, xs, ys)   # lax.scan over xs.shape[0] steps

with the batches of the chunk split across the ``data`` axis of the mesh and the
state replicated. Batch order is a pure function of ``(seed, epoch)`` and the
per-step key is ``fold_in(state.key, step)``, so a run resumed from any
checkpoint continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import json
import math
import pathlib
import time
import weakref
from typing import Callable, Iterable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nnopt_jax import cpu_layout, jax_cache, parallel
from nnopt_jax.config import (ConfigError, boolean, check_config, integer, one_of, optional,
                              real, text)
from nnopt_jax.data.batching import batch_indices
from nnopt_jax.data.catalog import DATASETS, canonical_name
from nnopt_jax.checkpoint import (CheckpointError, restore_checkpoint, resume_or_start,
                                  save_checkpoint)
from nnopt_jax.types import Array, Batch, LossFn, ModelState, Params, PRNGKey, PyTree

jax_cache.enable()  # before anything compiles: see nnopt_jax.jax_cache

__all__ = [
    "TrainState", "init_train_state", "make_train_step", "make_train_chunk", "fit",
    "evaluate", "save_checkpoint", "restore_checkpoint", "CheckpointError",
    "MetricsWriter", "train_and_evaluate", "cross_entropy_loss", "make_optimizer",
    "validate_config", "MAY_CHANGE_ON_RESUME",
]


class TrainState(NamedTuple):
    """Everything a step reads and writes.

    Attributes:
        step: global step count (int32 scalar).
        params: trainable parameters.
        model_state: non-trainable collections (e.g. ``batch_stats``), ``{}`` if none.
        opt_state: the optax optimiser state.
        key: base PRNG key; step ``t`` uses ``fold_in(key, t)``.
    """

    step: Array
    params: Params
    model_state: ModelState
    opt_state: optax.OptState
    key: PRNGKey


def init_train_state(params: Params, tx: optax.GradientTransformation, *, key: PRNGKey,
                     model_state: ModelState | None = None) -> TrainState:
    """A fresh :class:`TrainState` at step 0."""
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      model_state={} if model_state is None else model_state,
                      opt_state=tx.init(params), key=key)


def make_train_step(loss_fn: LossFn, tx: optax.GradientTransformation):
    """Returns ``train_step(state, batch) -> (state, metrics)`` for one gradient step.

    ``loss_fn(params, model_state, batch, *, key, step)`` returns
    ``(loss, (model_state, metrics))``; ``metrics`` gains ``loss``.
    """

    def train_step(state: TrainState, batch: Batch):
        key = jax.random.fold_in(state.key, state.step)
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, (model_state, metrics)), grads = grad_fn(
            state.params, state.model_state, batch, key=key, step=state.step)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = TrainState(step=state.step + 1, params=params, model_state=model_state,
                               opt_state=opt_state, key=state.key)
        return new_state, {"loss": loss, **metrics}

    return train_step


def make_train_chunk(train_step, *, augment: Callable | None = None, mesh=None,
                     unroll: bool = False):
    """Compiles ``chunk(state, xs, ys) -> (state, mean metrics)``: a scan (or unrolled run) of steps.

    Args:
        train_step: from :func:`make_train_step`.
        augment: optional jittable ``augment(x, *, key) -> x`` applied on device
            to each batch (key folded from the step key, so it is reproducible).
        mesh: when given, ``xs``/``ys`` are split along their batch axis (axis 1)
            and the state is replicated; XLA adds the gradient all-reduce.
        unroll: trace the chunk's steps one after another instead of a scan
            (no XLA while loop). XLA:CPU runs convolutions inside a loop body
            several times slower than outside one (a LeNet-5 sparse-VD step:
            1.24 s against 0.17 s), so convolutional models on the CPU train
            faster with short unrolled chunks.
    """

    def body(state, batch):
        x, y = batch
        if augment is not None:
            aug_key = jax.random.fold_in(jax.random.fold_in(state.key, state.step), 0x5EED)
            x = augment(x, key=aug_key)
        return train_step(state, Batch(x, y))

    n_devices = 1 if mesh is None else mesh.size

    def chunk(state, xs, ys):
        with parallel.split_over(n_devices):  # traced as a program on n_devices
            return run_steps(state, xs, ys)

    def run_steps(state, xs, ys):
        if not unroll:
            state, metrics = jax.lax.scan(body, state, (xs, ys))
            return state, jax.tree.map(jnp.mean, metrics)
        # Straight-line steps: even a fully unrolled scan keeps a (one-trip)
        # while loop around its body, and with it the slow convolutions.
        steps = []
        for i in range(xs.shape[0]):
            state, metrics = body(state, (xs[i], ys[i]))
            steps.append(metrics)
        return state, jax.tree.map(lambda *m: jnp.mean(jnp.stack(m)), *steps)

    if mesh is None:
        return jax.jit(chunk, donate_argnums=0)
    repl = parallel.replicated_sharding(mesh)
    split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, parallel.DATA_AXIS))
    return jax.jit(chunk, in_shardings=(repl, split, split), out_shardings=(repl, repl),
                   donate_argnums=0)


# ----------------------------------------------------------------------------- metrics


class MetricsWriter:
    """Appends one JSON object per line to ``metrics.jsonl`` (flushed per row)."""

    def __init__(self, path: pathlib.Path | None, *, truncate_after_step: int | None = None):
        self.path = path
        if path is None or jax.process_index() != 0:
            self.path = None
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if truncate_after_step is not None and path.exists():
            rows = [r for r in read_jsonl(path) if r.get("step", 0) <= truncate_after_step]
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        elif truncate_after_step is None and path.exists():
            path.unlink()

    def write(self, row: dict) -> None:
        if self.path is None:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(_to_python(row)) + "\n")
            f.flush()


def read_jsonl(path: str | pathlib.Path) -> list[dict]:
    """Reads a JSONL file, skipping a last line cut short by a crash."""
    rows = []
    for line in pathlib.Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _to_python(tree):
    return jax.tree.map(lambda v: v.item() if hasattr(v, "item") and np.ndim(v) == 0 else v,
                        tree)


# ----------------------------------------------------------------------------- loop


def _chunk_bounds(start: int, steps_per_epoch: int, total: int, chunk: int,
                  checkpoint_every: int | None) -> Iterable[tuple[int, int]]:
    """Yields ``(begin, end)`` step ranges that never cross an epoch end, a
    multiple of ``chunk``, or a checkpoint step. Boundaries depend only on
    absolute step numbers, so resumed runs replay the same chunks."""
    step = start
    while step < total:
        stops = [total, (step // steps_per_epoch + 1) * steps_per_epoch,
                 (step // chunk + 1) * chunk]
        if checkpoint_every:
            stops.append((step // checkpoint_every + 1) * checkpoint_every)
        end = min(stops)
        yield step, end
        step = end


def _check_batch_divides(batch_size: int, mesh) -> None:
    n_dev = 1 if mesh is None or isinstance(mesh, str) else mesh.size
    if batch_size % n_dev:
        raise ValueError(f"batch_size {batch_size} is not divisible by the {n_dev} devices; "
                         f"use a multiple of {n_dev}")


def _chunk_length(steps_per_epoch: int, target: int) -> int:
    """A chunk length near ``target`` that divides the epoch, so that every chunk
    has the same length and the scan compiles once; when no divisor lies within
    a factor two of ``target``, ``target`` itself (one extra, shorter chunk per epoch)."""
    target = max(1, min(target, steps_per_epoch))
    for length in range(target, target // 2, -1):
        if steps_per_epoch % length == 0:
            return length
    return target


def _progress(enabled: bool):
    if not enabled or jax.process_index() != 0:
        return None
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                    TimeRemainingColumn(), transient=False)


def fit(
    state: TrainState,
    *,
    loss_fn: LossFn,
    tx: optax.GradientTransformation,
    train_data: tuple[np.ndarray, np.ndarray],
    batch_size: int,
    num_epochs: int,
    seed: int,
    eval_fn: Callable[[TrainState], dict] | None = None,
    out_dir: str | pathlib.Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    mesh="auto",
    augment: Callable | None = None,
    progress: bool = True,
    steps_per_chunk: int = 100,
    unroll: bool = False,
    description: str = "train",
) -> tuple[TrainState, list[dict]]:
    """Trains for ``num_epochs`` epochs of shuffled, drop-remainder batches.

    Args:
        state: the initial state (also the template a resumed state restores into).
        loss_fn: ``loss_fn(params, model_state, batch, *, key, step)``.
        tx: the optimiser that created ``state.opt_state``.
        train_data: host arrays ``(x, y)``; each process passes the full set.
        batch_size: global batch size (a multiple of the device count).
        num_epochs: epochs to train in total (a resumed run stops at the same place).
        seed: fixes the batch order of every epoch.
        eval_fn: called on the state at each epoch end; returns metrics to log.
        out_dir: where ``metrics.jsonl`` and ``checkpoints/`` go (None: nothing written).
        checkpoint_every: also checkpoint every this many steps (epoch ends always).
        resume: continue from the newest readable checkpoint in ``out_dir``.
        mesh: a device mesh; ``None``: all devices when there are several;
            ``"auto"``: on several CPU devices of one process, one device or
            all of them, whichever runs this run's chunk faster
            (:func:`nnopt_jax.cpu_layout.choose_mesh`; the probe's timings go
            to ``out_dir/layout.json``), else as ``None``.
        augment: on-device augmentation ``augment(x, *, key)``.
        progress: show a progress bar.
        steps_per_chunk: about this many steps are fused into one compiled scan
            (adjusted to divide the epoch; make ``checkpoint_every`` a multiple of
            it to avoid compiling a second chunk length).
        unroll: unroll each chunk instead of looping over it (see
            :func:`make_train_chunk`; pair it with a small ``steps_per_chunk``,
            since compile time grows with the unrolled length).
        description: label of the progress bar.

    Returns:
        ``(state, history)`` with one metrics dict per epoch.
    """
    x, y = train_data
    n = len(x)
    if n != len(y):
        raise ValueError(f"train_data has {n} inputs but {len(y)} labels")
    if batch_size > n:
        raise ValueError(f"batch_size {batch_size} exceeds the {n} training examples")
    if isinstance(mesh, str) and mesh != "auto":
        raise ValueError(f"mesh must be a Mesh, None or 'auto', got {mesh!r}")
    if mesh is None and jax.device_count() > 1:
        mesh = parallel.make_mesh()
    _check_batch_divides(batch_size, mesh)
    steps_per_epoch = n // batch_size
    total_steps = steps_per_epoch * num_epochs
    chunk = _chunk_length(steps_per_epoch, steps_per_chunk)
    out_dir = None if out_dir is None else pathlib.Path(out_dir)
    ckpt_dir = None if out_dir is None else out_dir / "checkpoints"

    state, start = resume_or_start(ckpt_dir, state, resume=resume)
    train_step = make_train_step(loss_fn, tx)
    build = lambda m: make_train_chunk(train_step, augment=augment, mesh=m, unroll=unroll)
    if isinstance(mesh, str):  # "auto": measured on this run's own chunk
        def first_chunk():
            idx = batch_indices(n, batch_size, seed=seed, epoch=start // steps_per_epoch)[:chunk]
            return x[idx], y[idx]

        layout_file = None if out_dir is None else out_dir / "layout.json"
        previous = cpu_layout.read_report(layout_file) if start and layout_file else None
        mesh, train_chunk, report = cpu_layout.choose_mesh(
            build, state, first_chunk, batch_size=batch_size, steps=total_steps - start,
            previous=previous)
        _check_batch_divides(batch_size, mesh)
        if report is not None and out_dir is not None and jax.process_index() == 0:
            out_dir.mkdir(parents=True, exist_ok=True)
            layout_file.write_text(json.dumps(report, indent=2) + "\n")
    else:
        train_chunk = build(mesh)
    if mesh is not None:
        state = parallel.replicate(state, mesh)
    writer = MetricsWriter(None if out_dir is None else out_dir / "metrics.jsonl",
                           truncate_after_step=start if resume else None)
    history = [r for r in read_jsonl(writer.path) if "epoch" in r] if (
        resume and writer.path and writer.path.exists()) else []

    n_proc, proc = jax.process_count(), jax.process_index()
    local = batch_size // n_proc

    bar = _progress(progress)
    task = None
    if bar is not None:
        bar.start()
        task = bar.add_task(description, total=total_steps, completed=start, info="")
    epoch_sums: dict[str, float] = {}
    epoch_count = 0
    t_epoch = time.perf_counter()
    try:
        for begin, end in _chunk_bounds(start, steps_per_epoch, total_steps, chunk,
                                        checkpoint_every):
            epoch, offset = divmod(begin, steps_per_epoch)
            order = batch_indices(n, batch_size, seed=seed, epoch=epoch)
            idx = order[offset:offset + (end - begin), proc * local:(proc + 1) * local]
            xs, ys = x[idx], y[idx]
            if mesh is not None:
                xs, ys = parallel.shard_batch((xs, ys), mesh, axis=1)
            state, metrics = train_chunk(state, xs, ys)
            metrics = jax.device_get(metrics)
            for k, v in metrics.items():
                epoch_sums[k] = epoch_sums.get(k, 0.0) + float(v) * (end - begin)
            epoch_count += end - begin
            if bar is not None:
                bar.update(task, completed=end,
                           info=f"epoch {epoch + 1}/{num_epochs} loss {float(metrics['loss']):.4g}")
            if not np.isfinite(float(metrics["loss"])):
                raise FloatingPointError(
                    f"training diverged at step {end} (loss {float(metrics['loss'])}); lower the "
                    "learning rate or check the data")
            epoch_end = end % steps_per_epoch == 0
            if epoch_end:
                row = {"epoch": end // steps_per_epoch, "step": end,
                       **{f"train_{k}": v / epoch_count for k, v in epoch_sums.items()},
                       "epoch_time_s": time.perf_counter() - t_epoch}
                if eval_fn is not None:
                    row.update(eval_fn(state))
                writer.write(row)
                history.append(_to_python(row))
                epoch_sums, epoch_count, t_epoch = {}, 0, time.perf_counter()
            if ckpt_dir is not None and (epoch_end or (checkpoint_every and
                                                       end % checkpoint_every == 0)):
                save_checkpoint(ckpt_dir, state, step=end)
    finally:
        if bar is not None:
            bar.stop()
    return state, history


# ----------------------------------------------------------------------------- evaluation


_BATCH_STATS = weakref.WeakKeyDictionary()


def _batch_stats_fn(apply_fn: Callable) -> Callable:
    """The jitted masked (sum NLL, sum errors) of one batch, compiled once per apply_fn."""
    if apply_fn not in _BATCH_STATS:
        @jax.jit
        def batch_stats(params, model_state, xb, yb, mask):
            logits = apply_fn(params, model_state, xb)
            nll = optax.softmax_cross_entropy_with_integer_labels(logits, yb)
            wrong = jnp.argmax(logits, -1) != yb
            return jnp.sum(nll * mask), jnp.sum(wrong * mask)
        _BATCH_STATS[apply_fn] = batch_stats
    return _BATCH_STATS[apply_fn]


def evaluate(apply_fn: Callable, params: Params, model_state: ModelState, x: np.ndarray,
             y: np.ndarray, *, batch_size: int = 1000) -> dict[str, float]:
    """Mean cross-entropy and error rate of ``apply_fn(params, model_state, x) -> logits``.

    Batches are padded to a fixed size (one compilation); padding is masked out.
    """
    if jax.process_count() > 1:  # global arrays: evaluate a local copy on each process
        params, model_state = parallel.to_host((params, model_state))
    n = len(x)
    batch_size = min(batch_size, n)
    batch_stats = _batch_stats_fn(apply_fn)

    sums = []
    for begin in range(0, n, batch_size):
        xb, yb = x[begin:begin + batch_size], y[begin:begin + batch_size]
        pad = batch_size - len(xb)
        mask = np.concatenate([np.ones(len(xb), np.float32), np.zeros(pad, np.float32)])
        if pad:
            xb = np.concatenate([xb, np.zeros((pad, *xb.shape[1:]), xb.dtype)])
            yb = np.concatenate([yb, np.zeros(pad, yb.dtype)])
        sums.append(batch_stats(params, model_state, xb, yb, mask))
    total_nll, total_wrong = np.sum(jax.device_get(sums), axis=0)
    return {"loss": float(total_nll) / n, "error": float(total_wrong) / n}


# ----------------------------------------------------------------------------- classifiers


def cross_entropy_loss(model) -> LossFn:
    """The ``loss_fn`` of a plain classifier: mean softmax cross-entropy (+ error)."""

    def loss_fn(params, model_state, batch: Batch, *, key, step):
        del step
        variables = {"params": params, **model_state}
        mutable = list(model_state) or False
        out = model.apply(variables, batch.x, train=True, rngs={"dropout": key},
                          mutable=mutable)
        logits, new_state = out if mutable else (out, model_state)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch.y).mean()
        error = jnp.mean(jnp.argmax(logits, -1) != batch.y)
        return loss, (dict(new_state), {"error": error})

    return loss_fn


def make_optimizer(train_cfg, steps_per_epoch: int) -> optax.GradientTransformation:
    """The optimiser a ``train`` config block describes.

    Keys: ``optimizer`` (adam | adamw | sgd), ``learning_rate``, ``weight_decay``
    (decoupled for adam, L2-style for sgd), ``momentum`` (sgd), ``schedule``
    (constant | cosine | linear), ``num_epochs``, ``grad_clip`` (0 = off).
    """
    total = steps_per_epoch * train_cfg.num_epochs
    lr = float(train_cfg.learning_rate)
    schedule = train_cfg.get("schedule", "constant")
    if schedule == "constant":
        sched = lr
    elif schedule == "cosine":
        sched = optax.cosine_decay_schedule(lr, total)
    elif schedule == "linear":
        sched = optax.linear_schedule(lr, 0.0, total)
    else:
        raise ValueError(f"unknown schedule {schedule!r}; choose constant, cosine or linear")
    name = train_cfg.get("optimizer", "adam")
    wd = float(train_cfg.get("weight_decay", 0.0))
    if name in ("adam", "adamw"):
        tx = optax.adamw(sched, weight_decay=wd) if wd else optax.adam(sched)
    elif name == "sgd":
        tx = optax.chain(optax.add_decayed_weights(wd),
                         optax.sgd(sched, momentum=train_cfg.get("momentum", 0.9) or None))
    else:
        raise ValueError(f"unknown optimizer {name!r}; choose adam, adamw or sgd")
    clip = float(train_cfg.get("grad_clip", 0.0))
    return optax.chain(optax.clip_by_global_norm(clip), tx) if clip else tx


def dataset_name(value) -> str | None:
    """A config check: a dataset the registry knows."""
    try:
        canonical_name(value)
    except ValueError:
        return f"a dataset name: {', '.join(DATASETS)}"
    return None


TRAIN_RULES = {
    "seed": integer(0),
    "eval_batch_size": integer(1),
    "data.name": dataset_name,
    "data.data_dir": optional(text),
    "data.validation_fraction": real(0.0, 1.0, high_open=True),
    "data.train_subset": integer(0),
    "train.optimizer": one_of("adam", "adamw", "sgd"),
    "train.learning_rate": real(0.0, low_open=True),
    "train.weight_decay": real(0.0),
    "train.momentum": real(0.0, 1.0, high_open=True),
    "train.schedule": one_of("constant", "cosine", "linear"),
    "train.batch_size": integer(1),
    "train.num_epochs": integer(1),
    "train.checkpoint_every": integer(0),
    "train.grad_clip": real(0.0),
    "train.steps_per_chunk": integer(1),
    "train.unroll": boolean,
}
"""Checks of the ``data``/``train`` blocks that :func:`train_and_evaluate` reads."""

MAY_CHANGE_ON_RESUME = ("train.num_epochs", "train.checkpoint_every", "data.data_dir",
                        "eval_batch_size", "train.steps_per_chunk", "train.unroll")
"""Config keys a resumed ``nnopt train`` may change (extend the run, move the data)."""


def check_subset_holds_a_batch(cfg) -> None:
    """Raises ConfigError if ``data.train_subset`` cannot fill one training batch."""
    subset, batch = cfg.data.get("train_subset") or 0, cfg.train.batch_size
    if subset and subset < batch:
        raise ConfigError(f"invalid config: data.train_subset={subset} is smaller than "
                          f"train.batch_size={batch}; raise data.train_subset (0 = all "
                          "examples) or lower train.batch_size")


def validate_config(cfg) -> None:
    """Checks a :func:`train_and_evaluate` config before any data is loaded.

    Raises:
        ConfigError: missing or invalid values, named by their dotted keys.
    """
    check_config(cfg, TRAIN_RULES, required=("seed", "data.name", "model.name",
                                             "train.learning_rate", "train.batch_size",
                                             "train.num_epochs"))
    check_subset_holds_a_batch(cfg)


def train_and_evaluate(cfg, *, out_dir: str | pathlib.Path | None = None, resume: bool = False,
                       overwrite: bool = False, progress: bool = True) -> dict:
    """Trains the classifier ``cfg`` describes; returns validation and test error.

    The config blocks are ``data`` (name, data_dir, validation_fraction,
    train_subset), ``model`` (name and its keywords), ``train`` (see
    :func:`make_optimizer`, plus batch_size, num_epochs, checkpoint_every,
    steps_per_chunk, unroll) and
    ``seed``. With ``out_dir`` it writes ``config.json``, ``run.json``,
    ``metrics.jsonl``, ``results.json``, ``learning_curve.png`` and checkpoints.

    Args:
        cfg: the config.
        out_dir: the run's directory (see :mod:`nnopt_jax.rundir`); None writes nothing.
        resume: continue the run in ``out_dir``; only the keys in
            :data:`MAY_CHANGE_ON_RESUME` may differ from its config.
        overwrite: discard a previous run in ``out_dir``.
        progress: show a progress bar.

    Raises:
        ConfigError: an invalid config value (before any data is loaded).
        RunDirError: ``out_dir`` holds another run, or none to resume.
    """
    from nnopt_jax import data as data_lib
    from nnopt_jax import rundir
    from nnopt_jax.models import build_model, count_params
    from nnopt_jax.plotting import plot_learning_curve

    t0 = time.perf_counter()
    validate_config(cfg)
    out = None if out_dir is None else pathlib.Path(out_dir)
    run_dir = dict(config=cfg, command="train", resume=resume, overwrite=overwrite,
                   may_change=MAY_CHANGE_ON_RESUME)
    if out is not None:
        rundir.check_run_dir(out, **run_dir)
    ds = data_lib.load_dataset(cfg.data.name, cfg.data.get("data_dir"))
    x_train, y_train = ds.x_train, ds.y_train
    if cfg.data.get("train_subset"):
        x_train, y_train = x_train[:cfg.data.train_subset], y_train[:cfg.data.train_subset]
    frac = cfg.data.get("validation_fraction", 0.0)
    if frac:
        try:
            x_train, y_train, x_val, y_val = data_lib.split_validation(x_train, y_train, frac,
                                                                       seed=cfg.seed)
        except ValueError as err:
            raise ConfigError(f"invalid config: data.validation_fraction={frac}: {err}") \
                from None
    else:
        x_val, y_val = ds.x_test, ds.y_test
    if cfg.train.batch_size > len(x_train):
        raise ConfigError(
            f"invalid config: train.batch_size={cfg.train.batch_size} exceeds the "
            f"{len(x_train)} training examples of {cfg.data.name} (after data.train_subset "
            "and data.validation_fraction); lower train.batch_size")

    model_kwargs = {k: v for k, v in cfg.model.items() if k != "name"}
    model = build_model(cfg.model.name, num_classes=ds.num_classes, **model_kwargs)
    key = jax.random.key(cfg.seed)
    init_key, train_key = jax.random.split(key)
    variables = model.init(init_key, jnp.asarray(x_train[:1]))
    params = variables.pop("params")
    model_state = dict(variables)
    steps_per_epoch = len(x_train) // cfg.train.batch_size
    tx = make_optimizer(cfg.train, steps_per_epoch)
    state = init_train_state(params, tx, key=train_key, model_state=model_state)

    def apply_fn(params, model_state, x):
        return model.apply({"params": params, **model_state}, x, train=False)

    eval_bs = cfg.get("eval_batch_size", 1000)

    def eval_fn(state):
        val = evaluate(apply_fn, state.params, state.model_state, x_val, y_val,
                       batch_size=eval_bs)
        return {"val_loss": val["loss"], "val_error": val["error"]}

    if out is not None:
        rundir.prepare_run_dir(out, **run_dir)
    state, history = fit(
        state, loss_fn=cross_entropy_loss(model), tx=tx, train_data=(x_train, y_train),
        batch_size=cfg.train.batch_size, num_epochs=cfg.train.num_epochs, seed=cfg.seed,
        eval_fn=eval_fn, out_dir=out, checkpoint_every=cfg.train.get("checkpoint_every") or None,
        resume=resume, progress=progress, steps_per_chunk=int(cfg.train.get("steps_per_chunk", 100)),
        unroll=bool(cfg.train.get("unroll", False)),
        description=f"{cfg.model.name} on {cfg.data.name}")
    test = evaluate(apply_fn, state.params, state.model_state, ds.x_test, ds.y_test,
                    batch_size=eval_bs)
    val = eval_fn(state)
    epoch_times = [r["epoch_time_s"] for r in history if "epoch_time_s" in r]
    results = {
        "dataset": cfg.data.name, "model": cfg.model.name,
        "val_error": val["val_error"], "val_loss": val["val_loss"],
        "val_set": f"{frac:.0%} held out of train" if frac else "test set (no validation split)",
        "test_error": test["error"], "test_loss": test["loss"],
        "epochs": cfg.train.num_epochs, "n_params": count_params(state.params),
        "seconds_per_epoch": float(np.median(epoch_times)) if epoch_times else math.nan,
        "wall_time_s": time.perf_counter() - t0, "devices": jax.device_count(),
        "backend": jax.default_backend(),
    }
    if out is not None and jax.process_index() == 0:
        (out / "results.json").write_text(json.dumps(results, indent=2))
        if history:
            plot_learning_curve(history, out / "learning_curve.png",
                                title=f"{cfg.model.name} on {cfg.data.name}")
    results["params"] = state.params
    results["history"] = history
    return results
