"""The ask/tell optimiser interface shared by grid, random and Bayesian search.

An optimiser's next suggestion is a pure function of its settings, its seed,
the trials told so far, the suggestions still pending and the ``state`` the
last trial record carries (:mod:`nnopt_jax.hpo.journal`). That makes a study
resumed from its journal ask exactly what the uninterrupted study would have,
and lets several workers share one journal.
"""

from __future__ import annotations

import abc
import contextlib
import math
import os
import socket
import uuid
import warnings
import weakref
from typing import Any, Iterator, Mapping

import numpy as np

from nnopt_jax.config import config_diff, describe_diff
from nnopt_jax.hpo.journal import (Ask, Journal, JournalError, JournalWarning, Trial,
                                   jsonable, scan_journal)
from nnopt_jax.hpo.space import SearchSpace

# Optimisers alive in this process, by worker token: an ask by a token not in
# here (and from this process) belongs to an optimiser that is gone.
_LIVE = weakref.WeakValueDictionary()
_HOST = socket.gethostname().replace(":", "_")


def _worker_alive(worker: str) -> bool:
    """Whether the optimiser that wrote ``worker`` may still tell its asks."""
    host, _, rest = worker.partition(":")
    pid, _, token = rest.partition(":")
    if host != _HOST or not pid.isdigit():
        return True  # another machine: cannot tell, so its asks stay pending
    if int(pid) == os.getpid():
        return token in _LIVE
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def positive_int(value: Any, what: str) -> int:
    """``value`` as an int >= 1, or a ``ValueError`` naming ``what``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer, float)) \
            or not float(value).is_integer() or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def seed_int(seed: Any) -> int:
    """A seed as a non-negative int, or ``ValueError``."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _objective_value(value: Any) -> float:
    if value is None:
        return float("nan")
    if isinstance(value, (str, bytes, bool, np.bool_)):
        raise ValueError(f"tell() needs a float value (nan/inf/None for a failed trial), got "
                         f"{value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"tell() needs a float value (nan/inf/None for a failed trial), got "
                         f"{value!r}") from None


