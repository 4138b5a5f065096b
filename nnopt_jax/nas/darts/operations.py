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

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from nnopt_jax.models.pooling import avg_pool_exclude_padding
from nnopt_jax.materialize import materialize
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
        y = batch_normalize(x)
        if self.affine:
            c = x.shape[-1]
            scale = self.param("scale", nn.initializers.ones, (c,), x.dtype)
            bias = self.param("bias", nn.initializers.zeros, (c,), x.dtype)
            y = y * scale + bias
        return y


@jax.custom_vjp
def batch_normalize(x: Array) -> Array:
    """``y = (x − μ) / sqrt(σ² + ε)`` with the mean ``μ`` and biased variance
    ``σ²`` of each channel (last axis) over all other axes (batch statistics).

    Its VJP is the closed form
    ``x̄ = (ȳ − mean(ȳ) − y · mean(ȳ · y)) / sqrt(σ² + ε)`` (means over the same
    axes): one fused pass, where autodiff of the three paths through ``x``,
    ``μ`` and ``σ²`` gave XLA:CPU a sum it transposed and copied (0.09 s per
    BatchNorm of a 8x32x32x32x16 edge group; the closed form takes 9 ms
    forward and backward). The rule is plain ``jnp``, so it can be
    differentiated again (second-order DARTS).

    Both gradients pass through fusion barriers (:mod:`nnopt_jax.materialize`). ``ȳ``
    feeds three passes (two means and the formula), and in a search cell it
    is a sum over every consumer of the node; ``x̄`` is transposed for the
    kernel gradient of the 1x1 convolution before it. Fused, XLA:CPU summed
    ``ȳ`` again in each pass and built the transposed ``x̄`` in one loop
    reading ten arrays with a stride of 16 floats: 7.6 of the 61.9 s a
    profile recorded for a paper-configuration step (one core).
    """
    return _batch_normalize_fwd(x)[0]


def _channel_mean(v: Array) -> Array:
    return jnp.mean(v, axis=tuple(range(v.ndim - 1)))


def _batch_normalize_fwd(x):
    centred = x - _channel_mean(x)
    rstd = jax.lax.rsqrt(_channel_mean(jnp.square(centred)) + BN_EPS)
    y = centred * rstd
    return y, (y, rstd)


def _batch_normalize_bwd(residuals, dy):
    y, rstd = residuals
    dy = materialize(dy)
    return (materialize(rstd * (dy - _channel_mean(dy) - y * _channel_mean(dy * y))),)


batch_normalize.defvjp(_batch_normalize_fwd, _batch_normalize_bwd)


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


def _taps(x: Array, k: int, *, stride: int, padding: int, dilation: int = 1,
          pad_value: float = 0.0):
    """The ``k²`` shifted, strided slices of padded NHWC ``x`` that a ``k x k``
    window visits: ``tap_ij[n, h, w] = x_pad[n, s·h + d·i, s·w + d·j]``."""
    n, h, w, c = x.shape
    s, p, d = stride, padding, dilation
    h_out = (h + 2 * p - d * (k - 1) - 1) // s + 1
    w_out = (w + 2 * p - d * (k - 1) - 1) // s + 1
    xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), constant_values=pad_value)
    for i in range(k):
        for j in range(k):
            yield (i, j), jax.lax.slice(
                xp, (0, d * i, d * j, 0),
                (n, d * i + s * (h_out - 1) + 1, d * j + s * (w_out - 1) + 1, c), (1, s, s, 1))


def max_pool_3x3(x: Array, *, stride: int) -> Array:
    """3x3 max pooling, padding 1 (padded cells never win).

    The forward pass is a pairwise maximum of the nine taps. The gradient goes
    to the first maximum of each window in row-major order (as PyTorch's and
    XLA's ``select_and_scatter``), through a custom VJP that keeps the index of
    that tap (int8): autodiff of a maximum over the stacked taps builds nine
    one-hot masks and a tie count instead, a ``9 x`` tensor that took 0.38 s of
    a 23 s DARTS step on XLA:CPU for one cell. The tap index and the output
    gradient pass through fusion barriers (:mod:`nnopt_jax.materialize`): otherwise
    XLA recomputes both (nine comparisons, and BatchNorm's backward pass with
    the sum over the node's consumers) in each of the nine shifted terms of
    the input gradient, 6.4 of the 61.9 s a profile recorded for a
    paper-configuration step (one core).
    """
    return _max_pool(x, stride)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _max_pool(x: Array, stride: int) -> Array:
    return _max_pool_fwd(x, stride)[0]  # XLA drops the unused tap index


