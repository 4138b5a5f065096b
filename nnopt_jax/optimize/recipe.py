"""The recipe search space and one trial: a shortened training + compression run.

A recipe is ``{"method", "learning_rate", "width", ...}`` with the method's own
knobs as conditional dimensions (:mod:`nnopt_jax.hpo.space`):

=====================  ===========================  ===========================
name                   type                         active for
=====================  ===========================  ===========================
method                 categorical                  always (dense, pruning,
                                                    sparse_vd, vnq)
learning_rate          real, log                    always
width                  int (multiplier of           always
                       ``model.base_features``)
kl_warmup_end          real (epochs)                sparse_vd, vnq
log_alpha_threshold    real                         sparse_vd, vnq
pruning_rate           real (final sparsity)        pruning
=====================  ===========================  ===========================

:func:`run_trial` trains the recipe on the training split and scores it on the
validation split (never the test set) with the same building blocks as
``nnopt compress`` (:mod:`nnopt_jax.bayes`): SGVLB with KL warm-up for sparse
VD (Molchanov et al. 2017), pre-training, level initialisation and ternary
quantisation for VNQ (Achterhold et al. 2018), magnitude pruning with
retraining rounds (Han et al. 2015), and the CSR / 2-bit export whose byte
count is the size objective. The latency objective times the exported model's
``predict`` (:mod:`nnopt_jax.optimize.latency`).
"""

from __future__ import annotations

import pathlib
import time
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nnopt_jax import training
from nnopt_jax.bayes import compression, export, objectives, pruning
from nnopt_jax.hpo.space import SearchSpace
from nnopt_jax.optimize import models
from nnopt_jax.optimize.latency import latency_key, measure_latency

__all__ = ["METHODS", "VARIATIONAL", "space_spec", "recipe_space", "load_splits", "run_trial", "Splits"]

METHODS = ("dense", "pruning", "sparse_vd", "vnq")
VARIATIONAL = ("sparse_vd", "vnq")
_CONDITIONS = {"kl_warmup_end": list(VARIATIONAL), "log_alpha_threshold": list(VARIATIONAL),
               "pruning_rate": ["pruning"]}


def space_spec(*, methods=METHODS, learning_rate=(1e-3, 3e-2), width=(1, 4),
               kl_warmup_end=(0.5, 3.0), log_alpha_threshold=(1.0, 5.0),
               pruning_rate=(0.5, 0.98)) -> dict:
    """A config's ``space`` block from ranges (``(low, high)`` each; learning rate log-uniform).

    Example:
        >>> spec = space_spec(learning_rate=(3e-4, 1e-2), kl_warmup_end=(1.0, 8.0))
        >>> recipe_space(spec).names[:3]
        ('method', 'learning_rate', 'width')
    """
    real = lambda r, **kw: dict(type="real", low=float(r[0]), high=float(r[1]), **kw)
    return dict(
        method=dict(type="categorical", choices=list(methods)),
        learning_rate=real(learning_rate, log=True),
        width=dict(type="int", low=int(width[0]), high=int(width[1])),
        kl_warmup_end=real(kl_warmup_end),
        log_alpha_threshold=real(log_alpha_threshold),
        pruning_rate=real(pruning_rate),
    )


