"""Compact inference for exported models: dead units removed, dense XLA kernels.

Sparse VD and VNQ do not only zero single weights: whole filters and units
die (LeNet-5 sparse VD keeps a few of conv1's 20 filters and a few dozen of
fc1's 500 units). A unit is *dead* when its kernel column is all zero (its
output is the constant ``bias``, after the nonlinearity) and *unused* when
the next layer's weights reading it are all zero. :func:`compact_layers`
removes both, exactly:

* a dead unit's constant output ``v`` is folded into the next layer's bias,
  ``b' = b + sum_{taps} W[..., c, :] v_c`` (exact for VALID convolutions and
  dense layers: every output position reads every tap; max-pooling and ReLU
  map a constant to a constant);
* an unused unit is dropped with its column.

What remains is a smaller dense network that XLA runs with its own
convolutions and matrix products (at the densities sparse VD leaves in the
surviving units, a dense product beats a CSR one on CPUs; storage stays
compressed in the export). :func:`make_compact_predict` jit-compiles it.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

__all__ = ["compact_layers", "make_compact_predict", "CompactLayer"]

Ops = Sequence[tuple[str, Any]]


class CompactLayer(dict):
    """``{"kernel", "bias"}`` of one kept layer (kernel in its original layout)."""


def compact_layers(ops: Ops, kernels: Mapping[str, np.ndarray], biases: Mapping[str, np.ndarray]
                   ) -> dict[str, CompactLayer]:
    """Removes dead and unused units of a layer sequence (see the module docstring).

    Args:
      ops: ``(op, arg)`` sequence as in :data:`nnopt_jax.bayes.models.ARCHITECTURES`
        ("conv"/"dense" with a layer name, "maxpool" with a window, "relu",
        "flatten"; convolutions VALID with stride 1).
      kernels: layer name -> kernel (Dense (in, out), conv HWIO), pruned weights zero.
      biases: layer name -> bias (missing: zero).

    Returns:
      Per layer the reduced kernel and bias; the last layer keeps all its outputs.
    """
    names = [a for op, a in ops if op in ("conv", "dense")]
    k = {n: np.asarray(kernels[n], np.float64) for n in names}
    b = {n: np.asarray(biases.get(n, np.zeros(k[n].shape[-1])), np.float64) for n in names}

    # Backward: which outputs of each layer the next one reads at all.
    used = {names[-1]: np.ones(k[names[-1]].shape[-1], bool)}
    for prev, nxt in zip(names[:-1], names[1:]):
        w = k[nxt]
        reads = np.any(w != 0, axis=tuple(a for a in range(w.ndim) if a != w.ndim - 2))
        used[prev] = reads.reshape(-1, k[prev].shape[-1]).any(axis=0)  # (h, w, c) features -> c

    layers: dict[str, CompactLayer] = {}
    keep_in = const_in = None  # previous layer: kept channels; constant output of the others
    for name in names:
        w, bias = k[name], b[name].copy()
        if keep_in is not None:
            repeat = w.shape[-2] // const_in.size  # spatial positions behind a flatten (else 1)
            const = np.tile(const_in, repeat)
            keep = np.flatnonzero(np.tile(_mask(keep_in, const_in.size), repeat))
            taps = w if w.ndim == 2 else w.sum(axis=(0, 1))  # (c_in, c_out)
            bias += const @ taps  # the dropped channels' constant contribution, exactly
            w = w[..., keep, :]
        alive = np.any(w != 0, axis=tuple(range(w.ndim - 1)))
        last = name == names[-1]
        keep_out = np.arange(w.shape[-1]) if last else np.flatnonzero(alive & used[name])
        layers[name] = CompactLayer(kernel=w[..., keep_out].astype(np.float32),
                                    bias=bias[keep_out].astype(np.float32))
        # dead units output their bias (through ReLU / pooling); unused ones are never read
        const_out = _through_activations(ops, name, np.where(alive | ~used[name], 0.0, bias))
        keep_in, const_in = keep_out, np.where(_mask(keep_out, w.shape[-1]), 0.0, const_out)
    return layers


def _mask(idx: np.ndarray, n: int) -> np.ndarray:
    m = np.zeros(n, bool)
    m[idx] = True
    return m


def _through_activations(ops: Ops, name: str, const: np.ndarray) -> np.ndarray:
    """Applies the ops between layer ``name`` and the next layer to constant channels."""
    i = [a for _, a in ops].index(name) + 1
    while i < len(ops) and ops[i][0] not in ("conv", "dense"):
        if ops[i][0] == "relu":
            const = np.maximum(const, 0.0)
        i += 1  # maxpool and flatten keep a constant channel's value
    return const


def make_compact_predict(ops: Ops, layers: Mapping[str, CompactLayer]) -> Callable:
    """A jit-compiled ``predict(x) -> logits`` over ``layers`` (compacted or not; XLA kernels)."""
    import jax
    import jax.numpy as jnp

    from nnopt_jax.models.pooling import max_pool

    params = {n: (jnp.asarray(l["kernel"]), jnp.asarray(l["bias"])) for n, l in layers.items()}

    @jax.jit
    def predict(params, x):
        for op, arg in ops:
            if op == "flatten":
                x = x.reshape(x.shape[0], -1)
            elif op == "dense":
                w, b = params[arg]
                x = x @ w + b
            elif op == "conv":
                w, b = params[arg]
                x = jax.lax.conv_general_dilated(x, w, (1, 1), "VALID",
                                                 dimension_numbers=("NHWC", "HWIO", "NHWC")) + b
            elif op == "relu":
                x = jnp.maximum(x, 0.0)
            elif op == "maxpool":
                x = max_pool(x, arg)
        return x

    return lambda x: predict(params, jnp.asarray(x, jnp.float32))