def _max_pool_fwd(x, stride):
    taps = [tap for _, tap in _taps(x, 3, stride=stride, padding=1, pad_value=-jnp.inf)]
    y = _tree_reduce(taps, jnp.maximum)
    winner = jnp.zeros(y.shape, jnp.int8)
    for t in range(len(taps) - 1, -1, -1):  # the last assignment is the first maximum
        winner = jnp.where(taps[t] == y, jnp.int8(t), winner)
    return y, (materialize(winner), x.shape)


def _max_pool_bwd(stride, residuals, g):
    winner, shape = residuals
    s, (h, w) = stride, shape[1:3]
    g = materialize(g)
    terms = []
    for t in range(9):
        i, j = divmod(t, 3)
        # transpose of the tap slice x_pad[s·u + i, s·v + j]: place the routed
        # gradient in x_pad's frame (index i + s·u) and drop the padding row/column
        rows = (i - 1, h - i - s * (g.shape[1] - 1), s - 1)
        cols = (j - 1, w - j - s * (g.shape[2] - 1), s - 1)
        routed = jnp.where(winner == t, g, jnp.zeros((), g.dtype))
        terms.append(jax.lax.pad(routed, jnp.zeros((), g.dtype), ((0, 0, 0), rows, cols, (0, 0, 0))))
    return (_tree_sum(terms),)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def depthwise_conv(x: Array, kernel: Array, stride: int, padding: int,
                   dilation: int) -> Array:
    """Depthwise 2-D convolution as a sum of ``k²`` shifted, strided slices.

    ``y[n, h, w, c] = Σ_ij x_pad[n, s·h + d·i, s·w + d·j, c] · kernel[i, j, 0, c]``,
    the same cross-correlation as ``lax.conv_general_dilated`` with
    ``feature_group_count = C``. XLA:CPU runs grouped convolutions at about
    0.1 GFLOP/s (a 3x3 depthwise convolution on 64x32x32x16 takes 45 ms forward
    and 48 ms for its input gradient); the shifted sum is one fused elementwise
    pass (2 ms).

    The input gradient is again a shifted sum, of the (stride-dilated) output
    gradient with the flipped kernel, through this same function, and the
    kernel gradient (:func:`depthwise_kernel_grad`) has a VJP made of such sums,
    so gradients of gradients (second-order DARTS) stay shifted sums; autodiff
    of the slices would give ``k²`` conditional pads per element instead (1.5x
    slower, and XLA:CPU crashed compiling the second-order step of a 5-cell
    network). Being a ``custom_vjp``, it supports reverse mode only (use
    reverse-over-reverse Hessian-vector products).

    Args:
      x: ``(N, H, W, C)`` input.
      kernel: ``(k, k, 1, C)`` filters (flax/HWIO layout of a grouped conv).
      stride, padding, dilation: as in the convolution, symmetric.
    """
    terms = [tap * kernel[i, j, 0] for (i, j), tap in
             _taps(x, kernel.shape[0], stride=stride, padding=padding, dilation=dilation)]
    return _tree_sum(terms)


def _depthwise_fwd(x, kernel, stride, padding, dilation):
    return depthwise_conv(x, kernel, stride, padding, dilation), (x, kernel)


def _depthwise_bwd(stride, padding, dilation, residuals, dy):
    x, kernel = residuals
    return (_depthwise_input_grad(dy, kernel, x.shape[1:3], stride, padding, dilation),
            depthwise_kernel_grad(x, dy, kernel.shape[0], stride, padding, dilation))


depthwise_conv.defvjp(_depthwise_fwd, _depthwise_bwd)


