"""Grid search and random search with the ask/tell interface."""

from __future__ import annotations

import itertools
import os
from typing import Any, Mapping, Sequence

import numpy as np

from nnopt_jax.hpo.base import Optimizer, positive_int
from nnopt_jax.hpo.journal import jsonable
from nnopt_jax.hpo.space import Categorical, Int, Real, SearchSpace


class RandomSearch(Optimizer):
    """Independent draws from the prior of the space (log-uniform where ``log=True``)."""

    def _ask(self, n: int) -> list[dict[str, Any]]:
        return self.space.sample(n, rng=self._rng())


def _dim_grid(dim, n_points: int) -> list:
    if isinstance(dim, Categorical):
        return list(dim.choices)
    if isinstance(dim, Int):
        if dim.high - dim.low + 1 <= n_points:
            return list(range(dim.low, dim.high + 1))
        vals = []
        for u in np.linspace(0.0, 1.0, n_points):
            v = dim.low + u * (dim.high - dim.low)
            if dim.log:
                v = np.exp(np.log(dim.low) + u * (np.log(dim.high) - np.log(dim.low)))
            vals.append(int(round(v)))
        return sorted(set(vals))
    if dim.log:
        return [float(v) for v in np.geomspace(dim.low, dim.high, n_points)]
    return [float(v) for v in np.linspace(dim.low, dim.high, n_points)]


class GridSearch(Optimizer):
    """Full-factorial grid, enumerated in a fixed order.

    Args:
        space: the search space; may be ``None`` when ``param_grid`` is given,
            in which case each key becomes a :class:`Categorical`.
        n_points: points per real dimension (evenly spaced, geometrically when
            ``log=True``); integer dimensions get at most ``n_points`` values,
            categoricals all their choices.
        param_grid: explicit values per parameter (as scikit-learn's
            ``ParameterGrid``); overrides ``n_points`` for those parameters.
        shuffle: visit the grid in a seeded random order instead.
        seed: random seed (only used by ``shuffle``).
        journal: optional JSONL journal path.
        metadata: optional study description stored in the journal header.
    """

    def __init__(self, space: SearchSpace | None = None, *, n_points: int = 5,
                 param_grid: Mapping[str, Sequence[Any]] | None = None, shuffle: bool = False,
                 seed: int = 0, journal: str | os.PathLike | None = None,
                 metadata: Mapping | None = None):
        if space is None:
            if not param_grid:
                raise ValueError("GridSearch needs a space or a param_grid")
            space = SearchSpace({k: Categorical(v) for k, v in param_grid.items()})
        n_points = positive_int(n_points, "n_points")
        super().__init__(space, seed=seed, journal=journal, metadata=metadata)
        param_grid = dict(param_grid or {})
        self._grid_settings = {"n_points": n_points, "shuffle": bool(shuffle),
                               "param_grid": jsonable(param_grid)}
        unknown = set(param_grid) - set(space.names)
        if unknown:
            raise ValueError(f"param_grid has parameters not in the space: {sorted(unknown)}")
        axes = []
        for name, dim in space.dims.items():
            if name in param_grid:
                vals = list(param_grid[name])
                if not vals:
                    raise ValueError(f"param_grid[{name!r}] is empty")
                try:  # membership / bounds
                    vals = [dim.check(v) for v in vals]
                except ValueError as err:
                    raise ValueError(f"param_grid[{name!r}]: {err}") from None
                axes.append(vals)
            else:
                axes.append(_dim_grid(dim, n_points))
        self.points: list[dict[str, Any]] = [dict(zip(space.names, combo))
                                             for combo in itertools.product(*axes)]
        if shuffle:
            order = np.random.default_rng(seed).permutation(len(self.points))
            self.points = [self.points[i] for i in order]

    def __len__(self) -> int:
        return len(self.points)

    def _settings(self) -> dict:
        return self._grid_settings

    def _ask(self, n: int) -> list[dict[str, Any]]:
        start = self._n_asked
        if start + n > len(self.points):
            raise ValueError(f"grid exhausted: {len(self.points)} points, {start} already "
                             f"asked, {n} requested")
        return [dict(p) for p in self.points[start:start + n]]
