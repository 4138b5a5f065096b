"""Compression runs from a config: sparse VD, VNQ, dense originals and pruning.

``compress(cfg, out_dir=...)`` trains what ``cfg.method`` names through
:func:`nnopt_jax.training.fit` (checkpoints, resume, metrics.jsonl), then writes
``config.json``, ``results.json`` (DESIGN.md sec. 2), ``curves.png`` (test error
and compression per epoch; for VNQ also of the network snapped to its codebook,
``test_error_snapped`` and ``compression_snapped`` in ``metrics.jsonl``) and the
exported compressed model (``export/``).

Multi-stage methods (VNQ pre-training, pruning's prune/retrain rounds) train each
stage in ``out_dir/stage_<name>/``; ``resume=True`` restores finished stages
from their last checkpoint and continues the interrupted one.
"""

from __future__ import annotations

import functools
import json
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nnopt_jax.bayes import compression, export, objectives, pruning
from nnopt_jax.bayes.models import export_arch, get_model
from nnopt_jax import rundir, training
from nnopt_jax.config import (Config, ConfigError, boolean, check_config, integer, mapping_of, one_of,
                              optional, real, sequence_of, text)

__all__ = ["compress", "METHODS", "smoke_variant", "validate_config", "MAY_CHANGE_ON_RESUME",
           "EVAL_DEFAULTS", "eval_defaults"]

METHODS = ("sparse_vd", "vnq", "dense", "pruning")
_DENSE_NAMES = {"lenet300_100": "lenet300", "lenet5": "lenet5"}


def _load_data(cfg):
    from nnopt_jax import data as data_lib

    ds = data_lib.load_dataset(cfg.data.name, cfg.data.get("data_dir"))
    x_train, y_train = ds.x_train, ds.y_train
    sub = cfg.data.get("train_subset") or 0
    if sub:
        x_train, y_train = x_train[:sub], y_train[:sub]
    x_test, y_test = ds.x_test, ds.y_test
    tsub = cfg.data.get("test_subset") or 0
    if tsub:
        x_test, y_test = x_test[:tsub], y_test[:tsub]
    return (np.asarray(x_train), np.asarray(y_train), np.asarray(x_test), np.asarray(y_test),
            ds.num_classes)


def _schedule(cfg, steps_per_epoch: int, num_epochs: int) -> optax.Schedule:
    lr = float(cfg.train.learning_rate)
    kind = cfg.train.get("schedule", "linear")
    if kind == "lenet300":
        return objectives.lenet300_lr_schedule(lr, steps_per_epoch=steps_per_epoch, num_epochs=num_epochs,
                                               flat_epochs=cfg.train.get("flat_epochs", 100))
    if kind == "linear":
        return objectives.linear_to_zero_schedule(lr, steps_per_epoch=steps_per_epoch, num_epochs=num_epochs)
    if kind == "constant":
        return optax.constant_schedule(lr)
    raise ValueError(f"unknown train.schedule {kind!r}; choose lenet300, linear or constant")


def _plot_curves(history: list[dict], path: pathlib.Path, title: str) -> None:
    from nnopt_jax.plotting import plt

    rows = [r for r in history if "test_error" in r]
    if not rows:
        return
    x = np.arange(1, len(rows) + 1)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    a1.plot(x, [100 * r["test_error"] for r in rows], label="deterministic")
    a1.set(xlabel="epoch (all stages)", ylabel="test error (%)", yscale="log")
    a2.plot(x, [r.get("compression", 1.0) for r in rows], label="deterministic")
    a2.set(xlabel="epoch (all stages)", ylabel="compression |W|/|W≠0|", yscale="log")
    snapped = [(i, r) for i, r in zip(x, rows) if "test_error_snapped" in r]
    if snapped:  # VNQ: the network snapped to its codebook, as exported
        xs = [i for i, _ in snapped]
        a1.plot(xs, [100 * r["test_error_snapped"] for _, r in snapped], label="snapped")
        a2.plot(xs, [r["compression_snapped"] for _, r in snapped], label="snapped")
        a1.legend(), a2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@functools.lru_cache(maxsize=16)
