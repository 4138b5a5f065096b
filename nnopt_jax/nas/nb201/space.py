"""The NAS-Bench-201 cell search space (Dong & Yang, ICLR 2020, section 2.1).

A cell is a DAG with 4 nodes: node 0 is the cell input and node ``i`` is the
sum of ``op_{i,j}(node j)`` over ``j < i``; node 3 is the output. Each of the
6 edges carries one of 5 operations, so the space holds 5**6 = 15,625 cells.

An architecture is represented here as a tuple of 6 operation indices, in the
order in which the benchmark's strings list the edges::

    |op~0|+|op~0|op~1|+|op~0|op~1|op~2|
     (1,0)  (2,0) (2,1)  (3,0) (3,1) (3,2)      # (to node, from node)

Three encodings are offered:

* the benchmark's string (:func:`parse_arch` / :func:`arch_to_str`);
* a *space index* in ``[0, 15625)``, the base-5 number whose digits are the
  operation indices, first edge most significant (:func:`arch_to_index` /
  :func:`index_to_arch`). It is a bijection on the space but it is **not** the
  benchmark's own ``index`` column (see :class:`~.table.NB201Table`);
* six categorical hyper-parameters for the HPO pillar (:func:`search_space`,
  :func:`arch_to_params`, :func:`params_to_arch`).
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np

OPS: tuple[str, ...] = (
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
)
"""The 5 candidate operations, in the benchmark's order."""

EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
"""The 6 edges as ``(to_node, from_node)``, in string order."""

NUM_NODES = 4
NUM_EDGES = len(EDGES)
NUM_OPS = len(OPS)
NUM_ARCHS = NUM_OPS**NUM_EDGES  # 15,625

EDGE_NAMES: tuple[str, ...] = tuple(f"edge_{i}_{j}" for i, j in EDGES)
"""Names of the six categorical hyper-parameters of :func:`search_space`."""

Arch = tuple[int, ...]
"""An architecture: 6 operation indices into :data:`OPS`, in :data:`EDGES` order."""

_OP_INDEX = {name: k for k, name in enumerate(OPS)}
_NODE_RE = re.compile(r"^([a-z0-9_]+)~(\d+)$")
_POWERS = NUM_OPS ** np.arange(NUM_EDGES - 1, -1, -1)  # first edge most significant


def _check_arch(arch: Sequence[int]) -> Arch:
    ops = tuple(map(int, arch))
    if len(ops) != NUM_EDGES or not all(0 <= o < NUM_OPS for o in ops):
        raise ValueError(
            f"an NB201 architecture is {NUM_EDGES} operation indices in [0, {NUM_OPS}), "
            f"got {tuple(arch)!r}; build one with parse_arch() or index_to_arch()"
        )
    return ops


def parse_arch(arch_str: str) -> Arch:
    """Parses a benchmark string such as ``|nor_conv_3x3~0|+|...|+|...|``.

    Args:
      arch_str: the cell in NAS-Bench-201 notation: three ``+``-separated node
        groups, node ``i`` listing ``op~j`` for ``j = 0..i-1`` in order.

    Returns:
      The architecture as a tuple of 6 operation indices.

    Raises:
      ValueError: naming the malformed part of the string.
    """
    if not isinstance(arch_str, str):
        raise TypeError(f"arch_str must be a str, got {type(arch_str).__name__}")
    nodes = arch_str.split("+")
    if len(nodes) != NUM_NODES - 1:
        raise ValueError(
            f"NB201 arch string must have {NUM_NODES - 1} '+'-separated nodes, "
            f"got {len(nodes)} in {arch_str!r}"
        )
    ops: list[int] = []
    for node, group in enumerate(nodes, start=1):
        if not (group.startswith("|") and group.endswith("|")) or len(group) < 2:
            raise ValueError(f"node {node} of {arch_str!r} must be written as |op~j|...|")
        items = group[1:-1].split("|")
        if len(items) != node:
            raise ValueError(
                f"node {node} of {arch_str!r} must have {node} input edge(s), got {len(items)}"
            )
        for src, item in enumerate(items):
            m = _NODE_RE.match(item)
            if m is None:
                raise ValueError(f"edge {item!r} in {arch_str!r} is not of the form op~j")
            name, j = m.group(1), int(m.group(2))
            if name not in _OP_INDEX:
                raise ValueError(f"unknown operation {name!r} in {arch_str!r}; known: {OPS}")
            if j != src:
                raise ValueError(
                    f"edge {item!r} of node {node} in {arch_str!r} must come from node {src}"
                )
            ops.append(_OP_INDEX[name])
    return tuple(ops)


