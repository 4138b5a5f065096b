"""Inspects a VNQ run's newest checkpoint: where its weights sit against the codebook.

For a ``nnopt compress`` VNQ run directory (finished or interrupted), restores
the newest checkpoint of its KL stage and prints, per layer: the codebook level
a, the share of weights that snap to 0, the share within 0.1 a of a codebook
value, the test error with only that layer snapped (the others deterministic,
unsnapped), the test error with every other layer snapped (that layer
deterministic, unsnapped: what snapping the rest costs), and the gradient of the layer's summed KL with respect to a (the
level's only gradient: the forward pass does not use a, so a positive value
means training lowers a). Then the whole network's test error before and after
snapping, and the share of non-zero weights, at each pruning threshold given.

Usage:
  NNOPT_DATA_DIR=../shared/data .venv/bin/python experiments/vnq_inspect.py \
      runs/compress/lenet5_vnq [--thresholds 2,3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.distributions.kl import kl_divergence

from nnopt_jax import training
from nnopt_jax.bayes import compression
from nnopt_jax.bayes import run as compress_run
from nnopt_jax.bayes.models import get_model
from nnopt_jax.bayes.priors import VNQPrior
from nnopt_jax.checkpoint import restore_checkpoint
from nnopt_jax.config import Config


def restore_main_stage(out: pathlib.Path):
    """The run's config, a ``_Run`` over its data, its model and the newest
    KL-stage checkpoint's ``(params, model_state, epoch)``."""
    cfg = Config(json.loads((out / "config.json").read_text()))
    if cfg.method != "vnq":
        raise SystemExit(f"{out} is a {cfg.method!r} run; this script reads VNQ runs")
    run = compress_run._Run(cfg, out, resume=False, progress=False)
    # (config.json holds tuples, e.g. an MLP's features, as lists)
    mkw = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.model.items() if k != "name"}
    model = get_model(cfg.model.name, num_classes=run.num_classes, prior="vnq", **mkw)
    init_key, train_key, _ = jax.random.split(run.key, 3)
    variables = jax.jit(model.init)(init_key, jnp.asarray(run.x_train[:1]))
    params = compression.init_levels(variables["params"], quantile=0.9)  # shapes only
    model_state = {k: v for k, v in variables.items() if k not in ("params", "kl")}
    sched = compress_run._schedule(cfg, run.steps_per_epoch, int(cfg.train.num_epochs))
    tx = compress_run._vnq_optimizer(cfg, sched)
    like = training.init_train_state(params, tx, key=train_key, model_state=model_state)
    state, step = restore_checkpoint(out / "stage_main" / "checkpoints", like)
    params, model_state = jax.device_get((state.params, state.model_state))
    return cfg, run, model, params, model_state, step / run.steps_per_epoch


def inspect(out: pathlib.Path, thresholds: list[float]) -> dict:
    cfg, run, model, params, model_state, epoch = restore_main_stage(out)
    kl_form = cfg.model.get("vnq_kl", "windowed")
    threshold = float(cfg.model.get("threshold", 3.0))
    qparams, info = compression.quantize_params(params, threshold=threshold, outlier_factor=None)
    quantized = dict(compression.iter_layers(qparams))
    layers = {}
    for name, layer in compression.iter_layers(params):
        if name not in info:
            continue
        a = float(info[name]["level"])
        theta = np.asarray(layer["theta"])
        u = np.abs(theta).ravel() / a
        snapped = np.asarray(quantized[name]["theta"]).ravel()
        posterior = dist.Normal(jnp.asarray(theta), jnp.exp(0.5 * jnp.asarray(layer["log_sigma2"])))
        level_grad = jax.grad(lambda lv: jnp.sum(kl_divergence(posterior, VNQPrior(lv, kl=kl_form))))
        layers[name] = {
            "size": int(theta.size), "level": a, "zero_share": float(np.mean(snapped == 0)),
            "within_0.1a": float(np.mean((u < 0.1) | (np.abs(u - 1) < 0.1))),
            "error_only_this_layer_snapped": run.evaluate(
                model, compression.with_layer_from(params, qparams, name), model_state)["error"],
            "error_all_but_this_layer_snapped": run.evaluate(
                model, compression.with_layer_from(qparams, params, name), model_state)["error"],
            "dkl_dlevel": float(level_grad(jnp.asarray(a))),
        }
    before = run.evaluate(model, params, model_state)["error"]
    by_threshold = {}
    for t in thresholds:
        q, _ = compression.quantize_params(params, threshold=t, outlier_factor=None)
        ratio = compression.compression_ratio(compression.layer_stats(compression.deterministic_weights(q, threshold=t)))
        by_threshold[t] = {"error": run.evaluate(model, q, model_state)["error"], "compression": ratio,
                           "nonzero_share": 1.0 / ratio}
    return {"run": str(out), "epoch": epoch, "error_before_snapping": before, "layers": layers,
            "by_threshold": by_threshold}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=pathlib.Path, help="a VNQ `nnopt compress` out dir")
    ap.add_argument("--thresholds", default="2,3", help="log-alpha pruning thresholds (comma-separated)")
    ap.add_argument("--json", type=pathlib.Path, help="also write the report here")
    args = ap.parse_args(argv)
    report = inspect(args.run, [float(t) for t in args.thresholds.split(",")])
    print(f"{report['run']}: KL-stage epoch {report['epoch']:.0f}, "
          f"test error before snapping {100 * report['error_before_snapping']:.2f} %")
    print("| layer | weights | a | at 0 | within 0.1a of a codebook value | error % with only it snapped | "
          "error % with all but it snapped | dKL/da |")
    print("|---|---|---|---|---|---|---|---|")
    for name, row in report["layers"].items():
        print(f"| {name} | {row['size']:,} | {row['level']:.3f} | {100 * row['zero_share']:.1f} % | "
              f"{100 * row['within_0.1a']:.1f} % | {100 * row['error_only_this_layer_snapped']:.2f} | "
              f"{100 * row['error_all_but_this_layer_snapped']:.2f} | "
              f"{row['dkl_dlevel']:.3g} |")
    for t, row in report["by_threshold"].items():
        print(f"log alpha >= {t:g}: snapped test error {100 * row['error']:.2f} %, "
              f"{100 * row['nonzero_share']:.1f} % non-zero ({row['compression']:.2f}x)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