def _apply_fn(model):
    """The deterministic forward pass of ``model``, one function object per model
    (flax modules hash by value) so that :func:`training.evaluate` compiles once."""

    def apply(params, model_state, x):
        return model.apply({"params": params, **model_state}, x, train=False)

    return apply


def evaluate(model, params, model_state, x, y, *, batch_size: int = 1000) -> dict[str, float]:
    """Loss and error of the deterministic (masked) model."""
    return training.evaluate(_apply_fn(model), params, model_state, x, y, batch_size=batch_size)


EVAL_DEFAULTS = {"uncertainty": False, "uncertainty_samples": 30, "ood_dataset": "fashion_mnist",
                 "dense_baseline": None}
"""The ``eval`` block: ``uncertainty`` turns on :mod:`nnopt_jax.bayes.uncertainty`'s
report after training (``results["uncertainty"]``, ``reliability.png``) with
``uncertainty_samples`` MC samples, OOD images from ``ood_dataset`` (a registered
dataset or "uniform_noise") and, for sparse VD / VNQ, the dense run in the out
dir ``dense_baseline`` (None: no dense mode)."""


def eval_defaults() -> Config:
    """A fresh ``eval`` block with :data:`EVAL_DEFAULTS` (configs add it so ``--set eval.*`` works)."""
    return Config(EVAL_DEFAULTS)


def _ood_name(value):
    from nnopt_jax.bayes.uncertainty import UNIFORM_NOISE
    from nnopt_jax.data.catalog import DATASETS, canonical_name

    try:
        ok = value == UNIFORM_NOISE or bool(canonical_name(value))
    except (ValueError, TypeError):
        ok = False
    return None if ok else f"one of {', '.join(map(repr, (*DATASETS, UNIFORM_NOISE)))}"


RULES = {
    "method": one_of(*METHODS),
    "seed": integer(0),
    "eval_batch_size": integer(1),
    **{k: v for k, v in training.TRAIN_RULES.items() if k.startswith("data.")},
    "data.test_subset": integer(0),
    "train.batch_size": integer(1),
    "train.num_epochs": integer(1),
    "train.learning_rate": real(0.0, low_open=True),
    "train.schedule": one_of("lenet300", "linear", "constant"),
    "train.flat_epochs": integer(0),
    "train.pretrain_epochs": integer(0),
    "train.pretrain_learning_rate": real(0.0, low_open=True),
    "train.warmup_start": real(0.0),
    "train.warmup_end": real(0.0),
    "train.level_lr_factor": real(0.0),  # 0 holds the level where it started
    "train.level_quantile": real(0.0, 1.0, low_open=True, high_open=True),
    "train.level_lr_factor_by_layer": mapping_of(real(0.0)),  # e.g. {"conv1": 0.01}
    "train.level_quantile_by_layer": mapping_of(real(0.0, 1.0, low_open=True, high_open=True)),
    "train.funnel_clip": boolean,
    "train.level_min": real(0.0),
    "train.checkpoint_every": integer(0),
    "train.steps_per_chunk": integer(1),
    "model.conv_relu": boolean,
    "model.vnq_kl": one_of("windowed", "tabulated"),
    "model.conv_init": optional(one_of("glorot_uniform")),
    "model.conv_mask_noise": optional(boolean),
    "pruning.retrain_epochs": integer(1),
    "pruning.retrain_learning_rate": real(0.0, low_open=True),
    "pruning.stages": sequence_of(real(0.0, 1.0, low_open=True), min_len=1),
    "quantize.outlier_factor": optional(real(1.0, low_open=True)),
    "eval.uncertainty": boolean,
    "eval.uncertainty_samples": integer(1),
    "eval.ood_dataset": _ood_name,
    "eval.dense_baseline": optional(text),
}
"""Checks of the config values :func:`compress` reads."""

MAY_CHANGE_ON_RESUME = ("train.num_epochs", "train.checkpoint_every", "train.steps_per_chunk",
                        "train.unroll", "data.data_dir", "eval_batch_size", "export", "eval",
                        "quantize")