def recipe_space(spec: Mapping[str, Mapping]) -> SearchSpace:
    """The search space of an optimize config's ``space`` block.

    Each entry is a dimension spec (:meth:`SearchSpace.from_dict`); the
    method-specific knobs get their condition on ``method`` added when the
    spec has none, so a config only states the ranges.

    Raises:
        ValueError: an unknown name, a method not in :data:`METHODS`, or a
            malformed dimension.
    """
    spec = {k: dict(v) for k, v in dict(spec).items()}
    known = ("method", "learning_rate", "width", *_CONDITIONS)
    unknown = sorted(set(spec) - set(known))
    if unknown:
        raise ValueError(f"optimize space has unknown names {unknown}; known: {list(known)}")
    for need in ("method", "learning_rate", "width"):
        if need not in spec:
            raise ValueError(f"optimize space needs {need!r}")
    bad = [m for m in spec["method"].get("choices", []) if m not in METHODS]
    if bad:
        raise ValueError(f"optimize space: methods {bad} are not among {list(METHODS)}")
    for name, values in _CONDITIONS.items():
        if name in spec and "condition" not in spec[name]:
            spec[name]["condition"] = {"parent": "method", "values": [
                v for v in values if v in spec["method"].get("choices", [])]}
    order = [n for n in known if n in spec]
    return SearchSpace.from_dict({n: spec[n] for n in order})


class Splits(dict):
    """``x_train, y_train, x_val, y_val, x_test, y_test, num_classes`` of a study."""

    __getattr__ = dict.__getitem__


def load_splits(cfg) -> Splits:
    """Loads ``cfg.data`` and holds ``validation_fraction`` of the training set out.

    The split depends on ``cfg.seed`` only, so every trial of a study sees the
    same validation set; the test set is kept apart (reported for the front,
    never optimised on).
    """
    from nnopt_jax import data as data_lib

    d = cfg.data
    ds = data_lib.load_dataset(d.name, d.get("data_dir"))
    x, y = np.asarray(ds.x_train), np.asarray(ds.y_train)
    if d.get("train_subset"):
        x, y = x[:d.train_subset], y[:d.train_subset]
    x_tr, y_tr, x_val, y_val = data_lib.split_validation(
        x, y, float(d.get("validation_fraction", 0.1)), seed=int(cfg.seed))
    x_te, y_te = np.asarray(ds.x_test), np.asarray(ds.y_test)
    if d.get("val_subset"):
        x_val, y_val = x_val[:d.val_subset], y_val[:d.val_subset]
    if d.get("test_subset"):
        x_te, y_te = x_te[:d.test_subset], y_te[:d.test_subset]
    return Splits(x_train=x_tr, y_train=y_tr, x_val=x_val, y_val=y_val, x_test=x_te,
                  y_test=y_te, num_classes=ds.num_classes)


def _apply(model):
    def apply(params, model_state, x):
        return model.apply({"params": params, **model_state}, x, train=False)
    return apply


def _biases(params) -> dict[str, np.ndarray]:
    return {n: np.asarray(p["bias"]) for n, p in compression.iter_layers(params) if "bias" in p}


def _kernels(params) -> dict[str, np.ndarray]:
    return {n: np.asarray(p["kernel"]) for n, p in compression.iter_layers(params) if "kernel" in p}


class _Trainer:
    def __init__(self, cfg, splits: Splits, seed: int, progress: bool, name: str):
        self.cfg, self.splits, self.seed, self.progress, self.name = cfg, splits, seed, progress, name
        self.bs = int(cfg.train.batch_size)
        self.steps_per_epoch = len(splits.x_train) // self.bs
        self.epochs_run = 0

    def fit(self, state, *, loss_fn, tx, num_epochs, stage):
        state, hist = training.fit(
            state, loss_fn=loss_fn, tx=tx, train_data=(self.splits.x_train, self.splits.y_train),
            batch_size=self.bs, num_epochs=int(num_epochs), seed=self.seed, out_dir=None,
            progress=self.progress, steps_per_chunk=int(self.cfg.train.get("steps_per_chunk", 100)),
            unroll=bool(self.cfg.train.get("unroll", False)), description=f"{self.name}:{stage}")
        self.epochs_run += len(hist)
        return state


