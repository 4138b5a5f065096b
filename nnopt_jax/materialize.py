"""Fusion barriers for XLA:CPU: make XLA write a value to memory once.

XLA fuses a cheap elementwise producer into every consumer that reads it,
recomputing it in each. In a DARTS cell the gradient reaching a cell input
is a sum over the edges leaving it of every operation's input gradient
(shifted sums of 9 or 25 taps each): about 300 multiply-adds per element.
XLA:CPU fused that sum into each of the four consumers of BatchNorm's
backward pass and computed it four times (0.23-0.40 s each in a reduction
cell of a paper-configuration step at batch 32). ``lax.optimization_barrier``
does not help: XLA:CPU removes it before fusion. A conditional does: its
operands and results are buffers, so a value passed through an
always-taken ``lax.cond`` is computed once. The copy costs one pass over the
value; :func:`materialized` saves it by computing the value inside the
conditional's branch, so the producer writes the result buffer itself.

On other backends both functions are the identity (a conditional costs a
host round trip for its predicate on GPUs), and so they are in programs
split over several CPU devices: there the predicate of a sharded value is a
collective, and many small collectives starved XLA:CPU's in-process
rendezvous (:func:`nnopt_jax.parallel.is_split`: a chunk traced for one
device of several keeps its barriers).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from nnopt_jax import parallel
from nnopt_jax.types import Array


def _always(x: Array) -> Array:
    """True, from ``x``'s first element, so that XLA cannot fold the conditional away."""
    first = x.reshape(-1)[0]
    return (first == first) | jnp.isnan(first)


@jax.custom_batching.custom_vmap
def _copy(x: Array) -> Array:
    return jax.lax.cond(_always(x), lambda v: v, jnp.zeros_like, x)


@_copy.def_vmap
def _copy_vmap(axis_size, in_batched, x):
    # one conditional on the whole batched array (vmap of a cond would turn
    # its data-dependent predicate into a select, which XLA fuses again)
    return _copy(x), in_batched[0]


def _barred(x: Array) -> bool:
    return x.size > 0 and jax.default_backend() == "cpu" and not parallel.is_split()


def _barrier(x: Array) -> Array:
    return _copy(x) if _barred(x) else x


def _in_branch(fn, *args: Array):
    """``fn(*args)`` as the result of an always-taken conditional whose branch runs ``fn``."""
    shapes = jax.eval_shape(fn, *args)
    return jax.lax.cond(_always(jax.tree.leaves(args)[0]), fn, lambda *_: jax.tree.map(
        lambda s: jnp.zeros(s.shape, s.dtype), shapes), *args)


def materialized(fn, *args: Array) -> Array:
    """``fn(*args)``, on CPU computed once and written to memory by ``fn`` itself.

    The value is the result of an always-taken conditional whose branch runs
    ``fn``, so XLA neither fuses ``fn`` into the value's consumers nor copies
    the value into the barrier, as :func:`materialize` of a value computed
    outside does. Its cotangent passes through :func:`materialize`, and the
    backward pass differentiates ``fn`` again from ``args`` (so ``fn`` should
    be cheap to recompute, e.g. elementwise). On other backends and in split
    programs it is ``fn(*args)``.
    """
    if not _barred(jax.tree.leaves(args)[0]):
        return fn(*args)
    return _materialized(fn, *args)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _materialized(fn, *args):
    return _in_branch(fn, *args)


def _materialized_fwd(fn, *args):
    return _in_branch(fn, *args), args


def _materialized_bwd(fn, args, g):
    return jax.vjp(fn, *args)[1](materialize(g))


_materialized.defvjp(_materialized_fwd, _materialized_bwd)


@jax.custom_vjp
def materialize(x: Array) -> Array:
    """Identity; on CPU the value and its cotangent are each computed once."""
    return _barrier(x)


def _materialize_fwd(x):
    # through ``materialize`` again, not ``_barrier``: a grad of a grad
    # differentiates this rule, and only the custom VJP is differentiable
    return materialize(x), None


def _materialize_bwd(_, g):
    return (materialize(g),)


materialize.defvjp(_materialize_fwd, _materialize_bwd)


@jax.custom_vjp
def materialize_cotangent(x: Array) -> Array:
    """Identity whose cotangent, on CPU, is computed once (the forward value
    is left to XLA)."""
    return x


def _cotangent_fwd(x):
    return x, None


materialize_cotangent.defvjp(_cotangent_fwd, _materialize_bwd)