"""Config keys a resumed ``nnopt compress`` may change."""

ADDED_KEYS = {"train.funnel_clip": False, "train.level_min": 0.05, "model.vnq_kl": "windowed",
              "train.level_lr_factor_by_layer": {}, "train.level_quantile_by_layer": {}}
"""Config keys added after runs were recorded without them, with the value those runs had."""


def validate_config(cfg) -> None:
    """Checks a :func:`compress` config before any data is loaded.

    Raises:
        ConfigError: missing or invalid values, named by their dotted keys.
    """
    check_config(cfg, RULES, required=("method", "seed", "data.name", "model.name",
                                       "train.batch_size", "train.num_epochs",
                                       "train.learning_rate"))
    training.check_subset_holds_a_batch(cfg)
    start, end = cfg.train.get("warmup_start", 5), cfg.train.get("warmup_end", 20)
    if end < start:
        raise ConfigError(f"invalid config: train.warmup_end={end} is before "
                          f"train.warmup_start={start}")
    baseline = cfg.get("eval", {}).get("dense_baseline")
    if cfg.get("eval", {}).get("uncertainty") and baseline and not (
            pathlib.Path(baseline) / "export" / "meta.json").is_file():
        raise ConfigError(f"invalid config: eval.dense_baseline={baseline!r} is not the out dir of a "
                          "compress run with an export/ (e.g. runs/compress/lenet300_dense)")


class _Run:
    """Shared state of one compress() call."""

    def __init__(self, cfg, out_dir, resume, progress):
        self.cfg, self.resume, self.progress = cfg, resume, progress
        self.out = pathlib.Path(out_dir)
        self.history: list[dict] = []
        self.x_train, self.y_train, self.x_test, self.y_test, self.num_classes = _load_data(cfg)
        self.bs = int(cfg.train.batch_size)
        if self.bs > len(self.x_train):
            raise ConfigError(f"invalid config: train.batch_size={self.bs} exceeds the "
                              f"{len(self.x_train)} training examples; lower train.batch_size")
        self.steps_per_epoch = len(self.x_train) // self.bs
        self.eval_bs = int(cfg.get("eval_batch_size", 1000))
        self.key = jax.random.key(int(cfg.seed))

    def evaluate(self, model, params, model_state):
        return evaluate(model, params, model_state, self.x_test, self.y_test, batch_size=self.eval_bs)

    def fit(self, stage, state, *, loss_fn, tx, num_epochs, model, weights_fn, transform=lambda p: p,
            snap_fn=None):
        """Trains one stage; each epoch records the test error and compression, and
        with ``snap_fn`` (params -> quantised params) those of the snapped network too."""

        def eval_fn(st):
            params, model_state = jax.device_get((transform(st.params), st.model_state))
            ev = self.evaluate(model, params, model_state)
            layers = compression.layer_stats(weights_fn(params))
            row = {"test_error": ev["error"], "test_loss": ev["loss"],
                   "compression": compression.compression_ratio(layers)}
            if snap_fn is not None:
                snapped = snap_fn(params)
                row["test_error_snapped"] = self.evaluate(model, snapped, model_state)["error"]
                row["compression_snapped"] = compression.compression_ratio(
                    compression.layer_stats(weights_fn(snapped)))
            return row

        state, hist = training.fit(
            state, loss_fn=loss_fn, tx=tx, train_data=(self.x_train, self.y_train), batch_size=self.bs,
            num_epochs=num_epochs, seed=int(self.cfg.seed), eval_fn=eval_fn,
            out_dir=self.out / f"stage_{stage}",
            checkpoint_every=self.cfg.train.get("checkpoint_every") or None, resume=self.resume,
            steps_per_chunk=int(self.cfg.train.get("steps_per_chunk", 100)),
            unroll=bool(self.cfg.train.get("unroll", False)),
            progress=self.progress, description=f"{self.cfg.get('name', 'compress')}:{stage}")
        self.history += [dict(r, stage=stage) for r in hist]
        return state


