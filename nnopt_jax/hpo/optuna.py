"""An Optuna sampler that runs this project's Bayesian optimiser.

Needs Optuna (``pip install "nnopt_jax[optuna]"``); ``import nnopt_jax.hpo``
never imports it. Example::

    import optuna
    from nnopt_jax.hpo.optuna import NNOptSampler

    def objective(trial):
        x = trial.suggest_float("x", -5.0, 10.0)
        lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        return (x - 2.0) ** 2 + abs(lr - 1e-3)

    study = optuna.create_study(sampler=NNOptSampler(seed=0))
    study.optimize(objective, n_trials=20)

Every model-based suggestion is the one
:meth:`nnopt_jax.hpo.BayesianOptimizer.ask` makes after being told the
study's COMPLETE trials (in trial order, values negated when the study
maximises), with the GP hyperparameters of the previous fit as warm start. The
sampler therefore works with any Optuna storage (in memory, RDB, journal file)
and any number of workers sharing it.
"""

from __future__ import annotations

try:
    import optuna
except ImportError as _err:  # pragma: no cover - exercised in a subprocess test
    raise ImportError('nnopt_jax.hpo.optuna needs Optuna; install it with '
                      'pip install "nnopt_jax[optuna]"') from _err

import json
import math
import threading
from typing import Any, Mapping, Sequence

import numpy as np
from optuna.distributions import (BaseDistribution, CategoricalDistribution,
                                  FloatDistribution, IntDistribution)
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import intersection_search_space
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nnopt_jax.hpo import _adapter
from nnopt_jax.hpo._adapter import Codec
from nnopt_jax.hpo.space import Categorical, Int, Real, SearchSpace

__all__ = ["NNOptSampler", "SpaceMap", "distribution_to_codec", "codec_to_distribution",
           "suggest_space"]

_PARAMS_KEY = "nnopt:relative_params"  # a running trial's suggestion, for other workers
_STATE_KEY = "nnopt:gp_state"  # the GP hyperparameters of the fit that suggested a trial
_ATTR_MAX = 2045  # RDBStorage keeps system attributes of at most 2048 characters

_logger = optuna.logging.get_logger(__name__)


# -- search spaces ------------------------------------------------------------
def distribution_to_codec(distribution: BaseDistribution) -> Codec:
    """The dimension (and stepping) of one Optuna distribution.

    ``FloatDistribution(low, high, log)`` becomes ``Real(low, high, log)``,
    ``IntDistribution(low, high, log)`` ``Int(low, high, log)``,
    ``CategoricalDistribution(choices)`` ``Categorical(choices)``; a stepped
    float or integer range (``step`` set, ``step != 1`` for integers) becomes
    ``Int(0, n)`` over its grid index.

    Raises:
        ValueError: a single-valued distribution (Optuna suggests those without
            a sampler) or an unknown distribution type.
    """
    if distribution.single():
        raise ValueError(f"{distribution} holds a single value; Optuna suggests it without "
                         "asking the sampler")
    if isinstance(distribution, FloatDistribution):
        if distribution.step is not None:
            return Codec.stepped(distribution.low, distribution.high, distribution.step,
                                 integer=False)
        return Codec(Real(distribution.low, distribution.high, log=distribution.log))
    if isinstance(distribution, IntDistribution):
        if distribution.step != 1:
            return Codec.stepped(distribution.low, distribution.high, distribution.step,
                                 integer=True)
        return Codec(Int(distribution.low, distribution.high, log=distribution.log))
    if isinstance(distribution, CategoricalDistribution):
        return Codec(Categorical(list(distribution.choices)))
    raise ValueError(f"NNOptSampler cannot represent {type(distribution).__name__}; "
                     "use FloatDistribution, IntDistribution or CategoricalDistribution")


def codec_to_distribution(codec: Codec) -> BaseDistribution:
    """The Optuna distribution of a dimension: the inverse of :func:`distribution_to_codec`."""
    d = codec.dimension
    if codec.step is not None:
        high = codec.low + codec.n_steps * codec.step
        if codec.integer:
            return IntDistribution(int(codec.low), int(high), step=int(codec.step))
        return FloatDistribution(codec.low, high, step=codec.step)
    if isinstance(d, Real):
        return FloatDistribution(d.low, d.high, log=d.log)
    if isinstance(d, Int):
        return IntDistribution(d.low, d.high, log=d.log)
    return CategoricalDistribution(list(d.choices))


