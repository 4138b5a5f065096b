"""Standard black-box optimisation test functions with their known optima.

Definitions, domains and optima follow the Virtual Library of Simulation
Experiments (Surjanovic & Bingham, sfu.ca/~ssurjano). Every function takes a
1-D numpy array in its native domain and returns a float; a
:class:`TestFunction` bundles it with its bounds, optimum value and optimum
locations, and can build the matching :class:`~nnopt_jax.hpo.space.SearchSpace`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import numpy as np

from nnopt_jax.hpo.space import Real, SearchSpace


def branin(x: np.ndarray) -> float:
    x1, x2 = float(x[0]), float(x[1])
    a, b, c = 1.0, 5.1 / (4 * np.pi**2), 5.0 / np.pi
    r, s, t = 6.0, 10.0, 1.0 / (8 * np.pi)
    return float(a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * np.cos(x1) + s)


_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H3_A = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
_H3_P = 1e-4 * np.array([[3689, 1170, 2673], [4699, 4387, 7470],
                         [1091, 8732, 5547], [381, 5743, 8828]])
_H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                  [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886],
                         [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650],
                         [4047, 8828, 8732, 5743, 1091, 381]])


def hartmann3(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    return float(-np.sum(_H_ALPHA * np.exp(-np.sum(_H3_A * (x - _H3_P) ** 2, axis=1))))


def hartmann6(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    return float(-np.sum(_H_ALPHA * np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1))))


def ackley(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    d = x.size
    a, b, c = 20.0, 0.2, 2 * np.pi
    return float(-a * np.exp(-b * np.sqrt(np.sum(x**2) / d)) - np.exp(np.sum(np.cos(c * x)) / d)
                 + a + np.e)


def rosenbrock(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def levy(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    w = 1 + (x - 1) / 4
    head = np.sin(np.pi * w[0]) ** 2
    mid = np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(np.pi * w[:-1] + 1) ** 2))
    tail = (w[-1] - 1) ** 2 * (1 + np.sin(2 * np.pi * w[-1]) ** 2)
    return float(head + mid + tail)


def six_hump_camel(x: np.ndarray) -> float:
    x1, x2 = float(x[0]), float(x[1])
    return float((4 - 2.1 * x1**2 + x1**4 / 3) * x1**2 + x1 * x2 + (-4 + 4 * x2**2) * x2**2)


def styblinski_tang(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=float)
    return float(0.5 * np.sum(x**4 - 16 * x**2 + 5 * x))


@dataclasses.dataclass(frozen=True)
class TestFunction:
    """A test function with its domain and known global minimum.

    Attributes:
        name: short identifier.
        fn: ``fn(x: np.ndarray) -> float`` on the native domain.
        bounds: ``(low, high)`` per dimension.
        optimum_value: the global minimum value.
        optimum_locations: the known minimisers (one row per minimiser).
    """

    __test__ = False  # not a pytest class

    name: str
    fn: Callable[[np.ndarray], float]
    bounds: tuple[tuple[float, float], ...]
    optimum_value: float
    optimum_locations: tuple[tuple[float, ...], ...]

    @property
    def dim(self) -> int:
        return len(self.bounds)

    def space(self) -> SearchSpace:
        """The search space ``{"x0": Real(...), "x1": ...}`` over the native domain."""
        return SearchSpace({f"x{i}": Real(lo, hi) for i, (lo, hi) in enumerate(self.bounds)})

    def __call__(self, params: Mapping[str, float] | np.ndarray) -> float:
        if isinstance(params, Mapping):
            params = np.array([params[f"x{i}"] for i in range(self.dim)], dtype=float)
        return self.fn(np.asarray(params, dtype=float))

    def regret(self, value: float) -> float:
        """Simple regret ``value - optimum_value``."""
        return float(value - self.optimum_value)


BRANIN = TestFunction("branin", branin, ((-5.0, 10.0), (0.0, 15.0)), 0.397887357729739,
                      ((-np.pi, 12.275), (np.pi, 2.275), (9.42477796, 2.475)))
HARTMANN3 = TestFunction("hartmann3", hartmann3, ((0.0, 1.0),) * 3, -3.86278214782076,
                         ((0.114614, 0.555649, 0.852547),))
HARTMANN6 = TestFunction("hartmann6", hartmann6, ((0.0, 1.0),) * 6, -3.32236801141551,
                         ((0.20168952, 0.15001069, 0.47687398, 0.27533243, 0.31165162,
                           0.65730054),))
ACKLEY5 = TestFunction("ackley5", ackley, ((-32.768, 32.768),) * 5, 0.0, ((0.0,) * 5,))
ROSENBROCK4 = TestFunction("rosenbrock4", rosenbrock, ((-5.0, 10.0),) * 4, 0.0, ((1.0,) * 4,))
LEVY4 = TestFunction("levy4", levy, ((-10.0, 10.0),) * 4, 0.0, ((1.0,) * 4,))
SIX_HUMP_CAMEL = TestFunction("six_hump_camel", six_hump_camel, ((-3.0, 3.0), (-2.0, 2.0)),
                              -1.031628453489877, ((0.0898, -0.7126), (-0.0898, 0.7126)))
STYBLINSKI_TANG4 = TestFunction("styblinski_tang4", styblinski_tang, ((-5.0, 5.0),) * 4,
                                -39.16616570377142 * 4, ((-2.903534018185960,) * 4,))

FUNCTIONS: dict[str, TestFunction] = {
    f.name: f for f in (BRANIN, HARTMANN3, HARTMANN6, ACKLEY5, ROSENBROCK4, LEVY4,
                        SIX_HUMP_CAMEL, STYBLINSKI_TANG4)
}


def get_function(name: str) -> TestFunction:
    """Looks a test function up by name (see :data:`FUNCTIONS`)."""
    if name not in FUNCTIONS:
        raise ValueError(f"unknown test function {name!r}; choose from {sorted(FUNCTIONS)}")
    return FUNCTIONS[name]