def _vnq_optimizer(cfg, schedule: optax.Schedule) -> optax.GradientTransformation:
    """The KL stage's optimiser of a VNQ config: Adam, the level's factor, the funnel clip."""
    return objectives.make_optimizer(schedule, level_lr_factor=cfg.train.get("level_lr_factor"),
                                     level_lr_factor_by_layer=cfg.train.get("level_lr_factor_by_layer"),
                                     funnel_clip=bool(cfg.train.get("funnel_clip", False)),
                                     threshold=float(cfg.model.get("threshold", 3.0)),
                                     level_min=float(cfg.train.get("level_min", 0.05)))


def _variational(run: _Run, method: str):
    cfg = run.cfg
    prior = "vnq" if method == "vnq" else "log_uniform"
    mkw = {k: v for k, v in cfg.model.items() if k != "name"}
    model = get_model(cfg.model.name, num_classes=run.num_classes, prior=prior, **mkw)
    init_key, train_key, pre_key = jax.random.split(run.key, 3)
    variables = jax.jit(model.init)(init_key, jnp.asarray(run.x_train[:1]))
    params = variables["params"]
    model_state = {k: v for k, v in variables.items() if k not in ("params", "kl")}
    threshold = float(cfg.model.get("threshold", 3.0))
    if method == "vnq":  # before pretraining, not minutes into the run
        for key in ("level_lr_factor_by_layer", "level_quantile_by_layer"):
            compression.check_vnq_layer_names(params, cfg.train.get(key) or {}, what=f"train.{key}")

    weights_fn = lambda p: compression.deterministic_weights(p, threshold=threshold)

    pre = int(cfg.train.get("pretrain_epochs", 0))
    if pre:
        sched = optax.constant_schedule(float(cfg.train.get("pretrain_learning_rate", cfg.train.learning_rate)))
        tx = objectives.make_optimizer(sched, level_lr_factor=cfg.train.get("level_lr_factor"))
        loss = objectives.make_sgvlb_loss(model, num_train=len(run.x_train), steps_per_epoch=run.steps_per_epoch,
                                          kl_weight=0.0)
        state = training.init_train_state(params, tx, key=pre_key, model_state=model_state)
        state = run.fit("pretrain", state, loss_fn=loss, tx=tx, num_epochs=pre, model=model,
                        weights_fn=weights_fn)
        params, model_state = jax.device_get((state.params, state.model_state))
        if method == "vnq":
            params = compression.init_levels(params, quantile=float(cfg.train.get("level_quantile", 0.9)),
                                             quantile_by_layer=cfg.train.get("level_quantile_by_layer"))

    epochs = int(cfg.train.num_epochs)
    sched = _schedule(cfg, run.steps_per_epoch, epochs)
    if method == "vnq":
        tx = _vnq_optimizer(cfg, sched)
    else:
        tx = objectives.make_optimizer(sched)
    loss = objectives.make_sgvlb_loss(
        model, num_train=len(run.x_train), steps_per_epoch=run.steps_per_epoch,
        warmup=(float(cfg.train.get("warmup_start", 5)), float(cfg.train.get("warmup_end", 20))))
    outlier_factor = cfg.get("quantize", {}).get("outlier_factor")
    snap = lambda p: compression.quantize_params(p, threshold=threshold, outlier_factor=outlier_factor)
    state = training.init_train_state(params, tx, key=train_key, model_state=model_state)
    state = run.fit("main", state, loss_fn=loss, tx=tx, num_epochs=epochs, model=model,
                    weights_fn=weights_fn, snap_fn=(lambda p: snap(p)[0]) if method == "vnq" else None)
    params, model_state = jax.device_get((state.params, state.model_state))

    ev = run.evaluate(model, params, model_state)
    extra: dict[str, Any] = {"posterior_params": params}
    if method == "vnq":
        qparams, info = snap(params)
        q_ev = run.evaluate(model, qparams, model_state)
        by_layer = {n: run.evaluate(model, compression.with_layer_from(params, qparams, n), model_state)["error"]
                    for n in info}
        weights = compression.deterministic_weights(qparams, threshold=threshold)
        results = compression.make_results(
            q_ev["error"], weights, codebook={n: [-i["level"], 0.0, i["level"]] for n, i in info.items()}, bits=2,
            test_error_before_quantization=ev["error"], test_error_one_layer_snapped=by_layer,
            outliers={n: int(i["outliers"].size) for n, i in info.items()},
            outlier_factor=outlier_factor)
        exported = export.export_quantized(qparams, info, run.out / "export", arch=export_arch(cfg.model),
                                           model_state=model_state) if cfg.get("export", True) else None
        final_params = qparams
    else:
        weights = weights_fn(params)
        results = compression.make_results(ev["error"], weights)
        exported = export.export_sparse(weights, _biases(params), run.out / "export",
                                        arch=export_arch(cfg.model)) if cfg.get("export", True) else None
        final_params = params
    return results, exported, final_params, model_state, model, extra


