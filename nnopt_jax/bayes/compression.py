"""Masks, quantisation and compression statistics of trained models.

Conventions: a *variational layer* is a parameter sub-dict holding ``theta``
and ``log_sigma2`` (see :mod:`nnopt_jax.bayes.layers`); a *dense layer* holds a
``kernel``. Layer names are the '/'-joined parameter paths. Compression is
|W| / |W != 0| over all weight tensors (biases excluded), as in Molchanov et al.
(2017), Table 1; ``results.json`` follows DESIGN.md section 2.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import jax.numpy as jnp
import numpy as np

from nnopt_jax.bayes import kl as _kl

__all__ = [
    "iter_layers", "variational_masks", "deterministic_weights", "dense_weights",
    "quantize_params", "nearest_codebook", "layer_stats", "compression_ratio",
    "make_results", "PAPER_RESULTS", "markdown_table", "init_levels", "check_vnq_layer_names",
    "with_layer_from",
]


def iter_layers(params: Mapping, prefix: str = "") -> Iterator[tuple[str, Mapping]]:
    """Yields ``(name, sub_dict)`` for every dict holding ``theta`` or ``kernel``."""
    if "theta" in params or "kernel" in params:
        yield prefix, params
        return
    for key in sorted(params):
        value = params[key]
        if isinstance(value, Mapping):
            yield from iter_layers(value, f"{prefix}/{key}" if prefix else str(key))


def log_alpha_np(theta, log_sigma2) -> np.ndarray:
    """Host (numpy, float32) twin of :func:`nnopt_jax.bayes.kl.log_alpha` for statistics."""
    theta = np.asarray(theta, np.float32)
    la = np.asarray(log_sigma2, np.float32) - np.log(theta * theta + np.float32(1e-8))
    return np.clip(la, _kl.LOG_ALPHA_MIN, _kl.LOG_ALPHA_MAX)


def variational_masks(params: Mapping, *, threshold: float = 3.0) -> dict[str, np.ndarray]:
    """Per variational layer, the boolean keep-mask log alpha < threshold."""
    out = {}
    for name, p in iter_layers(params):
        if "theta" in p:
            out[name] = log_alpha_np(p["theta"], p["log_sigma2"]) < threshold
    return out


def deterministic_weights(params: Mapping, *, threshold: float = 3.0) -> dict[str, np.ndarray]:
    """Evaluation-mode kernels: theta with weights of log alpha >= threshold zeroed."""
    masks = variational_masks(params, threshold=threshold)
    return {name: np.asarray(p["theta"]) * masks[name]
            for name, p in iter_layers(params) if "theta" in p}


def dense_weights(params: Mapping) -> dict[str, np.ndarray]:
    """The kernel of every layer: deterministic masked theta or a plain ``kernel``."""
    out = {}
    for name, p in iter_layers(params):
        out[name] = np.asarray(p["kernel"]) if "kernel" in p else None
    out.update(deterministic_weights(params))
    return out


def nearest_codebook(w: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Snaps ``w`` to the nearest of {-a, 0, a}: returns ``(values, codes)``.

    Codes: 0 -> 0, 1 -> +a, 2 -> -a (two bits per weight).
    """
    w = np.asarray(w)
    a = abs(float(level))
    codebook = np.array([0.0, a, -a], np.float32)
    codes = np.argmin(np.abs(w[..., None] - codebook), axis=-1).astype(np.uint8)
    return codebook[codes], codes


OUTLIER_CODE = 3
"""The fourth 2-bit code: a weight kept at full precision (see :func:`quantize_params`)."""


