"""Width-scaled LeNets for recipe search, dense and variational, with export-compatible names.

The layer names match :data:`nnopt_jax.bayes.models.ARCHITECTURES` (``mlp``:
fc1, fc2, fc3 as ``lenet300_100``; ``lenet5``: conv1, conv2, fc1, fc2), so
:mod:`nnopt_jax.bayes.export` writes and runs every width.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn

from nnopt_jax.bayes.layers import VariationalConv, VariationalDense
from nnopt_jax.bayes.models import VariationalMLP
from nnopt_jax.models.conv import Conv
from nnopt_jax.models.mlp import MLP
from nnopt_jax.models.pooling import max_pool
from nnopt_jax.types import Array

__all__ = ["ARCHS", "EXPORT_ARCH", "scaled_features", "build"]

ARCHS = ("mlp", "lenet5")
EXPORT_ARCH = {"mlp": "lenet300_100", "lenet5": "lenet5"}
"""The :data:`~nnopt_jax.bayes.models.ARCHITECTURES` entry each arch exports as."""


def scaled_features(base: Sequence[int], width: int) -> tuple[int, ...]:
    """``base`` widths times the integer width multiplier."""
    return tuple(int(b) * int(width) for b in base)


class LeNet5(nn.Module):
    """LeNet-5-Caffe with widths ``features = (conv1, conv2, fc1)`` (original: 20, 50, 500)."""

    features: Sequence[int] = (20, 50, 500)
    num_classes: int = 10

    @nn.compact
    def __call__(self, x: Array, *, train: bool = False) -> Array:
        c1, c2, f1 = self.features
        x = max_pool(Conv(c1, (5, 5), padding="VALID", name="conv1")(x), 2)
        x = max_pool(Conv(c2, (5, 5), padding="VALID", name="conv2")(x), 2)
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(f1, name="fc1")(x))
        return nn.Dense(self.num_classes, name="fc2")(x)


class VariationalLeNet5(nn.Module):
    """:class:`LeNet5` with every layer variational (sparse VD or VNQ prior)."""

    features: Sequence[int] = (20, 50, 500)
    num_classes: int = 10
    prior: Any = "log_uniform"
    log_sigma2_init: float | None = None
    threshold: float = 3.0

    @nn.compact
    def __call__(self, x: Array, *, train: bool = False) -> Array:
        c1, c2, f1 = self.features
        kw = dict(prior=self.prior, log_sigma2_init=self.log_sigma2_init, threshold=self.threshold)
        x = max_pool(VariationalConv(features=c1, kernel_size=(5, 5), name="conv1", **kw)(
            x, train=train), 2)
        x = max_pool(VariationalConv(features=c2, kernel_size=(5, 5), name="conv2", **kw)(
            x, train=train), 2)
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(VariationalDense(features=f1, name="fc1", **kw)(x, train=train))
        return VariationalDense(features=self.num_classes, name="fc2", **kw)(x, train=train)


def build(arch: str, features: Sequence[int], *, num_classes: int, variational: bool,
          prior: str = "log_uniform", threshold: float = 3.0,
          log_sigma2_init: float | None = None) -> nn.Module:
    """The model of a recipe trial.

    Args:
        arch: ``"mlp"`` (two hidden layers, e.g. LeNet-300-100) or ``"lenet5"``.
        features: the (already scaled) layer widths: 2 for ``mlp``, 3 for ``lenet5``.
        num_classes: output logits.
        variational: a sparse-VD / VNQ model (else a plain one).
        prior, threshold, log_sigma2_init: the variational layers' settings.
    """
    features = tuple(int(f) for f in features)
    want = {"mlp": 2, "lenet5": 3}
    if arch not in want:
        raise ValueError(f"model.arch must be one of {ARCHS}, got {arch!r}")
    if len(features) != want[arch]:
        raise ValueError(f"model.base_features for {arch!r} needs {want[arch]} widths, got "
                         f"{features}")
    if arch == "mlp":
        if variational:
            return VariationalMLP(features=features, num_classes=num_classes, prior=prior,
                                  threshold=threshold, log_sigma2_init=log_sigma2_init)
        return MLP(features=features, num_classes=num_classes)
    if variational:
        return VariationalLeNet5(features=features, num_classes=num_classes, prior=prior,
                                 threshold=threshold, log_sigma2_init=log_sigma2_init)
    return LeNet5(features=features, num_classes=num_classes)
