"""DARTS search space: MixedOp, search cell and search network (Liu et al. 2018,
Sec. 2.1-2.2, Eq. 2).

The architecture parameters α live in their own pytree (:class:`ArchParams`)
and enter the network as a call argument, so the weights ``w`` (Flax
``params``) and α can be differentiated and updated separately.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from nnopt_jax.materialize import materialize, materialize_cotangent
from nnopt_jax.nas.darts.operations import (
    PRIMITIVES, BatchNorm, FactorizedReduce, ReLUConvBN, make_op)
from nnopt_jax.types import Array, PRNGKey


class ArchParams(NamedTuple):
    """Architecture parameters α: one (num_edges, num_ops) logit matrix for
    normal cells and one for reduction cells."""

    normal: Array
    reduce: Array


def num_edges(steps: int = 4) -> int:
    """Edges of a cell with ``steps`` intermediate nodes: 2 + 3 + ... = 14 for 4."""
    return sum(2 + i for i in range(steps))


def init_alphas(*, key: PRNGKey, steps: int = 4, num_ops: int = len(PRIMITIVES),
                scale: float = 1e-3, dtype=jnp.float32) -> ArchParams:
    """α initialised as ``scale * N(0, 1)`` (the authors use 1e-3)."""
    k1, k2 = jax.random.split(key)
    shape = (num_edges(steps), num_ops)
    return ArchParams(scale * jax.random.normal(k1, shape, dtype),
                      scale * jax.random.normal(k2, shape, dtype))


def reduction_layers(layers: int) -> tuple[int, int]:
    """Indices of the reduction cells: at 1/3 and 2/3 of the depth."""
    return (layers // 3, 2 * layers // 3)


class MixedOp(nn.Module):
    """Continuous relaxation of one edge: Σ_o softmax(α)_o · o(x) (Eq. 2).

    Every BN is non-affine and uses batch statistics; pools get a trailing BN.
    Each operation's input gradient is materialised on its own before the sum
    over operations (see :mod:`nnopt_jax.materialize`): XLA:CPU otherwise fuses the
    input gradients of all operations and edges leaving a state into one
    loop, which ran about 3x slower than the separate shifted sums.
    """

    channels: int
    stride: int
    primitives: tuple[str, ...] = PRIMITIVES

    @nn.compact
    def __call__(self, x: Array, weights: Array) -> Array:
        out = None
        for k, name in enumerate(self.primitives):
            if name == "none":  # contributes w * 0
                continue
            op = make_op(name, self.channels, self.stride, affine=False,
                         track_stats=False, search=True, op_name=name)
            y = weights[k] * op(materialize_cotangent(x))
            out = y if out is None else out + y
        if out is None:
            out = jnp.zeros_like(x[:, :: self.stride, :: self.stride, :])
        return out


def edge_index(node: int, source: int) -> int:
    """Row of α for the edge from state ``source`` into intermediate node ``node``."""
    return sum(2 + k for k in range(node)) + source


class EdgeGroup(nn.Module):
    """Several MixedOps (own weights each) applied at once with ``nn.vmap``.

    The cell groups its edges by source state: the edges leaving the two cell
    inputs (``2·steps`` edges) form one group and the edges leaving node ``k``
    another. Mathematically the same as separate MixedOps; the compiled graph is
    ~3.5x smaller (XLA compile time on CPU grows with the number of ops).
    ``x`` is stacked along axis 0 (``broadcast=False``) or shared (True).
    """

    channels: int
    stride: int
    num: int
    broadcast: bool = False
    primitives: tuple[str, ...] = PRIMITIVES

    @nn.compact
    def __call__(self, x: Array, weights: Array) -> Array:
        vmapped = nn.vmap(MixedOp, variable_axes={"params": 0}, split_rngs={"params": True},
                          in_axes=(None if self.broadcast else 0, 0), out_axes=0,
                          axis_size=self.num)
        return vmapped(self.channels, self.stride, self.primitives, name="edges")(x, weights)


class SearchCell(nn.Module):
    """A search cell: two preprocessed inputs, ``steps`` nodes each summing
    a MixedOp over all previous states, output = concat of the last
    ``multiplier`` nodes."""

    channels: int
    reduction: bool
    reduction_prev: bool
    steps: int = 4
    multiplier: int = 4
    primitives: tuple[str, ...] = PRIMITIVES

    @nn.compact
    def __call__(self, s0: Array, s1: Array, weights: Array) -> Array:
        c, steps = self.channels, self.steps
        if self.reduction_prev:
            s0 = FactorizedReduce(c, affine=False, track_stats=False, name="preprocess0")(s0)
        else:
            s0 = ReLUConvBN(c, 1, 1, 0, affine=False, track_stats=False, name="preprocess0")(s0)
        s1 = ReLUConvBN(c, 1, 1, 0, affine=False, track_stats=False, name="preprocess1")(s1)
        # every state feeds several edges: compute it, and the sum of the
        # gradients reaching it, once (see :mod:`nnopt_jax.materialize`)
        s0, s1 = materialize(s0), materialize(s1)
        # edges leaving the two cell inputs, into every node: one group
        pairs = [(i, j) for i in range(steps) for j in (0, 1)]
        rows = jnp.asarray([edge_index(i, j) for i, j in pairs])
        xs = jnp.stack([s0 if j == 0 else s1 for _, j in pairs])
        stride = 2 if self.reduction else 1
        ys = EdgeGroup(c, stride, len(pairs), False, self.primitives, name="from_inputs")(
            xs, weights[rows])
        partial = [ys[2 * i] + ys[2 * i + 1] for i in range(steps)]
        nodes = []
        for k in range(steps):
            nodes.append(materialize(partial[k]))
            targets = list(range(k + 1, steps))
            if targets:  # edges leaving node k, into the later nodes: one group
                rows = jnp.asarray([edge_index(i, k + 2) for i in targets])
                ys = EdgeGroup(c, 1, len(targets), True, self.primitives,
                               name=f"from_node{k}")(nodes[k], weights[rows])
                for t, i in enumerate(targets):
                    partial[i] = partial[i] + ys[t]
        states = [s0, s1, *nodes]
        return jnp.concatenate(states[-self.multiplier:], axis=-1)


class SearchNetwork(nn.Module):
    """The DARTS search network.

    Stem 3x3 conv to ``stem_multiplier * C`` channels + BN (affine, as the
    authors' default ``BatchNorm2d``), ``layers`` cells with reduction cells
    (channels doubled, resolution halved) at 1/3 and 2/3 of the depth, global
    average pooling and a linear classifier.

    Call as ``model.apply({"params": w}, x, alphas)`` with NHWC ``x``.

    ``remat=True`` recomputes each cell's activations in the backward pass
    (``nn.remat``) instead of keeping them: less memory for more compute.
    (At the paper's configuration the second-order step asks XLA:CPU for
    29.3 GB of temporaries; with ``remat`` it still did not fit in 24 GB.)
    """

    num_classes: int = 10
    channels: int = 16
    layers: int = 8
    steps: int = 4
    multiplier: int = 4
    stem_multiplier: int = 3
    primitives: tuple[str, ...] = PRIMITIVES
    remat: bool = False

    @nn.compact
    def __call__(self, x: Array, alphas: ArchParams) -> Array:
        if x.ndim != 4:
            raise ValueError(f"SearchNetwork expects NHWC images, got shape {x.shape}")
        shape = (num_edges(self.steps), len(self.primitives))
        if alphas.normal.shape != shape or alphas.reduce.shape != shape:
            raise ValueError(f"alphas must have shape {shape} (steps={self.steps}, "
                             f"{len(self.primitives)} ops), got {alphas.normal.shape} and "
                             f"{alphas.reduce.shape}")
        s = nn.Conv(self.stem_multiplier * self.channels, (3, 3), padding=[(1, 1), (1, 1)],
                    use_bias=False, name="stem_conv")(x)
        s = BatchNorm(affine=True, track_stats=False, name="stem_bn")(s)
        w_normal = jax.nn.softmax(alphas.normal, axis=-1)
        w_reduce = jax.nn.softmax(alphas.reduce, axis=-1)
        s0 = s1 = s
        c = self.channels
        reductions = reduction_layers(self.layers)
        reduction_prev = False
        for i in range(self.layers):
            reduction = i in reductions
            if reduction:
                c *= 2
            cell_cls = nn.remat(SearchCell) if self.remat else SearchCell
            cell = cell_cls(c, reduction, reduction_prev, self.steps, self.multiplier,
                            self.primitives, name=f"cell_{i}")
            s0, s1 = s1, cell(s0, s1, w_reduce if reduction else w_normal)
            reduction_prev = reduction
        out = jnp.mean(s1, axis=(1, 2))
        return nn.Dense(self.num_classes, name="classifier")(out)


def init_key(key: PRNGKey) -> PRNGKey:
    """A key for weight initialisation, derived deterministically from ``key``.

    It uses XLA's ``RngBitGenerator`` (``unsafe_rbg``) instead of threefry:
    every one of the hundreds of weight initialisers of a DARTS network would
    otherwise inline its own threefry rounds, and compiling the jitted ``init``
    took 181 s on one CPU core for a 3-cell search network (31 s with this key).
    """
    return jax.random.wrap_key_data(jax.random.bits(key, (4,), jnp.uint32), impl="unsafe_rbg")


def init_search_params(model: SearchNetwork, x: Array, *, key: PRNGKey):
    """Initialise the weights ``w`` (α only fixes the shapes here)."""
    alphas = init_alphas(key=jax.random.PRNGKey(0), steps=model.steps,
                         num_ops=len(model.primitives))
    return jax.jit(lambda k, x, a: model.init(init_key(k), x, a))(key, x, alphas)["params"]


def count_params(tree, exclude: str | None = None) -> int:
    """Number of scalars in a params pytree; leaves whose path contains
    ``exclude`` are skipped (the authors skip names containing "auxiliary")."""
    total = 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if exclude is not None and exclude in jax.tree_util.keystr(path):
            continue
        total += int(leaf.size)
    return total