def _biases(params) -> dict[str, np.ndarray]:
    return {n: np.asarray(p["bias"]) for n, p in compression.iter_layers(params) if "bias" in p}


def _dense_model(run: _Run):
    from nnopt_jax.models import build_model

    name = run.cfg.model.name
    return build_model(_DENSE_NAMES.get(name, name), num_classes=run.num_classes)


def _dense_or_pruning(run: _Run, method: str):

    cfg = run.cfg
    model = _dense_model(run)
    init_key, train_key, *stage_keys = jax.random.split(run.key, 2 + len(cfg.get("pruning", {}).get("stages", ())))
    variables = dict(jax.jit(model.init)(init_key, jnp.asarray(run.x_train[:1])))
    params = variables.pop("params")
    model_state = dict(variables)

    def kernels(p):
        return {n: np.asarray(l["kernel"]) for n, l in compression.iter_layers(p) if "kernel" in l}

    epochs = int(cfg.train.num_epochs)
    sched = _schedule(cfg, run.steps_per_epoch, epochs)
    tx = optax.adam(sched)
    state = training.init_train_state(params, tx, key=train_key, model_state=model_state)
    state = run.fit("dense", state, loss_fn=training.cross_entropy_loss(model), tx=tx, num_epochs=epochs,
                    model=model, weights_fn=kernels)
    params, model_state = jax.device_get((state.params, state.model_state))

    if method == "pruning":
        pc = cfg.pruning
        targets = dict(pc.sparsity)
        for i, frac in enumerate(pc.stages):
            masks = pruning.magnitude_masks(params, {k: v * frac for k, v in targets.items()})
            params = pruning.apply_masks(params, masks)
            r_sched = optax.constant_schedule(float(pc.get("retrain_learning_rate", cfg.train.learning_rate)))
            tx = optax.adam(r_sched)
            state = training.init_train_state(params, tx, key=stage_keys[i], model_state=model_state)
            state = run.fit(f"prune{i}", state, loss_fn=pruning.masked_loss(training.cross_entropy_loss(model), masks),
                            tx=tx, num_epochs=int(pc.retrain_epochs), model=model, weights_fn=kernels,
                            transform=lambda p, m=masks: pruning.apply_masks(p, m))
            params, model_state = jax.device_get((pruning.apply_masks(state.params, masks), state.model_state))

    ev = run.evaluate(model, params, model_state)
    weights = kernels(params)
    results = compression.make_results(ev["error"], weights)
    exported = export.export_sparse(weights, _biases(params), run.out / "export", arch=cfg.model.name) \
        if cfg.get("export", True) and cfg.model.name in export.SUPPORTED_ARCHS else None
    return results, exported, params, model_state, model, {}


