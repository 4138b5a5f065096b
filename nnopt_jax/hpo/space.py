"""Search spaces: typed dimensions and their encodings.

Two encodings are provided:

* the *unit* encoding maps a configuration to ``[0, 1]^n_params`` (one
  coordinate per parameter; log-scaled dimensions are uniform in log space,
  integers occupy equal-width bins, a categorical with ``k`` choices occupies
  ``k`` equal-width bins). Uniform sampling in this cube is the prior used by
  random search and the initial design.
* the *feature* encoding is what the Gaussian process sees: reals and integers
  take one column in ``[0, 1]`` (log-transformed when ``log=True``), each
  categorical takes a one-hot block. :meth:`SearchSpace.snap_features` projects
  an arbitrary point of ``[0, 1]^n_features`` onto the encodings of valid
  configurations (rounding integers, arg-maxing one-hot blocks); it is pure
  ``jax.numpy`` so it runs inside jit.

Conditional dimensions. Any dimension may carry ``condition=(parent, values)``:
it is *active* only when the categorical ``parent`` (defined earlier in the
space, itself active) takes one of ``values``, e.g.
``Real(0.5, 5.0, condition=("method", {"svd", "vnq"}))``. An inactive
dimension is absent from the configuration: it is never sampled (its unit
coordinate is drawn but not decoded, so the random stream of unconditional
spaces is unchanged), :meth:`SearchSpace.validate` refuses a value for it, so
journals never record one, and the GP sees it at a fixed neutral encoding:
its numerical column is :data:`INACTIVE_FEATURE` (0.5, the centre of the
cube) and its one-hot block all zeros (equidistant from every choice).
Trials where the dimension is inactive therefore share one constant column,
which carries no information into the kernel; :meth:`SearchSpace.snap_features`
applies the same encoding to candidates, so the acquisition is maximised over
the encodings that trials actually have.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Real:
    """A real interval ``[low, high]``, optionally log-uniform (``log=True``)."""

    low: float
    high: float
    log: bool = False
    condition: tuple | None = None

    def __post_init__(self):
        _check_bounds(self, "Real")
        object.__setattr__(self, "condition", _condition(self.condition))

    @property
    def _bounds(self) -> tuple[float, float]:
        if self.log:
            return math.log(self.low), math.log(self.high)
        return float(self.low), float(self.high)

    def from_unit(self, u: float) -> float:
        lo, hi = self._bounds
        v = lo + float(np.clip(u, 0.0, 1.0)) * (hi - lo)
        v = math.exp(v) if self.log else v
        return float(min(max(v, self.low), self.high))

    def check(self, value: Any) -> float:
        """``value`` as a float, or ``ValueError`` if it is not a number in ``[low, high]``."""
        v = _number(value, "a real number")
        if not self.low <= v <= self.high:
            raise ValueError(f"value {v} outside Real({self.low}, {self.high})")
        return v

    def to_unit(self, value: Any) -> float:
        v = self.check(value)
        lo, hi = self._bounds
        v = math.log(v) if self.log else v
        return (v - lo) / (hi - lo)


@dataclasses.dataclass(frozen=True)
class Int:
    """Integers ``low..high`` inclusive, optionally log-uniform (``log=True``).

    The unit interval is split into equal-width bins (in log space when
    ``log=True``, using the interval ``[low - 0.5, high + 0.5]``) so that
    uniform unit samples give the intended integer prior.
    """

    low: int
    high: int
    log: bool = False
    condition: tuple | None = None

    def __post_init__(self):
        object.__setattr__(self, "condition", _condition(self.condition))
        for bound in (self.low, self.high):
            if not _is_integral(bound):
                raise ValueError(f"Int bounds must be integers, got ({self.low!r}, "
                                 f"{self.high!r}); use Real for a continuous range")
        object.__setattr__(self, "low", int(self.low))
        object.__setattr__(self, "high", int(self.high))
        _check_bounds(self, "Int")

    @property
    def _bounds(self) -> tuple[float, float]:
        lo, hi = self.low - 0.5, self.high + 0.5
        if self.log:
            lo = max(lo, self.low * 0.5)  # keep > 0 for low == 1
            return math.log(lo), math.log(hi)
        return lo, hi

    def from_unit(self, u: float) -> int:
        lo, hi = self._bounds
        v = lo + float(np.clip(u, 0.0, 1.0)) * (hi - lo)
        v = math.exp(v) if self.log else v
        return int(min(max(round(v), self.low), self.high))

    def check(self, value: Any) -> int:
        """``value`` as an int, or ``ValueError`` if it is not an integer in ``low..high``."""
        if not _is_integral(value):
            raise ValueError(f"expected an integer, got {value!r}")
        v = int(value)
        if not self.low <= v <= self.high:
            raise ValueError(f"value {v} outside Int({self.low}, {self.high})")
        return v

    def to_unit(self, value: Any) -> float:
        v = self.check(value)
        lo, hi = self._bounds
        x = math.log(v) if self.log else float(v)
        return (x - lo) / (hi - lo)


@dataclasses.dataclass(frozen=True)
class Categorical:
    """An unordered choice among ``choices`` (any hashable, JSON-friendly values)."""

    choices: tuple
    condition: tuple | None = None

    def __init__(self, choices: Sequence[Any], condition: Any = None):
        if isinstance(choices, (str, bytes)) or not isinstance(choices, (list, tuple)):
            raise ValueError(f"Categorical needs a list of choices, got {choices!r}; write "
                             f"Categorical([{choices!r}]) for a single choice")
        choices = tuple(choices)
        if len(choices) == 0:
            raise ValueError("Categorical needs at least one choice; got an empty sequence")
        if len(set(map(repr, choices))) != len(choices):
            raise ValueError(f"Categorical choices must be distinct, got {choices}")
        object.__setattr__(self, "choices", choices)
        object.__setattr__(self, "condition", _condition(condition))

    def index(self, value: Any) -> int:
        for i, c in enumerate(self.choices):
            if _same_choice(c, value):
                return i
        raise ValueError(f"value {value!r} is not one of {list(self.choices)}")

    def check(self, value: Any) -> Any:
        """The choice equal to ``value`` (a JSON list matches a tuple choice), or ``ValueError``."""
        return self.choices[self.index(value)]

    def from_unit(self, u: float) -> Any:
        k = len(self.choices)
        return self.choices[min(int(float(np.clip(u, 0.0, 1.0)) * k), k - 1)]

    def to_unit(self, value: Any) -> float:
        return (self.index(value) + 0.5) / len(self.choices)


Dimension = Real | Int | Categorical

INACTIVE_FEATURE = 0.5
"""The feature (and unit) value of an inactive real or integer dimension."""

GRID_LIMIT = 2**15
"""The largest finite space :meth:`SearchSpace.grid_features` enumerates by default
(32 768 configurations; NAS-Bench-201's 15 625 cells and HPOBench-MLP's
30 000 grid points fit)."""


def _condition(condition: Any) -> tuple[str, tuple] | None:
    """``condition`` as ``(parent, values)``; ``values`` may be a set, list, tuple or one value."""
    if condition is None:
        return None
    if isinstance(condition, Mapping):
        condition = (condition.get("parent"), condition.get("values"))
    if not isinstance(condition, (tuple, list)) or len(condition) != 2 or \
            not isinstance(condition[0], str):
        raise ValueError(f"condition must be (parent_name, values), e.g. ('method', "
                         f"{{'svd', 'vnq'}}), got {condition!r}")
    parent, values = condition
    if isinstance(values, (set, frozenset)):
        values = tuple(sorted(values, key=repr))
    elif isinstance(values, (list, tuple)):
        values = tuple(values)
    else:
        values = (values,)
    if not values:
        raise ValueError(f"condition on {parent!r} needs at least one parent value")
    return parent, values


def _number(x: Any, what: str) -> float:
    """``x`` as a finite float; ``ValueError`` for bools, strings, nan and inf."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer,
                                                              np.floating)):
        raise ValueError(f"expected {what}, got {x!r}")
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"expected {what}, got {x!r}")
    return v


