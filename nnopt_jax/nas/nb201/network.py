"""The NAS-Bench-201 network built from any cell, with parameter count and FLOPs.

Macro skeleton (Dong & Yang 2020, Fig. 1; the benchmark's ``TinyNetwork``):

    stem: 3x3 conv (C channels, no bias) + BN
    stage 1: 5 cells at C            (32x32 for CIFAR)
    residual reduction block C -> 2C (stride 2)
    stage 2: 5 cells at 2C           (16x16)
    residual reduction block 2C -> 4C
    stage 3: 5 cells at 4C           (8x8)
    BN + ReLU, global average pool, linear classifier

with C = 16. Convolution ops are ReLU-conv-BN; ``avg_pool_3x3`` is a 3x3
average pool (stride 1, padding 1, padding excluded from the average);
``none`` outputs zeros; ``skip_connect`` is the identity. The reduction block
is a ResNet basic block: ReLU-conv3x3(stride 2)-BN, ReLU-conv3x3-BN, plus a
shortcut of 2x2 average pooling and a 1x1 conv (no BN).

Parameter counts follow the benchmark: trainable parameters only (BN scale
and bias, not its running statistics). FLOPs follow the benchmark's
convention: multiply-accumulates of the convolutions and the classifier.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from nnopt_jax.models.pooling import avg_pool_exclude_padding
from nnopt_jax.nas.nb201 import space

_BN_MOMENTUM = 0.9  # PyTorch momentum 0.1
_BN_EPS = 1e-5


class ReLUConvBN(nn.Module):
    """ReLU, k x k convolution without bias, batch norm."""

    features: int
    kernel_size: int
    stride: int = 1

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        pad = (self.kernel_size - 1) // 2
        x = nn.relu(x)
        x = nn.Conv(self.features, (self.kernel_size,) * 2, strides=self.stride,
                    padding=((pad, pad), (pad, pad)), use_bias=False)(x)
        return nn.BatchNorm(use_running_average=not train, momentum=_BN_MOMENTUM,
                            epsilon=_BN_EPS)(x)


class ResNetBasicBlock(nn.Module):
    """Residual reduction block between stages (halves resolution, sets channels)."""

    features: int

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        y = ReLUConvBN(self.features, 3, stride=2)(x, train=train)
        y = ReLUConvBN(self.features, 3)(y, train=train)
        shortcut = nn.avg_pool(x, (2, 2), strides=(2, 2))
        shortcut = nn.Conv(self.features, (1, 1), use_bias=False)(shortcut)
        return shortcut + y


class NB201Cell(nn.Module):
    """One cell: node i = sum_{j<i} op_ij(node j); the output is node 3."""

    arch: tuple[int, ...]
    features: int

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        nodes = [x]
        k = 0
        for i in range(1, space.NUM_NODES):
            total = jnp.zeros_like(x)
            for j in range(i):
                op = space.OPS[self.arch[k]]
                k += 1
                if op == "none":
                    continue
                if op == "skip_connect":
                    total = total + nodes[j]
                elif op == "nor_conv_1x1":
                    total = total + ReLUConvBN(self.features, 1)(nodes[j], train=train)
                elif op == "nor_conv_3x3":
                    total = total + ReLUConvBN(self.features, 3)(nodes[j], train=train)
                else:  # avg_pool_3x3
                    total = total + avg_pool_exclude_padding(nodes[j], 3, 1, 1)
            nodes.append(total)
        return nodes[-1]


class NB201Network(nn.Module):
    """The benchmark's network for one cell (NHWC input).

    Attributes:
      arch: the cell (6 operation indices, see :mod:`.space`).
      num_classes: classifier outputs (10 for CIFAR-10).
      channels: C, the width of the first stage.
      cells_per_stage: N (5 in the benchmark).
    """

    arch: tuple[int, ...]
    num_classes: int = 10
    channels: int = 16
    cells_per_stage: int = 5

    @nn.compact
    def __call__(self, x, *, train: bool = False):
        arch = tuple(self.arch)
        x = nn.Conv(self.channels, (3, 3), padding=((1, 1), (1, 1)), use_bias=False)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=_BN_MOMENTUM, epsilon=_BN_EPS)(x)
        for stage in range(3):
            c = self.channels * 2**stage
            if stage > 0:
                x = ResNetBasicBlock(c)(x, train=train)
            for _ in range(self.cells_per_stage):
                x = NB201Cell(arch, c)(x, train=train)
        x = nn.BatchNorm(use_running_average=not train, momentum=_BN_MOMENTUM, epsilon=_BN_EPS)(x)
        x = nn.relu(x)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes)(x)


def build_network(arch: str | Sequence[int], num_classes: int = 10) -> NB201Network:
    """The network of a cell given as a benchmark string or 6 op indices."""
    ops = space.parse_arch(arch) if isinstance(arch, str) else tuple(int(o) for o in arch)
    space.arch_to_str(ops)  # validates
    return NB201Network(ops, num_classes=num_classes)


def dummy_variables(model: nn.Module, input_shape: Sequence[int], *, seed: int = 0):
    """Variables of the right shapes filled with |N(0, 1)| + 0.5 (positive BN variances).

    For latency measurements and shape tests: shapes come from
    ``jax.eval_shape(model.init, ...)`` (nothing compiled) and values from a
    NumPy generator, because XLA compiles this network's ``init`` (all its
    initialisers) far more slowly than its forward pass on CPU.
    """
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros(input_shape, jnp.float32))
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda s: jnp.asarray(np.abs(rng.standard_normal(s.shape)) + 0.5, s.dtype), shapes)


def count_params(params) -> int:
    """Number of scalars in a parameter tree (pass ``variables["params"]``)."""
    return int(sum(np.prod(p.shape) for p in jax.tree.leaves(params)))


def _conv_bn(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + 2 * c_out


def param_count(arch: Sequence[int], num_classes: int = 10, channels: int = 16,
                cells_per_stage: int = 5, in_channels: int = 3) -> int:
    """Trainable parameters of :class:`NB201Network`, computed analytically.

    Per cell at width c: nor_conv_3x3 adds 9c^2 + 2c, nor_conv_1x1 adds c^2 + 2c,
    the other ops nothing. A reduction c -> 2c adds 9c(2c) + 2(2c) + 9(2c)^2 + 2(2c)
    + c(2c). Stem 9*3*C + 2C; final BN 2(4C); classifier 4C*K + K.
    """
    ops = space._check_arch(arch)
    total = in_channels * channels * 9 + 2 * channels  # stem conv + BN
    for stage in range(3):
        c = channels * 2**stage
        if stage > 0:
            cp = c // 2
            total += _conv_bn(cp, c, 3) + _conv_bn(c, c, 3) + cp * c
        per_cell = sum(_conv_bn(c, c, 3) if space.OPS[o] == "nor_conv_3x3" else
                       _conv_bn(c, c, 1) if space.OPS[o] == "nor_conv_1x1" else 0 for o in ops)
        total += cells_per_stage * per_cell
    c_last = channels * 4
    return total + 2 * c_last + c_last * num_classes + num_classes


def flops(arch: Sequence[int], num_classes: int = 10, channels: int = 16,
          cells_per_stage: int = 5, image_size: int = 32, in_channels: int = 3) -> int:
    """Multiply-accumulates of convolutions and the classifier for one image.

    The NAS-Bench-201 convention (its all-3x3 cell gives 220.11 M on CIFAR-10).
    """
    ops = space._check_arch(arch)
    hw = image_size * image_size
    total = hw * in_channels * channels * 9  # stem
    for stage in range(3):
        c = channels * 2**stage
        if stage > 0:
            cp = c // 2
            hw //= 4
            total += hw * (cp * c * 9 + c * c * 9 + cp * c)
        per_cell = sum(hw * c * c * 9 if space.OPS[o] == "nor_conv_3x3" else
                       hw * c * c if space.OPS[o] == "nor_conv_1x1" else 0 for o in ops)
        total += cells_per_stage * per_cell
    return total + channels * 4 * num_classes


def xla_flops(arch: Sequence[int], *, image_size: int = 32, batch_size: int = 1) -> float:
    """FLOPs of the jitted inference forward pass from XLA's cost analysis (no compile).

    Counts every floating-point operation (a multiply-accumulate is 2), so it
    is about twice :func:`flops` plus the elementwise work.
    """
    model = build_network(arch)
    x = jax.ShapeDtypeStruct((batch_size, image_size, image_size, 3), jnp.float32)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(x.shape)))
    lowered = jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(variables, x)
    cost = lowered.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"])


def all_param_counts(**kwargs) -> np.ndarray:
    """:func:`param_count` of every cell, in space-index order."""
    return np.array([param_count(a, **kwargs) for a in space.all_archs()], dtype=np.int64)


def all_flops(**kwargs) -> np.ndarray:
    """:func:`flops` of every cell, in space-index order."""
    return np.array([flops(a, **kwargs) for a in space.all_archs()], dtype=np.int64)