def compress(cfg, *, out_dir, resume: bool = False, overwrite: bool = False,
             progress: bool = True) -> dict:
    """Runs the compression experiment ``cfg`` describes and writes its outputs.

    Config keys: ``method`` (sparse_vd | vnq | dense | pruning), ``data`` (name,
    data_dir, train_subset, test_subset), ``model`` (name: lenet300_100 | lenet5 |
    densenet, threshold, log_sigma2_init, ...), ``train`` (batch_size, num_epochs,
    learning_rate, schedule, warmup_start, warmup_end, pretrain_epochs,
    level_lr_factor, level_quantile (and their per-layer dicts level_lr_factor_by_layer,
    level_quantile_by_layer), funnel_clip and level_min for VNQ, checkpoint_every,
    steps_per_chunk, unroll), ``pruning`` (sparsity per layer, stages,
    retrain_epochs), ``seed``, ``export``, ``eval`` (:data:`EVAL_DEFAULTS`: uncertainty,
    uncertainty_samples, ood_dataset, dense_baseline), ``quantize`` (VNQ:
    outlier_factor, None for strict ternary).

    ``resume`` continues the run in ``out_dir`` (only the keys in
    :data:`MAY_CHANGE_ON_RESUME` may change); ``overwrite`` discards a previous
    run there (see :mod:`nnopt_jax.rundir`).

    Returns:
      The results dict (as written to results.json) plus ``wall_time_s``
      (this call's), ``train_time_s`` (the sum of every epoch's time, those
      of interrupted calls included), ``epochs_run`` and ``export_bytes``.

    Raises:
      ConfigError: an invalid config value (before any data is loaded).
      RunDirError: ``out_dir`` holds another run, or none to resume.
    """
    method = cfg.get("method")
    if method not in METHODS:
        raise ConfigError(f"cfg.method must be one of {METHODS}, got {method!r}")
    validate_config(cfg)
    t0 = time.perf_counter()
    run_dir = dict(config=cfg, command="compress", resume=resume, overwrite=overwrite,
                   may_change=MAY_CHANGE_ON_RESUME, added_keys=ADDED_KEYS)
    out = rundir.check_run_dir(out_dir, **run_dir)
    run = _Run(cfg, out, resume, progress)
    rundir.prepare_run_dir(out, **run_dir)
    if method in ("sparse_vd", "vnq"):
        results, exported, params, model_state, model, extra = _variational(run, method)
    else:
        results, exported, params, model_state, model, extra = _dense_or_pruning(run, method)
    ecfg = {**EVAL_DEFAULTS, **cfg.get("eval", {})}
    if ecfg["uncertainty"]:
        from nnopt_jax.bayes.uncertainty import compress_uncertainty

        results["uncertainty"] = compress_uncertainty(
            method=method, model=model, params=extra.get("posterior_params", params), model_state=model_state,
            final_params=params, x_test=run.x_test, y_test=run.y_test, eval_cfg=ecfg, seed=int(cfg.seed),
            out_dir=out, data_name=cfg.data.name, data_dir=cfg.data.get("data_dir"), batch_size=run.eval_bs)
    results.update({
        "method": method, "model": cfg.model.name, "dataset": cfg.data.name,
        "epochs_run": len(run.history), "wall_time_s": time.perf_counter() - t0,
        "train_time_s": sum(r.get("epoch_time_s", 0.0) for r in run.history),
        "backend": jax.default_backend(), "devices": jax.device_count(),
    })
    if exported is not None:
        results["export_bytes"] = exported["bytes"]
        results["dense_float32_bytes"] = exported["dense_bytes"]
    (out / "results.json").write_text(json.dumps(results, indent=2))
    with (out / "metrics.jsonl").open("w") as f:
        for r in run.history:
            f.write(json.dumps(r) + "\n")
    _plot_curves(run.history, out / "curves.png", f"{cfg.get('name', method)}")
    return results


def smoke_variant(cfg: Config, *, dataset: str) -> Config:
    """Shrinks a compression config to its ``smoke`` variant: seconds on a CPU.

    Every compression config's ``get_config("smoke")`` calls this, so the tests
    exercise the same code path as the full run on a few hundred examples.
    """
    cfg.data.name = dataset
    cfg.data.train_subset, cfg.data.test_subset = 500, 200
    cfg.train.num_epochs, cfg.train.batch_size = 2, 50
    cfg.train.warmup_start, cfg.train.warmup_end = 0, 1
    cfg.train.flat_epochs = 1
    if cfg.train.get("pretrain_epochs"):
        cfg.train.pretrain_epochs = 1
    if "pruning" in cfg:
        cfg.pruning.retrain_epochs, cfg.pruning.stages = 1, (0.5, 1.0)
    return cfg