def _variational(tr: _Trainer, model_fn, params_in: Mapping, key, out: pathlib.Path):
    cfg, method = tr.cfg, params_in["method"]
    threshold = float(params_in["log_alpha_threshold"])
    model = model_fn(variational=True, prior="vnq" if method == "vnq" else "log_uniform",
                     threshold=threshold)
    init_key, pre_key, train_key = jax.random.split(key, 3)
    variables = jax.jit(model.init)(init_key, jnp.asarray(tr.splits.x_train[:1]))
    params = variables["params"]
    model_state = {k: v for k, v in variables.items() if k not in ("params", "kl")}
    lr = float(params_in["learning_rate"])
    level_factor = cfg.train.get("level_lr_factor", 0.01) if method == "vnq" else None
    n_train = len(tr.splits.x_train)
    pre = int(cfg.train.get("pretrain_epochs", 0)) if method == "vnq" else 0
    if pre:
        tx = objectives.make_optimizer(optax.constant_schedule(lr), level_lr_factor=level_factor)
        loss = objectives.make_sgvlb_loss(model, num_train=n_train,
                                          steps_per_epoch=tr.steps_per_epoch, kl_weight=0.0)
        state = training.init_train_state(params, tx, key=pre_key, model_state=model_state)
        state = tr.fit(state, loss_fn=loss, tx=tx, num_epochs=pre, stage="pretrain")
        params, model_state = jax.device_get((state.params, state.model_state))
        params = compression.init_levels(params, quantile=float(cfg.train.get("level_quantile", 0.9)))
    epochs = int(cfg.train.num_epochs)
    sched = objectives.linear_to_zero_schedule(lr, steps_per_epoch=tr.steps_per_epoch,
                                               num_epochs=epochs)
    tx = objectives.make_optimizer(sched, level_lr_factor=level_factor)
    loss = objectives.make_sgvlb_loss(model, num_train=n_train, steps_per_epoch=tr.steps_per_epoch,
                                      warmup=(0.0, float(params_in["kl_warmup_end"])))
    state = training.init_train_state(params, tx, key=train_key, model_state=model_state)
    state = tr.fit(state, loss_fn=loss, tx=tx, num_epochs=epochs, stage="main")
    params, model_state = jax.device_get((state.params, state.model_state))
    arch = models.EXPORT_ARCH[cfg.model.arch]
    if method == "vnq":
        params, info = compression.quantize_params(params, threshold=threshold)
        weights = compression.deterministic_weights(params, threshold=threshold)
        meta = export.export_quantized(params, info, out, arch=arch)
    else:
        weights = compression.deterministic_weights(params, threshold=threshold)
        meta = export.export_sparse(weights, _biases(params), out, arch=arch)
    return model, params, model_state, weights, meta


def _dense_or_pruning(tr: _Trainer, model_fn, params_in: Mapping, key, out: pathlib.Path):
    cfg, method = tr.cfg, params_in["method"]
    model = model_fn(variational=False)
    init_key, train_key, *stage_keys = jax.random.split(key, 2 + 8)
    variables = dict(jax.jit(model.init)(init_key, jnp.asarray(tr.splits.x_train[:1])))
    params = variables.pop("params")
    model_state = dict(variables)
    lr = float(params_in["learning_rate"])
    epochs = int(cfg.train.num_epochs)
    tx = optax.adam(objectives.linear_to_zero_schedule(lr, steps_per_epoch=tr.steps_per_epoch,
                                                       num_epochs=epochs))
    state = training.init_train_state(params, tx, key=train_key, model_state=model_state)
    loss = training.cross_entropy_loss(model)
    state = tr.fit(state, loss_fn=loss, tx=tx, num_epochs=epochs, stage="dense")
    params, model_state = jax.device_get((state.params, state.model_state))
    if method == "pruning":
        rate = float(params_in["pruning_rate"])
        pc = cfg.get("pruning", {})
        stages = tuple(pc.get("stages", (0.5, 1.0)))[:8]
        for i, frac in enumerate(stages):
            masks = pruning.magnitude_masks(params, {n: rate * frac for n in _kernels(params)})
            params = pruning.apply_masks(params, masks)
            tx = optax.adam(optax.constant_schedule(lr * float(pc.get("retrain_lr_factor", 0.1))))
            state = training.init_train_state(params, tx, key=stage_keys[i], model_state=model_state)
            state = tr.fit(state, loss_fn=pruning.masked_loss(loss, masks), tx=tx,
                           num_epochs=int(pc.get("retrain_epochs", 1)), stage=f"prune{i}")
            params, model_state = jax.device_get((pruning.apply_masks(state.params, masks),
                                                  state.model_state))
    weights = _kernels(params)
    meta = export.export_sparse(weights, _biases(params), out,
                                arch=models.EXPORT_ARCH[cfg.model.arch])
    return model, params, model_state, weights, meta


