"""The ask/tell optimiser interface shared by grid, random and Bayesian search."""

from __future__ import annotations

import abc
import math
import os
from typing import Any, Mapping

import numpy as np

from nnopt_jax.hpo.journal import Journal, Trial, read_journal
from nnopt_jax.hpo.space import SearchSpace


class Optimizer(abc.ABC):
    """Base class: keeps the trial history, the best trial and the journal.

    Subclasses implement :meth:`_ask` (and optionally :meth:`_on_tell`).

    Args:
        space: the search space.
        seed: integer seed for all randomness of the optimiser.
        journal: optional path of a JSONL journal; every told trial is
            appended durably (see :mod:`nnopt_jax.hpo.journal`).
    """

    def __init__(self, space: SearchSpace, *, seed: int = 0,
                 journal: str | os.PathLike | None = None):
        if not isinstance(space, SearchSpace):
            raise ValueError(f"space must be a SearchSpace, got {type(space).__name__}")
        self.space = space
        self.seed = int(seed)
        self.trials: list[Trial] = []
        self._n_asked = 0
        self.journal = Journal(journal, space.to_dict()) if journal is not None else None

    # -- public API -----------------------------------------------------------
    def ask(self, n: int | None = None) -> dict[str, Any] | list[dict[str, Any]]:
        """Suggests one configuration (``n=None``) or a list of ``n``."""
        if n is not None and (int(n) != n or n < 1):
            raise ValueError(f"ask(n) needs a positive integer n, got {n!r}")
        out = self._ask(1 if n is None else int(n))
        self._n_asked += len(out)
        return out[0] if n is None else out

    def tell(self, params: Mapping[str, Any], value: float, *, error: str | None = None) -> Trial:
        """Records the objective ``value`` (to minimise) of ``params``.

        ``nan``/``inf``/``None`` values (or ``error`` set) record a failed trial;
        failures never enter the surrogate's fit but are never re-suggested.
        """
        self.space.validate(params)
        try:
            v = float("nan") if value is None else float(value)
        except (TypeError, ValueError) as e:
            raise ValueError(f"tell() needs a float value, got {value!r}") from e
        ok = math.isfinite(v) and error is None
        trial = Trial(number=len(self.trials), params=dict(params), value=v if ok else float("nan"),
                      status="ok" if ok else "failed", error=error)
        self._record(trial)
        if self.journal is not None:
            self.journal.append(trial)
        return trial

    @property
    def best(self) -> tuple[dict[str, Any], float]:
        """``(params, value)`` of the best successful trial."""
        ok = [t for t in self.trials if t.ok]
        if not ok:
            raise ValueError("no successful trial yet: tell() at least one finite value first")
        t = min(ok, key=lambda t: t.value)
        return dict(t.params), t.value

    @property
    def n_failed(self) -> int:
        return sum(not t.ok for t in self.trials)

    @classmethod
    def resume(cls, journal_path: str | os.PathLike, space: SearchSpace | None = None,
               **kwargs) -> "Optimizer":
        """Rebuilds an optimiser from its journal and keeps appending to it.

        Args:
            journal_path: the JSONL journal written by a previous study.
            space: the search space; read from the journal header when omitted.
            **kwargs: constructor arguments (``seed``, ...).
        """
        spec, trials = read_journal(journal_path)
        if space is None:
            if spec is None:
                raise ValueError(f"journal {journal_path} has no space header; pass space=")
            space = SearchSpace.from_dict(spec)
        opt = cls(space, journal=journal_path, **kwargs)
        for t in trials:
            t.number = len(opt.trials)
            opt._record(t)
        opt._n_asked = len(opt.trials)
        return opt

    from_journal = resume

    # -- hooks ----------------------------------------------------------------
    def _record(self, trial: Trial) -> None:
        self.trials.append(trial)
        self._on_tell(trial)

    def _on_tell(self, trial: Trial) -> None:
        pass

    @abc.abstractmethod
    def _ask(self, n: int) -> list[dict[str, Any]]:
        ...

    def _rng(self, salt: int = 0) -> np.random.Generator:
        """A generator that depends on the seed and the number of asks so far."""
        return np.random.default_rng([self.seed, self._n_asked, salt])
