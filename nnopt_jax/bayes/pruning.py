"""Magnitude pruning with retraining (Han, Pool, Tran, Dally 2015): the "Pruning" rows.

Each layer's kernel is pruned to a target sparsity by a per-layer magnitude
threshold; the network is then retrained with the masks held fixed, and the
prune/retrain round is repeated with increasing sparsity (iterative pruning,
Han et al. sec. 3.3).
"""

from __future__ import annotations

from typing import Mapping

import jax.numpy as jnp
import numpy as np

from nnopt_jax.bayes.compression import iter_layers
from nnopt_jax.types import Batch, LossFn

__all__ = ["magnitude_threshold", "magnitude_masks", "apply_masks", "masked_loss"]


def magnitude_threshold(w: np.ndarray, sparsity: float) -> float:
    """The |w| threshold below which a fraction ``sparsity`` of the weights lies."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    if sparsity == 0.0:
        return -1.0
    return float(np.quantile(np.abs(np.asarray(w)), sparsity))


def magnitude_masks(params: Mapping, sparsity: Mapping[str, float]) -> dict[str, np.ndarray]:
    """Per-layer keep-masks |w| > threshold reaching ``sparsity[layer]`` (layers by name).

    Layers missing from ``sparsity`` are kept dense; unknown names raise.
    """
    names = {n for n, p in iter_layers(params) if "kernel" in p}
    unknown = set(sparsity) - names
    if unknown:
        raise ValueError(f"pruning.sparsity names unknown layers {sorted(unknown)}; layers are {sorted(names)}")
    masks = {}
    for name, p in iter_layers(params):
        if "kernel" in p:
            w = np.asarray(p["kernel"])
            thr = magnitude_threshold(w, float(sparsity.get(name, 0.0)))
            masks[name] = (np.abs(w) > thr).astype(np.float32)
    return masks


def apply_masks(params: Mapping, masks: Mapping[str, np.ndarray]) -> dict:
    """Multiplies each named layer's kernel by its mask (a pure function of the tree)."""

    def rec(p, prefix):
        if "kernel" in p and prefix in masks:
            q = dict(p)
            q["kernel"] = p["kernel"] * masks[prefix]
            return q
        return {k: rec(v, f"{prefix}/{k}" if prefix else str(k)) if isinstance(v, Mapping) else v
                for k, v in p.items()}

    return rec(params, "")


def masked_loss(loss_fn: LossFn, masks: Mapping[str, np.ndarray]) -> LossFn:
    """Wraps ``loss_fn`` so pruned weights are zero in the forward pass and get zero gradient."""
    masks = {k: jnp.asarray(v) for k, v in masks.items()}

    def wrapped(params, model_state, batch: Batch, *, key, step):
        return loss_fn(apply_masks(params, masks), model_state, batch, key=key, step=step)

    return wrapped