def arch_to_str(arch: Sequence[int]) -> str:
    """Prints an architecture in the benchmark's notation (inverse of :func:`parse_arch`)."""
    ops = _check_arch(arch)
    groups, k = [], 0
    for node in range(1, NUM_NODES):
        groups.append("|" + "|".join(f"{OPS[ops[k + j]]}~{j}" for j in range(node)) + "|")
        k += node
    return "+".join(groups)


def arch_to_index(arch: Sequence[int]) -> int:
    """Space index of an architecture: its base-5 digits, first edge most significant."""
    index = 0
    for op in _check_arch(arch):
        index = index * NUM_OPS + op
    return index


def index_to_arch(index: int) -> Arch:
    """Inverse of :func:`arch_to_index`."""
    index = int(index)
    if not 0 <= index < NUM_ARCHS:
        raise ValueError(f"space index must be in [0, {NUM_ARCHS}), got {index}")
    ops = []
    for _ in range(NUM_EDGES):
        index, op = divmod(index, NUM_OPS)
        ops.append(op)
    return tuple(reversed(ops))


def all_archs() -> np.ndarray:
    """All 15,625 architectures as an int array of shape (15625, 6), row = space index."""
    idx = np.arange(NUM_ARCHS)[:, None]
    return ((idx // _POWERS[None, :]) % NUM_OPS).astype(np.int32)


def mutate(arch: Sequence[int], *, rng: np.random.Generator) -> Arch:
    """Changes the operation of exactly one edge (Real et al. 2019, section 2).

    The edge is drawn uniformly among the 6 and the new operation uniformly
    among the 4 operations different from the current one.

    Args:
      arch: the parent architecture.
      rng: explicit source of randomness (host-side search loop).
    """
    ops = list(_check_arch(arch))
    edge = int(rng.integers(NUM_EDGES))
    new = int(rng.integers(NUM_OPS - 1))
    ops[edge] = new if new < ops[edge] else new + 1  # skip the current op
    return tuple(ops)


def random_arch(*, rng: np.random.Generator) -> Arch:
    """An architecture drawn uniformly from the 15,625 cells."""
    return index_to_arch(int(rng.integers(NUM_ARCHS)))


def search_space():
    """The space as six categorical hyper-parameters of the HPO pillar.

    Returns:
      ``hpo.SearchSpace({"edge_1_0": hpo.Categorical(OPS), ...})`` with one
      dimension per edge, named in :data:`EDGE_NAMES`.
    """
    from nnopt_jax import hpo  # nas may use hpo (DESIGN.md section 1)

    return hpo.SearchSpace({name: hpo.Categorical(list(OPS)) for name in EDGE_NAMES})


def arch_to_params(arch: Sequence[int]) -> dict[str, str]:
    """The architecture as a parameter dict of :func:`search_space`."""
    ops = _check_arch(arch)
    return {name: OPS[o] for name, o in zip(EDGE_NAMES, ops)}


def params_to_arch(params: Mapping[str, str]) -> Arch:
    """Inverse of :func:`arch_to_params`."""
    missing = [n for n in EDGE_NAMES if n not in params]
    if missing:
        raise ValueError(f"parameters {missing} are missing; expected keys {EDGE_NAMES}")
    ops = []
    for name in EDGE_NAMES:
        value = params[name]
        if value not in _OP_INDEX:
            raise ValueError(f"{name}={value!r} is not an operation; choose one of {OPS}")
        ops.append(_OP_INDEX[value])
    return tuple(ops)
