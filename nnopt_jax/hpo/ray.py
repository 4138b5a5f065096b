"""A Ray Tune searcher that runs this project's Bayesian optimiser.

Needs Ray Tune (``pip install "nnopt_jax[ray]"``); ``import nnopt_jax.hpo``
never imports it. Example::

    from ray import tune
    from ray.tune.search import ConcurrencyLimiter
    from nnopt_jax.hpo.ray import NNOptSearch

    search = ConcurrencyLimiter(NNOptSearch(seed=0), max_concurrent=8)
    tuner = tune.Tuner(train_fn,
                       param_space={"lr": tune.loguniform(1e-5, 1e-1),
                                    "width": tune.lograndint(16, 513),
                                    "act": tune.choice(["relu", "tanh"])},
                       tune_config=tune.TuneConfig(search_alg=search, metric="loss",
                                                   mode="min", num_samples=50))
    tuner.fit()

Each suggestion is :meth:`nnopt_jax.hpo.BayesianOptimizer.ask` after telling
the finished trials in the order they finished (failed ones excluded from the
fit) and the still-running ones under the constant liar, so concurrent trials
get different configurations. The searcher's whole state is a JSON file
(:meth:`NNOptSearch.save`), and a restored searcher suggests exactly what the
saved one would have.
"""

from __future__ import annotations

try:
    from ray.tune.search import UNDEFINED_METRIC_MODE, UNDEFINED_SEARCH_SPACE, Searcher
    from ray.tune.search import sample as _sample
    from ray.tune.search.variant_generator import parse_spec_vars
    from ray.tune.utils.util import flatten_dict, unflatten_dict
except ImportError as _err:  # pragma: no cover - exercised in a subprocess test
    raise ImportError('nnopt_jax.hpo.ray needs Ray Tune; install it with '
                      'pip install "nnopt_jax[ray]"') from _err

import json
import logging
import math
import os
from typing import Any, Mapping

import numpy as np

from nnopt_jax.hpo import _adapter
from nnopt_jax.hpo._adapter import Codec
from nnopt_jax.hpo.base import seed_int
from nnopt_jax.hpo.journal import jsonable
from nnopt_jax.hpo.space import Categorical, Int, Real, SearchSpace

__all__ = ["NNOptSearch", "convert_search_space"]

FORMAT = "nnopt_jax.hpo.ray.NNOptSearch"
VERSION = 1

_logger = logging.getLogger(__name__)


def _domain_codec(path: str, domain) -> Codec:
    """The codec of one Ray Tune domain (``tune.uniform`` and friends)."""
    sampler = domain.get_sampler()
    q = None
    if isinstance(sampler, _sample.Quantized):
        q, sampler = sampler.q, sampler.get_sampler()
    where = f"parameter {path!r}"
    if isinstance(domain, _sample.Categorical):
        if not isinstance(sampler, _sample.Uniform):
            raise ValueError(f"{where}: only tune.choice (uniform) categoricals are supported")
        return Codec(Categorical(list(domain.categories)))
    if isinstance(domain, (_sample.Float, _sample.Integer)):
        integer = isinstance(domain, _sample.Integer)
        log = isinstance(sampler, _sample.LogUniform)
        if not (log or isinstance(sampler, _sample.Uniform)):
            raise ValueError(f"{where}: {type(sampler).__name__} sampling (e.g. tune.randn) is "
                             "not supported; use a bounded uniform or log-uniform range")
        lo, hi = domain.lower, domain.upper
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"{where}: the range needs finite bounds, got [{lo}, {hi}]")
        if q is not None and not (integer and q == 1):
            if log:
                raise ValueError(f"{where}: quantised log-uniform ranges (tune.qloguniform, "
                                 "tune.qlograndint) are not supported; use tune.loguniform "
                                 "or tune.lograndint")
            kmin, kmax = math.ceil(lo / q - 1e-9), math.floor(hi / q + 1e-9)
            if kmax <= kmin:
                if kmax < kmin:
                    raise ValueError(f"{where}: no multiple of q={q} in [{lo}, {hi}]")
                return Codec(Categorical([int(kmin * q) if integer else float(kmin * q)]))
            return Codec.stepped(kmin * q, kmax * q, q, integer=integer)
        if integer:  # randint / lograndint: upper bound exclusive
            if hi - 1 <= lo:
                return Codec(Categorical([int(lo)]))
            return Codec(Int(int(lo), int(hi) - 1, log=log))
        return Codec(Real(float(lo), float(hi), log=log))
    raise ValueError(f"{where}: {type(domain).__name__} domains (e.g. tune.sample_from) are "
                     "not supported; use tune.uniform, tune.loguniform, tune.randint, "
                     "tune.lograndint, tune.quniform, tune.qrandint or tune.choice")


