"""Training a genotype from scratch (Liu et al. 2018, Sec. 3.2): SGD with
momentum 0.9, lr 0.025 cosine-annealed to 0, weight decay 3e-4, gradient
clipping 5, auxiliary loss weight 0.4, drop-path probability rising linearly
from 0 to 0.2 over training, cutout 16 (CIFAR-10), batch 96, 600 epochs.

Uses :func:`nnopt_jax.training.fit` (checkpoints, exact resume, JSONL metrics);
the loss receives the global step, so the drop-path probability is scheduled
inside the compiled step.
"""

from __future__ import annotations

import functools
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nnopt_jax.nas.darts.eval_model import EvalNetwork
from nnopt_jax.nas.darts.genotypes import Genotype, to_dict
from nnopt_jax.nas.darts.search_model import count_params, init_key
from nnopt_jax.types import Batch


def make_train_optimizer(*, lr: float, total_steps: int, momentum: float = 0.9,
                         weight_decay: float = 3e-4, grad_clip: float = 5.0):
    """Clip, L2 weight decay (PyTorch SGD semantics), SGD momentum, cosine lr to 0."""
    return optax.chain(optax.clip_by_global_norm(grad_clip),
                       optax.add_decayed_weights(weight_decay),
                       optax.sgd(optax.cosine_decay_schedule(lr, max(total_steps, 1)),
                                 momentum=momentum))


def make_loss_fn(model: EvalNetwork, *, steps_per_epoch: int, epochs: int,
                 drop_path_prob: float, aux_weight: float):
    """``loss_fn(params, model_state, batch, *, key, step)`` for :func:`training.fit`:
    CE + aux_weight·CE(aux); drop-path probability ``p·epoch/epochs`` from ``step``."""

    def loss_fn(params, model_state, batch: Batch, *, key, step):
        epoch = step // steps_per_epoch
        drop_prob = drop_path_prob * epoch / epochs
        (logits, aux), new_state = model.apply(
            {"params": params, **model_state}, batch.x, train=True, drop_prob=drop_prob,
            rngs={"drop_path": key}, mutable=["batch_stats"])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch.y).mean()
        metrics = {"ce": loss, "error": jnp.mean(jnp.argmax(logits, -1) != batch.y)}
        if aux is not None and aux_weight:
            aux_loss = optax.softmax_cross_entropy_with_integer_labels(aux, batch.y).mean()
            loss = loss + aux_weight * aux_loss
            metrics["aux_ce"] = aux_loss
        return loss, (dict(new_state), metrics)

    return loss_fn


def make_augment(*, crop_padding: int = 0, flip: bool = False, cutout: int = 0):
    """Jittable ``augment(x, *, key)``: random crop, horizontal flip, cutout."""
    from nnopt_jax.nas.darts._data import augment_ops
    random_crop, random_flip, cutout_fn = augment_ops()
    if not (crop_padding or flip or cutout):
        return None

    def augment(x, *, key):
        k1, k2, k3 = jax.random.split(key, 3)
        if crop_padding:
            x = random_crop(x, key=k1, padding=crop_padding)
        if flip:
            x = random_flip(x, key=k2)
        if cutout:
            x = cutout_fn(x, key=k3, size=cutout)
        return x

    return augment


def build_eval_network(genotype: Genotype, cfg_model, num_classes: int) -> EvalNetwork:
    return EvalNetwork(genotype=genotype, num_classes=num_classes,
                       channels=int(cfg_model.channels), layers=int(cfg_model.layers),
                       auxiliary=bool(cfg_model.get("auxiliary", True)))


def _rules():
    from nnopt_jax.config import integer, real
    from nnopt_jax.training import TRAIN_RULES
    return {
        "data.name": TRAIN_RULES["data.name"],
        "data.data_dir": TRAIN_RULES["data.data_dir"],
        "data.num_train": integer(0),
        "data.num_test": integer(0),
        "model.channels": integer(1),
        "model.layers": integer(1),
        "train.batch_size": integer(1),
        "train.epochs": integer(1),
        "train.seed": integer(0),
        "train.lr": real(0.0, low_open=True),
        "train.momentum": real(0.0, 1.0, high_open=True),
        "train.weight_decay": real(0.0),
        "train.grad_clip": real(0.0, low_open=True),
        "train.aux_weight": real(0.0),
        "train.drop_path_prob": real(0.0, 1.0, high_open=True),
        "train.cutout": integer(0),
        "train.crop_padding": integer(0),
        "train.checkpoint_every": integer(0),
        "train.eval_batch_size": integer(1),
        "train.steps_per_chunk": integer(1),
    }


MAY_CHANGE_ON_RESUME = tuple(f"config.{k}" for k in (
    "train.epochs", "train.checkpoint_every", "train.eval_batch_size", "train.eval_every_epoch",
    "train.steps_per_chunk", "train.unroll", "data.data_dir"))
"""Keys of ``config.json`` (``{"config": cfg, "genotype": ...}``) a resumed
``nnopt nas train`` may change; the genotype may not."""


def validate_config(cfg, *, with_data: bool = False) -> None:
    """Checks a :func:`run_train` config before any data is loaded
    (``with_data``: the arrays are given, ``data.name`` is not needed).

    Raises:
        ConfigError: missing or invalid values, named by their dotted keys.
    """
    from nnopt_jax.config import ConfigError, check_config
    required = ("model.channels", "model.layers", "train.batch_size", "train.epochs")
    check_config(cfg, _rules(), required=required if with_data else ("data.name", *required))
    subset, batch = cfg.data.get("num_train") or 0, cfg.train.batch_size
    if subset and subset < batch:
        raise ConfigError(f"invalid config: data.num_train={subset} is smaller than "
                          f"train.batch_size={batch}; raise data.num_train (0 = all "
                          "examples) or lower train.batch_size")