def _depthwise_input_grad(dy: Array, kernel: Array, size: tuple[int, int], stride: int,
                          padding: int, dilation: int) -> Array:
    """The input gradient of :func:`depthwise_conv`, itself a depthwise conv.

    Row ``t`` of the input gradient is ``Σ_i dy_up[t + p − d·i] · k[i]``, with
    ``dy_up`` the output gradient with ``s − 1`` zeros between rows; padding
    ``dy_up`` by ``d(k−1) − p`` in front makes it a correlation with the
    flipped kernel.
    """
    (h, w), k, s, p, d = size, kernel.shape[0], stride, padding, dilation
    front = d * (k - 1) - p
    dy_up = jax.lax.pad(dy, jnp.zeros((), dy.dtype),
                        ((0, 0, 0), (front, h + p - s * (dy.shape[1] - 1) - 1, s - 1),
                         (front, w + p - s * (dy.shape[2] - 1) - 1, s - 1), (0, 0, 0)))
    return materialize(depthwise_conv(dy_up, kernel[::-1, ::-1], 1, 0, d))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def depthwise_kernel_grad(x: Array, dy: Array, k: int, stride: int, padding: int,
                          dilation: int) -> Array:
    """The kernel gradient of :func:`depthwise_conv`:
    ``dk[i, j, 0, c] = Σ_{n,h,w} x_pad[n, s·h + d·i, s·w + d·j, c] · dy[n, h, w, c]``.

    A ``lax.scan`` over output rows ``h``: each step takes the
    ``d·(k−1) + 1`` rows of ``x_pad`` that row reads and adds its ``k²`` tap
    sums. XLA:CPU writes every tap slice to memory before reducing it (the
    reductions run in YNNPACK, which takes materialised operands); over whole
    tensors that is ``k²`` passes through main memory, over one row they stay
    in cache: a 5x5 kernel gradient over 8 edges of 64x32x32x16 took 0.19 s
    instead of 0.46 s (one core). The slices are taken inside the loop, so
    XLA cannot schedule them in the forward pass and keep them alive until the
    backward pass, which it did with whole-tensor slices of ``x`` (3.7 of the
    4.8 GB peak of a paper-configuration step at batch 8). Rows, not images,
    are scanned: the batch axis is the one data parallelism shards.

    Under ``vmap`` (a cell's edge groups) the batched operands are mapped
    over one at a time (``lax.map``) rather than batched into each row step,
    whose slices would then no longer fit in cache: 66 instead of 199 ms for
    a 5x5 kernel over 8 edges of 32x32x32x16 (one core).

    Bilinear in ``(x, dy)``; its own VJP is written with depthwise convolutions
    (cotangent ``g``: ``x̄`` = the input gradient of a conv with kernel ``g``,
    ``d̄y`` = the conv of ``x`` with kernel ``g``), so the second-order DARTS
    graph stays made of shifted sums.
    """
    return _kernel_grad_rows(k, stride, padding, dilation)(x, dy)


@functools.lru_cache(maxsize=None)
def _kernel_grad_rows(k: int, stride: int, padding: int, dilation: int):
    """The row scan of :func:`depthwise_kernel_grad` for one geometry, as a
    function of ``(x, dy)`` that ``vmap`` maps over one batch element at a time."""

    @jax.custom_batching.custom_vmap
    def kernel_grad(x, dy):
        return _scan_rows(x, dy, k, stride, padding, dilation)

    @kernel_grad.def_vmap
    def kernel_grad_vmap(axis_size, in_batched, x, dy):
        x = x if in_batched[0] else jnp.broadcast_to(x, (axis_size, *x.shape))
        dy = dy if in_batched[1] else jnp.broadcast_to(dy, (axis_size, *dy.shape))
        return jax.lax.map(lambda a: kernel_grad(*a), (x, dy)), True

    return kernel_grad


