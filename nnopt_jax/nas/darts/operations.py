"""The eight DARTS candidate operations (Liu et al. 2018, Sec. 2.1 and App. A).

Every operation maps ``C`` channels to ``C`` channels (NHWC) and optionally
halves the resolution (``stride=2``). Padding is explicit and symmetric, as in
the authors' PyTorch code, so that stride-2 outputs line up pixel for pixel
(``'SAME'`` would pad asymmetrically).

Normalisation:

* In the *search* network every BatchNorm is non-affine and always uses the
  statistics of the current batch (``track_stats=False``): no running averages,
  so the loss is a pure function of (weights, α, batch) — the authors' code runs
  the search model in train mode, which normalises with batch statistics too.
* In the *evaluation* network BatchNorm is affine and keeps running averages in
  the ``batch_stats`` collection (``track_stats=True``).
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from nnopt_jax.models.pooling import avg_pool_exclude_padding
from nnopt_jax.types import Array

PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
"""Operation names in the order of the columns of α (the authors' order)."""

PARAMETER_FREE: frozenset[str] = frozenset(
    {"none", "max_pool_3x3", "avg_pool_3x3", "skip_connect"}
)
"""Operations without weights at stride 1 (collapse diagnostics)."""

BN_EPS = 1e-5
BN_MOMENTUM = 0.9  # flax convention; PyTorch momentum 0.1


def _pad(p: int) -> list[tuple[int, int]]:
    return [(p, p), (p, p)]


class BatchNorm(nn.Module):
    """BatchNorm over N, H, W.

    Attributes:
      affine: learn a per-channel scale and bias.
      track_stats: keep running averages (``batch_stats``) and use them when
        ``train=False``; when False the batch statistics are always used and
        no state is created (DARTS search).
    """

    affine: bool = True
    track_stats: bool = True

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        if self.track_stats:
            return nn.BatchNorm(
                use_running_average=not train,
                momentum=BN_MOMENTUM,
                epsilon=BN_EPS,
                use_bias=self.affine,
                use_scale=self.affine,
            )(x)
        mean = jnp.mean(x, axis=(0, 1, 2))
        var = jnp.mean(jnp.square(x - mean), axis=(0, 1, 2))
        y = (x - mean) * jax.lax.rsqrt(var + BN_EPS)
        if self.affine:
            c = x.shape[-1]
            scale = self.param("scale", nn.initializers.ones, (c,), x.dtype)
            bias = self.param("bias", nn.initializers.zeros, (c,), x.dtype)
            y = y * scale + bias
        return y


class ReLUConvBN(nn.Module):
    """ReLU -> conv (no bias) -> BN."""

    features: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    affine: bool = True
    track_stats: bool = True

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        x = nn.relu(x)
        k = self.kernel_size
        x = nn.Conv(self.features, (k, k), strides=self.stride,
                    padding=_pad(self.padding), use_bias=False)(x)
        return BatchNorm(self.affine, self.track_stats)(x, train)


class DilConv(nn.Module):
    """ReLU -> depthwise conv (dilated) -> pointwise conv -> BN."""

    features: int
    kernel_size: int
    stride: int
    padding: int
    dilation: int
    affine: bool = True
    track_stats: bool = True

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        c_in = x.shape[-1]
        k = self.kernel_size
        x = nn.relu(x)
        x = nn.Conv(c_in, (k, k), strides=self.stride, padding=_pad(self.padding),
                    kernel_dilation=self.dilation, feature_group_count=c_in,
                    use_bias=False)(x)
        x = nn.Conv(self.features, (1, 1), use_bias=False)(x)
        return BatchNorm(self.affine, self.track_stats)(x, train)


class SepConv(nn.Module):
    """Two stacked ReLU–depthwise–pointwise–BN blocks; the stride is in the first."""

    features: int
    kernel_size: int
    stride: int
    padding: int
    affine: bool = True
    track_stats: bool = True

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        c_in = x.shape[-1]
        x = DilConv(c_in, self.kernel_size, self.stride, self.padding, 1,
                    self.affine, self.track_stats)(x, train)
        return DilConv(self.features, self.kernel_size, 1, self.padding, 1,
                       self.affine, self.track_stats)(x, train)


class FactorizedReduce(nn.Module):
    """Halve the resolution: ReLU, two stride-2 1x1 convs (one shifted by a
    pixel) of ``features // 2`` channels each, concatenated, then BN."""

    features: int
    affine: bool = True
    track_stats: bool = True

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        if self.features % 2:
            raise ValueError(f"FactorizedReduce needs an even channel count, got {self.features}")
        if x.shape[1] % 2 or x.shape[2] % 2:
            raise ValueError(
                f"FactorizedReduce needs even height and width, got {x.shape[1:3]}; "
                "use input sizes divisible by 4 (two reductions)")
        x = nn.relu(x)
        half = self.features // 2
        a = nn.Conv(half, (1, 1), strides=2, padding="VALID", use_bias=False)(x)
        b = nn.Conv(half, (1, 1), strides=2, padding="VALID", use_bias=False)(x[:, 1:, 1:, :])
        return BatchNorm(self.affine, self.track_stats)(jnp.concatenate([a, b], -1), train)


class Pool(nn.Module):
    """3x3 max or average pooling (padding 1, average excludes the padding);
    in search followed by a non-affine BN (``bn=True``)."""

    kind: str
    stride: int
    bn: bool = False
    affine: bool = True
    track_stats: bool = True

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        s = self.stride
        if self.kind == "max":
            y = nn.max_pool(x, (3, 3), strides=(s, s), padding=_pad(1))
        else:
            y = avg_pool_exclude_padding(x, 3, s, 1)
        if self.bn:
            y = BatchNorm(self.affine, self.track_stats)(y, train)
        return y


class Identity(nn.Module):
    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        return x


class Zero(nn.Module):
    """The ``none`` operation: zeros of the output shape."""

    stride: int

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array:
        return jnp.zeros_like(x[:, :: self.stride, :: self.stride, :])


def make_op(name: str, channels: int, stride: int, *, affine: bool,
            track_stats: bool, search: bool = False, op_name: str | None = None
            ) -> nn.Module:
    """Build one DARTS operation by name.

    Args:
      name: one of :data:`PRIMITIVES`.
      channels: input = output channels C.
      stride: 1, or 2 in the first two edges of a reduction cell.
      affine: affine BatchNorm (False in search).
      track_stats: running BN statistics (False in search).
      search: pools get a trailing BN (the search MixedOp).
      op_name: Flax module name.
    """
    kw = dict(affine=affine, track_stats=track_stats, name=op_name)
    c, s = channels, stride
    builders: dict[str, Callable[[], nn.Module]] = {
        "none": lambda: Zero(s, name=op_name),
        "max_pool_3x3": lambda: Pool("max", s, bn=search, **kw),
        "avg_pool_3x3": lambda: Pool("avg", s, bn=search, **kw),
        "skip_connect": lambda: (Identity(name=op_name) if s == 1
                                 else FactorizedReduce(c, **kw)),
        "sep_conv_3x3": lambda: SepConv(c, 3, s, 1, **kw),
        "sep_conv_5x5": lambda: SepConv(c, 5, s, 2, **kw),
        "dil_conv_3x3": lambda: DilConv(c, 3, s, 2, 2, **kw),
        "dil_conv_5x5": lambda: DilConv(c, 5, s, 4, 2, **kw),
    }
    if name not in builders:
        raise ValueError(f"unknown DARTS operation {name!r}; choose one of {PRIMITIVES}")
    return builders[name]()
