"""Export of compressed models: CSR for sparse VD / pruning, 2-bit codes for VNQ.

VNQ codes: 0 -> 0, 1 -> +a, 2 -> -a, 3 -> the next float32 of the layer's
``outliers`` (row-major in the stored (out, in) matrix; only with
``quantize.outlier_factor``).

An export directory holds ``model.npz`` (numpy arrays only) and ``meta.json``
(architecture, layer shapes, format). Sizes are the real bytes of the stored
arrays. :func:`load_export` returns an :class:`ExportedModel` whose ``predict``
runs the compacted network (:mod:`nnopt_jax.bayes.compact`: dead and unused
units removed, the rest rebuilt once as dense kernels for XLA), or with
``backend="scipy"`` runs directly on the compressed format with
``scipy.sparse`` (CSR matrix products; convolutions via im2col); its
``dense_weights`` rebuilds the kernels for comparison with the masked model.

Layout: a kernel of shape (..., fan_in_last, out) — Dense (in, out) or conv HWIO —
is viewed as a matrix W2 of shape (out, prod(shape[:-1])), rows = output units.
"""

from __future__ import annotations

import functools
import json
import pathlib
from typing import Mapping

import numpy as np
import scipy.sparse as sp

from nnopt_jax.bayes.compression import OUTLIER_CODE
from nnopt_jax.bayes.models import ARCHITECTURES

__all__ = ["export_sparse", "export_quantized", "load_export", "ExportedModel", "pack_2bit",
           "unpack_2bit", "SUPPORTED_ARCHS"]

SUPPORTED_ARCHS = tuple(ARCHITECTURES)


def _index_dtype(n: int):
    return np.uint8 if n <= 2**8 else np.uint16 if n <= 2**16 else np.uint32


def _as_matrix(w: np.ndarray) -> np.ndarray:
    w = np.asarray(w, np.float32)
    return w.reshape(-1, w.shape[-1]).T


def pack_2bit(codes: np.ndarray) -> np.ndarray:
    """Packs integer codes in {0, 1, 2, 3} four to a byte (little-endian within the byte)."""
    c = np.asarray(codes, np.uint8).ravel()
    if c.size and c.max() > 3:
        raise ValueError("2-bit codes must lie in {0, 1, 2, 3}")
    pad = (-c.size) % 4
    c = np.concatenate([c, np.zeros(pad, np.uint8)]).reshape(-1, 4)
    return (c[:, 0] | (c[:, 1] << 2) | (c[:, 2] << 4) | (c[:, 3] << 6)).astype(np.uint8)