class SpaceMap:
    """Optuna distributions as one :class:`~nnopt_jax.hpo.SearchSpace`, and back.

    Args:
        distributions: ``name -> distribution`` (Float, Int, Categorical; any
            ``log``/``step``), e.g. a study's intersection search space.

    Attributes:
        space: the search space the optimiser sees (same names, same order).
        codecs: ``name -> Codec``.

    Raises:
        ValueError: a distribution that cannot be represented (names it).
    """

    def __init__(self, distributions: Mapping[str, BaseDistribution]):
        codecs = {}
        for name, dist in distributions.items():
            try:
                codecs[name] = distribution_to_codec(dist)
            except ValueError as err:
                raise ValueError(f"parameter {name!r}: {err}") from None
        if not codecs:
            raise ValueError("SpaceMap needs at least one distribution")
        self.codecs: dict[str, Codec] = codecs
        self.space: SearchSpace = _adapter.space_of(codecs)

    @classmethod
    def from_space(cls, space: SearchSpace) -> "SpaceMap":
        """The map of a search space of this project (each dimension maps one to one)."""
        return cls({n: codec_to_distribution(Codec(d)) for n, d in space.dims.items()})

    @property
    def distributions(self) -> dict[str, BaseDistribution]:
        """``name -> distribution``, rebuilt from the codecs."""
        return {n: codec_to_distribution(c) for n, c in self.codecs.items()}

    def to_nnopt(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Optuna ``params`` (external representation) as a configuration of :attr:`space`.

        Raises:
            ValueError: a parameter missing or outside its distribution.
        """
        return _adapter.encode(self.codecs, params)

    def to_optuna(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A configuration of :attr:`space` as Optuna params."""
        return _adapter.decode(self.codecs, params)


def suggest_space(trial: "optuna.trial.Trial", space: SearchSpace) -> dict[str, Any]:
    """Suggests every parameter of a search space of this project in an Optuna trial.

    Lets one ``SearchSpace`` drive both this project's optimisers and Optuna::

        def objective(trial):
            params = suggest_space(trial, space)
            return train(**params)
    """
    out = {}
    for name, dim in space.dims.items():
        if isinstance(dim, Real):
            out[name] = trial.suggest_float(name, dim.low, dim.high, log=dim.log)
        elif isinstance(dim, Int):
            out[name] = trial.suggest_int(name, dim.low, dim.high, log=dim.log)
        else:
            out[name] = trial.suggest_categorical(name, list(dim.choices))
    return out


# -- system attributes (shared through the storage) ------------------------------
def _set_attr(study: Study, trial: FrozenTrial, key: str, value: Any) -> None:
    text = json.dumps(value)
    for i in range(0, max(len(text), 1), _ATTR_MAX):
        study._storage.set_trial_system_attr(trial._trial_id, f"{key}:{i // _ATTR_MAX}",
                                             text[i:i + _ATTR_MAX])


def _get_attr(trial: FrozenTrial, key: str) -> Any:
    parts = []
    while (part := trial.system_attrs.get(f"{key}:{len(parts)}")) is not None:
        parts.append(part)
    if not parts:
        return None
    try:
        return json.loads("".join(parts))
    except ValueError:
        return None


def _trial_params(trial: FrozenTrial) -> dict[str, Any]:
    """A trial's params, with a running trial's published suggestion filled in."""
    if trial.state.is_finished():
        return trial.params
    published = _get_attr(trial, _PARAMS_KEY)
    return {**published, **trial.params} if isinstance(published, dict) else trial.params


class NNOptSampler(BaseSampler):
    """Optuna sampler backed by :class:`nnopt_jax.hpo.BayesianOptimizer`.

    * **Search space.** The intersection search space of the study's COMPLETE
      trials (``FloatDistribution`` incl. ``log`` and ``step``,
      ``IntDistribution`` incl. ``log`` and ``step``,
      ``CategoricalDistribution``), mapped by :class:`SpaceMap`; parameters
      outside it (dynamic, conditional spaces) and all parameters of the first
      ``n_startup_trials`` trials come from the independent sampler.
    * **History.** COMPLETE trials only, in trial order, values negated when the
      study maximises; PRUNED and FAIL trials are ignored. Given the same
      history and warm start, the suggestion equals
      ``BayesianOptimizer(space, seed=seed, n_initial=n_startup_trials,
      **optimizer_kwargs).ask()`` after telling it those trials.
    * **Running trials** (other workers, ``n_jobs > 1``): by default the
      *constant liar* with the **worst** value observed so far (Ginsbourger et
      al. 2010, CL-max): each running trial is told to the optimiser as if it
      had returned the worst value, which pushes the next suggestion away from
      it. ``running_trials="kriging_believer"`` fantasises them at the GP
      posterior mean instead (the optimiser's own ``ask(n)`` mechanism, no
      refit); ``"ignore"`` leaves them out. A running trial is seen once its
      suggestion is published in the storage (this sampler writes it as a
      system attribute before returning it). While other trials run, the
      optimiser's seed is mixed with the trial number, so workers that race
      on the same history still suggest different points.
    * **Warm start.** :meth:`after_trial` stores the GP hyperparameters of the
      fit that suggested the trial in the trial's system attributes; the next
      fit starts from this process's last fit, or (a fresh process, another
      worker, a resumed study) from the latest stored one. A resumed sequential
      study therefore continues as the uninterrupted one would.
    * **Multi-objective studies** are refused with a ``ValueError`` (use
      :class:`nnopt_jax.hpo.ParEGO`, or Optuna's ``NSGAIISampler``/``GPSampler``).

    Args:
        seed: seed of the optimiser and of the default independent sampler;
            ``None`` draws one (``reseed_rng`` draws a new one).
        n_startup_trials: COMPLETE trials sampled independently before the
            model is used; default ``min(10, 2 * n_params + 2)``, the size of
            :class:`BayesianOptimizer`'s initial design.
        running_trials: ``"constant_liar"`` (default), ``"kriging_believer"`` or
            ``"ignore"``.
        lie: the constant liar's value: ``"worst"`` (default), ``"mean"`` or
            ``"best"`` of the values observed so far.
        independent_sampler: sampler for startup trials and parameters outside
            the relative search space; default: random, seeded by ``(seed,
            trial number, parameter name)`` so concurrent workers with the same
            seed still draw different startup points.
        warn_independent_sampling: log a warning when a parameter is sampled
            independently after the startup trials (a dynamic search space).
        **optimizer_kwargs: further :class:`BayesianOptimizer` settings
            (``kernel``, ``acquisition``, ``surrogate``, ``output_transform``,
            ``n_candidates``, ...).

    Raises:
        ValueError: an unknown ``running_trials``/``lie`` or optimiser setting.
    """

    def __init__(self, *, seed: int | None = None, n_startup_trials: int | None = None,
                 running_trials: str = "constant_liar", lie: str = "worst",
                 independent_sampler: BaseSampler | None = None,
                 warn_independent_sampling: bool = True, **optimizer_kwargs: Any):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                                 or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        if n_startup_trials is not None and (
                isinstance(n_startup_trials, bool) or not isinstance(n_startup_trials, (int, np.integer))
                or n_startup_trials < 0):
            raise ValueError(f"n_startup_trials must be a non-negative integer or None, got "
                             f"{n_startup_trials!r}")
        self._optimizer_kwargs = _adapter.check_settings(running_trials, lie, optimizer_kwargs)
        self._seed = int(seed) if seed is not None else _fresh_seed()
        self._n_startup_trials = None if n_startup_trials is None else int(n_startup_trials)
        self._running_trials = running_trials
        self._lie = lie
        self._independent_sampler = independent_sampler
        self._warn_independent_sampling = bool(warn_independent_sampling)
        self._lock = threading.Lock()
        self._warm: dict | None = None  # the optimiser state of this process's last fit
        self._fitted: dict[int, dict] = {}  # trial number -> state, until after_trial stores it
        self._modelled: set[int] = set()  # running trials whose relative params the model chose

    # -- BaseSampler ----------------------------------------------------------
    def reseed_rng(self) -> None:
        """Draws a new seed (Optuna calls this in each thread of ``n_jobs > 1``)."""
        self._seed = _fresh_seed()
        if self._independent_sampler is not None:
            self._independent_sampler.reseed_rng()

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        """Refuses multi-objective studies before anything is sampled."""
        _check_single_objective(study)
        if self._independent_sampler is not None:
            self._independent_sampler.before_trial(study, trial)

    def infer_relative_search_space(self, study: Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        """The intersection search space of the COMPLETE trials, without single values."""
        _check_single_objective(study)
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return {name: dist for name, dist in intersection_search_space(complete).items()
                if not dist.single()}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        """The optimiser's suggestion for ``search_space`` (``{}`` during startup)."""
        if not search_space:
            return {}
        _check_single_objective(study)
        trials = study.get_trials(deepcopy=False,
                                  states=(TrialState.COMPLETE, TrialState.RUNNING))
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        n_startup = self._n_startup(search_space)
        if len(complete) < n_startup:
            return {}
        smap = SpaceMap(search_space)
        sign = -1.0 if study.direction == StudyDirection.MAXIMIZE else 1.0
        history = []
        for t in complete:
            try:
                history.append((smap.to_nnopt(t.params), sign * float(t.value)))
            except (ValueError, TypeError):
                continue  # a value outside the current distribution
        running, others = [], False
        for t in trials:
            if t.state != TrialState.RUNNING or t.number == trial.number:
                continue
            others = True
            try:
                running.append(smap.to_nnopt(_trial_params(t)))
            except ValueError:
                continue  # not sampled yet, or only partly
        seed = self._seed if not others else _adapter.derive_seed(self._seed, trial.number)
        with self._lock:
            warm = self._warm
        if warm is None:
            warm = _latest_state(complete)
        params, state = _adapter.suggest(
            smap.space, history, running, seed=seed, n_initial=n_startup,
            running_trials=self._running_trials, lie=self._lie, warm=warm,
            optimizer_kwargs=self._optimizer_kwargs)
        out = smap.to_optuna(params)
        with self._lock:
            self._modelled.add(trial.number)
            if state is not None:
                self._warm = state
                self._fitted[trial.number] = state
        _set_attr(study, trial, _PARAMS_KEY, out)  # seen by other workers while it runs
        return out

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        """Startup trials and parameters outside the relative search space."""
        with self._lock:
            modelled = trial.number in self._modelled
        if self._warn_independent_sampling and modelled:
            _logger.warning(
                f"The parameter {param_name!r} in trial#{trial.number} is sampled "
                f"independently by {self._independent_name()} instead of NNOptSampler: it is "
                "not in the intersection search space of the complete trials (a dynamic "
                "search space).")
        if self._independent_sampler is not None:
            return self._independent_sampler.sample_independent(study, trial, param_name,
                                                                param_distribution)
        rng = RandomSampler(seed=_adapter.derive_seed(self._seed, trial.number, param_name))
        return rng.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        """Stores the GP hyperparameters that suggested ``trial`` (the warm start)."""
        with self._lock:
            fitted = self._fitted.pop(trial.number, None)
            self._modelled.discard(trial.number)
        if fitted is not None:
            _set_attr(study, trial, _STATE_KEY, fitted)
        if self._independent_sampler is not None:
            self._independent_sampler.after_trial(study, trial, state, values)

    # -- internals ------------------------------------------------------------
    def _n_startup(self, search_space: Mapping[str, BaseDistribution]) -> int:
        if self._n_startup_trials is not None:
            return self._n_startup_trials
        return min(10, 2 * len(search_space) + 2)

    def _independent_name(self) -> str:
        if self._independent_sampler is None:
            return "RandomSampler"
        return type(self._independent_sampler).__name__


def _fresh_seed() -> int:
    return int(np.random.default_rng().integers(2**31))


def _check_single_objective(study: Study) -> None:
    if len(study.directions) > 1:
        raise ValueError(
            f"NNOptSampler optimises a single objective, but this study has "
            f"{len(study.directions)} ({[d.name for d in study.directions]}); use "
            "nnopt_jax.hpo.ParEGO through its ask/tell API, or Optuna's NSGAIISampler or "
            "GPSampler for multi-objective studies")


def _latest_state(complete: Sequence[FrozenTrial]) -> dict | None:
    """The warm start stored with the latest COMPLETE trial that has one."""
    for t in sorted(complete, key=lambda t: t.number, reverse=True):
        state = _get_attr(t, _STATE_KEY)
        if isinstance(state, dict):
            return state
    return None
