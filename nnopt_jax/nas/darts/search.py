"""The DARTS search loop (Liu et al. 2018, Alg. 1).

Each iteration is one jit-compiled, data-parallel function: the α step with the
chosen hypergradient (first order, exact second order, or the paper's finite
difference) on a batch of the α half of the training set, then the w step with
the updated α on a batch of the w half. Batches are split across the ``data``
axis of a device mesh; the state is replicated. BatchNorm uses the statistics of
the whole (global) batch, so a sharded step equals the single-device step.

Resume is exact: the batch order is a pure function of (seed, epoch), the state
(w, α, both optimiser states, step) is checkpointed with orbax.
"""

from __future__ import annotations

import json
import math
import pathlib
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nnopt_jax.nas.darts import architect, diagnostics, genotypes
from nnopt_jax.nas.darts.search_model import ArchParams, SearchNetwork, init_alphas, init_key
from nnopt_jax.types import Array, Batch, Params


class SearchState(NamedTuple):
    """Everything one search iteration reads and writes."""

    step: Array
    params: Params
    alphas: ArchParams
    w_opt_state: optax.OptState
    a_opt_state: optax.OptState


class SearchHParams(NamedTuple):
    """Search hyperparameters (defaults: the paper's CIFAR-10 search)."""

    epochs: int = 50
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    arch_lr: float = 3e-4
    arch_b1: float = 0.5
    arch_b2: float = 0.999
    arch_weight_decay: float = 1e-3
    order: str = "second"
    fd_r: float = 0.01


def cosine_lr(epoch, *, lr: float, lr_min: float, epochs: int):
    """Per-epoch cosine annealing from ``lr`` to ``lr_min`` (SGDR without restarts)."""
    return lr_min + 0.5 * (lr - lr_min) * (1 + jnp.cos(jnp.pi * epoch / epochs))


def make_optimizers(hp: SearchHParams, steps_per_epoch: int):
    """``(w_tx, a_tx, lr_schedule)``.

    w: clip the gradient norm to ``grad_clip``, add ``weight_decay·w``, SGD with
    momentum (PyTorch's SGD semantics). α: Adam with *coupled* L2 weight decay
    (PyTorch ``Adam(weight_decay=...)``), as the authors.
    """
    def schedule(count):
        return cosine_lr(count // steps_per_epoch, lr=hp.lr, lr_min=hp.lr_min, epochs=hp.epochs)

    w_tx = optax.chain(optax.clip_by_global_norm(hp.grad_clip),
                       optax.add_decayed_weights(hp.weight_decay),
                       optax.sgd(schedule, momentum=hp.momentum))
    a_tx = optax.chain(optax.add_decayed_weights(hp.arch_weight_decay),
                       optax.adam(hp.arch_lr, b1=hp.arch_b1, b2=hp.arch_b2))
    return w_tx, a_tx, schedule


def momentum_buffer(w_opt_state) -> Params:
    """The SGD momentum buffer inside the w optimiser state."""
    return optax.tree_utils.tree_get(w_opt_state, "trace")


def init_search_state(model: SearchNetwork, w_tx, a_tx, sample_x: Array, *,
                      key) -> SearchState:
    """Fresh state: w from ``model.init``, α = 1e-3·N(0, 1), both optimiser states."""

    # jit: one compilation instead of hundreds of eagerly dispatched small ones
    @jax.jit
    def init(key, sample_x):
        k_w, k_a = jax.random.split(key)
        alphas = init_alphas(key=k_a, steps=model.steps, num_ops=len(model.primitives),
                             dtype=sample_x.dtype)
        params = model.init(init_key(k_w), sample_x, alphas)["params"]
        return SearchState(jnp.zeros((), jnp.int32), params, alphas,
                           w_tx.init(params), a_tx.init(alphas))

    return init(key, sample_x)


def make_search_step(apply_fn: Callable, w_tx, a_tx, schedule: Callable, hp: SearchHParams):
    """``step(state, train_batch, val_batch) -> (state, metrics)``: α step, then w step."""
    if hp.order not in architect.ORDERS:
        raise ValueError(f"unknown order {hp.order!r}; choose one of {architect.ORDERS}")

    def step(state: SearchState, train_batch: Batch, val_batch: Batch):
        xi = schedule(state.step)
        val_loss, g_alpha = architect.hypergradient(
            hp.order, apply_fn, state.params, state.alphas, momentum_buffer(state.w_opt_state),
            train_batch, val_batch, xi=xi, momentum_coef=hp.momentum,
            weight_decay=hp.weight_decay, r=hp.fd_r)
        a_up, a_opt_state = a_tx.update(g_alpha, state.a_opt_state, state.alphas)
        alphas = optax.apply_updates(state.alphas, a_up)

        def loss_fn(params):
            logits = apply_fn(params, alphas, train_batch.x)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, train_batch.y).mean()
            return loss, jnp.mean(jnp.argmax(logits, -1) == train_batch.y)

        (loss, acc), g_w = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        w_up, w_opt_state = w_tx.update(g_w, state.w_opt_state, state.params)
        params = optax.apply_updates(state.params, w_up)
        new = SearchState(state.step + 1, params, alphas, w_opt_state, a_opt_state)
        return new, {"train_loss": loss, "train_acc": acc, "val_loss": val_loss, "lr": xi}

    return step


