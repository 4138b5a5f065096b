"""Classifier models in Flax Linen (NHWC inputs, ``__call__(x, *, train=False)``)."""

from nnopt_jax.models.lenet import LeNet300100, LeNet5Caffe, SmallLeNet
from nnopt_jax.models.mlp import MLP
from nnopt_jax.models.registry import build_model, count_params

__all__ = ["MLP", "LeNet300100", "LeNet5Caffe", "SmallLeNet", "build_model", "count_params"]