def _is_integral(x: Any) -> bool:
    try:
        return _number(x, "an integer") == int(x)
    except (ValueError, OverflowError):
        return False


def _same_choice(choice: Any, value: Any) -> bool:
    if isinstance(choice, (bool, np.bool_)) != isinstance(value, (bool, np.bool_)):
        return False  # True == 1 in Python, but they are different choices
    if isinstance(choice, (list, tuple)) and isinstance(value, (list, tuple)):
        return list(choice) == list(value)  # tuples come back from JSON as lists
    try:
        return bool(choice == value)
    except ValueError:  # e.g. arrays
        return False


def _check_bounds(dim, kind: str) -> None:
    lo = _number(dim.low, f"a number for {kind} low")
    hi = _number(dim.high, f"a number for {kind} high")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"{kind} bounds must be finite, got ({lo}, {hi})")
    if lo >= hi:
        raise ValueError(f"{kind} needs low < high, got low={lo}, high={hi}; swap them or use "
                         "Categorical([value]) for a constant")
    if dim.log and lo <= 0:
        raise ValueError(f"{kind}(log=True) needs low > 0, got low={lo}; use log=False or a "
                         "positive lower bound")


class SearchSpace:
    """An ordered mapping ``name -> dimension``.

    Args:
        dims: mapping from parameter name to :class:`Real`, :class:`Int` or
            :class:`Categorical`.
    """

    def __init__(self, dims: Mapping[str, Dimension]):
        if not isinstance(dims, Mapping) or len(dims) == 0:
            raise ValueError("SearchSpace needs a non-empty dict of name -> Real/Int/Categorical")
        for name, d in dims.items():
            if not isinstance(name, str):
                raise ValueError(f"parameter names must be strings, got {name!r}")
            if not isinstance(d, (Real, Int, Categorical)):
                raise ValueError(f"dimension {name!r} must be Real, Int or Categorical, got {d!r}")
        self.dims: dict[str, Dimension] = _check_conditions(dims)
        self.names: tuple[str, ...] = tuple(self.dims)
        self.conditions: dict[str, tuple[str, tuple]] = {
            n: d.condition for n, d in self.dims.items() if d.condition is not None}
        layout = []  # (kind, start, size) per parameter in feature space
        start = 0
        for d in self.dims.values():
            if isinstance(d, Categorical):
                layout.append(("cat", start, len(d.choices)))
                start += len(d.choices)
            else:
                layout.append(("int" if isinstance(d, Int) else "real", start, 1))
                start += 1
        self.layout: tuple[tuple[str, int, int], ...] = tuple(layout)
        self.n_features: int = start

    def __len__(self) -> int:
        return len(self.dims)

    def __eq__(self, other) -> bool:
        return isinstance(other, SearchSpace) and tuple(self.dims.items()) == tuple(
            other.dims.items())

    def __hash__(self) -> int:  # by value, so jit caches are shared by equal spaces
        return hash(tuple(self.dims.items()))

    def __repr__(self) -> str:
        return f"SearchSpace({self.dims!r})"

    # -- conditions -----------------------------------------------------------
    def _is_active(self, name: str, params: Mapping[str, Any]) -> bool:
        """Whether ``name`` is active given the (earlier) values in ``params``."""
        cond = self.conditions.get(name)
        if cond is None:
            return True
        parent, values = cond
        return parent in params and any(_same_choice(v, params[parent]) for v in values)

    def active_names(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        """The names active in the configuration ``params``, in the space's order."""
        seen: dict[str, Any] = {}
        for n in self.names:
            if self._is_active(n, seen):
                seen[n] = params.get(n)
        return tuple(seen)

    # -- unit encoding --------------------------------------------------------
    def from_unit(self, u: Sequence[float]) -> dict[str, Any]:
        """Decode one point of ``[0, 1]^len(self)`` into a configuration (active names only)."""
        out: dict[str, Any] = {}
        for (n, d), x in zip(self.dims.items(), u):
            if self._is_active(n, out):
                out[n] = d.from_unit(x)
        return out

    def to_unit(self, params: Mapping[str, Any]) -> np.ndarray:
        """Encode a configuration into ``[0, 1]^len(self)`` (inactive: :data:`INACTIVE_FEATURE`)."""
        params = self.validate(params)
        return np.array([d.to_unit(params[n]) if n in params else INACTIVE_FEATURE
                         for n, d in self.dims.items()])

    def sample(self, n: int, *, rng: np.random.Generator) -> list[dict[str, Any]]:
        """Draws ``n`` configurations from the prior (log-uniform where ``log=True``)."""
        return [self.from_unit(u) for u in rng.random((n, len(self)))]

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Checks that ``params`` is a configuration of this space.

        Returns:
            The canonical configuration (ints as ``int``, reals as ``float``,
            categoricals as the choice object), in the space's order; it holds
            the active names only.

        Raises:
            ValueError: a parameter is missing, unknown, inactive (its
                condition does not hold), of the wrong type or out of range;
                the message names it.
        """
        if not isinstance(params, Mapping):
            raise ValueError(f"params must be a dict of name -> value, got {params!r}")
        extra = set(params) - set(self.names)
        missing = set(self.active_names(params)) - set(params)
        if missing or extra:
            raise ValueError(f"params do not match the space: missing {sorted(missing)}, "
                             f"unexpected {sorted(map(str, extra))}")
        out = {}
        for name, dim in self.dims.items():
            if not self._is_active(name, out):
                if name in params:
                    parent, values = self.conditions[name]
                    raise ValueError(
                        f"parameter {name!r} is inactive: it applies only when {parent!r} is "
                        f"one of {list(values)}, but {parent!r} is "
                        f"{out.get(parent, '(inactive)')!r}; leave {name!r} out")
                continue
            try:
                out[name] = dim.check(params[name])
            except ValueError as err:
                raise ValueError(f"parameter {name!r}: {err}") from None
        return out

    # -- feature encoding (GP inputs) -----------------------------------------
    def to_features(self, params: Mapping[str, Any]) -> np.ndarray:
        """Encode a configuration into the GP feature space (one-hot categoricals)."""
        params = self.validate(params)
        out = np.zeros(self.n_features)
        for (kind, start, size), (n, d) in zip(self.layout, self.dims.items()):
            if n not in params:  # inactive: the neutral encoding (all-zero one-hot block)
                out[start] = 0.0 if kind == "cat" else INACTIVE_FEATURE
            elif kind == "cat":
                out[start + d.index(params[n])] = 1.0
            elif kind == "int":
                out[start] = _int_feature(d, params[n])
            else:
                out[start] = d.to_unit(params[n])
        return out

    def from_features(self, f: Sequence[float]) -> dict[str, Any]:
        """Decode a (possibly relaxed) feature vector into a configuration."""
        f = np.asarray(f, dtype=float)
        out = {}
        for (kind, start, size), (n, d) in zip(self.layout, self.dims.items()):
            if not self._is_active(n, out):
                continue
            if kind == "cat":
                out[n] = d.choices[int(np.argmax(f[start:start + size]))]
            elif kind == "int":
                out[n] = _int_from_feature(d, f[start])
            else:
                out[n] = d.from_unit(f[start])
        return out

    def snap_features(self, f):
        """Projects features onto valid configurations (jax.numpy; works under jit/vmap).

        Integers are rounded in their native (possibly log) scale and mapped
        back; each one-hot block is replaced by the one-hot of its arg-max.
        The columns of a dimension that is inactive at the snapped parent
        values take the neutral encoding of :meth:`to_features`.
        """
        f = jnp.clip(f, 0.0, 1.0)
        cols = []
        blocks: dict[str, tuple] = {}  # name -> (snapped one-hot, active) of categoricals
        for (kind, start, size), (n, d) in zip(self.layout, self.dims.items()):
            x = f[..., start:start + size]
            if kind == "cat":
                x = jax_one_hot_argmax(x)
            elif kind == "int":
                lo, hi = (math.log(d.low), math.log(d.high)) if d.log else (d.low, d.high)
                v = lo + x * (hi - lo)
                v = jnp.exp(v) if d.log else v
                v = jnp.clip(jnp.round(v), d.low, d.high)
                v = jnp.log(v) if d.log else v
                x = (v - lo) / (hi - lo)
            active = jnp.ones(f.shape[:-1] + (1,), f.dtype)
            if n in self.conditions:
                parent, values = self.conditions[n]
                onehot, parent_active = blocks[parent]
                pd = self.dims[parent]
                idx = [pd.index(v) for v in values]
                active = parent_active * jnp.sum(onehot[..., idx], axis=-1, keepdims=True)
                x = jnp.where(active > 0, x, 0.0 if kind == "cat" else INACTIVE_FEATURE)
            if kind == "cat":
                blocks[n] = (x, active)
            cols.append(x)
        return jnp.concatenate(cols, axis=-1)

    def feature_groups(self) -> tuple[int, ...]:
        """The parameter of every feature column: ``(0, 0, 0, 1, 2, 2)`` for a
        three-choice categorical, a number and a two-choice categorical."""
        return tuple(i for i, (_, _, width) in enumerate(self.layout) for _ in range(width))

    def n_configurations(self) -> int | None:
        """The size of the product of the dimensions' values, or ``None`` with a :class:`Real`.

        Without conditions this is the number of configurations; with them it
        is an upper bound (an inactive dimension takes no value).
        """
        sizes = self._value_counts()
        return None if sizes is None else math.prod(sizes)

    def _value_counts(self) -> list[int] | None:
        """How many values each dimension takes, or ``None`` with a :class:`Real`."""
        if any(isinstance(d, Real) for d in self.dims.values()):
            return None
        return [len(d.choices) if isinstance(d, Categorical) else d.high - d.low + 1
                for d in self.dims.values()]

    def grid_features(self, max_size: int = GRID_LIMIT) -> np.ndarray | None:
        """The features of every configuration of a finite space, each once.

        A space is finite when every dimension is an :class:`Int` or a
        :class:`Categorical`. Its configurations are the Cartesian product of the
        dimensions' values (first dimension slowest, as ``itertools.product``)
        encoded as :meth:`to_features` does; under conditions, an inactive
        dimension takes the neutral encoding and the repeats this makes are
        dropped (the first kept). Pure NumPy, no Python loop over configurations.

        Args:
            max_size: the largest product of the dimensions' sizes enumerated.

        Returns:
            ``(M, n_features)`` features, or ``None`` when a dimension is a
            :class:`Real` or the product exceeds ``max_size``.
        """
        sizes = self._value_counts()
        if sizes is None or math.prod(sizes) > max_size:
            return None
        index = np.indices(sizes).reshape(len(sizes), -1)  # (n_dims, M): value index per dim
        blocks, active = [], {}
        for (kind, _, width), (n, d), i in zip(self.layout, self.dims.items(), index):
            if kind == "cat":
                table = np.eye(width)
            else:
                table = np.array([[_int_feature(d, v)] for v in range(d.low, d.high + 1)])
            on = np.ones(i.shape, bool)
            if n in self.conditions:
                parent, values = self.conditions[n]
                pi = self.dims[parent].choices
                allowed = [k for k, c in enumerate(pi) if any(_same_choice(c, v) for v in values)]
                on = active[parent][0] & np.isin(active[parent][1], allowed)
            active[n] = (on, i)
            neutral = 0.0 if kind == "cat" else INACTIVE_FEATURE
            blocks.append(np.where(on[:, None], table[i], neutral))
        features = np.concatenate(blocks, axis=1)
        if self.conditions:
            _, first = np.unique(features, axis=0, return_index=True)
            features = features[np.sort(first)]
        return features

    def unit_to_features(self, u: np.ndarray) -> np.ndarray:
        """Vectorised ``to_features(from_unit(u))`` for a batch of unit points."""
        return np.stack([self.to_features(self.from_unit(x)) for x in np.atleast_2d(u)])

    # -- serialisation ---------------------------------------------------------
    def to_dict(self) -> dict:
        out = {}
        for n, d in self.dims.items():
            if isinstance(d, Categorical):
                out[n] = {"type": "categorical", "choices": list(d.choices)}
            else:
                out[n] = {"type": type(d).__name__.lower(), "low": d.low, "high": d.high,
                          "log": d.log}
            if d.condition is not None:  # only then, so unconditional headers are unchanged
                out[n]["condition"] = {"parent": d.condition[0], "values": list(d.condition[1])}
        return out

    @classmethod
    def from_dict(cls, spec: Mapping[str, Mapping[str, Any]]) -> "SearchSpace":
        """Builds a space from ``{name: {"type": "real"|"int"|"categorical", ...}}``.

        Any entry may have ``"condition": {"parent": name, "values": [...]}``
        (or ``[name, [...]]``): see the module docstring.

        Raises:
            ValueError: a malformed entry; the message names the dimension.
        """
        if not isinstance(spec, Mapping):
            raise ValueError(f"a search space spec must be a dict of name -> "
                             f"{{type: real|int|categorical, ...}}, got {spec!r}")
        dims = {}
        for n, s in spec.items():
            try:
                dims[n] = _dimension_from_dict(s)
            except ValueError as err:
                raise ValueError(f"search space dimension {n!r}: {err}") from None
        return cls(dims)


_SPEC_KEYS = {"real": ("low", "high"), "int": ("low", "high"), "categorical": ("choices",)}


def _dimension_from_dict(s: Any) -> Dimension:
    if not isinstance(s, Mapping):
        raise ValueError(f"expected a dict such as {{'type': 'real', 'low': 0, 'high': 1}}, "
                         f"got {s!r}")
    kind = s.get("type")
    if kind not in _SPEC_KEYS:
        raise ValueError(f"type must be 'real', 'int' or 'categorical', got {kind!r}")
    required = _SPEC_KEYS[kind]
    allowed = {"type", "condition", *required} | ({"log"} if kind != "categorical" else set())
    missing = [k for k in required if k not in s]
    if missing:
        raise ValueError(f"{kind} needs {' and '.join(required)}; missing {missing}")
    unknown = sorted(set(s) - allowed)
    if unknown:
        raise ValueError(f"unknown keys {unknown} for type {kind!r}; allowed: {sorted(allowed)}")
    condition = s.get("condition")
    if kind == "categorical":
        return Categorical(s["choices"], condition=condition)
    log = s.get("log", False)
    if not isinstance(log, (bool, np.bool_)):
        raise ValueError(f"log must be true or false, got {log!r}")
    return (Real if kind == "real" else Int)(s["low"], s["high"], log=bool(log),
                                             condition=condition)


def _check_conditions(dims: Mapping[str, Dimension]) -> dict[str, Dimension]:
    """``dims`` with each condition checked against its parent and its values put in
    the parent's order (so equal spaces compare equal); ``ValueError`` names the problem."""
    out: dict[str, Dimension] = {}
    for name, d in dims.items():
        if d.condition is not None:
            parent, values = d.condition
            if parent not in out:
                where = "defined after it" if parent in dims else "not in the space"
                raise ValueError(f"dimension {name!r} is conditioned on {parent!r}, which is "
                                 f"{where}; list the parent first")
            pd = out[parent]
            if not isinstance(pd, Categorical):
                raise ValueError(f"dimension {name!r} is conditioned on {parent!r}, which is "
                                 f"{type(pd).__name__}; a parent must be Categorical")
            try:
                idx = sorted({pd.index(v) for v in values})
            except ValueError as err:
                raise ValueError(f"dimension {name!r}: condition on {parent!r}: {err}") from None
            d = dataclasses.replace(d, condition=(parent, tuple(pd.choices[i] for i in idx)))
        out[name] = d
    return out


def _int_feature(d: Int, value) -> float:
    # Int features map low -> 0 and high -> 1 (log scale if log) so that the
    # extreme integers sit on the faces of the cube.
    v = int(round(float(value)))
    if not d.low <= v <= d.high:
        raise ValueError(f"value {v} outside Int({d.low}, {d.high})")
    if d.log:
        return (math.log(v) - math.log(d.low)) / (math.log(d.high) - math.log(d.low))
    return (v - d.low) / (d.high - d.low)


def _int_from_feature(d: Int, x: float) -> int:
    x = float(np.clip(x, 0.0, 1.0))
    if d.log:
        v = math.exp(math.log(d.low) + x * (math.log(d.high) - math.log(d.low)))
    else:
        v = d.low + x * (d.high - d.low)
    return int(min(max(round(v), d.low), d.high))


def jax_one_hot_argmax(x):
    """One-hot of the arg-max along the last axis (ties to the first)."""
    return (jnp.arange(x.shape[-1]) == jnp.argmax(x, axis=-1)[..., None]).astype(x.dtype)