def convert_search_space(config: Mapping[str, Any]) -> dict[str, Codec]:
    """The codecs of a Ray Tune ``param_space`` (nested keys joined by ``/``).

    Constants are left out (Tune passes them to the trainable itself).

    Raises:
        ValueError: ``tune.grid_search``, or a domain this searcher cannot
            represent; the message names the parameter.
    """
    _, domain_vars, grid_vars = parse_spec_vars(dict(config))
    if grid_vars:
        names = ["/".join(map(str, path)) for path, _ in grid_vars]
        raise ValueError(f"NNOptSearch cannot search tune.grid_search parameters {names}; "
                         "use tune.choice for them")
    flat = flatten_dict(dict(config), prevent_delimiter=True)
    _, domain_vars, _ = parse_spec_vars(flat)
    return {"/".join(path): _domain_codec("/".join(path), domain) for path, domain in domain_vars}


def _codecs_of(space) -> dict[str, Codec]:
    if isinstance(space, SearchSpace):
        return {n: Codec(d) for n, d in space.dims.items()}
    if isinstance(space, Mapping):
        return convert_search_space(space)
    raise ValueError(f"space must be a nnopt_jax.hpo.SearchSpace or a dict of Ray Tune "
                     f"domains, got {type(space).__name__}")


class NNOptSearch(Searcher):
    """Ray Tune searcher backed by :class:`nnopt_jax.hpo.BayesianOptimizer`.

    * **Space**: a :class:`~nnopt_jax.hpo.SearchSpace`, a dict of Ray Tune
      domains (``tune.uniform``, ``loguniform``, ``randint``, ``lograndint``,
      ``quniform``, ``qrandint``, ``choice``; nested dicts become ``a/b``
      names), or ``None`` to take the Tuner's ``param_space`` through
      :meth:`set_search_properties`.
    * **Suggestions**: the first ``n_initial`` come from the optimiser's
      scrambled Sobol design, the rest from the GP; each is the optimiser's
      ``ask()`` after telling it the finished trials in completion order.
    * **Concurrency**: running trials enter by the constant liar with the
      **worst** value seen so far (``running_trials="constant_liar"``,
      ``lie="worst"``; Ginsbourger et al. 2010), so suggestions made while
      others run differ from them and from each other;
      ``running_trials="kriging_believer"`` fantasises them at the posterior
      mean instead. Works under ``ConcurrencyLimiter``.
    * **Failures**: an errored trial, a result without the metric, or a
      non-finite metric is a failed trial: excluded from the fit, never
      suggested again.
    * **Checkpoints**: :meth:`save` writes JSON (space, settings, history,
      running trials, GP warm start; no pickle), and :meth:`restore` rebuilds
      a searcher that continues exactly as the saved one would; Tune calls
      both through ``save_to_dir``/``restore_from_dir``.

    Args:
        space: the search space (see above).
        metric, mode: the result key and ``"min"``/``"max"``; may instead
            come from ``tune.TuneConfig(metric=..., mode=...)``.
        seed: seed of the optimiser.
        n_initial: size of the initial design; default
            ``min(10, 2 * n_params + 2)``.
        running_trials: ``"constant_liar"`` (default) or ``"kriging_believer"``.
        lie: ``"worst"`` (default), ``"mean"`` or ``"best"``.
        points_to_evaluate: configurations to try first (flat ``a/b`` or nested keys).
        **optimizer_kwargs: further :class:`BayesianOptimizer` settings.

    Raises:
        ValueError: a space, mode or setting this searcher cannot use.
    """

    CKPT_FILE_TMPL = "searcher-state-{}.json"  # what save writes (Tune's default says .pkl)

    def __init__(self, space: SearchSpace | Mapping[str, Any] | None = None,
                 metric: str | None = None, mode: str | None = None, *, seed: int = 0,
                 n_initial: int | None = None, running_trials: str = "constant_liar",
                 lie: str = "worst", points_to_evaluate: list[Mapping[str, Any]] | None = None,
                 **optimizer_kwargs: Any):
        _check_metric_mode(metric, mode)
        super().__init__(metric=metric, mode=mode)
        self._settings = {
            "seed": seed_int(seed),
            "n_initial": None if n_initial is None else _n_initial(n_initial),
            "running_trials": running_trials, "lie": lie,
            "optimizer_kwargs": _adapter.check_settings(
                running_trials, lie, optimizer_kwargs,
                allowed_running=("constant_liar", "kriging_believer")),
        }
        self._codecs: dict[str, Codec] | None = None
        self._space: SearchSpace | None = None
        self._history: list[dict] = []  # {"trial_id", "params", "value"} in completion order
        self._live: dict[str, dict] = {}  # trial_id -> params of running trials
        self._warm: dict | None = None
        self._points = list(points_to_evaluate or [])
        if space is not None:
            self._set_space(_codecs_of(space))

    # -- Searcher API ----------------------------------------------------------
    def set_search_properties(self, metric: str | None, mode: str | None, config: Mapping,
                              **spec) -> bool:
        """Takes ``metric``/``mode`` (when not set) and, without a space, the Tuner's config.

        Returns:
            ``False`` when the searcher already has a space and ``config``
            defines another (Tune then raises), else ``True``.
        """
        _check_metric_mode(metric, mode)
        if self._space is not None:
            _, domain_vars, grid_vars = parse_spec_vars(dict(config or {}))
            if domain_vars or grid_vars:
                return False
        else:
            codecs = convert_search_space(config or {})
            if not codecs:
                return False
            self._set_space(codecs)
        if metric and not self._metric:
            self._metric = metric
        if mode and not self._mode:
            self._mode = mode
        return True

    def suggest(self, trial_id: str) -> dict | None:
        """The configuration of a new trial (nested dicts for ``a/b`` names)."""
        if self._space is None:
            raise RuntimeError(UNDEFINED_SEARCH_SPACE.format(cls=type(self).__name__,
                                                             space="space"))
        if not self._metric or not self._mode:
            raise RuntimeError(UNDEFINED_METRIC_MODE.format(
                cls=type(self).__name__, metric=self._metric, mode=self._mode))
        if trial_id in self._live:
            return unflatten_dict(_adapter.decode(self._codecs, self._live[trial_id]))
        if self._points:
            params = self._encode(flatten_dict(dict(self._points.pop(0))), "points_to_evaluate")
        else:
            params, state = _adapter.suggest(
                self._space, [(h["params"], h["value"]) for h in self._history],
                list(self._live.values()), seed=self._settings["seed"],
                n_initial=self._n_initial(), running_trials=self._settings["running_trials"],
                lie=self._settings["lie"], warm=self._warm,
                optimizer_kwargs=self._settings["optimizer_kwargs"])
            if state is not None:
                self._warm = state
        self._live[trial_id] = params
        return unflatten_dict(_adapter.decode(self._codecs, params))

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        """Records the trial's final ``metric`` (failed without it, or on error)."""
        params = self._live.pop(trial_id, None)
        if params is None:
            _logger.warning("NNOptSearch: completion of unknown trial %r ignored", trial_id)
            return
        self._history.append({"trial_id": trial_id, "params": params,
                              "value": None if error else self._value(result)})

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """Intermediate results are not used (the final one is)."""

    def add_evaluated_point(self, parameters: dict, value: float, error: bool = False,
                            pruned: bool = False, intermediate_values=None) -> None:
        """Adds a trial evaluated elsewhere (``value`` in the searcher's ``mode``).

        Errored and pruned points are recorded as failed (excluded from the fit).

        Raises:
            ValueError: ``parameters`` is not a configuration of the space.
        """
        if self._space is None:
            raise RuntimeError(UNDEFINED_SEARCH_SPACE.format(cls=type(self).__name__,
                                                             space="space"))
        params = self._encode(flatten_dict(dict(parameters)), "add_evaluated_point")
        v = None if error or pruned else self._value({self._metric: value})
        self._history.append({"trial_id": None, "params": params, "value": v})

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return False  # ConcurrencyLimiter does the limiting; the liar does the rest

    # -- state -----------------------------------------------------------------
    def get_state(self) -> dict:
        """The searcher's whole state as JSON-able data."""
        return jsonable({
            "format": FORMAT, "version": VERSION,
            "space": None if self._space is None else self._space.to_dict(),
            "codecs": None if self._codecs is None else {
                n: c.to_dict() for n, c in self._codecs.items()},
            "metric": self._metric, "mode": self._mode, "settings": self._settings,
            "history": self._history, "live": self._live, "warm": self._warm,
            "points_to_evaluate": self._points,
        })

    def set_state(self, state: Mapping) -> None:
        """Replaces this searcher's space, settings and history by ``state``'s.

        Raises:
            ValueError: not a state written by :meth:`get_state`.
        """
        if not isinstance(state, Mapping) or state.get("format") != FORMAT:
            raise ValueError(f"not an NNOptSearch checkpoint (format {FORMAT!r} expected)")
        if state.get("version") != VERSION:
            raise ValueError(f"NNOptSearch checkpoint version {state.get('version')!r} is not "
                             f"supported (this is version {VERSION})")
        settings = dict(state["settings"])
        _adapter.check_settings(settings["running_trials"], settings["lie"],
                                settings["optimizer_kwargs"],
                                allowed_running=("constant_liar", "kriging_believer"))
        self._settings = settings
        self._metric, self._mode = state["metric"], state["mode"]
        self._codecs = self._space = None
        if state["space"] is not None:
            space = SearchSpace.from_dict(state["space"])
            self._set_space({n: Codec.from_dict(d, state["codecs"].get(n) or {})
                             for n, d in space.dims.items()})
        check = self._space.validate if self._space is not None else dict
        self._history = [{"trial_id": h["trial_id"], "params": check(h["params"]),
                          "value": None if h["value"] is None else float(h["value"])}
                         for h in state["history"]]
        self._live = {k: check(v) for k, v in state["live"].items()}
        self._warm = state["warm"]
        self._points = list(state.get("points_to_evaluate") or [])

    def save(self, checkpoint_path: str) -> None:
        """Writes :meth:`get_state` as JSON to ``checkpoint_path`` (atomically)."""
        tmp = f"{checkpoint_path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(self.get_state(), f)
        os.replace(tmp, checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        """Loads a checkpoint written by :meth:`save`.

        Raises:
            ValueError: the file is not an NNOptSearch checkpoint (e.g. a pickle
                of another searcher).
        """
        try:
            with open(checkpoint_path) as f:
                state = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{checkpoint_path} is not an NNOptSearch checkpoint (JSON): "
                             f"{err}") from None
        self.set_state(state)

    # -- inspection ------------------------------------------------------------
    @property
    def space(self) -> SearchSpace | None:
        """The search space the optimiser sees (``a/b`` names for nested keys)."""
        return self._space

    @property
    def history(self) -> list[dict]:
        """Finished trials: ``{"trial_id", "params", "value"}`` (minimised; ``None`` failed)."""
        return [dict(h) for h in self._history]

    @property
    def running(self) -> dict[str, dict]:
        """``trial_id -> params`` of trials suggested and not completed."""
        return {k: dict(v) for k, v in self._live.items()}

    # -- internals -------------------------------------------------------------
    def _set_space(self, codecs: dict[str, Codec]) -> None:
        if not codecs:
            raise ValueError("the search space has no parameter to search")
        self._codecs = codecs
        self._space = _adapter.space_of(codecs)

    def _n_initial(self) -> int:
        n = self._settings["n_initial"]
        return n if n is not None else min(10, 2 * len(self._space) + 2)

    def _encode(self, params: Mapping[str, Any], what: str) -> dict:
        try:
            return self._space.validate(_adapter.encode(self._codecs, params))
        except ValueError as err:
            raise ValueError(f"{what}: {err}") from None

    def _value(self, result: Mapping | None) -> float | None:
        if not result or self._metric not in result:
            return None
        try:
            v = float(result[self._metric])
        except (TypeError, ValueError):
            return None
        if not math.isfinite(v):
            return None
        return -v if self._mode == "max" else v


def _check_metric_mode(metric, mode) -> None:
    if metric is not None and not isinstance(metric, str):
        raise ValueError(f"NNOptSearch optimises one metric (a string), got {metric!r}")
    if mode is not None and mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")


def _n_initial(value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 1:
        raise ValueError(f"n_initial must be a positive integer, got {value!r}")
    return int(value)