def unpack_2bit(packed: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`pack_2bit` for ``n`` codes."""
    p = np.asarray(packed, np.uint8)
    c = np.stack([(p >> s) & 3 for s in (0, 2, 4, 6)], axis=1).ravel()
    return c[:n]


def _write(out_dir: pathlib.Path, arrays: dict, meta: dict) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / "model.npz", **arrays)
    nbytes = int(sum(np.asarray(a).nbytes for a in arrays.values()))
    meta = dict(meta, bytes=nbytes)
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    return meta


def export_sparse(weights: Mapping[str, np.ndarray], biases: Mapping[str, np.ndarray], out_dir, *,
                  arch: str | None = None) -> dict:
    """Writes every kernel as CSR (float32 values, smallest unsigned column indices).

    Args:
      weights: layer name -> kernel (zeros are pruned weights).
      biases: layer name -> bias.
      out_dir: export directory.
      arch: architecture key of :data:`ARCHITECTURES` (enables ``predict``).

    Returns:
      The meta dict, with ``bytes`` (stored array bytes) and ``dense_bytes``
      (float32 dense kernels + biases).
    """
    arrays, layers = {}, {}
    dense_bytes = 0
    for i, (name, w) in enumerate(weights.items()):
        m = sp.csr_matrix(_as_matrix(w))
        m.eliminate_zeros()
        key = f"l{i}"
        arrays[f"{key}_data"] = m.data.astype(np.float32)
        arrays[f"{key}_indices"] = m.indices.astype(_index_dtype(m.shape[1]))
        arrays[f"{key}_indptr"] = m.indptr.astype(_index_dtype(m.nnz + 1))
        dense_bytes += np.asarray(w).size * 4
        if name in biases:
            arrays[f"{key}_bias"] = np.asarray(biases[name], np.float32)
            dense_bytes += arrays[f"{key}_bias"].nbytes
        layers[name] = {"key": key, "shape": list(np.shape(w)), "nnz": int(m.nnz)}
    return _write(pathlib.Path(out_dir), arrays,
                  {"format": "csr", "arch": arch, "layers": layers, "dense_bytes": dense_bytes})


def export_quantized(params: Mapping, info: Mapping[str, dict], out_dir, *, arch: str | None = None,
                     model_state=None) -> dict:
    """Writes VNQ layers as 2-bit packed codes + a 3-value codebook (+ biases).

    Args:
      params: quantised parameters (from :func:`compression.quantize_params`).
      info: per layer ``{"codes", "level"}`` from the same function; code 3
        marks a weight whose float32 value (its ``theta`` in ``params``) is
        stored in ``outliers``, row-major in the stored (out, in) matrix.
      out_dir: export directory.
      arch: architecture key (enables ``predict``); other models export codes only.
    """
    from nnopt_jax.bayes.compression import iter_layers

    del model_state  # BatchNorm statistics are not exported (DenseNet inference stays in JAX)
    biases = {n: np.asarray(p["bias"]) for n, p in iter_layers(params) if "bias" in p}
    thetas = {n: np.asarray(p["theta"]) for n, p in iter_layers(params) if "theta" in p}
    arrays, layers = {}, {}
    dense_bytes = 0
    for i, (name, d) in enumerate(info.items()):
        codes = np.asarray(d["codes"])
        key = f"l{i}"
        matrix_codes = _as_matrix(codes.astype(np.float32)).astype(np.uint8)
        arrays[f"{key}_codes"] = pack_2bit(matrix_codes)
        arrays[f"{key}_codebook"] = np.array([0.0, d["level"], -d["level"]], np.float32)
        outliers = _as_matrix(thetas[name])[matrix_codes == OUTLIER_CODE]  # kept weights
        if outliers.size:
            arrays[f"{key}_outliers"] = outliers
        dense_bytes += codes.size * 4
        if name in biases:
            arrays[f"{key}_bias"] = biases[name].astype(np.float32)
            dense_bytes += arrays[f"{key}_bias"].nbytes
        layers[name] = {"key": key, "shape": list(codes.shape), "nnz": int(np.count_nonzero(codes)),
                        "outliers": int(outliers.size)}
    return _write(pathlib.Path(out_dir), arrays,
                  {"format": "ternary2bit", "arch": arch, "layers": layers, "dense_bytes": dense_bytes})


SPARSE_MAX_DENSITY = 0.05
"""Layers with more non-zeros than this share are multiplied densely (BLAS) by
``predict``: scipy's CSR product runs at about 1 GFLOP/s on one core here,
BLAS at tens, so a sparse product only wins for very sparse layers. Storage
stays compressed either way."""


class ExportedModel:
    """A loaded export: per layer a CSR matrix (or, above
    :data:`SPARSE_MAX_DENSITY`, its dense expansion) and a numpy/scipy ``predict``."""

    def __init__(self, meta: dict, arrays: Mapping[str, np.ndarray]):
        self.meta = meta
        self.matrices: dict[str, sp.csr_matrix | np.ndarray] = {}
        self.biases: dict[str, np.ndarray] = {}
        for name, layer in meta["layers"].items():
            key, shape = layer["key"], layer["shape"]
            n_out, n_in = shape[-1], int(np.prod(shape[:-1]))
            if meta["format"] == "csr":
                m = sp.csr_matrix((arrays[f"{key}_data"], arrays[f"{key}_indices"].astype(np.int64),
                                   arrays[f"{key}_indptr"].astype(np.int64)), shape=(n_out, n_in))
            elif meta["format"] == "ternary2bit":
                codes = unpack_2bit(arrays[f"{key}_codes"], n_out * n_in).reshape(n_out, n_in)
                book = np.append(arrays[f"{key}_codebook"], np.float32(0.0))  # + OUTLIER_CODE
                w = book[codes]
                if f"{key}_outliers" in arrays:
                    w[codes == OUTLIER_CODE] = arrays[f"{key}_outliers"]
                m = sp.csr_matrix(w)
                m.eliminate_zeros()
            else:
                raise ValueError(f"unknown export format {meta['format']!r}")
            self.matrices[name] = m.toarray() if m.nnz > SPARSE_MAX_DENSITY * n_out * n_in else m
            if f"{key}_bias" in arrays:
                self.biases[name] = np.asarray(arrays[f"{key}_bias"])

    def resolve(self, layer: str) -> str:
        """The stored name of architecture layer ``layer`` (exact, or a '/'-suffix such as 'mlp/fc1')."""
        if layer in self.matrices:
            return layer
        hits = [n for n in self.matrices if n.endswith("/" + layer)]
        if len(hits) != 1:
            raise KeyError(f"export has no unique layer {layer!r}; layers are {sorted(self.matrices)}")
        return hits[0]

    @property
    def nbytes(self) -> int:
        return int(self.meta["bytes"])

    def dense_weights(self) -> dict[str, np.ndarray]:
        """Kernels in their original layout (Dense (in, out), conv HWIO)."""
        out = {}
        for name, layer in self.meta["layers"].items():
            m = self.matrices[name]
            out[name] = (m.toarray() if sp.issparse(m) else m).T.reshape(layer["shape"])
        return out

    def _product(self, name, columns):
        """``W @ columns + b``, with ``columns`` of shape (fan_in, m), C-contiguous:
        scipy's sparse-dense product runs along rows of the dense operand."""
        y = self.matrices[name] @ np.ascontiguousarray(columns)
        return y + self.biases[name][:, None] if name in self.biases else y

    def _linear(self, name, x2d):
        return self._product(name, x2d.T).T

    def _conv(self, name, x):
        kh, kw, cin, cout = self.meta["layers"][name]["shape"]
        n, h, w, c = x.shape
        ho, wo = h - kh + 1, w - kw + 1
        # im2col, transposed: columns (kh*kw*cin, n*ho*wo) in HWIO row order
        s = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))  # n, ho, wo, c, kh, kw
        columns = s.transpose(4, 5, 3, 0, 1, 2).reshape(kh * kw * c, n * ho * wo)
        return self._product(name, columns).T.reshape(n, ho, wo, cout)

    def _ops(self):
        arch = self.meta.get("arch")
        if arch not in ARCHITECTURES:
            raise ValueError(f"exported inference supports the architectures {sorted(ARCHITECTURES)}, "
                             f"not {arch!r}; use dense_weights() with the JAX model instead")
        return ARCHITECTURES[arch]

    @functools.cached_property
    def compact(self):
        """The jit-compiled compact network ``f(x) -> logits`` (built on first use)."""
        from nnopt_jax.bayes.compact import compact_layers, make_compact_predict

        ops = [(op, self.resolve(a) if op in ("conv", "dense") else a) for op, a in self._ops()]
        weights = self.dense_weights()
        layers = compact_layers(ops, {n: weights[n] for op, n in ops if op in ("conv", "dense")},
                                self.biases)
        return make_compact_predict(ops, layers)

    def predict(self, x: np.ndarray, *, backend: str = "jax") -> np.ndarray:
        """Logits of the exported network on ``x`` (NHWC float32).

        Args:
          x: inputs.
          backend: "jax" (the compact network, :attr:`compact`) or "scipy"
            (each layer a CSR product below :data:`SPARSE_MAX_DENSITY`, else dense).
        """
        if backend == "jax":
            self._ops()
            return np.asarray(self.compact(x))
        if backend != "scipy":
            raise ValueError(f"unknown backend {backend!r}; use 'jax' or 'scipy'")
        x = np.asarray(x, np.float32)
        for op, arg in self._ops():
            if op == "flatten":
                x = x.reshape(x.shape[0], -1)
            elif op == "dense":
                x = self._linear(self.resolve(arg), x)
            elif op == "conv":
                x = self._conv(self.resolve(arg), x)
            elif op == "relu":
                x = np.maximum(x, 0.0)
            elif op == "maxpool":
                x = _max_pool(x, arg)
        return np.asarray(x)


def _max_pool(x: np.ndarray, k: int) -> np.ndarray:
    """``k x k`` max pooling with stride ``k`` (NHWC), as the maximum of ``k²``
    strided views (numpy's ``max`` over the two window axes of a reshape is
    several times slower)."""
    h, w = x.shape[1] // k * k, x.shape[2] // k * k
    views = [x[:, i:h:k, j:w:k] for i in range(k) for j in range(k)]
    return functools.reduce(np.maximum, views)


def load_export(path) -> ExportedModel:
    """Loads an export directory written by :func:`export_sparse` or :func:`export_quantized`."""
    path = pathlib.Path(path)
    if not (path / "meta.json").is_file() or not (path / "model.npz").is_file():
        raise FileNotFoundError(f"{path} is not an export directory (needs meta.json and model.npz); "
                                "create one with compress(cfg, out_dir=...) or export_sparse()")
    meta = json.loads((path / "meta.json").read_text())
    with np.load(path / "model.npz") as f:
        arrays = {k: f[k] for k in f.files}
    return ExportedModel(meta, arrays)
