"""The LeNets of the compression papers (Han et al. 2015; Molchanov et al. 2017)."""

import flax.linen as nn

from nnopt_jax.models.conv import Conv
from nnopt_jax.models.mlp import MLP
from nnopt_jax.models.pooling import max_pool


class LeNet300100(nn.Module):
    """LeNet-300-100: fully connected 784-300-100-10 with ReLU (266,610 weights)."""

    num_classes: int = 10

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        return MLP(features=(300, 100), num_classes=self.num_classes, name="mlp")(x, train=train)


class LeNet5Caffe(nn.Module):
    """LeNet-5-Caffe: conv 20@5x5, max-pool, conv 50@5x5, max-pool, fc 800->500, fc 500->10.

    Valid convolutions and 2x2 max-pools turn a 28x28 image into 4x4x50 = 800
    features (431,080 weights for 10 classes).
    """

    num_classes: int = 10

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        x = max_pool(Conv(20, (5, 5), padding="VALID", name="conv1")(x), 2)
        x = max_pool(Conv(50, (5, 5), padding="VALID", name="conv2")(x), 2)
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(500, name="fc1")(x))
        return nn.Dense(self.num_classes, name="fc2")(x)


class SmallLeNet(nn.Module):
    """A LeNet-style network for small images (8x8 digits): two 'same' 3x3
    conv + ReLU + 2x2 max-pool blocks, then a hidden dense layer and logits."""

    num_classes: int = 10
    channels: tuple[int, ...] = (16, 32)
    hidden: int = 64

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        for i, c in enumerate(self.channels):
            x = nn.relu(nn.Conv(c, (3, 3), padding="SAME", name=f"conv{i + 1}")(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(self.hidden, name="fc1")(x))
        return nn.Dense(self.num_classes, name="fc2")(x)