def run_trial(cfg, params: Mapping[str, Any], splits: Splits, *, seed: int,
              out_dir: str | pathlib.Path, progress: bool = False) -> dict[str, Any]:
    """Trains, compresses, exports and measures one recipe.

    Args:
        cfg: the optimize config (``model``, ``train``, ``pruning``, ``latency``).
        params: a configuration of :func:`recipe_space` (inactive knobs absent).
        splits: from :func:`load_splits`.
        seed: the trial's training seed (initialisation, batch order, noise).
        out_dir: the trial's directory; the exported model goes to ``out_dir/export``.
        progress: show training progress bars.

    Returns:
        ``val_error`` (of the exported model's deterministic network on the
        validation split), ``size_bytes`` (stored bytes of the export),
        ``latency_b<k>_ms`` for each measured batch size, ``compression``,
        ``nonzero_fraction``, ``n_weights``, ``epochs_run``, ``train_seconds``,
        ``latency`` (every timing) and ``export_dir``.
    """
    from nnopt_jax.optimize.latency import LATENCY_DEFAULTS

    t0 = time.perf_counter()
    out = pathlib.Path(out_dir)
    exp_dir = out / "export"
    method = params["method"]
    features = models.scaled_features(cfg.model.base_features, int(params["width"]))

    def model_fn(**kw):
        return models.build(cfg.model.arch, features, num_classes=splits.num_classes,
                            log_sigma2_init=cfg.model.get("log_sigma2_init"), **kw)

    tr = _Trainer(cfg, splits, seed, progress, f"{method}x{params['width']}")
    key = jax.random.key(seed)
    run = _variational if method in VARIATIONAL else _dense_or_pruning
    model, final_params, model_state, weights, meta = run(tr, model_fn, params, key, exp_dir)
    train_s = time.perf_counter() - t0
    exported = export.load_export(exp_dir)
    val_pred = np.concatenate([exported.predict(splits.x_val[i:i + 1000])
                               for i in range(0, len(splits.x_val), 1000)])
    val_error = float(np.mean(np.argmax(val_pred, -1) != splits.y_val))
    jax_val = training.evaluate(_apply(model), final_params, model_state, splits.x_val,
                                splits.y_val, batch_size=1000)
    lat_cfg = {**LATENCY_DEFAULTS, **dict(cfg.get("latency", {}))}
    lat = measure_latency(exported.predict, splits.x_val, batch_sizes=lat_cfg["batch_sizes"],
                          repeats=lat_cfg["repeats"], warmup=lat_cfg["warmup"])
    layers = compression.layer_stats(weights)
    n = sum(r["n_weights"] for r in layers)
    res = {"val_error": val_error, "val_error_jax": float(jax_val["error"]),
           "size_bytes": int(meta["bytes"]), "dense_float32_bytes": int(meta["dense_bytes"]),
           **{latency_key(v["batch_size"]): v["median_ms"] for v in lat.values()},
           "compression": compression.compression_ratio(layers),
           "nonzero_fraction": sum(r["n_nonzero"] for r in layers) / max(n, 1),
           "n_weights": int(n), "features": list(features), "epochs_run": tr.epochs_run,
           "train_seconds": train_s, "latency": lat, "export_dir": str(exp_dir)}
    return res
