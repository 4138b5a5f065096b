"""Multi-objective Bayesian optimisation by random scalarisations (ParEGO).

ParEGO (Knowles 2006) turns m objectives into one at every suggestion: draw
weights lambda uniformly from the simplex, normalise each objective to [0, 1]
by its observed range, and minimise the augmented Chebyshev scalarisation

    f_lambda(x) = max_j lambda_j f_j(x) + rho * sum_j lambda_j f_j(x)      (Knowles 2006, eq. 2)

with any single-objective ask/tell optimiser (by default
:class:`nnopt_jax.hpo.BayesianOptimizer`). Over many draws the suggestions
spread along the Pareto front.

Example::

    from nnopt_jax import hpo
    from nnopt_jax.hpo.multiobjective import ParEGO
    space = hpo.SearchSpace({"x": hpo.Real(0, 1), "y": hpo.Real(0, 1)})
    opt = ParEGO(space, num_objectives=2, seed=0)
    for _ in range(30):
        p = opt.ask()
        opt.tell(p, [f1(p), f2(p)])
    front = opt.pareto_front()      # [(params, values), ...]
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np

from nnopt_jax.hpo.hypervolume import hypervolume, pareto_mask

BaseFactory = Callable[..., Any]
"""``factory(space, *, seed) -> optimiser`` with ``ask() -> dict`` and ``tell(params, value)``."""


class MOTrial(NamedTuple):
    """One evaluated configuration: its parameters and objective vector (nan = failed)."""

    params: dict
    values: tuple[float, ...]

    @property
    def ok(self) -> bool:
        return all(math.isfinite(v) for v in self.values)


def chebyshev_scalarize(values: np.ndarray, weights: np.ndarray, *, rho: float = 0.05,
                        lower: np.ndarray | None = None,
                        upper: np.ndarray | None = None) -> np.ndarray:
    """Augmented Chebyshev scalarisation of normalised objectives (Knowles 2006, eq. 2).

    Args:
      values: (n, m) objective values (minimised).
      weights: (m,) non-negative weights summing to 1.
      rho: weight of the linear term that breaks ties on the Chebyshev ridge.
      lower, upper: the normalisation range; defaults to the range of ``values``.
    """
    values = np.asarray(values, dtype=np.float64)
    lo = values.min(axis=0) if lower is None else np.asarray(lower, np.float64)
    hi = values.max(axis=0) if upper is None else np.asarray(upper, np.float64)
    f = (values - lo) / np.where(hi > lo, hi - lo, 1.0)
    wf = f * np.asarray(weights)[None, :]
    return wf.max(axis=1) + rho * wf.sum(axis=1)


def _default_base(space, *, seed: int):
    from nnopt_jax.hpo.bo import BayesianOptimizer

    # ParEGO runs its own initial design; the rebuilt base goes straight to its model.
    return BayesianOptimizer(space, seed=seed, n_initial=1)


class ParEGO:
    """Ask/tell multi-objective optimiser with random Chebyshev scalarisations.

    Args:
      space: an :class:`nnopt_jax.hpo.SearchSpace` (or anything the base accepts).
      num_objectives: m >= 2.
      seed: seeds the weights, the initial design and each base optimiser.
      base: ``factory(space, *, seed)`` of the single-objective optimiser
        rebuilt at every suggestion (default ``hpo.BayesianOptimizer``).
      n_initial: random configurations before the first scalarised fit.
      rho: augmentation of eq. (2) (0.05 as in ParEGO).
      sampler: ``sampler(rng) -> params`` for the initial design; defaults to
        ``space.sample(1, rng=rng)[0]``.
      ref_point: optional reference point of the hypervolume to be maximised;
        objective values are clipped at it before normalisation, so the
        scalarisations resolve the region the hypervolume measures instead of
        being squashed by very bad outliers.
    """

    def __init__(self, space, num_objectives: int, *, seed: int = 0,
                 base: BaseFactory | None = None, n_initial: int = 10, rho: float = 0.05,
                 sampler: Callable[[np.random.Generator], dict] | None = None,
                 ref_point: Sequence[float] | None = None):
        if int(num_objectives) < 2:
            raise ValueError(f"num_objectives must be >= 2, got {num_objectives}; "
                             "use a single-objective optimiser otherwise")
        if n_initial < 1:
            raise ValueError(f"n_initial must be >= 1, got {n_initial}")
        if rho < 0:
            raise ValueError(f"rho must be >= 0, got {rho}")
        self.space = space
        self.num_objectives = int(num_objectives)
        self.seed = int(seed)
        self.base = base if base is not None else _default_base
        self.n_initial = int(n_initial)
        self.rho = float(rho)
        self._sampler = sampler if sampler is not None else (
            lambda rng: space.sample(1, rng=rng)[0])
        self.ref_point = None if ref_point is None else np.asarray(ref_point, np.float64)
        if self.ref_point is not None and self.ref_point.shape != (self.num_objectives,):
            raise ValueError(f"ref_point must have {self.num_objectives} values, "
                             f"got shape {self.ref_point.shape}")
        self.trials: list[MOTrial] = []
        self._n_asked = 0

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self._n_asked])

    def ask(self, n: int | None = None) -> dict | list[dict]:
        """One suggestion (``n=None``), or ``n`` each from its own weight draw."""
        count = 1 if n is None else int(n)
        if count < 1:
            raise ValueError(f"ask(n) needs a positive integer n, got {n!r}")
        out = []
        for _ in range(count):
            out.append(self._ask_one())
            self._n_asked += 1
        return out[0] if n is None else out

    def _ask_one(self) -> dict:
        rng = self._rng()
        ok = [t for t in self.trials if t.ok]
        if len(ok) < self.n_initial:
            return self._sampler(rng)
        weights = rng.dirichlet(np.ones(self.num_objectives))
        values = np.array([t.values for t in ok])
        if self.ref_point is not None:
            values = np.minimum(values, self.ref_point)
        scalar = chebyshev_scalarize(values, weights, rho=self.rho)
        opt = self.base(self.space, seed=int(rng.integers(2**31)))
        it = iter(scalar)
        for t in self.trials:  # failed trials are told as nan so they are not re-suggested
            opt.tell(t.params, float(next(it)) if t.ok else float("nan"))
        # Told trials count as asked (hpo.Optimizer._n_asked), so a base rebuilt
        # from history is past its initial design once it has seen enough trials.
        return opt.ask()

    def tell(self, params: Mapping[str, Any], values: Sequence[float]) -> MOTrial:
        """Records the objective vector (each minimised) of ``params``; nan/inf = failed."""
        vals = tuple(float("nan") if v is None else float(v) for v in values)
        if len(vals) != self.num_objectives:
            raise ValueError(f"expected {self.num_objectives} objective values, got {len(vals)}")
        trial = MOTrial(dict(params), vals)
        self.trials.append(trial)
        return trial

    def pareto_front(self) -> list[tuple[dict, tuple[float, ...]]]:
        """Non-dominated successful trials as ``(params, values)``, sorted by objective 1."""
        ok = [t for t in self.trials if t.ok]
        if not ok:
            return []
        mask = pareto_mask(np.array([t.values for t in ok]))
        front = [(dict(t.params), t.values) for t, m in zip(ok, mask) if m]
        return sorted(front, key=lambda pv: pv[1])

    def hypervolume(self, ref: Sequence[float]) -> float:
        """Hypervolume of the successful trials w.r.t. the reference point ``ref``."""
        ok = [t.values for t in self.trials if t.ok]
        return hypervolume(np.array(ok).reshape(-1, self.num_objectives), ref)
