"""What the posterior knows: calibration and out-of-distribution detection of compressed nets.

Three ways to predict with a trained sparse-VD / VNQ model are compared:

- ``"mc"``: the Monte Carlo predictive p(y|x) ≈ (1/S) Σ_s softmax(f(x; w_s)),
  w_s ~ q(w), with S stochastic forward passes of the variational model in
  training mode (the local reparameterisation's output noise, Kingma et al.
  2015, eq. 6-7, exactly as the SGVLB sees it; :func:`mc_predictive`);
- ``"deterministic"``: softmax(f(x; θ ⊙ m)), the posterior mean with the weights
  of log α ≥ threshold zeroed (Molchanov et al. 2017, sec. 4.3), which is what
  :func:`nnopt_jax.bayes.run.compress` evaluates (for VNQ also ``"quantized"``,
  the ternary net it exports);
- ``"dense"``: a plain network (the dense baseline, or the run itself for the
  dense and pruning methods).

Per mode :func:`uncertainty_report` gives the test NLL, the expected calibration
error (Guo et al. 2017, eq. 3), accuracy, the reliability-diagram bins and the
AUROC of telling in-distribution test images from out-of-distribution ones by
predictive entropy. The metrics are host functions on float64 numpy arrays
(exact, and cheap next to the forward passes); the forward passes are jitted
and batched over data in fixed-size chunks (one compilation), with the samples
mapped by :func:`jax.lax.map` inside one jitted step.

``"uniform_noise"`` (:data:`UNIFORM_NOISE`) is a synthetic OOD set for tests and
smoke runs: images drawn uniformly from [0, 1) in the test set's shape, from a
fixed seed (:data:`UNIFORM_NOISE_SEED`).
"""

from __future__ import annotations

import functools
import math
import pathlib
import time
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special, stats

from nnopt_jax.types import Array, Params, PRNGKey

__all__ = [
    "expected_calibration_error", "calibration_bins", "negative_log_likelihood",
    "predictive_entropy", "auroc", "mc_predictive", "deterministic_predictive",
    "variational_predictors", "uncertainty_report", "reliability_diagram", "load_ood",
    "mode_metrics", "compress_uncertainty", "UNIFORM_NOISE", "UNIFORM_NOISE_SEED", "MODES",
]

UNIFORM_NOISE = "uniform_noise"
"""Name of the synthetic OOD set: U[0, 1) images in the test set's shape."""
UNIFORM_NOISE_SEED = 0
"""Seed of :data:`UNIFORM_NOISE` (``numpy.random.default_rng``), fixed so that runs compare."""
MODES = ("mc", "deterministic", "quantized", "dense")
"""Prediction modes, in report order."""
N_BINS = 15
"""Confidence bins of the ECE and the reliability diagram in :func:`compress_uncertainty`."""
NLL_FLOOR = 1e-12
"""Probabilities are clipped at this floor before the log in :func:`negative_log_likelihood`."""


# ----------------------------------------------------------------------------- metrics


def _probs_labels(probs, labels=None):
    p = np.asarray(probs, np.float64)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError(f"probs must have shape (N, K) with N >= 1, got {p.shape}")
    if labels is None:
        return p, None
    y = np.asarray(labels)
    if y.shape != (p.shape[0],):
        raise ValueError(f"labels must have shape ({p.shape[0]},), got {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must lie in [0, {p.shape[1]})")
    return p, y.astype(np.int64)