class Optimizer(abc.ABC):
    """Base class: the trial history, pending asks, the best trial and the journal.

    Subclasses implement :meth:`_ask` and optionally :meth:`_on_tell`,
    :meth:`_settings`, :meth:`_state` and :meth:`_load_state`.

    Args:
        space: the search space.
        seed: integer seed for all randomness of the optimiser.
        journal: optional path of a JSONL journal; every ask and every told trial
            is appended durably, and the trials other workers append to the same
            journal are read before each ask and tell.
        metadata: JSON-able description of the study (e.g. the training config
            it tunes), stored in the journal header; an optimiser whose
            metadata, seed, class or settings differ from the header's refuses
            to continue the journal.
    """

    def __init__(self, space: SearchSpace, *, seed: int = 0,
                 journal: str | os.PathLike | None = None, metadata: Mapping | None = None):
        if not isinstance(space, SearchSpace):
            raise ValueError(f"space must be a SearchSpace, got {type(space).__name__}")
        self.space = space
        self.seed = seed_int(seed)
        self.metadata = jsonable(dict(metadata or {}))
        self._trials: list[Trial] = []
        self.pending: list[Ask] = []
        token = uuid.uuid4().hex[:12]
        self.worker = f"{_HOST}:{os.getpid()}:{token}"
        _LIVE[token] = self
        self._n_asks_made = 0
        self._next_number = 0
        self._journal_path = None if journal is None else os.fspath(journal)
        self.journal: Journal | None = None

    # -- public API -----------------------------------------------------------
    @property
    def trials(self) -> list[Trial]:
        """Every trial told to this optimiser or read from its journal, in order."""
        if self._journal_path is not None and self.journal is None:
            self.refresh()
        return self._trials

    def ask(self, n: int | None = None) -> dict[str, Any] | list[dict[str, Any]]:
        """Suggests one configuration (``n=None``) or a list of ``n``."""
        count = 1 if n is None else positive_int(n, "ask(n): n")
        with self._synced():
            out = self._issue(count)
        return out[0] if n is None else out

    def tell(self, params: Mapping[str, Any], value: float, *, error: str | None = None) -> Trial:
        """Records the objective ``value`` (to minimise) of ``params``.

        ``nan``/``inf``/``None`` values (or ``error`` set) record a failed trial;
        failures never enter the surrogate's fit but are never re-suggested.

        Raises:
            ValueError: ``params`` is not a configuration of the space, or
                ``value`` is not a number. Nothing is recorded then.
        """
        params = self.space.validate(params)
        v = _objective_value(value)
        ok = math.isfinite(v) and error is None
        with self._synced():
            ask = self._pop_pending(params)
            trial = Trial(number=self._next_number, params=params,
                          value=v if ok else float("nan"), status="ok" if ok else "failed",
                          error=None if error is None else str(error),
                          ask=None if ask is None else ask.id, worker=self.worker,
                          state=self._state())
            if self.journal is not None:
                self.journal.write(trial.to_json())
            self._record(trial)
        return trial

    def refresh(self) -> None:
        """Reads the trials and asks other workers appended to the journal."""
        with self._synced():
            pass

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
            **kwargs: constructor arguments; those not given (``seed``, the
                optimiser's settings, ``metadata``) are the journal's.

        Raises:
            JournalError: no journal at ``journal_path``, or one of another study.
        """
        header, _, _ = scan_journal(journal_path, quiet=True)  # lines: read by refresh
        if space is None:
            if header is None:
                raise JournalError(f"journal {journal_path} has no header; pass space=")
            space = SearchSpace.from_dict(header["space"])
        study = dict((header or {}).get("study") or {})
        if study.pop("optimizer", None) == cls.__name__:
            for key, value in study.pop("settings", {}).items():
                kwargs.setdefault(key, value)
            if "seed" in study:
                kwargs.setdefault("seed", study.pop("seed"))
            kwargs.setdefault("metadata", study)
        opt = cls(space, journal=journal_path, **kwargs)
        opt.refresh()
        return opt

    from_journal = resume

    # -- internals ------------------------------------------------------------
    @property
    def _n_asked(self) -> int:
        """Suggestions handed out so far: told trials plus pending asks."""
        return len(self._trials) + len(self.pending)

    def _issue(self, count: int) -> list[dict[str, Any]]:
        """Asks ``count`` points and records them as pending. Call inside ``_synced``."""
        out = self._ask(count)
        for params in out:
            ask = Ask(f"{self.worker}:{self._n_asks_made}", self.worker, dict(params))
            self._n_asks_made += 1
            if self.journal is not None:
                self.journal.write(ask.to_json())
            self.pending.append(ask)
        return out

    def _ask_within(self, total: int) -> dict[str, Any] | None:
        """One suggestion if fewer than ``total`` trials are told or pending
        (across all workers of the journal), else ``None``."""
        with self._synced():
            if self._n_asked >= total:
                return None
            return self._issue(1)[0]

    def _study(self) -> dict:
        return jsonable({"optimizer": type(self).__name__, "seed": self.seed,
                         "settings": self._settings(), **self.metadata})

    @contextlib.contextmanager
    def _synced(self) -> Iterator[None]:
        """Holds the journal lock with this optimiser up to date with the journal."""
        if self._journal_path is None:
            yield
            return
        if self.journal is None:
            self.journal = Journal(self._journal_path,
                                   {"space": self.space.to_dict(), "study": self._study()})
        with self.journal.lock():
            self._apply(self.journal.read_new())
            self.pending = [a for a in self.pending
                            if a.worker == self.worker or _worker_alive(a.worker)]
            yield

    def _apply(self, records) -> None:
        for kind, rec in records:
            if kind == "header":
                self._check_header(rec)
            elif kind == "ask":
                if rec.worker != self.worker and _worker_alive(rec.worker) and \
                        self._fits(rec, f"ask {rec.id!r}"):
                    self.pending.append(rec)
            elif kind == "trial":
                self.pending = [a for a in self.pending if a.id != rec.ask]
                if not self._fits(rec, f"trial {rec.number}"):
                    self._next_number = max(self._next_number, rec.number + 1)  # stays taken
                    continue
                if rec.number < self._next_number and any(
                        t.number == rec.number for t in self._trials):
                    rec.number = self._next_number  # a legacy journal with a repeated number
                if rec.state is not None:
                    self._load_state(rec.state)
                self._record(rec)

    def _fits(self, rec: Ask | Trial, what: str) -> bool:
        """Canonicalises ``rec.params``; warns (the line stays in the journal) if invalid."""
        try:
            rec.params = self.space.validate(rec.params)
            return True
        except ValueError as err:
            warnings.warn(f"journal {self._journal_path}: skipping {what}, which does not fit "
                          f"the search space ({err})", JournalWarning, stacklevel=4)
            return False

    def _check_header(self, header: Mapping) -> None:
        where = f"journal {self._journal_path}"
        space = header["space"]
        if jsonable(space) != jsonable(self.space.to_dict()):
            diff = describe_diff(config_diff(space, self.space.to_dict()))
            raise JournalError(f"{where} holds a study over another search space ({diff}); "
                               "use the same space to continue it, or a new journal")
        study = header.get("study")
        if study is None:
            return  # a journal written before study headers: only the space is checked
        diff = config_diff(study, self._study())
        if diff:
            raise JournalError(f"{where} holds another study ({describe_diff(diff)}); "
                               "continue it with the same settings, or start a new journal")

    def _pop_pending(self, params: Mapping[str, Any]) -> Ask | None:
        f = self.space.to_features(params)
        for i, a in enumerate(self.pending):
            if a.worker == self.worker and np.allclose(self.space.to_features(a.params), f,
                                                       rtol=0.0, atol=1e-12):
                return self.pending.pop(i)
        return None

    def _record(self, trial: Trial) -> None:
        self._trials.append(trial)
        self._next_number = max(self._next_number, trial.number + 1)
        self._on_tell(trial)

    # -- hooks ----------------------------------------------------------------
    def _on_tell(self, trial: Trial) -> None:
        pass

    def _settings(self) -> dict:
        """Constructor settings that shape the suggestions (checked on resume)."""
        return {}

    def _state(self) -> dict | None:
        """What the next suggestion depends on beyond trials and pending asks."""
        return None

    def _load_state(self, state: Mapping) -> None:
        pass

    @abc.abstractmethod
    def _ask(self, n: int) -> list[dict[str, Any]]:
        ...

    def _rng(self, salt: int = 0) -> np.random.Generator:
        """A generator that depends on the seed and the number of asks so far."""
        return np.random.default_rng([self.seed, self._n_asked, salt])