def jit_search_step(step_fn: Callable, mesh=None):
    """jit the step; with a mesh, batches are split on ``data`` and the state replicated."""
    if mesh is None:
        return jax.jit(step_fn, donate_argnums=0)
    from nnopt_jax import parallel
    repl, split = parallel.replicated_sharding(mesh), parallel.data_sharding(mesh)
    return jax.jit(step_fn, in_shardings=(repl, split, split), out_shardings=(repl, repl),
                   donate_argnums=0)


# ----------------------------------------------------------------------------- the loop


def _epoch_order(n: int, batch_size: int, steps: int, *, seed: int, epoch: int, half: int):
    rng = np.random.default_rng([seed, epoch, half])
    return rng.permutation(n)[:steps * batch_size].reshape(steps, batch_size)


def split_halves(x: np.ndarray, y: np.ndarray, *, portion: float, seed: int):
    """The training set split into the w part and the α part (the authors: halves)."""
    idx = np.random.default_rng(seed).permutation(len(x))
    k = int(round(portion * len(x)))
    return (x[idx[:k]], y[idx[:k]]), (x[idx[k:]], y[idx[k:]])


def make_predict(apply_fn):
    """Jitted ``predict(params, alphas, x) -> labels`` (build once, reuse)."""
    return jax.jit(lambda p, a, xb: jnp.argmax(apply_fn(p, a, xb), -1))