def calibration_bins(probs, labels, *, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Equal-width confidence bins of a classifier (the reliability diagram's data).

    The confidence of example i is conf_i = max_k p_ik and its prediction
    argmax_k p_ik; bin b holds the examples with conf in (b/n_bins, (b+1)/n_bins]
    (Guo et al. 2017, sec. 2).

    Args:
      probs: (N, K) predictive probabilities.
      labels: (N,) integer labels.
      n_bins: number of bins M.

    Returns:
      ``{"edges": (M+1,), "count": (M,), "accuracy": (M,), "confidence": (M,)}``:
      per bin |B_b|, acc(B_b) and conf(B_b) (NaN for an empty bin).
    """
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    p, y = _probs_labels(probs, labels)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # number of inner edges strictly below conf: conf in (e_b, e_{b+1}] -> b
    idx = np.searchsorted(edges[1:-1], conf, side="left")
    count = np.bincount(idx, minlength=n_bins).astype(np.float64)
    sum_conf = np.bincount(idx, weights=conf, minlength=n_bins)
    sum_acc = np.bincount(idx, weights=correct, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"edges": edges, "count": count, "accuracy": sum_acc / count,
                "confidence": sum_conf / count}


def expected_calibration_error(probs, labels, *, n_bins: int = 15) -> float:
    """Expected calibration error with equal-width confidence bins (Guo et al. 2017, eq. 3).

    ECE = Σ_b |B_b|/N · |acc(B_b) − conf(B_b)|, with the bins of
    :func:`calibration_bins` (empty bins contribute nothing).

    Args:
      probs: (N, K) predictive probabilities.
      labels: (N,) integer labels.
      n_bins: number of bins (15, the usual choice).

    Returns:
      The ECE, a float in [0, 1].
    """
    b = calibration_bins(probs, labels, n_bins=n_bins)
    n = b["count"].sum()
    full = b["count"] > 0
    gap = np.abs(b["accuracy"][full] - b["confidence"][full])
    return float(np.sum(b["count"][full] * gap) / n)


def negative_log_likelihood(probs, labels) -> float:
    """Mean negative log-likelihood −(1/N) Σ_i log p(y_i | x_i), in nats.

    Probabilities below :data:`NLL_FLOOR` are raised to it, so that an average
    of float32 softmaxes that underflowed to 0 gives a large finite value.
    """
    p, y = _probs_labels(probs, labels)
    return float(-np.mean(np.log(np.maximum(p[np.arange(len(y)), y], NLL_FLOOR))))


def predictive_entropy(probs) -> np.ndarray:
    """Entropy H[p] = −Σ_k p_k log p_k (nats, 0 log 0 = 0) along the last axis.

    log K for the uniform distribution over K classes, 0 for a one-hot one.
    """
    p = np.asarray(probs, np.float64)
    return special.entr(p).sum(axis=-1)


def auroc(scores_pos, scores_neg) -> float:
    """Area under the ROC curve by the Mann–Whitney rank formula (ties count half).

    AUROC = (R₊ − n₊(n₊+1)/2) / (n₊ n₋), R₊ the sum of the positives' mid-ranks
    in the pooled sample: the probability that a random positive scores higher
    than a random negative, plus half the probability of a tie.

    Args:
      scores_pos: scores of the positives (here: OOD images, score = entropy).
      scores_neg: scores of the negatives (in-distribution images).

    Returns:
      The AUROC in [0, 1] (0.5: no separation).
    """
    pos = np.asarray(scores_pos, np.float64).ravel()
    neg = np.asarray(scores_neg, np.float64).ravel()
    if pos.size == 0 or neg.size == 0:
        raise ValueError("auroc needs at least one positive and one negative score")
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(neg))):
        raise ValueError("auroc scores must be finite")
    ranks = stats.rankdata(np.concatenate([pos, neg]), method="average")
    n_pos, n_neg = pos.size, neg.size
    u = ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


# ----------------------------------------------------------------------------- forward passes


def _chunks(x: np.ndarray, batch_size: int):
    """Fixed-size chunks of ``x`` (the last one zero-padded) and their true lengths."""
    n = len(x)
    bs = max(1, min(int(batch_size), n))
    for begin in range(0, n, bs):
        xb = np.asarray(x[begin:begin + bs])
        m = len(xb)
        if m < bs:
            xb = np.concatenate([xb, np.zeros((bs - m, *xb.shape[1:]), xb.dtype)])
        yield xb, m


@functools.lru_cache(maxsize=32)
def _mc_step(apply_fn, n_samples: int, sample_batch_size: int | None):
    @jax.jit
    def step(params, xb, key):
        keys = jax.random.split(key, n_samples)

        def one(k):
            return jax.nn.softmax(apply_fn(params, xb, k).astype(jnp.float32), axis=-1)

        return jnp.mean(jax.lax.map(one, keys, batch_size=sample_batch_size), axis=0)

    return step


@functools.lru_cache(maxsize=32)
def _det_step(apply_fn):
    return jax.jit(lambda params, xb: jax.nn.softmax(apply_fn(params, xb).astype(jnp.float32), axis=-1))


def mc_predictive(apply_fn: Callable[[Params, Array, PRNGKey], Array], params: Params, x, *,
                  key: PRNGKey, n_samples: int, batch_size: int = 1000,
                  sample_batch_size: int | None = None) -> np.ndarray:
    """Monte Carlo predictive (1/S) Σ_s softmax(f(x; w_s)), w_s ~ q(w).

    Each data chunk is one jitted step that maps ``apply_fn`` over S sample keys
    with :func:`jax.lax.map` (one sample's activations in memory at a time, or
    ``sample_batch_size`` of them vmapped) and averages the probabilities.

    Args:
      apply_fn: ``apply_fn(params, x, key) -> logits``, one stochastic forward
        pass (for the variational models: ``train=True, rngs={"noise": key}``).
        Pass the same function object again to reuse the compilation.
      params: its parameters (a jit argument, not a constant).
      x: (N, ...) inputs.
      key: PRNG key; chunk i draws its S samples from ``fold_in(key, i)``.
      n_samples: S >= 1.
      batch_size: data chunk size (the last chunk is padded).
      sample_batch_size: samples evaluated together by ``lax.map`` (None: 1).

    Returns:
      (N, K) float32 averaged probabilities.
    """
    if not isinstance(n_samples, (int, np.integer)) or isinstance(n_samples, bool) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    step = _mc_step(apply_fn, int(n_samples), sample_batch_size)
    out = [step(params, xb, jax.random.fold_in(key, i))[:m]
           for i, (xb, m) in enumerate(_chunks(x, batch_size))]
    return np.concatenate(jax.device_get(out))


def deterministic_predictive(apply_fn: Callable[[Params, Array], Array], params: Params, x, *,
                             batch_size: int = 1000) -> np.ndarray:
    """softmax(f(x; params)) of a deterministic ``apply_fn(params, x) -> logits``, chunked."""
    step = _det_step(apply_fn)
    out = [step(params, xb)[:m] for xb, m in _chunks(x, batch_size)]
    return np.concatenate(jax.device_get(out))


@functools.lru_cache(maxsize=16)
def _model_apply(model, stochastic: bool):
    """``apply(variables, x[, key])`` of a flax model (stochastic: the variational
    training-mode pass); one function object per model, so each compiles once."""
    if stochastic:
        return lambda variables, x, key: model.apply(variables, x, train=True, rngs={"noise": key})
    return lambda variables, x: model.apply(variables, x, train=False)


def variational_predictors(model, params: Params, model_state=None, *, key: PRNGKey, n_samples: int,
                           batch_size: int = 1000) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """The ``"mc"`` and ``"deterministic"`` predictors (x -> probabilities) of a variational model.

    The stochastic pass is the model in training mode, so it follows the
    model's ``mask_in_training`` / ``mask_noise`` settings (the posterior the
    SGVLB was optimised for). A model with BatchNorm statistics would
    normalise with batch statistics in that mode, so it gets no ``"mc"``.
    """
    variables = {"params": params, **(model_state or {})}
    det = _model_apply(model, False)
    out = {"deterministic": lambda x: deterministic_predictive(det, variables, x, batch_size=batch_size)}
    if not model_state:
        sto = _model_apply(model, True)
        out["mc"] = lambda x: mc_predictive(sto, variables, x, key=key, n_samples=n_samples,
                                            batch_size=batch_size)
    return out


# ----------------------------------------------------------------------------- report


def _json_list(a: np.ndarray) -> list:
    return [None if not math.isfinite(v) else float(v) for v in np.asarray(a, np.float64)]


def mode_metrics(probs, labels, probs_ood=None, *, n_bins: int = 15) -> dict[str, Any]:
    """NLL, ECE, accuracy, reliability bins and (with ``probs_ood``) the entropy AUROC of one mode."""
    p, y = _probs_labels(probs, labels)
    ent = predictive_entropy(p)
    bins = calibration_bins(p, y, n_bins=n_bins)
    out = {"nll": negative_log_likelihood(p, y),
           "ece": expected_calibration_error(p, y, n_bins=n_bins),
           "accuracy": float(np.mean(p.argmax(1) == y)),
           "auroc_ood": None,
           "entropy_in": float(ent.mean()),
           "entropy_ood": None,
           "reliability": {"count": [int(c) for c in bins["count"]],
                           "accuracy": _json_list(bins["accuracy"]),
                           "confidence": _json_list(bins["confidence"])}}
    if probs_ood is not None:
        ent_ood = predictive_entropy(_probs_labels(probs_ood)[0])
        out["auroc_ood"] = auroc(ent_ood, ent)
        out["entropy_ood"] = float(ent_ood.mean())
    return out


def uncertainty_report(predictors: Mapping[str, Callable[[np.ndarray], np.ndarray]], x, labels, *,
                       x_ood=None, n_bins: int = 15) -> dict[str, dict[str, Any]]:
    """Calibration and OOD detection of each prediction mode on one test set.

    Each predictor is called once, on the test images followed by the OOD
    images (so a stochastic predictor never reuses its noise between them).

    Args:
      predictors: mode name ("mc", "deterministic", "dense", ...) -> function
        mapping (N, ...) images to (N, K) probabilities (see
        :func:`variational_predictors`).
      x: in-distribution test images; labels: their labels.
      x_ood: OOD images of the same shape, or None (then ``auroc_ood`` is None).
      n_bins: confidence bins of the ECE.

    Returns:
      ``{mode: {"nll", "ece", "accuracy", "auroc_ood", "entropy_in",
      "entropy_ood", "reliability": {"count", "accuracy", "confidence"}}}`` in
      :data:`MODES` order; AUROC by the Mann–Whitney formula with the entropy
      as the OOD score (OOD = positive).
    """
    n = len(x)
    xs = np.asarray(x) if x_ood is None else np.concatenate([np.asarray(x), np.asarray(x_ood)])
    order = sorted(predictors, key=lambda m: (MODES.index(m) if m in MODES else len(MODES), m))
    out = {}
    for mode in order:
        probs = np.asarray(predictors[mode](xs))
        out[mode] = mode_metrics(probs[:n], labels, None if x_ood is None else probs[n:], n_bins=n_bins)
    return out


def reliability_diagram(results: Mapping[str, Mapping[str, Any]], path, *, title: str = "") -> pathlib.Path:
    """Reliability diagram as PNG: accuracy vs confidence per bin, one line per mode.

    Top: per-bin accuracy against mean confidence (bins with examples), with
    the diagonal of perfect calibration; bottom: examples per bin, one bar set
    per mode.

    Args:
      results: :func:`uncertainty_report`'s dict (``{mode: {"ece", "reliability", ...}}``).
      path: the PNG to write.
      title: figure title.
    """
    from nnopt_jax.plotting import plt

    path = pathlib.Path(path)
    modes = list(results)
    fig, (ax, axh) = plt.subplots(2, 1, figsize=(5.2, 6.2), gridspec_kw={"height_ratios": [3, 1]},
                                  sharex=True)
    ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=1, label="perfect calibration")
    n_bins = max((len(r["reliability"]["count"]) for r in results.values()), default=15)
    width = 1.0 / n_bins / max(len(modes), 1)
    for j, mode in enumerate(modes):
        rel = results[mode]["reliability"]
        pts = [(c, a) for c, a in zip(rel["confidence"], rel["accuracy"]) if c is not None and a is not None]
        line, = ax.plot([c for c, _ in pts], [a for _, a in pts], marker="o", ms=4,
                        label=f"{mode} (ECE {100 * results[mode]['ece']:.2f} %)")
        lefts = np.arange(len(rel["count"])) / len(rel["count"])
        axh.bar(lefts + j * width, rel["count"], width=width, align="edge", color=line.get_color())
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy")
    ax.legend(loc="lower right", fontsize=8)
    axh.set(xlabel="confidence (max probability)", ylabel="examples", yscale="log")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- compress wiring


def load_ood(name: str, like: np.ndarray, *, data_dir=None) -> tuple[np.ndarray | None, str | None]:
    """The OOD test images for in-distribution test images ``like``.

    Args:
      name: a registered dataset (its test split, truncated to ``len(like)``)
        or :data:`UNIFORM_NOISE` (U[0, 1) images of ``like``'s shape from
        :data:`UNIFORM_NOISE_SEED`).
      like: the in-distribution test images.
      data_dir: searched first (see :func:`nnopt_jax.data.load_dataset`).

    Returns:
      ``(images, None)``, or ``(None, reason)`` when the dataset is not on this
      machine or its images have another shape.
    """
    if name == UNIFORM_NOISE:
        rng = np.random.default_rng(UNIFORM_NOISE_SEED)
        return rng.random(like.shape, dtype=np.float32), None
    from nnopt_jax import data as data_lib

    try:
        ds = data_lib.load_dataset(name, data_dir)
    except (data_lib.DatasetNotFoundError, data_lib.DatasetError, ValueError) as err:
        why = " ".join(line.strip() for line in str(err).splitlines()) or type(err).__name__
        return None, f"OOD dataset {name!r} unavailable: {why}"
    x = ds.x_test[:len(like)]
    if x.shape[1:] != like.shape[1:]:
        return None, (f"OOD dataset {name!r} has images of shape {x.shape[1:]}, the test set "
                      f"{like.shape[1:]}; choose a dataset of the same shape or {UNIFORM_NOISE!r}")
    return np.asarray(x), None


def _dense_baseline(path, data_name: str):
    """``(predict: x -> probs, None)`` from a dense run's export, or ``(None, reason)``."""
    import json

    from nnopt_jax.bayes.export import load_export

    d = pathlib.Path(path)
    try:
        exported = load_export(d / "export")
    except FileNotFoundError as err:
        return None, f"eval.dense_baseline: {err}"
    cfg_file = d / "config.json"
    if cfg_file.is_file():
        other = json.loads(cfg_file.read_text()).get("data", {}).get("name")
        if other is not None and other != data_name:
            return None, f"eval.dense_baseline {d} was trained on {other!r}, this run on {data_name!r}"

    def predict(x):
        try:
            return special.softmax(exported.predict(x).astype(np.float64), axis=-1)
        except (ValueError, KeyError) as err:
            raise _Skip(f"eval.dense_baseline {d}: {err}") from err

    return predict, None


class _Skip(Exception):
    """A mode that cannot be evaluated; its message goes into the report's notes."""


def compress_uncertainty(*, method: str, model, params, model_state, x_test, y_test, eval_cfg: Mapping,
                         seed: int, out_dir, data_name: str, data_dir=None, final_params=None,
                         batch_size: int = 1000) -> dict[str, Any]:
    """The ``results["uncertainty"]`` block of :func:`nnopt_jax.bayes.run.compress`.

    Args:
      method: sparse_vd | vnq | dense | pruning.
      model, params, model_state: the trained model; for VNQ, ``params`` are the
        posterior before snapping and ``final_params`` the quantised ones.
      x_test, y_test: the in-distribution test set.
      eval_cfg: the config's ``eval`` block (``uncertainty_samples``,
        ``ood_dataset``, ``dense_baseline``).
      seed: the run's seed (the MC key derives from it).
      out_dir: where ``reliability.png`` goes.

    Returns:
      ``{"modes": {mode: metrics}, "notes": {mode: why skipped}, "n_samples",
      "n_bins", "n_test", "ood_dataset", "n_ood", "ood_skipped" (reason or
      None), "plot", "wall_time_s"}``.
    """
    t0 = time.perf_counter()
    n_samples = int(eval_cfg.get("uncertainty_samples", 30))
    ood_name = str(eval_cfg.get("ood_dataset", "fashion_mnist"))
    key = jax.random.fold_in(jax.random.key(int(seed)), 0x0D15EA5E)
    notes: dict[str, str] = {}
    predictors: dict[str, Callable] = {}
    if method in ("sparse_vd", "vnq"):
        predictors.update(variational_predictors(model, params, model_state, key=key, n_samples=n_samples,
                                                 batch_size=batch_size))
        if "mc" not in predictors:
            notes["mc"] = "skipped: the model has BatchNorm, whose training-mode pass uses batch statistics"
        else:
            notes["mc"] = (f"{n_samples} training-mode passes (local reparameterisation noise; "
                           f"mask_in_training={getattr(model, 'mask_in_training', None)}, "
                           f"mask_noise={getattr(model, 'mask_noise', None)})")
        notes["deterministic"] = "the posterior mean with log alpha >= threshold weights zeroed"
        if method == "vnq" and final_params is not None:
            notes["deterministic"] += ", before snapping (results test_error_before_quantization)"
            notes["quantized"] = "the ternary network compress exports (results test_error)"
            det = _model_apply(model, False)
            qvars = {"params": final_params, **(model_state or {})}
            predictors["quantized"] = lambda x: deterministic_predictive(det, qvars, x, batch_size=batch_size)
        baseline = eval_cfg.get("dense_baseline")
        if baseline:
            fn, reason = _dense_baseline(baseline, data_name)
            if fn is None:
                notes["dense"] = f"skipped: {reason}"
            else:
                predictors["dense"] = fn
                notes["dense"] = f"the dense run in {baseline} (its export)"
        else:
            notes["dense"] = "skipped: set eval.dense_baseline to a dense run's out dir to compare"
    else:
        det = _model_apply(model, False)
        dvars = {"params": params, **(model_state or {})}
        predictors["dense"] = lambda x: deterministic_predictive(det, dvars, x, batch_size=batch_size)
        notes["dense"] = "this run's own network" + (" (pruned)" if method == "pruning" else "")
        notes["mc"] = notes["deterministic"] = f"not applicable: method {method!r} has no posterior"

    x_ood, ood_reason = load_ood(ood_name, np.asarray(x_test), data_dir=data_dir)
    modes = {}
    for mode, fn in predictors.items():  # one at a time, so that a failing mode only skips itself
        try:
            modes.update(uncertainty_report({mode: fn}, x_test, y_test, x_ood=x_ood, n_bins=N_BINS))
        except _Skip as err:
            notes[mode] = f"skipped: {err}"
    modes = {m: modes[m] for m in sorted(modes, key=lambda m: MODES.index(m) if m in MODES else len(MODES))}
    plot = None
    if modes:
        plot = reliability_diagram(modes, pathlib.Path(out_dir) / "reliability.png",
                                   title=f"{method}: reliability on the test set").name
    return {"modes": modes, "notes": notes, "n_samples": n_samples, "n_bins": N_BINS,
            "n_test": int(len(x_test)), "ood_dataset": ood_name,
            "n_ood": 0 if x_ood is None else int(len(x_ood)), "ood_skipped": ood_reason,
            "plot": plot, "wall_time_s": time.perf_counter() - t0}
