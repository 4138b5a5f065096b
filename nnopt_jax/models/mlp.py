"""Multi-layer perceptron."""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

ACTIVATIONS = {"relu": nn.relu, "tanh": jnp.tanh, "gelu": nn.gelu, "elu": nn.elu,
               "swish": nn.swish, "sigmoid": nn.sigmoid}


def get_activation(name: str):
    """Looks up an activation function by name."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")


class MLP(nn.Module):
    """Flatten, then ``Dense -> activation -> dropout`` per hidden width, then logits.

    Attributes:
        features: hidden layer widths, e.g. ``(300, 100)``.
        num_classes: number of output logits.
        activation: name of the hidden activation (see ``ACTIVATIONS``).
        dropout: dropout rate after each hidden layer (needs the ``dropout`` RNG
            when ``train=True``).
    """

    features: Sequence[int] = (300, 100)
    num_classes: int = 10
    activation: str = "relu"
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        act = get_activation(self.activation)
        x = x.reshape((x.shape[0], -1))
        for i, width in enumerate(self.features):
            x = act(nn.Dense(width, name=f"fc{i + 1}")(x))
            if self.dropout > 0:
                x = nn.Dropout(self.dropout, deterministic=not train)(x)
        return nn.Dense(self.num_classes, name=f"fc{len(self.features) + 1}")(x)
