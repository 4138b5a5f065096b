"""Variational (sparse VD / VNQ) LeNet-300-100, LeNet-5-Caffe and a small DenseNet.

The dense originals live in :mod:`nnopt_jax.models`. Each model here takes a
``prior`` ("log_uniform" for sparse VD, "vnq" for variational network
quantisation) and is called as ``model.apply(variables, x, train=...)``; in
training mode pass ``rngs={"noise": key}``.

``ARCHITECTURES`` describes LeNet layer sequences for the exported sparse
inference (:mod:`nnopt_jax.bayes.export`).
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from nnopt_jax.bayes.layers import VariationalConv, VariationalDense
from nnopt_jax.models.pooling import max_pool
from nnopt_jax.types import Array

__all__ = ["VariationalMLP", "VariationalLeNet300100", "VariationalLeNet5", "VariationalDenseNet", "ARCHITECTURES", "export_arch", "get_model"]


def _layer_kwargs(m) -> dict:
    kw = dict(prior=m.prior, log_sigma2_init=m.log_sigma2_init, threshold=m.threshold,
              mask_in_training=m.mask_in_training, mask_noise=m.mask_noise,
              level_init=m.level_init, vnq_kl=m.vnq_kl)
    if m.init_std is not None:
        kw["kernel_init"] = nn.initializers.normal(stddev=m.init_std)
    return kw


class _VariationalModel(nn.Module):
    num_classes: int = 10
    prior: Any = "log_uniform"
    log_sigma2_init: float | None = None
    threshold: float = 3.0
    mask_in_training: bool = False
    mask_noise: bool = True
    level_init: float = 0.2
    vnq_kl: str = "windowed"  # VNQ: "windowed" (Achterhold et al. eq. 16) | "tabulated" (corrected)
    init_std: float | None = None  # None: LeCun normal; the sparse-VD authors use N(0, 0.01^2)


class VariationalLeNet300100(_VariationalModel):
    """LeNet-300-100: 784-300-100-10 MLP with ReLU, every layer variational."""

    @nn.compact
    def __call__(self, x: Array, *, train: bool = False) -> Array:
        x = x.reshape((x.shape[0], -1))
        kw = _layer_kwargs(self)
        x = nn.relu(VariationalDense(features=300, name="fc1", **kw)(x, train=train))
        x = nn.relu(VariationalDense(features=100, name="fc2", **kw)(x, train=train))
        return VariationalDense(features=self.num_classes, name="fc3", **kw)(x, train=train)


class VariationalMLP(_VariationalModel):
    """A variational MLP with ReLU hidden layers ``fc1..fcK`` (used by the digits demo)."""

    features: Sequence[int] = (100,)

    @nn.compact
    def __call__(self, x: Array, *, train: bool = False) -> Array:
        x = x.reshape((x.shape[0], -1))
        kw = _layer_kwargs(self)
        for i, f in enumerate(self.features):
            x = nn.relu(VariationalDense(features=f, name=f"fc{i + 1}", **kw)(x, train=train))
        return VariationalDense(features=self.num_classes, name=f"fc{len(self.features) + 1}", **kw)(
            x, train=train)


class VariationalLeNet5(_VariationalModel):
    """LeNet-5-Caffe: conv 20@5x5, pool, conv 50@5x5, pool, fc 800->500, ReLU, fc 500->10.

    As in Caffe's LeNet (and :class:`nnopt_jax.models.LeNet5Caffe`), only the
    hidden fully connected layer has a ReLU by default. The sparse-VD
    authors' LeNet-5 (their ``experiments/lenet/lenet5-ard.py``) differs in
    its convolutions, which the attributes below reproduce: a ReLU after each
    (Lasagne's default nonlinearity), Glorot-uniform kernels (the
    ``W=init.Normal()`` they pass does not reach Lasagne's ``Wconv``) and,
    with ``mask_in_training``, the pruned weights' noise masked too.

    Attributes:
      conv_relu: a ReLU after each convolution (before its pooling).
      conv_init: ``None`` (as the dense layers: ``init_std`` or LeCun normal)
        or ``"glorot_uniform"``.
      conv_mask_noise: ``mask_noise`` of the convolutions (``None``: the
        model's ``mask_noise``).
    """

    conv_relu: bool = False
    conv_init: str | None = None
    conv_mask_noise: bool | None = None

    @nn.compact
    def __call__(self, x: Array, *, train: bool = False) -> Array:
        kw = _layer_kwargs(self)
        ckw = dict(kw)
        if self.conv_init == "glorot_uniform":
            ckw["kernel_init"] = nn.initializers.glorot_uniform()
        elif self.conv_init is not None:
            raise ValueError(f"conv_init must be None or 'glorot_uniform', got {self.conv_init!r}")
        if self.conv_mask_noise is not None:
            ckw["mask_noise"] = bool(self.conv_mask_noise)
        act = nn.relu if self.conv_relu else (lambda v: v)
        for name, features in (("conv1", 20), ("conv2", 50)):
            x = max_pool(act(VariationalConv(features=features, kernel_size=(5, 5), name=name,
                                             **ckw)(x, train=train)), 2)
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(VariationalDense(features=500, name="fc1", **kw)(x, train=train))
        return VariationalDense(features=self.num_classes, name="fc2", **kw)(x, train=train)


class _DenseLayer(nn.Module):
    growth: int
    kw: dict

    @nn.compact
    def __call__(self, x, *, train: bool):
        y = nn.BatchNorm(use_running_average=not train, name="bn")(x)
        y = VariationalConv(features=self.growth, kernel_size=(3, 3), padding="SAME", name="conv", **self.kw)(
            nn.relu(y), train=train)
        return jnp.concatenate([x, y], axis=-1)


class VariationalDenseNet(_VariationalModel):
    """A small DenseNet-BC-style network with variational convolutions (CIFAR-10 VNQ row).

    Stem 3x3 conv, ``len(blocks)`` dense blocks of ``blocks[i]`` layers with
    growth rate ``growth``, 1x1 transitions with 2x2 average pooling, global
    average pooling and a variational linear classifier. Uses BatchNorm
    (model_state "batch_stats").
    """

    growth: int = 12
    blocks: Sequence[int] = (4, 4, 4)

    @nn.compact
    def __call__(self, x: Array, *, train: bool = False) -> Array:
        kw = _layer_kwargs(self)
        x = VariationalConv(features=2 * self.growth, kernel_size=(3, 3), padding="SAME", name="stem", **kw)(
            x, train=train)
        for b, n in enumerate(self.blocks):
            for i in range(n):
                x = _DenseLayer(self.growth, kw, name=f"block{b}_layer{i}")(x, train=train)
            if b < len(self.blocks) - 1:
                x = nn.BatchNorm(use_running_average=not train, name=f"trans{b}_bn")(x)
                x = VariationalConv(features=x.shape[-1] // 2, kernel_size=(1, 1), name=f"trans{b}_conv", **kw)(
                    nn.relu(x), train=train)
                x = nn.avg_pool(x, (2, 2), (2, 2))
        x = nn.relu(nn.BatchNorm(use_running_average=not train, name="final_bn")(x))
        x = jnp.mean(x, axis=(1, 2))
        return VariationalDense(features=self.num_classes, name="classifier", **kw)(x, train=train)


# Layer sequences for exported sparse inference: (op, name or arg).
ARCHITECTURES: dict[str, list[tuple[str, Any]]] = {
    "mlp1": [("flatten", None), ("dense", "fc1"), ("relu", None), ("dense", "fc2")],
    "lenet300_100": [("flatten", None), ("dense", "fc1"), ("relu", None), ("dense", "fc2"), ("relu", None),
                     ("dense", "fc3")],
    "lenet5": [("conv", "conv1"), ("maxpool", 2), ("conv", "conv2"),
               ("maxpool", 2), ("flatten", None), ("dense", "fc1"), ("relu", None), ("dense", "fc2")],
    # VariationalLeNet5(conv_relu=True): the sparse-VD authors' LeNet-5
    "lenet5_conv_relu": [("conv", "conv1"), ("relu", None), ("maxpool", 2), ("conv", "conv2"),
                         ("relu", None), ("maxpool", 2), ("flatten", None), ("dense", "fc1"),
                         ("relu", None), ("dense", "fc2")],
}

_MODELS = {"mlp": VariationalMLP, "lenet300_100": VariationalLeNet300100, "lenet5": VariationalLeNet5, "densenet": VariationalDenseNet}


def export_arch(model_cfg) -> str:
    """The :data:`ARCHITECTURES` key of a model config (``name`` and ``conv_relu``)."""
    if model_cfg.get("conv_relu"):
        if model_cfg["name"] != "lenet5":
            raise ValueError(f"model.conv_relu applies to lenet5, not {model_cfg['name']!r}")
        return "lenet5_conv_relu"
    return model_cfg["name"]


def get_model(name: str, **kwargs) -> nn.Module:
    """Build a variational model by name ("lenet300_100", "lenet5", "densenet")."""
    if name not in _MODELS:
        raise ValueError(f"unknown variational model {name!r}; choose one of {sorted(_MODELS)}")
    return _MODELS[name](**kwargs)