def accuracy(predict, params, alphas, x, y, *, batch_size: int) -> float:
    """Accuracy with batch-statistics BN, over full batches (the remainder is dropped
    so that every batch normalises with the same number of examples); ``predict``
    from :func:`make_predict`."""
    f = predict
    steps = max(len(x) // batch_size, 1)
    correct = 0
    n = 0
    for i in range(steps):
        xb, yb = x[i * batch_size:(i + 1) * batch_size], y[i * batch_size:(i + 1) * batch_size]
        correct += int(np.sum(np.asarray(f(params, alphas, xb)) == yb))
        n += len(yb)
    return correct / max(n, 1)


def _rules():
    from nnopt_jax.config import integer, one_of, optional, real
    from nnopt_jax.training import TRAIN_RULES
    return {
        "data.name": TRAIN_RULES["data.name"],
        "data.data_dir": TRAIN_RULES["data.data_dir"],
        "data.num_train": integer(0),
        "data.train_portion": real(0.0, 1.0, low_open=True, high_open=True),
        "data.image_size": optional(integer(0)),
        "model.channels": integer(1),
        "model.layers": integer(1),
        "model.steps": integer(1),
        "model.multiplier": integer(1),
        "model.stem_multiplier": integer(1),
        "search.batch_size": integer(1),
        "search.epochs": integer(1),
        "search.seed": integer(0),
        "search.lr": real(0.0, low_open=True),
        "search.lr_min": real(0.0),
        "search.momentum": real(0.0, 1.0, high_open=True),
        "search.weight_decay": real(0.0),
        "search.grad_clip": real(0.0, low_open=True),
        "search.arch_lr": real(0.0, low_open=True),
        "search.arch_b1": real(0.0, 1.0, high_open=True),
        "search.arch_b2": real(0.0, 1.0, high_open=True),
        "search.arch_weight_decay": real(0.0),
        "search.order": one_of(*architect.ORDERS),
        "search.fd_r": real(0.0, low_open=True),
        "search.checkpoint_every": integer(0),
        "search.eval_batch_size": integer(1),
    }


MAY_CHANGE_ON_RESUME = ("search.epochs", "search.checkpoint_every", "search.eval_batch_size",
                        "search.stop_after_epoch", "data.data_dir")
"""Config keys a resumed ``nnopt nas search`` may change."""


def validate_config(cfg, *, with_data: bool = False) -> None:
    """Checks a :func:`run_search` config before any data is loaded
    (``with_data``: the arrays are given, ``data.name`` is not needed).

    Raises:
        ConfigError: missing or invalid values, named by their dotted keys.
    """
    from nnopt_jax.config import check_config
    required = ("model.channels", "model.layers", "search.batch_size")
    check_config(cfg, _rules(), required=required if with_data else ("data.name", *required))


def _hparams(cfg) -> SearchHParams:
    s = cfg.search
    fields = {k: s[k] for k in SearchHParams._fields if k in s}
    return SearchHParams(**fields)


def run_search(cfg, *, out_dir=None, resume: bool = False, overwrite: bool = False,
               progress: bool = True, data=None) -> dict:
    """Run a DARTS search as the config describes.

    Config blocks: ``data`` (name, data_dir, num_train: subset size, train_portion),
    ``model`` (channels, layers, steps, multiplier, stem_multiplier), ``search``
    (batch_size, seed, checkpoint_every and :class:`SearchHParams` fields),
    ``diagnostics`` (hessian: bool, hessian_iters, early_stop, es_window,
    es_threshold). ``data`` may also pass arrays ``(x_train, y_train, num_classes)``.

    Writes to ``out_dir``: config.json, run.json, metrics.jsonl (one row per epoch
    with the genotype, the α-Hessian eigenvalue and the parameter-free share),
    genotype.json, alphas.npz, normal/reduce cell plots, results.json, checkpoints/.
    ``resume`` continues the run in ``out_dir`` (only the keys in
    :data:`MAY_CHANGE_ON_RESUME` may change); ``overwrite`` discards a previous
    run there (see :mod:`nnopt_jax.rundir`).
    """
    from nnopt_jax import parallel, rundir
    from nnopt_jax.checkpoint import resume_or_start, save_checkpoint
    from nnopt_jax.training import MetricsWriter, read_jsonl

    t_start = time.perf_counter()
    validate_config(cfg, with_data=data is not None)
    out = None if out_dir is None else pathlib.Path(out_dir)
    run_dir = dict(config=cfg, command="nas search", resume=resume, overwrite=overwrite,
                   may_change=MAY_CHANGE_ON_RESUME)
    if out is not None:
        rundir.check_run_dir(out, **run_dir)
    hp = _hparams(cfg)
    seed = int(cfg.search.get("seed", 0))
    batch_size = int(cfg.search.batch_size)
    if data is None:
        from nnopt_jax.nas.darts._data import load_images
        ds = load_images(cfg.data.name, cfg.data.get("data_dir"))
        x, y, num_classes = ds.x_train, ds.y_train, ds.num_classes
    else:
        x, y, num_classes = data
    if cfg.data.get("num_train"):
        sub = np.random.default_rng(seed).permutation(len(x))[:int(cfg.data.num_train)]
        x, y = x[sub], y[sub]
    from nnopt_jax.nas.darts._data import resize_images
    x = resize_images(x, cfg.data.get("image_size"))
    (xw, yw), (xa, ya) = split_halves(x, y, portion=cfg.data.get("train_portion", 0.5), seed=seed)
    steps_per_epoch = min(len(xw), len(xa)) // batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size {batch_size} exceeds the {min(len(xw), len(xa))} examples "
                         "of a half of the training set; lower search.batch_size")
    mesh = parallel.make_mesh() if jax.device_count() > 1 else None
    if mesh is not None and batch_size % mesh.size:
        raise ValueError(f"batch_size {batch_size} is not divisible by {mesh.size} devices")

    m = cfg.model
    model = SearchNetwork(num_classes=num_classes, channels=m.channels, layers=m.layers,
                          steps=m.get("steps", 4), multiplier=m.get("multiplier", 4),
                          stem_multiplier=m.get("stem_multiplier", 3),
                          remat=bool(m.get("remat", False)))

    def apply_fn(params, alphas, xb):
        return model.apply({"params": params}, xb, alphas)

    w_tx, a_tx, schedule = make_optimizers(hp, steps_per_epoch)
    key = jax.random.PRNGKey(seed)
    state = init_search_state(model, w_tx, a_tx, jnp.asarray(xw[:2]), key=key)
    step_fn = jit_search_step(make_search_step(apply_fn, w_tx, a_tx, schedule, hp), mesh)
    predict = make_predict(apply_fn)

    if out is not None:
        rundir.prepare_run_dir(out, **run_dir)
    ckpt = None if out is None else out / "checkpoints"
    state, start = resume_or_start(ckpt, state, resume=resume)
    writer = MetricsWriter(None if out is None else out / "metrics.jsonl",
                           truncate_after_step=start if resume else None)
    history = [r for r in read_jsonl(writer.path)] if (
        resume and writer.path is not None and writer.path.exists()) else []
    if mesh is not None:
        state = parallel.replicate(state, mesh)

    dcfg = cfg.get("diagnostics", {}) or {}
    eig_fn = None
    if dcfg.get("hessian", True):
        n_eval = min(len(xa), int(dcfg.get("hessian_batch", batch_size)))
        xh, yh = jnp.asarray(xa[:n_eval]), jnp.asarray(ya[:n_eval])

        @jax.jit
        def eig_fn(params, alphas, key):
            f = lambda a: architect.cross_entropy(apply_fn, params, a, Batch(xh, yh))
            return diagnostics.dominant_eigenvalue(f, alphas, key=key,
                                                   num_iters=int(dcfg.get("hessian_iters", 20)))

    total = steps_per_epoch * hp.epochs
    eval_bs = int(cfg.search.get("eval_batch_size", batch_size))
    ckpt_every = int(cfg.search.get("checkpoint_every", 0) or 0)
    sums: dict[str, float] = {}
    count = 0
    t_epoch = time.perf_counter()
    stopped_at = None
    log = print if progress else (lambda *a, **k: None)
    s = start
    while s < total:
        epoch, offset = divmod(s, steps_per_epoch)
        ow = _epoch_order(len(xw), batch_size, steps_per_epoch, seed=seed, epoch=epoch, half=0)
        oa = _epoch_order(len(xa), batch_size, steps_per_epoch, seed=seed, epoch=epoch, half=1)
        for i in range(offset, steps_per_epoch):
            tb, vb = Batch(xw[ow[i]], yw[ow[i]]), Batch(xa[oa[i]], ya[oa[i]])
            if mesh is not None:
                tb, vb = parallel.shard_batch(tb, mesh), parallel.shard_batch(vb, mesh)
            state, met = step_fn(state, tb, vb)
            met = jax.device_get(met)
            for k, v in met.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
            s += 1
            if not math.isfinite(float(met["train_loss"])):
                raise FloatingPointError(f"search diverged at step {s}; lower search.lr")
            if progress and (s % max(1, steps_per_epoch // 5) == 0 or s == 1):
                log(f"[darts] epoch {epoch + 1}/{hp.epochs} step {i + 1}/{steps_per_epoch} "
                    f"train_loss {float(met['train_loss']):.4f} val_loss "
                    f"{float(met['val_loss']):.4f}", flush=True)
            if ckpt is not None and ckpt_every and s % ckpt_every == 0 and i + 1 < steps_per_epoch:
                save_checkpoint(ckpt, state, step=s)
        # epoch end
        host = parallel.to_host(state)
        geno = genotypes.derive_genotype(host.alphas, steps=model.steps,
                                         multiplier=model.multiplier)
        row = {"epoch": epoch + 1, "step": s,
               **{k: v / max(count, 1) for k, v in sums.items()},
               "val_acc": accuracy(predict, host.params, host.alphas, xa, ya,
                                   batch_size=eval_bs),
               "param_free_share": genotypes.parameter_free_share(geno),
               "genotype": genotypes.to_dict(geno),
               "epoch_time_s": time.perf_counter() - t_epoch}
        if eig_fn is not None:
            row["hessian_eig"] = float(eig_fn(host.params, host.alphas,
                                              jax.random.fold_in(key, epoch)))
        writer.write(row)
        history.append(json.loads(json.dumps(row)))
        log(f"[darts] epoch {epoch + 1}: val_acc {row['val_acc']:.4f} "
            f"eig {row.get('hessian_eig', float('nan')):.4g} "
            f"param_free {row['param_free_share']:.2f}\n{genotypes.format_genotype(geno)}",
            flush=True)
        if ckpt is not None:
            save_checkpoint(ckpt, state, step=s)
        sums, count, t_epoch = {}, 0, time.perf_counter()
        if cfg.search.get("stop_after_epoch") and epoch + 1 >= int(cfg.search.stop_after_epoch):
            break  # simulated interruption (tests of resume)
        if dcfg.get("early_stop", False) and eig_fn is not None:
            keep = diagnostics.early_stop_epoch([r["hessian_eig"] for r in history],
                                                window=int(dcfg.get("es_window", 5)),
                                                threshold=float(dcfg.get("es_threshold", 0.75)))
            if keep is not None:
                stopped_at = epoch + 1
                geno = genotypes.from_dict(history[keep]["genotype"])
                log(f"[darts] early stop at epoch {stopped_at}: keeping epoch {keep + 1}")
                break

    host = parallel.to_host(state)
    if stopped_at is None:
        geno = genotypes.derive_genotype(host.alphas, steps=model.steps,
                                         multiplier=model.multiplier)
    results = {"genotype": genotypes.to_dict(geno),
               "genotype_str": genotypes.format_genotype(geno),
               "param_free_share": genotypes.parameter_free_share(geno),
               "val_acc": history[-1]["val_acc"] if history else None,
               "epochs_run": len(history), "stopped_early_at": stopped_at,
               "steps": int(host.step), "wall_time_s": time.perf_counter() - t_start,
               "order": hp.order}
    if out is not None:
        genotypes.save_genotype(geno, out / "genotype.json")
        np.savez(out / "alphas.npz", normal=np.asarray(host.alphas.normal),
                 reduce=np.asarray(host.alphas.reduce))
        genotypes.plot_genotype(geno, out)
        (out / "results.json").write_text(json.dumps(results, indent=2))
    results["history"] = history
    results["state"] = host
    return results