def _scan_rows(x: Array, dy: Array, k: int, stride: int, padding: int, dilation: int) -> Array:
    n, _, _, c = x.shape
    s, p, d = stride, padding, dilation
    w_out = dy.shape[2]
    span = d * (k - 1) + 1  # rows of x_pad that one output row reads
    xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))

    def add_row(acc, h):
        x_rows = jax.lax.dynamic_slice_in_dim(xp, s * h, span, axis=1)
        dy_row = jax.lax.dynamic_slice_in_dim(dy, h, 1, axis=1)
        sums = [jnp.sum(jax.lax.slice(x_rows, (0, d * i, d * j, 0),
                                      (n, d * i + 1, d * j + s * (w_out - 1) + 1, c),
                                      (1, 1, s, 1)) * dy_row, axis=(0, 1, 2))
                for i in range(k) for j in range(k)]
        return acc + jnp.stack(sums).reshape(k, k, 1, c), None

    dk, _ = jax.lax.scan(add_row, jnp.zeros((k, k, 1, c), x.dtype), jnp.arange(dy.shape[1]))
    return dk


def _kernel_grad_fwd(x, dy, k, stride, padding, dilation):
    return depthwise_kernel_grad(x, dy, k, stride, padding, dilation), (x, dy)


def _kernel_grad_bwd(k, stride, padding, dilation, residuals, g):
    x, dy = residuals
    return (_depthwise_input_grad(dy, g, x.shape[1:3], stride, padding, dilation),
            depthwise_conv(x, g, stride, padding, dilation))


depthwise_kernel_grad.defvjp(_kernel_grad_fwd, _kernel_grad_bwd)


def _tree_reduce(terms: list[Array], op: Callable[[Array, Array], Array]) -> Array:
    """Pairwise reduction: an expression ``log2(n)`` operations deep instead of
    ``n`` (XLA fuses it into one kernel whose code generation recurses through
    the expression)."""
    while len(terms) > 1:
        terms = [op(a, b) for a, b in zip(terms[::2], terms[1::2])] + terms[len(terms) // 2 * 2:]
    return terms[0]


def _tree_sum(terms: list[Array]) -> Array:
    return _tree_reduce(terms, jnp.add)


class DepthwiseConv(nn.Module):
    """Depthwise ``k x k`` convolution without bias (see :func:`depthwise_conv`).

    ``impl="auto"`` uses the shifted sum on CPU and XLA's grouped convolution
    elsewhere (accelerator libraries have dedicated depthwise kernels; not
    measured here); both give the same numbers.
    """

    kernel_size: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    impl: str = "auto"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        c, k = x.shape[-1], self.kernel_size
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (k, k, 1, c), x.dtype)
        impl = self.impl
        if impl == "auto":
            impl = "shifts" if jax.default_backend() == "cpu" else "conv"
        if impl == "shifts":
            return materialize(depthwise_conv(x, kernel, self.stride, self.padding, self.dilation))
        if impl != "conv":
            raise ValueError(f"unknown depthwise impl {impl!r}; choose 'auto', 'shifts' or 'conv'")
        return jax.lax.conv_general_dilated(
            x, kernel, (self.stride,) * 2, _pad(self.padding), rhs_dilation=(self.dilation,) * 2,
            dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c)


class PointwiseConv(nn.Module):
    """1x1 convolution without bias, as a matrix product over channels.

    Same parameters as ``nn.Conv(features, (1, 1), use_bias=False)``. Under
    ``vmap`` (the search cell's edge groups) a convolution with batched
    kernels becomes a grouped convolution, slow on XLA:CPU; a batched matrix
    product is not.
    """

    features: int
    stride: int = 1

    @nn.compact
    def __call__(self, x: Array) -> Array:
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (1, 1, x.shape[-1], self.features), x.dtype)
        if self.stride > 1:
            x = x[:, :: self.stride, :: self.stride, :]
        return jnp.einsum("nhwc,cd->nhwd", x, kernel[0, 0])


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
        x = nn.relu(x)
        x = DepthwiseConv(self.kernel_size, self.stride, self.padding, self.dilation)(x)
        x = PointwiseConv(self.features)(x)
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
        a = PointwiseConv(half, stride=2, name="Conv_0")(x)
        b = PointwiseConv(half, stride=2, name="Conv_1")(x[:, 1:, 1:, :])
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
            y = max_pool_3x3(x, stride=s)
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
