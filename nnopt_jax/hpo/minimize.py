"""``minimize``: run an ask/tell optimiser on a Python objective, optionally in parallel."""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import inspect
import math
import multiprocessing
import os
import pathlib
from typing import Any, Callable, Mapping

import numpy as np

from nnopt_jax.hpo.base import Optimizer, positive_int
from nnopt_jax.hpo.bo import BayesianOptimizer
from nnopt_jax.hpo.journal import JournalError, Trial
from nnopt_jax.hpo.search import GridSearch, RandomSearch
from nnopt_jax.hpo.space import SearchSpace

METHODS = ("bo", "random", "grid")


def make_optimizer(method: str, space: SearchSpace, *, seed: int = 0,
                   journal: str | os.PathLike | None = None, resume: bool = False,
                   **kwargs) -> Optimizer:
    """Builds the optimiser for ``method``, continuing ``journal`` when ``resume``.

    With ``resume=True`` an existing journal is continued (after checking that
    it holds the same study) and a missing one is started, so several workers
    started alike share one study.

    Raises:
        JournalError: ``journal`` already holds a study and ``resume`` is false,
            or it holds a different study.
    """
    classes = {"bo": BayesianOptimizer, "random": RandomSearch, "grid": GridSearch}
    if method not in classes:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    cls = classes[method]
    known = set(inspect.signature(cls.__init__).parameters) - {"self", "space", "journal"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown} for method {method!r}; known: "
                         f"{sorted(known)}")
    if journal is not None and journal_in_use(journal):
        if not resume:
            raise JournalError(f"journal {journal} already holds a study; pass resume=True to "
                               "continue it (or to join it as another worker), or choose a "
                               "new path")
        return cls.resume(journal, space, seed=seed, **kwargs)
    return cls(space, seed=seed, journal=journal, **kwargs)


def journal_in_use(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a journal with content."""
    path = pathlib.Path(path)
    return path.is_file() and path.stat().st_size > 0


@dataclasses.dataclass
class MinimizeResult:
    """What :func:`minimize` returns.

    Attributes:
        best_params: the best configuration found.
        best_value: its objective value.
        trials: every trial in the order told (failures included).
        method: the search method.
        optimizer: the optimiser object (ask/tell can continue on it).
    """

    best_params: dict[str, Any]
    best_value: float
    trials: list[Trial]
    method: str
    optimizer: Optimizer | None = None

    @property
    def history(self) -> list[float]:
        """Objective values in trial order (``nan`` for failures)."""
        return [t.value for t in self.trials]

    @property
    def n_failed(self) -> int:
        return sum(not t.ok for t in self.trials)

    def best_so_far(self) -> np.ndarray:
        v = np.array([t.value if t.ok else np.inf for t in self.trials], dtype=float)
        return np.minimum.accumulate(v) if len(v) else v

    def to_dict(self) -> dict:
        return {"method": self.method, "best_params": self.best_params,
                "best_value": self.best_value, "n_trials": len(self.trials),
                "n_failed": self.n_failed, "trials": [t.to_json() for t in self.trials]}

    def plot_convergence(self, path: str | os.PathLike, *, title: str | None = None,
                         optimum: float | None = None) -> pathlib.Path:
        """Saves best-so-far value against trial number as a PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(5, 3.5))
        x = np.arange(1, len(self.trials) + 1)
        vals = np.array(self.history, dtype=float)
        ax.scatter(x, vals, s=10, alpha=0.4, label="trial value")
        ax.step(x, self.best_so_far(), where="post", color="C1", label="best so far")
        if optimum is not None:
            ax.axhline(optimum, color="k", ls="--", lw=0.8, label="optimum")
        ax.set_xlabel("trial")
        ax.set_ylabel("objective (minimised)")
        ax.set_title(title or f"convergence ({self.method})")
        ax.legend(loc="upper right", fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path


def _safe_value(v) -> float:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return float("nan")
    return v


def minimize(fn: Callable[[Mapping[str, Any]], float], space: SearchSpace, n_trials: int, *,
             method: str = "bo", seed: int = 0, n_workers: int = 1,
             journal: str | os.PathLike | None = None, resume: bool = False,
             callback: Callable[[Trial], None] | None = None, **optimizer_kwargs
             ) -> MinimizeResult:
    """Minimises ``fn(params) -> float`` over ``space``.

    An objective that raises, or returns nan/inf, records a failed trial and
    the search carries on.

    Args:
        fn: the objective. With ``n_workers > 1`` it runs in worker processes
            started with the ``spawn`` method, so it must be picklable: a
            module-level function (or ``functools.partial`` of one), not a
            lambda or closure; its module must be importable by the workers.
        space: the search space.
        n_trials: total number of trials (including ones resumed from the
            journal). For ``method="grid"`` it is capped at the grid size.
        method: ``"bo"``, ``"random"`` or ``"grid"``.
        seed: random seed.
        n_workers: parallel worker processes (batch/asynchronous suggestions).
        journal: optional JSONL journal path.
        resume: continue from ``journal`` if it exists.
        callback: called with each told :class:`Trial`.
        **optimizer_kwargs: passed to the optimiser's constructor.

    Returns:
        A :class:`MinimizeResult`.
    """
    n_trials = positive_int(n_trials, "n_trials")
    n_workers = positive_int(n_workers, "n_workers")
    if not callable(fn):
        raise ValueError(f"fn must be callable, got {type(fn).__name__}")
    opt = make_optimizer(method, space, seed=seed, journal=journal, resume=resume,
                         **optimizer_kwargs)
    if isinstance(opt, GridSearch):
        n_trials = min(n_trials, len(opt))

    def tell(params, value, error=None):
        trial = opt.tell(params, value, error=error)
        if callback is not None:
            callback(trial)

    # Each suggestion is taken only while fewer than n_trials trials are told or
    # running, counting other workers of the journal too: the study ends with
    # exactly n_trials trials however often it was interrupted and resumed.
    if n_workers == 1:
        while (params := opt._ask_within(n_trials)) is not None:
            try:
                value, error = _safe_value(fn(params)), None
            except Exception as e:  # noqa: BLE001 -- a failing trial must not end the study
                value, error = float("nan"), f"{type(e).__name__}: {e}"
            tell(params, value, error)
    else:
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
            running: dict[cf.Future, dict] = {}

            def submit():
                params = opt._ask_within(n_trials)
                if params is not None:
                    running[pool.submit(fn, params)] = params

            for _ in range(n_workers):
                submit()
            while running:
                done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    params = running.pop(fut)
                    err = fut.exception()
                    if err is None:
                        tell(params, _safe_value(fut.result()))
                    else:
                        tell(params, float("nan"), f"{type(err).__name__}: {err}")
                    submit()
    opt.refresh()
    ok = [t for t in opt.trials if t.ok]
    if ok:
        best_params, best_value = opt.best
    else:
        best_params, best_value = {}, math.inf
    return MinimizeResult(best_params, best_value, list(opt.trials), method, opt)