def quantize_params(params: Mapping, *, threshold: float = 3.0,
                    outlier_factor: float | None = None) -> tuple[dict, dict[str, dict]]:
    """Achterhold et al. (2018), sec. 4: prune log alpha >= threshold, then snap to {-a, 0, a}.

    With ``outlier_factor`` k, kept weights with ``|theta| > k a`` are not snapped
    but kept in float32 under the spare code :data:`OUTLIER_CODE` (outlier-aware
    quantisation, cf. Park et al. 2018): a VNQ posterior gathers almost every
    weight at the codebook, but the few left far beyond ``a`` (on LeNet-300-100,
    0.5 % of the kept weights at up to 16 a) carry much of the signal.

    Returns ``(new_params, info)``: ``new_params`` evaluates the quantised net through
    the same variational model (theta replaced by codebook values, log sigma^2 set
    very low so nothing else is pruned), and ``info[name] = {"codes", "level",
    "outliers"}`` (the outliers' values in C order of the kernel).

    Raises:
        ValueError: ``outlier_factor`` not above 1.
    """
    if outlier_factor is not None and not float(outlier_factor) > 1.0:
        raise ValueError(f"outlier_factor must be > 1 (a multiple of the level a), got {outlier_factor}")
    masks = variational_masks(params, threshold=threshold)
    info: dict[str, dict] = {}

    def rec(p, prefix):
        if "theta" in p and "level" in p:
            name = prefix
            level = abs(float(p["level"]))
            w = np.asarray(p["theta"]) * masks[name]
            values, codes = nearest_codebook(w, level)
            codes = np.where(masks[name], codes, 0).astype(np.uint8)
            values = np.where(masks[name], values, 0.0).astype(np.float32)
            if outlier_factor is not None:
                far = masks[name].astype(bool) & (np.abs(w) > float(outlier_factor) * level)
                codes = np.where(far, OUTLIER_CODE, codes).astype(np.uint8)
                values = np.where(far, w, values).astype(np.float32)
            info[name] = {"codes": codes, "level": level,
                          "outliers": values[codes == OUTLIER_CODE].astype(np.float32)}
            q = dict(p)
            q["theta"] = jnp.asarray(values)
            q["log_sigma2"] = jnp.full_like(jnp.asarray(p["log_sigma2"]), -30.0)
            return q
        return {k: rec(v, f"{prefix}/{k}" if prefix else str(k)) if isinstance(v, Mapping) else v
                for k, v in p.items()}

    return rec(params, ""), info


def with_layer_from(params: Mapping, other: Mapping, name: str) -> dict:
    """``params`` with the layer ``name`` (a '/'-joined path) taken from ``other``.

    With ``other`` from :func:`quantize_params`, this is the network with one
    layer snapped and the rest as trained: evaluating it for every layer shows
    which layer's snapping costs the accuracy.

    Raises:
        KeyError: ``name`` is not a layer of both trees.
    """
    def swap(p, o, path):
        if not (isinstance(p, Mapping) and isinstance(o, Mapping) and path[0] in p and path[0] in o):
            raise KeyError(f"no layer {name!r} in both parameter trees")
        head = path[0]
        return {**p, head: o[head] if len(path) == 1 else swap(p[head], o[head], path[1:])}

    return swap(params, other, name.split("/"))


def init_levels(params: Mapping, *, quantile: float = 0.9,
                quantile_by_layer: Mapping[str, float] | None = None) -> dict:
    """Sets each VNQ layer's level a to a quantile of |theta| (after pre-training).

    ``quantile_by_layer`` maps a layer's name (as :func:`iter_layers` names it) to
    its own quantile; the others use ``quantile``.

    Raises:
        ValueError: ``quantile_by_layer`` names a layer that is not a VNQ layer.
    """
    by_layer = dict(quantile_by_layer or {})
    check_vnq_layer_names(params, by_layer, what="quantile_by_layer")

    def rec(p, prefix):
        if "theta" in p and "level" in p:
            q = dict(p)
            level = np.quantile(np.abs(np.asarray(p["theta"])), by_layer.get(prefix, quantile))
            q["level"] = jnp.asarray(level, jnp.float32)
            return q
        return {k: rec(v, f"{prefix}/{k}" if prefix else str(k)) if isinstance(v, Mapping) else v
                for k, v in p.items()}

    return rec(params, "")


def check_vnq_layer_names(params: Mapping, names, *, what: str) -> None:
    """Raises a ValueError naming the VNQ layers if ``names`` holds one that is not."""
    layers = [n for n, p in iter_layers(params) if "level" in p]
    unknown = sorted(set(names) - set(layers))
    if unknown:
        raise ValueError(f"{what} names {', '.join(map(repr, unknown))}, which the model has no VNQ "
                         f"layer of; its VNQ layers are {', '.join(map(repr, layers))}")


