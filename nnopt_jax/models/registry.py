"""Build a model from a config block, and count parameters."""

import math

import flax.linen as nn
import jax

from nnopt_jax.models.lenet import LeNet300100, LeNet5Caffe, SmallLeNet
from nnopt_jax.models.mlp import MLP

MODELS = {"mlp": MLP, "lenet300": LeNet300100, "lenet5": LeNet5Caffe, "small_lenet": SmallLeNet}


def build_model(name: str, *, num_classes: int, **kwargs) -> nn.Module:
    """Returns the model called ``name`` (``mlp``, ``lenet300``, ``lenet5``, ``small_lenet``).

    For ``mlp`` the keywords ``width``/``depth`` are a shorthand for
    ``features=(width,) * depth``.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    if name == "mlp":
        width, depth = kwargs.pop("width", None), kwargs.pop("depth", None)
        if width is not None:
            kwargs["features"] = (int(width),) * int(depth or 1)
        elif "features" in kwargs:
            kwargs["features"] = tuple(kwargs["features"])
    if "channels" in kwargs:
        kwargs["channels"] = tuple(kwargs["channels"])
    return MODELS[name](num_classes=num_classes, **kwargs)


def count_params(params) -> int:
    """Total number of scalars in a parameter pytree."""
    return sum(math.prod(p.shape) for p in jax.tree.leaves(params))
