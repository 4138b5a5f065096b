"""What the Optuna sampler and the Ray Tune searcher share (no engine imported here).

Both adapters keep no optimiser between calls: each suggestion builds a fresh
:class:`~nnopt_jax.hpo.bo.BayesianOptimizer`, tells it the engine's finished
trials, represents the engine's running trials (constant liar or kriging
believer, Ginsbourger et al. 2010), loads the GP hyperparameters of the
previous fit as its warm start, and asks once. A suggestion is therefore a
pure function of (seed, settings, history, running trials, warm start), which
is what makes "the sampler suggests what ``BayesianOptimizer.ask`` would" and
"a restored searcher continues identically" hold.

:class:`Codec` maps one engine parameter onto one of this project's
dimensions: a real or integer range (optionally log) maps one to one; a
stepped range (``values = low + k * step``) maps onto ``Int(0, n)``, the index
``k``, so the GP sees an ordered integer.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from typing import Any, Mapping, Sequence

import numpy as np

from nnopt_jax.hpo.bo import BayesianOptimizer
from nnopt_jax.hpo.journal import Ask
from nnopt_jax.hpo.space import Categorical, Dimension, Int, Real, SearchSpace

RUNNING_TRIALS = ("constant_liar", "kriging_believer", "ignore")
"""How running trials enter a suggestion (see :func:`suggest`)."""

LIES = ("worst", "mean", "best")
"""The constant a running trial is believed to return under ``constant_liar``."""

_RESERVED = ("seed", "n_initial", "journal", "metadata")


@dataclasses.dataclass(frozen=True)
class Codec:
    """One engine parameter as one dimension of a :class:`SearchSpace`.

    Attributes:
        dimension: what the optimiser searches.
        low, step: set for a stepped range, whose engine values are
            ``low + k * step`` for the index ``k`` that ``dimension``
            (``Int(0, n)``) holds; ``None`` when values map one to one.
        integer: the engine's values are ints (stepped integer ranges).
    """

    dimension: Dimension
    low: float | None = None
    step: float | None = None
    integer: bool = False

    @classmethod
    def stepped(cls, low: float, high: float, step: float, *, integer: bool) -> "Codec":
        """The codec of ``{low, low + step, ..., high}`` (``high`` rounded down onto the grid).

        Raises:
            ValueError: ``step`` is not positive or the range holds one value.
        """
        if not (isinstance(step, (int, float, np.integer, np.floating)) and step > 0):
            raise ValueError(f"step must be a positive number, got {step!r}")
        n = int(math.floor((high - low) / step + 1e-9))
        if n < 1:
            raise ValueError(f"the stepped range {low}..{high} (step {step}) holds one value")
        low = int(low) if integer else float(low)
        step = int(step) if integer else float(step)
        return cls(Int(0, n), low, step, integer)

    @property
    def n_steps(self) -> int | None:
        return None if self.step is None else self.dimension.high

    def to_nnopt(self, value: Any) -> Any:
        """The optimiser's value for an engine ``value``.

        Raises:
            ValueError: ``value`` is not in the range (or not on its grid).
        """
        if self.step is None:
            return self.dimension.check(value)
        if isinstance(value, (bool, np.bool_)) or not isinstance(
                value, (int, float, np.integer, np.floating)):
            raise ValueError(f"expected a number, got {value!r}")
        k = (float(value) - self.low) / self.step
        if not math.isfinite(k) or abs(k - round(k)) > 1e-6:
            raise ValueError(f"value {value!r} is not on the grid {self.low} + k * {self.step}")
        return self.dimension.check(int(round(k)))

    def to_engine(self, value: Any) -> Any:
        """The engine's value for the optimiser's ``value`` (plain Python types)."""
        if self.step is not None:
            v = self.low + int(value) * self.step
            return int(v) if self.integer else float(v)
        if isinstance(self.dimension, Real):
            return float(value)
        if isinstance(self.dimension, Int):
            return int(value)
        return value

    def to_dict(self) -> dict:
        """The stepping (JSON); the dimension itself is in the space's ``to_dict``."""
        if self.step is None:
            return {}
        return {"low": self.low, "step": self.step, "integer": self.integer}

    @classmethod
    def from_dict(cls, dimension: Dimension, spec: Mapping[str, Any]) -> "Codec":
        if not spec:
            return cls(dimension)
        return cls(dimension, spec["low"], spec["step"], bool(spec["integer"]))


def encode(codecs: Mapping[str, Codec], params: Mapping[str, Any]) -> dict[str, Any]:
    """Engine ``params`` as a configuration of the codecs' space.

    Raises:
        ValueError: a parameter is missing or out of its range; the message names it.
    """
    missing = [n for n in codecs if n not in params]
    if missing:
        raise ValueError(f"params lack {missing}")
    out = {}
    for name, codec in codecs.items():
        try:
            out[name] = codec.to_nnopt(params[name])
        except ValueError as err:
            raise ValueError(f"parameter {name!r}: {err}") from None
    return out


