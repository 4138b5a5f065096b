"""Genotypes: the discrete cells derived from α (Liu et al. 2018, Sec. 2.4),
the published DARTS_V1/DARTS_V2 cells, JSON save/load and cell pictures."""

from __future__ import annotations

import json
import os
import pathlib
from typing import NamedTuple, Sequence

import numpy as np

from nnopt_jax.nas.darts.operations import PRIMITIVES

Edge = tuple[str, int]  # (operation name, input state index: 0, 1 = cell inputs, 2.. = nodes)


class Genotype(NamedTuple):
    """A discrete DARTS architecture: two (op, input) edges per intermediate
    node, in node order, for the normal and the reduction cell."""

    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]


def _softmax(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def parse_cell(weights: np.ndarray, *, steps: int = 4,
               primitives: Sequence[str] = PRIMITIVES) -> tuple[Edge, ...]:
    """The paper's rule on one cell's operation weights (rows = edges).

    For node ``i`` keep the 2 incoming edges whose strongest non-``none``
    weight is largest (ties: the lower input index first), and on each the
    argmax operation excluding ``none``.
    """
    weights = np.asarray(weights)
    none = primitives.index("none") if "none" in primitives else None
    expected = sum(2 + i for i in range(steps))
    if weights.shape != (expected, len(primitives)):
        raise ValueError(f"weights must have shape {(expected, len(primitives))}, "
                         f"got {weights.shape}")
    keep = [k for k in range(len(primitives)) if k != none]
    gene: list[Edge] = []
    start = 0
    for i in range(steps):
        n = i + 2
        w = weights[start:start + n]
        strength = [max(w[j][k] for k in keep) for j in range(n)]
        edges = sorted(range(n), key=lambda j: -strength[j])[:2]
        for j in edges:
            k_best = max(keep, key=lambda k: (w[j][k], -k))  # first maximum
            gene.append((primitives[k_best], j))
        start += n
    return tuple(gene)


def derive_genotype(alphas, *, steps: int = 4, multiplier: int = 4,
                    primitives: Sequence[str] = PRIMITIVES) -> Genotype:
    """Genotype from α = (normal, reduce) logits: softmax over ops, then :func:`parse_cell`."""
    normal = parse_cell(_softmax(np.asarray(alphas[0])), steps=steps, primitives=primitives)
    reduce = parse_cell(_softmax(np.asarray(alphas[1])), steps=steps, primitives=primitives)
    concat = tuple(range(2 + steps - multiplier, steps + 2))
    return Genotype(normal, concat, reduce, concat)


def parameter_free_share(genotype: Genotype) -> float:
    """Fraction of the genotype's edges that carry a parameter-free op
    (pools, skip_connect) — the collapse symptom of DARTS."""
    free = {"max_pool_3x3", "avg_pool_3x3", "skip_connect", "none"}
    edges = list(genotype.normal) + list(genotype.reduce)
    return sum(op in free for op, _ in edges) / len(edges)


def _g(normal, reduce) -> Genotype:
    return Genotype(tuple(normal), (2, 3, 4, 5), tuple(reduce), (2, 3, 4, 5))


DARTS_V1 = _g(
    [("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
     ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
    [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
     ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)])
"""First-order DARTS cell published by the authors."""

DARTS_V2 = _g(
    [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
     ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
     ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)])
"""Second-order DARTS cell published by the authors (CIFAR-10 2.76 %)."""

DARTS = DARTS_V2

PUBLISHED: dict[str, Genotype] = {"DARTS_V1": DARTS_V1, "DARTS_V2": DARTS_V2, "DARTS": DARTS_V2}


class GenotypeError(ValueError):
    """A genotype (dict, JSON file) is malformed; the message says what is wrong."""


_KEYS = ("normal", "normal_concat", "reduce", "reduce_concat")
_OPS = [p for p in PRIMITIVES if p != "none"]


def validate(genotype: Genotype, *, steps: int | None = None) -> Genotype:
    """Check node counts, op names, input indices and concatenated states.

    Raises:
        GenotypeError: a ValueError naming the cell, the edge and the problem.
    """
    for cell in ("normal", "reduce"):
        edges = getattr(genotype, cell)
        if not edges or len(edges) % 2:
            raise GenotypeError(f"{cell} cell has {len(edges)} edges; it needs two edges per "
                                "node and at least one node")
        n_steps = len(edges) // 2
        if steps is not None and n_steps != steps:
            raise GenotypeError(f"{cell} cell has {n_steps} nodes, expected {steps}")
        for idx, (op, j) in enumerate(edges):
            if op not in _OPS:
                raise GenotypeError(f"{cell} edge {idx}: unknown or disallowed op {op!r}; "
                                    f"choose from {', '.join(_OPS)}")
            if not 0 <= j < 2 + idx // 2:
                raise GenotypeError(f"{cell} edge {idx} (node {idx // 2}): input {j} is not "
                                    f"an earlier state (0 .. {1 + idx // 2})")
        concat = getattr(genotype, f"{cell}_concat")
        if not concat or any(not 0 <= c < 2 + n_steps for c in concat):
            raise GenotypeError(f"{cell}_concat {list(concat)} must list states among "
                                f"0 .. {1 + n_steps} ({n_steps} nodes)")
    return genotype


def to_dict(genotype: Genotype) -> dict:
    return {"normal": [list(e) for e in genotype.normal],
            "normal_concat": list(genotype.normal_concat),
            "reduce": [list(e) for e in genotype.reduce],
            "reduce_concat": list(genotype.reduce_concat)}


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _edges(cell: str, value) -> tuple[Edge, ...]:
    if not isinstance(value, (list, tuple)):
        raise GenotypeError(f"{cell} must be a list of [op, input] edges, got {value!r:.60}")
    edges = []
    for idx, edge in enumerate(value):
        if not (isinstance(edge, (list, tuple)) and len(edge) == 2 and isinstance(edge[0], str)
                and _is_int(edge[1])):
            raise GenotypeError(f"{cell} edge {idx}: expected [op name, input index], got "
                                f"{edge!r:.60}")
        edges.append((edge[0], edge[1]))
    return tuple(edges)


def _concat(key: str, value) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not all(_is_int(c) for c in value):
        raise GenotypeError(f"{key} must be a list of state indices, got {value!r:.60}")
    return tuple(value)


def from_dict(d: dict) -> Genotype:
    """A validated genotype from ``{"normal": [[op, input], ...], "normal_concat":
    [...], "reduce": ..., "reduce_concat": ...}`` (the form :func:`to_dict` writes).

    Raises:
        GenotypeError: not such a dict, or an invalid genotype (see :func:`validate`).
    """
    if not isinstance(d, dict):
        raise GenotypeError(f"expected a JSON object with keys {', '.join(_KEYS)}, got "
                            f"{type(d).__name__}")
    missing = [k for k in _KEYS if k not in d]
    if missing:
        raise GenotypeError(f"missing key{'s' * (len(missing) > 1)} {', '.join(missing)} "
                            f"(a genotype has {', '.join(_KEYS)})")
    g = Genotype(_edges("normal", d["normal"]), _concat("normal_concat", d["normal_concat"]),
                 _edges("reduce", d["reduce"]), _concat("reduce_concat", d["reduce_concat"]))
    return validate(g)


def save_genotype(genotype: Genotype, path: str | os.PathLike) -> pathlib.Path:
    """Write the genotype as JSON."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_dict(genotype), indent=1))
    return path


def load_genotype(spec: str | os.PathLike) -> Genotype:
    """A genotype from a JSON file path or a published name (DARTS_V1, DARTS_V2, DARTS).

    The file holds :func:`to_dict`'s form, or an object with it under
    ``"genotype"`` (a search's results.json).

    Raises:
        FileNotFoundError: neither a file nor a published name.
        GenotypeError: the file is a directory, not JSON, or not a valid
            genotype; the message names the file and the problem.
    """
    s = str(spec)
    if s in PUBLISHED:
        return PUBLISHED[s]
    path = pathlib.Path(s)
    if not path.exists():
        raise FileNotFoundError(
            f"genotype {s!r} is neither a file nor a published name ({sorted(PUBLISHED)})")
    if path.is_dir():
        hint = f" such as {path / 'genotype.json'}" if (path / "genotype.json").is_file() else ""
        raise GenotypeError(f"genotype {path} is a directory; pass a genotype JSON file{hint}")
    try:
        d = json.loads(path.read_text())
    except UnicodeDecodeError:
        raise GenotypeError(f"genotype file {path} is not a JSON text file") from None
    except json.JSONDecodeError as err:
        raise GenotypeError(f"genotype file {path} is not valid JSON ({err})") from None
    if isinstance(d, dict) and isinstance(d.get("genotype"), dict):
        d = d["genotype"]
    try:
        return from_dict(d)
    except GenotypeError as err:
        raise GenotypeError(f"genotype file {path}: {err}") from None


def random_genotype(rng: np.random.Generator, *, steps: int = 4) -> Genotype:
    """A genotype sampled uniformly like the paper's random baseline: for each
    node two distinct inputs and a random non-``none`` op on each."""
    ops = [p for p in PRIMITIVES if p != "none"]

    def cell():
        edges = []
        for i in range(steps):
            inputs = rng.choice(i + 2, size=2, replace=False)
            edges += [(ops[rng.integers(len(ops))], int(j)) for j in inputs]
        return tuple(edges)

    concat = tuple(range(2, steps + 2))
    return Genotype(cell(), concat, cell(), concat)


def plot_cell(edges: Sequence[Edge], concat: Sequence[int], path: str | os.PathLike,
              *, title: str = "") -> pathlib.Path:
    """Draw one cell as a DAG (inputs c_{k-2}, c_{k-1}, nodes 0.., output c_k)
    like the paper's Fig. 4/5; the format follows the suffix (.png, .svg, .pdf)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch

    steps = len(edges) // 2
    pos = {0: (0.0, 1.0), 1: (0.0, -1.0)}
    for i in range(steps):
        pos[2 + i] = (1.5 + 1.3 * i, 1.2 - 2.4 * i / max(steps - 1, 1))
    out = ("out", (1.5 + 1.3 * steps, 0.0))
    labels = {0: "c_{k-2}", 1: "c_{k-1}", **{2 + i: str(i) for i in range(steps)}}
    colors = {0: "#a6d96a", 1: "#a6d96a", **{2 + i: "#74add1" for i in range(steps)}}
    fig, ax = plt.subplots(figsize=(2.2 + 1.4 * steps, 3.6))

    def arrow(a, b, text=None, color="k"):
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=12,
                                     shrinkA=16, shrinkB=16, color=color, lw=1.2,
                                     connectionstyle="arc3,rad=0.08"))
        if text:
            mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
            ax.text(mx, my, text, fontsize=7, ha="center", va="center",
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))

    for idx, (op, j) in enumerate(edges):
        arrow(pos[j], pos[2 + idx // 2], op)
    for c in concat:
        arrow(pos[c], out[1], color="0.5")
    for k, (x, y) in pos.items():
        ax.text(x, y, labels[k], ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round,pad=0.4", fc=colors[k], ec="k"))
    ax.text(*out[1], "c_{k}", ha="center", va="center", fontsize=9,
            bbox=dict(boxstyle="round,pad=0.4", fc="#fdae61", ec="k"))
    ax.set_xlim(-0.6, out[1][0] + 0.6)
    ax.set_ylim(-1.6, 1.6)
    ax.axis("off")
    if title:
        ax.set_title(title)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", dpi=150)
    plt.close(fig)
    return path


def plot_genotype(genotype: Genotype, out_dir: str | os.PathLike, *, prefix: str = "",
                  formats: Sequence[str] = ("png", "svg")) -> list[pathlib.Path]:
    """Write ``{prefix}normal.{fmt}`` and ``{prefix}reduce.{fmt}`` pictures."""
    out_dir = pathlib.Path(out_dir)
    paths = []
    for cell in ("normal", "reduce"):
        for fmt in formats:
            paths.append(plot_cell(getattr(genotype, cell), getattr(genotype, f"{cell}_concat"),
                                   out_dir / f"{prefix}{cell}.{fmt}", title=f"{cell} cell"))
    return paths


def format_genotype(genotype: Genotype) -> str:
    """A short human-readable form: nodes separated by '|'."""
    def cell(edges):
        return " | ".join(", ".join(f"{op}<-{j}" for op, j in edges[k:k + 2])
                          for k in range(0, len(edges), 2))
    return f"normal: {cell(genotype.normal)}\nreduce: {cell(genotype.reduce)}"
