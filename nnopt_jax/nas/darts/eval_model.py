"""The evaluation network built from a genotype (Liu et al. 2018, Sec. 3.2 and
the authors' ``NetworkCIFAR``): stem 3x3 conv to 3C + BN, ``layers`` cells with
reduction cells at 1/3 and 2/3 of the depth, an auxiliary classifier after the
2/3 cell, drop path on every non-identity edge, global pooling and a linear
classifier. BatchNorm is affine with running statistics (``batch_stats``).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from nnopt_jax.nas.darts.genotypes import Genotype, validate
from nnopt_jax.nas.darts.operations import (BatchNorm, FactorizedReduce, ReLUConvBN,
                                            make_op)
from nnopt_jax.nas.darts.search_model import reduction_layers
from nnopt_jax.types import Array, PRNGKey


def drop_path(x: Array, drop_prob, *, key: PRNGKey) -> Array:
    """Zero whole examples of a branch with probability ``drop_prob`` and scale the
    kept ones by ``1/(1-drop_prob)`` (FractalNet's drop path, as the authors)."""
    keep = 1.0 - drop_prob
    mask = jax.random.bernoulli(key, keep, (x.shape[0], 1, 1, 1))
    return jnp.where(mask, x / keep, 0.0).astype(x.dtype)


class EvalCell(nn.Module):
    genotype: Genotype
    channels: int
    reduction: bool
    reduction_prev: bool

    @nn.compact
    def __call__(self, s0: Array, s1: Array, drop_prob, train: bool) -> Array:
        c = self.channels
        if self.reduction_prev:
            s0 = FactorizedReduce(c, name="preprocess0")(s0, train)
        else:
            s0 = ReLUConvBN(c, 1, 1, 0, name="preprocess0")(s0, train)
        s1 = ReLUConvBN(c, 1, 1, 0, name="preprocess1")(s1, train)
        edges = self.genotype.reduce if self.reduction else self.genotype.normal
        concat = self.genotype.reduce_concat if self.reduction else self.genotype.normal_concat
        states = [s0, s1]
        for i in range(len(edges) // 2):
            node = None
            for k in (2 * i, 2 * i + 1):
                name, j = edges[k]
                stride = 2 if self.reduction and j < 2 else 1
                h = make_op(name, c, stride, affine=True, track_stats=True,
                            op_name=f"op_{k}")(states[j], train)
                identity = name == "skip_connect" and stride == 1
                if train and not identity:  # identity at drop_prob = 0
                    h = drop_path(h, drop_prob, key=self.make_rng("drop_path"))
                node = h if node is None else node + h
            states.append(node)
        return jnp.concatenate([states[i] for i in concat], axis=-1)


class AuxiliaryHead(nn.Module):
    """Auxiliary classifier on an 8x8 (CIFAR) feature map: ReLU, 5x5 avg pool
    stride 3, 1x1 conv 128 + BN + ReLU, 2x2 conv 768 + BN + ReLU, linear."""

    num_classes: int

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        x = nn.relu(x)
        if min(x.shape[1:3]) >= 5:
            x = nn.avg_pool(x, (5, 5), strides=(3, 3), padding="VALID")
        else:  # maps smaller than the window (tiny test inputs): global average
            x = jnp.mean(x, axis=(1, 2), keepdims=True)
        x = nn.Conv(128, (1, 1), use_bias=False)(x)
        x = nn.relu(BatchNorm()(x, train))
        # 2x2 conv to 1x1 at CIFAR size; padded on maps smaller than 2x2 (e.g. 28x28 inputs)
        pad = "VALID" if min(x.shape[1:3]) >= 2 else "SAME"
        x = nn.Conv(768, (2, 2), padding=pad, use_bias=False)(x)
        x = nn.relu(BatchNorm()(x, train))
        x = jnp.mean(x, axis=(1, 2))  # 1x1 at CIFAR size; mean makes other sizes work
        return nn.Dense(self.num_classes)(x)


class EvalNetwork(nn.Module):
    """Network from a genotype.

    ``apply(variables, x, train=..., drop_prob=...)`` returns ``(logits, aux_logits)``;
    ``aux_logits`` is None unless ``train`` and ``auxiliary``. In training pass
    ``rngs={"drop_path": key}`` and ``mutable=["batch_stats"]``.
    """

    genotype: Genotype
    num_classes: int = 10
    channels: int = 36
    layers: int = 20
    auxiliary: bool = True
    stem_multiplier: int = 3

    @nn.compact
    def __call__(self, x: Array, *, train: bool = False, drop_prob=0.0):
        validate(self.genotype)
        if x.ndim != 4:
            raise ValueError(f"EvalNetwork expects NHWC images, got shape {x.shape}")
        s = nn.Conv(self.stem_multiplier * self.channels, (3, 3), padding=[(1, 1), (1, 1)],
                    use_bias=False, name="stem_conv")(x)
        s = BatchNorm(name="stem_bn")(s, train)
        s0 = s1 = s
        c = self.channels
        reductions = reduction_layers(self.layers)
        reduction_prev = False
        aux = None
        drop_prob = jnp.asarray(drop_prob, jnp.float32)
        for i in range(self.layers):
            reduction = i in reductions
            if reduction:
                c *= 2
            cell = EvalCell(self.genotype, c, reduction, reduction_prev, name=f"cell_{i}")
            s0, s1 = s1, cell(s0, s1, drop_prob, train)
            reduction_prev = reduction
            if i == 2 * self.layers // 3 and self.auxiliary and train:
                aux = AuxiliaryHead(self.num_classes, name="auxiliary")(s1, train)
        out = jnp.mean(s1, axis=(1, 2))
        return nn.Dense(self.num_classes, name="classifier")(out), aux
