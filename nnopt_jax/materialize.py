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
value.

On other backends both functions are the identity (a conditional costs a
host round trip for its predicate on GPUs), and so they are in programs
split over several CPU devices: there the predicate of a sharded value is a
collective, and many small collectives starved XLA:CPU's in-process
rendezvous. A program traced inside :func:`split_over` knows how many
devices it runs on; elsewhere any host with several devices counts as split.
"""

from __future__ import annotations

import contextlib
import contextvars

import jax
import jax.numpy as jnp

from nnopt_jax.types import Array


@jax.custom_batching.custom_vmap
def _copy(x: Array) -> Array:
    first = x.reshape(-1)[0]
    always = (first == first) | jnp.isnan(first)  # true, but not foldable by XLA
    return jax.lax.cond(always, lambda v: v, jnp.zeros_like, x)


@_copy.def_vmap
def _copy_vmap(axis_size, in_batched, x):
    # one conditional on the whole batched array (vmap of a cond would turn
    # its data-dependent predicate into a select, which XLA fuses again)
    return _copy(x), in_batched[0]


_SPLIT: contextvars.ContextVar[bool | None] = contextvars.ContextVar("nnopt_split", default=None)


@contextlib.contextmanager
def split_over(n_devices: int):
    """Traces inside it are of a program run on ``n_devices`` devices (barriers only for one)."""
    token = _SPLIT.set(n_devices > 1)
    try:
        yield
    finally:
        _SPLIT.reset(token)


def _barrier(x: Array) -> Array:
    split = _SPLIT.get()
    if split is None:
        split = jax.device_count() > 1
    if x.size == 0 or jax.default_backend() != "cpu" or split:
        return x
    return _copy(x)


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