def run_train(cfg, genotype: Genotype, *, out_dir=None, resume: bool = False,
              overwrite: bool = False, progress: bool = True, data=None) -> dict:
    """Train ``genotype`` from scratch as ``cfg`` describes; returns test accuracy.

    Config blocks: ``data`` (name, data_dir, num_train), ``model`` (channels,
    layers, auxiliary), ``train`` (batch_size, epochs, lr, momentum,
    weight_decay, grad_clip, aux_weight, drop_path_prob, cutout, crop_padding,
    flip, seed, checkpoint_every, eval_batch_size, steps_per_chunk, unroll:
    trace each chunk's steps straight-line, faster for convolutions on XLA:CPU). ``data`` may also pass
    ``(x_train, y_train, x_test, y_test, num_classes)``. ``resume`` continues the
    run in ``out_dir`` (same genotype; only the keys in :data:`MAY_CHANGE_ON_RESUME`
    may change); ``overwrite`` discards a previous run there (see
    :mod:`nnopt_jax.rundir`).
    """
    from nnopt_jax import rundir
    from nnopt_jax.config import ConfigError
    from nnopt_jax.training import evaluate, fit, init_train_state

    t0 = time.perf_counter()
    validate_config(cfg, with_data=data is not None)
    out = None if out_dir is None else pathlib.Path(out_dir)
    run_dir = dict(config={"config": cfg, "genotype": to_dict(genotype)}, command="nas train",
                   resume=resume, overwrite=overwrite, may_change=MAY_CHANGE_ON_RESUME)
    if out is not None:
        rundir.check_run_dir(out, **run_dir)
    t = cfg.train
    seed = int(t.get("seed", 0))
    if data is None:
        from nnopt_jax.nas.darts._data import load_images
        ds = load_images(cfg.data.name, cfg.data.get("data_dir"))
        data = (ds.x_train, ds.y_train, ds.x_test, ds.y_test, ds.num_classes)
    x, y, x_test, y_test, num_classes = data
    if cfg.data.get("num_train"):
        sub = np.random.default_rng(seed).permutation(len(x))[:int(cfg.data.num_train)]
        x, y = x[sub], y[sub]
    if cfg.data.get("num_test"):
        x_test, y_test = x_test[:int(cfg.data.num_test)], y_test[:int(cfg.data.num_test)]
    from nnopt_jax.nas.darts._data import resize_images
    x = resize_images(x, cfg.data.get("image_size"))
    x_test = resize_images(x_test, cfg.data.get("image_size"))
    model = build_eval_network(genotype, cfg.model, num_classes)
    key = jax.random.PRNGKey(seed)
    k_init, k_drop, k_train = jax.random.split(key, 3)
    # jit: one compilation instead of hundreds of eagerly dispatched small ones
    variables = jax.jit(functools.partial(model.init, train=True))(
        {"params": init_key(k_init), "drop_path": k_drop}, jnp.asarray(x[:2]))
    params = variables["params"]
    model_state = {"batch_stats": variables["batch_stats"]}
    batch_size = int(t.batch_size)
    if batch_size > len(x):
        raise ConfigError(f"invalid config: train.batch_size={batch_size} exceeds the {len(x)} "
                          "training examples; lower train.batch_size")
    steps_per_epoch = len(x) // batch_size
    epochs = int(t.epochs)
    tx = make_train_optimizer(lr=float(t.get("lr", 0.025)), total_steps=steps_per_epoch * epochs,
                              momentum=float(t.get("momentum", 0.9)),
                              weight_decay=float(t.get("weight_decay", 3e-4)),
                              grad_clip=float(t.get("grad_clip", 5.0)))
    state = jax.jit(lambda p, ms: init_train_state(p, tx, key=k_train, model_state=ms))(
        params, model_state)
    loss_fn = make_loss_fn(model, steps_per_epoch=steps_per_epoch, epochs=epochs,
                           drop_path_prob=float(t.get("drop_path_prob", 0.2)),
                           aux_weight=float(t.get("aux_weight", 0.4)))

    def apply_fn(params, model_state, xb):
        return model.apply({"params": params, **model_state}, xb, train=False)[0]

    eval_bs = int(t.get("eval_batch_size", 500))

    def eval_fn(state):
        r = evaluate(apply_fn, state.params, state.model_state, x_test, y_test,
                     batch_size=eval_bs)
        return {"test_loss": r["loss"], "test_error": r["error"]}

    if out is not None:
        rundir.prepare_run_dir(out, **run_dir)
    augment = make_augment(crop_padding=int(t.get("crop_padding", 0)),
                           flip=bool(t.get("flip", False)), cutout=int(t.get("cutout", 0)))
    state, history = fit(state, loss_fn=loss_fn, tx=tx, train_data=(x, y),
                         batch_size=batch_size, num_epochs=epochs, seed=seed,
                         eval_fn=eval_fn if t.get("eval_every_epoch", True) else None,
                         out_dir=out, checkpoint_every=t.get("checkpoint_every") or None,
                         resume=resume, augment=augment, progress=progress,
                         steps_per_chunk=int(t.get("steps_per_chunk", 50)),
                         unroll=bool(t.get("unroll", False)), description="darts train")
    test = evaluate(apply_fn, state.params, state.model_state, x_test, y_test,
                    batch_size=eval_bs)
    results = {"test_error": test["error"], "test_acc": 1.0 - test["error"],
               "test_loss": test["loss"],
               "num_params": count_params(params, exclude="auxiliary"),
               "genotype": to_dict(genotype), "epochs": epochs,
               "wall_time_s": time.perf_counter() - t0}
    if out is not None:
        (out / "results.json").write_text(json.dumps(results, indent=2))
    results["history"] = history
    return results
