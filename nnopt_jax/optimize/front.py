"""The Pareto front of a study: knee point, Markdown/JSON table and plot.

Knee point. Each objective is normalised to ``[0, 1]`` over the front; the
knee is the front point farthest (on the ideal side) from the hyperplane
through the front's extremes (the points minimising each objective; in two
objectives, the line between the two ends of the front). When the extremes do
not span a hyperplane (e.g. one point minimises two objectives), the plane
``sum_j f_j = 1`` (through the unit points, which is the line between the
extremes of any two-objective front) is used instead. Cf. Das (1999), Branke
et al. (2004) for knees as points of maximal trade-off.
"""

from __future__ import annotations

import json
import pathlib
from typing import Sequence

import numpy as np

from nnopt_jax.hpo.hypervolume import pareto_mask

__all__ = ["knee_index", "pareto_mask", "write_front", "plot_front"]


def _normalise(values: np.ndarray) -> np.ndarray:
    lo, hi = values.min(axis=0), values.max(axis=0)
    return (values - lo) / np.where(hi > lo, hi - lo, 1.0)


def knee_index(values: Sequence[Sequence[float]]) -> int:
    """Index of the knee point of a (non-dominated) set of objective vectors (minimised).

    Raises:
        ValueError: an empty set, or non-finite values.
    """
    y = np.asarray(values, dtype=np.float64)
    if y.ndim != 2 or len(y) == 0:
        raise ValueError(f"knee_index needs a non-empty (n, m) array of objectives, got {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("knee_index needs finite objective values")
    if len(y) <= 2:
        return int(np.argmin(_normalise(y).sum(axis=1)))
    f = _normalise(y)
    m = f.shape[1]
    extremes = f[np.argmin(f, axis=0)]  # row j: the point minimising objective j
    w = np.ones(m)
    if np.linalg.matrix_rank(extremes, tol=1e-9) == m:
        w_fit = np.linalg.solve(extremes, np.ones(m))  # plane w . f = 1 through the extremes
        if np.all(np.isfinite(w_fit)) and np.all(w_fit > 0):
            w = w_fit
    dist = (1.0 - f @ w) / np.linalg.norm(w)  # > 0 on the ideal side
    return int(np.argmax(dist))


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def write_front(rows: list[dict], columns: Sequence[str], out: pathlib.Path, *,
                title: str) -> None:
    """Writes ``front.json`` (every row) and ``front.md`` (the chosen columns)."""
    (out / "front.json").write_text(json.dumps(rows, indent=2, default=str))
    lines = [f"# {title}", "", "| " + " | ".join(columns) + " |",
             "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    (out / "front.md").write_text("\n".join(lines) + "\n")


def plot_front(trials: list[dict], front: list[int], knee: int | None, path: pathlib.Path, *,
               latency_key: str, title: str) -> None:
    """Validation error against size and against latency; front in colour, knee marked.

    Args:
        trials: every successful trial's result row (``val_error``, ``size_bytes``, latency).
        front: indices into ``trials`` of the front.
        knee: index into ``trials`` of the knee (or None).
    """
    from nnopt_jax.plotting import plt

    methods = sorted({t["method"] for t in trials})
    colours = dict(zip(methods, ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, label in ((axes[0], "size_bytes", "exported size (bytes)"),
                           (axes[1], latency_key, latency_key.replace("_", " "))):
        for i, t in enumerate(trials):
            on = i in front
            ax.scatter(t[key], 100 * t["val_error"], c=colours[t["method"]],
                       alpha=1.0 if on else 0.25, s=40 if on else 18,
                       edgecolors="k" if on else "none",
                       label=t["method"] if on and t["method"] not in ax.get_legend_handles_labels()[1]
                       else None)
        if knee is not None:
            k = trials[knee]
            ax.scatter(k[key], 100 * k["val_error"], marker="*", s=220, c="gold",
                       edgecolors="k", zorder=5, label="knee")
        ax.set(xscale="log", xlabel=label, ylabel="validation error (%)")
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