def decode(codecs: Mapping[str, Codec], params: Mapping[str, Any]) -> dict[str, Any]:
    """A configuration of the codecs' space as engine params."""
    return {name: codec.to_engine(params[name]) for name, codec in codecs.items()}


def space_of(codecs: Mapping[str, Codec]) -> SearchSpace:
    return SearchSpace({name: c.dimension for name, c in codecs.items()})


def check_settings(running_trials: str, lie: str, optimizer_kwargs: Mapping[str, Any],
                   allowed_running=RUNNING_TRIALS) -> dict[str, Any]:
    """Validates the adapter settings; returns the optimiser's keyword arguments.

    The keyword arguments are checked by building a throw-away optimiser, so a
    misspelt or invalid setting fails when the sampler is made, not at its
    first model-based suggestion.

    Raises:
        ValueError: an unknown mode, lie, or optimiser setting.
    """
    if running_trials not in allowed_running:
        raise ValueError(f"running_trials must be one of {allowed_running}, got "
                         f"{running_trials!r}")
    if lie not in LIES:
        raise ValueError(f"lie must be one of {LIES}, got {lie!r}")
    kwargs = dict(optimizer_kwargs)
    reserved = sorted(set(kwargs) & set(_RESERVED))
    if reserved:
        raise ValueError(f"{reserved} are set by the adapter (seed=, n_startup_trials=/"
                         "n_initial=); journals belong to the engine's storage")
    try:
        BayesianOptimizer(SearchSpace({"x": Real(0.0, 1.0)}), **kwargs)
    except TypeError as err:
        raise ValueError(f"invalid BayesianOptimizer setting: {err}") from None
    return kwargs


def lie_value(values: Sequence[float], lie: str) -> float:
    """The constant liar's value from the finite (minimisation) values told so far."""
    if lie == "worst":
        return float(np.max(values))
    if lie == "best":
        return float(np.min(values))
    return float(np.mean(values))


def derive_seed(*parts: int | str) -> int:
    """A seed in ``[0, 2**31)`` from integers and strings (stable across processes)."""
    words = [p if isinstance(p, int) else zlib.crc32(str(p).encode()) for p in parts]
    return int(np.random.SeedSequence(words).generate_state(1)[0] % (2**31))


def suggest(space: SearchSpace, history: Sequence[tuple[Mapping[str, Any], float | None]],
            running: Sequence[Mapping[str, Any]] = (), *, seed: int, n_initial: int,
            running_trials: str = "constant_liar", lie: str = "worst",
            warm: Mapping | None = None, optimizer_kwargs: Mapping[str, Any] | None = None
            ) -> tuple[dict[str, Any], dict | None]:
    """One :class:`BayesianOptimizer` suggestion from a plain history.

    Equals ``opt.ask()`` of ``opt = BayesianOptimizer(space, seed=seed,
    n_initial=n_initial, **optimizer_kwargs)`` after ``opt.tell(params, value)``
    for each history entry in order (and the warm start loaded), when nothing is
    running.

    Args:
        space: the search space.
        history: ``(params, value)`` of each finished trial, in order; ``value``
            is minimised, ``None``/nan/inf marks a failed trial (excluded from
            the fit, never suggested again).
        running: params of trials suggested and not finished.
        seed: the optimiser's seed.
        n_initial: size of its initial (Sobol) design.
        running_trials: ``"constant_liar"`` tells each running trial with the
            ``lie`` value (the GP is fitted with them); ``"kriging_believer"``
            adds them as pending asks, fantasised at the posterior mean without
            refitting (the optimiser's own batch mechanism); ``"ignore"`` leaves
            them out. With no finite value told yet there is nothing to lie
            with, and running trials are pending asks under both first modes
            (they still advance the initial design and are never repeated).
        lie: ``"worst"`` (the largest value told), ``"mean"`` or ``"best"``.
        warm: the optimiser state of the previous fit (``opt._state()``), or ``None``.
        optimizer_kwargs: further :class:`BayesianOptimizer` settings.

    Returns:
        The suggested configuration and the optimiser state after the fit (the
        next call's ``warm``; ``None`` if no model was fitted).
    """
    opt = BayesianOptimizer(space, seed=seed, n_initial=max(1, int(n_initial)),
                            **dict(optimizer_kwargs or {}))
    for params, value in history:
        opt.tell(params, value)
    if running and running_trials != "ignore":
        finite = [float(v) for _, v in history if v is not None and math.isfinite(v)]
        if running_trials == "constant_liar" and finite:
            value = lie_value(finite, lie)
            for params in running:
                opt.tell(params, value)
        else:
            for i, params in enumerate(running):
                opt.pending.append(Ask(f"running:{i}", "adapter", space.validate(params)))
    if warm is not None:
        opt._load_state(warm)  # the optimiser's warm-start hook (what a journal replays)
    params = opt.ask()
    return params, opt._state()
