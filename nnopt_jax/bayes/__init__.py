"""Bayesian compression: sparse variational dropout and variational network quantisation.

Modules:
  kl           KL approximations (Molchanov et al. 2017 eq. 14; Achterhold et al. 2018).
  priors       NumPyro priors (LogUniform, VNQPrior), Normal posterior, registered KL.
  layers       Flax VariationalDense / VariationalConv (additive + local reparameterisation).
  objectives   SGVLB, KL warm-up, learning-rate schedules, optimisers.
  models       Variational LeNet-300-100, LeNet-5-Caffe, small DenseNet.
  pruning      Magnitude pruning with retraining (Han et al. 2015).
  compression  Masks, quantisation, per-layer statistics, results.json, tables.
  export       CSR / 2-bit exports and sparse inference.
  run          ``compress(cfg, out_dir=...)``; cli and demo on top.
"""

from nnopt_jax import jax_cache

jax_cache.enable()  # before anything compiles: see nnopt_jax.jax_cache

from nnopt_jax.bayes.compression import (compression_ratio, deterministic_weights, layer_stats,
                                         make_results, markdown_table, quantize_params,
                                         variational_masks)
from nnopt_jax.bayes.export import export_quantized, export_sparse, load_export
from nnopt_jax.bayes.kl import kl_log_uniform, kl_vnq, log_alpha, neg_kl_log_uniform
from nnopt_jax.bayes.layers import VariationalConv, VariationalDense
from nnopt_jax.bayes.models import VariationalDenseNet, VariationalLeNet5, VariationalLeNet300100, get_model
from nnopt_jax.bayes.objectives import kl_warmup, make_sgvlb_loss, sgvlb, total_kl
from nnopt_jax.bayes.priors import LogUniform, VNQPrior, kl_divergence, posterior


def compress(cfg, *, out_dir, resume: bool = False, overwrite: bool = False,
             progress: bool = True) -> dict:
    """See :func:`nnopt_jax.bayes.run.compress`."""
    from nnopt_jax.bayes.run import compress as _compress

    return _compress(cfg, out_dir=out_dir, resume=resume, overwrite=overwrite, progress=progress)


__all__ = [
    "LogUniform", "VNQPrior", "posterior", "kl_divergence", "kl_log_uniform", "kl_vnq", "log_alpha",
    "neg_kl_log_uniform", "VariationalDense", "VariationalConv", "VariationalLeNet300100",
    "VariationalLeNet5", "VariationalDenseNet", "get_model", "sgvlb", "kl_warmup", "make_sgvlb_loss",
    "total_kl", "variational_masks", "deterministic_weights", "quantize_params", "layer_stats",
    "compression_ratio", "make_results", "markdown_table", "export_sparse", "export_quantized",
    "load_export", "compress",
]