def layer_stats(weights: Mapping[str, np.ndarray]) -> list[dict]:
    """``[{name, n_weights, n_nonzero, sparsity}]`` per weight tensor (DESIGN.md sec. 2)."""
    rows = []
    for name, w in weights.items():
        w = np.asarray(w)
        n, nz = int(w.size), int(np.count_nonzero(w))
        rows.append({"name": name, "n_weights": n, "n_nonzero": nz, "sparsity": 1.0 - nz / n})
    return rows


def compression_ratio(layers: list[dict]) -> float:
    """|W| / |W != 0| over all weight tensors."""
    n = sum(r["n_weights"] for r in layers)
    nz = sum(r["n_nonzero"] for r in layers)
    return float(n / max(nz, 1))


def make_results(test_error: float, weights: Mapping[str, np.ndarray], *, codebook: Any = None,
                 bits: int | None = None, **extra) -> dict:
    """The ``results.json`` payload of a compression run (DESIGN.md sec. 2)."""
    layers = layer_stats(weights)
    out = {"test_error": float(test_error), "compression": compression_ratio(layers), "layers": layers}
    n = sum(r["n_weights"] for r in layers)
    out["nonzero_fraction"] = sum(r["n_nonzero"] for r in layers) / max(n, 1)
    if codebook is not None:
        out["codebook"] = codebook
        out["bits"] = int(bits if bits is not None else 2)
    out.update(extra)
    return out


# Published numbers (test error %, compression x or non-zero %), DESIGN.md section 3.
PAPER_RESULTS = {
    ("lenet300_100", "dense"): {"test_error": 1.64, "compression": 1.0, "source": "Molchanov et al. 2017"},
    ("lenet300_100", "pruning"): {"test_error": 1.59, "compression": 12.0, "source": "Han et al. 2015"},
    ("lenet300_100", "sparse_vd"): {"test_error": 1.92, "compression": 68.0,
                                    "sparsity": "98.9-97.2-62.0", "source": "Molchanov et al. 2017"},
    ("lenet5", "dense"): {"test_error": 0.80, "compression": 1.0, "source": "Molchanov et al. 2017"},
    ("lenet5", "pruning"): {"test_error": 0.77, "compression": 12.0, "source": "Han et al. 2015"},
    ("lenet5", "sparse_vd"): {"test_error": 0.75, "compression": 280.0,
                              "sparsity": "67-98-99.8-95", "source": "Molchanov et al. 2017"},
    ("lenet5", "vnq"): {"test_error": 0.73, "nonzero_percent": 28.3, "bits": 2,
                        "source": "Achterhold et al. 2018"},
    ("densenet", "vnq"): {"test_error": 8.83, "nonzero_percent": 46.0, "bits": 2,
                          "source": "Achterhold et al. 2018 (DenseNet-121)"},
}


def markdown_table(rows: list[dict]) -> str:
    """A Markdown table of measured rows beside the paper's numbers.

    Each row: ``model``, ``method``, ``results`` (a results.json dict) and
    optionally ``epochs``, ``wall_time_s``, ``command``.
    """
    head = ("| model | method | test error % (ours / paper) | compression × (ours / paper) | "
            "non-zero % | per-layer sparsity % | epochs | wall time | command |\n"
            "|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for row in rows:
        r = row["results"]
        paper = PAPER_RESULTS.get((row["model"], row["method"]), {})
        p_err = f"{paper['test_error']:.2f}" if "test_error" in paper else "–"
        p_comp = (f"{paper['compression']:.0f}" if "compression" in paper else
                  f"{paper['nonzero_percent']:.1f} % nz" if "nonzero_percent" in paper else "–")
        sparsity = "-".join(f"{100 * l['sparsity']:.1f}" for l in r.get("layers", []))
        wall = f"{row['wall_time_s'] / 60:.1f} min" if row.get("wall_time_s") else "–"
        lines.append(
            f"| {row['model']} | {row['method']} | {100 * r['test_error']:.2f} / {p_err} | "
            f"{r['compression']:.1f} / {p_comp} | {100 * r.get('nonzero_fraction', 1 / r['compression']):.2f} | "
            f"{sparsity} | {row.get('epochs', '–')} | {wall} | `{row.get('command', '')}` |")
    return head + "\n".join(lines) + "\n"
