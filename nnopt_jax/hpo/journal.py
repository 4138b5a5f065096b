"""Study journal: an append-only JSONL log of a study, safe under crashes, shared by workers.

One JSON object per line::

    {"type": "study", "version": 2, "space": {...}, "study": {...}}     header, first line
    {"type": "ask", "id": ..., "worker": ..., "params": {...}, "time": ...}
    {"type": "trial", "number": 0, "params": {...}, "value": 0.3, "status": "ok", ...}

(journals written before the ``study`` header began with ``{"type": "space"}``;
they are still read.)

Durability. Every record is written as one ``write`` while the writer holds an
exclusive lock on ``<journal>.lock`` and is flushed with ``os.fsync`` before
the call returns, so a process killed at any moment loses no told trial.

Crashes. Since writers hold the lock while they write, a last line without
its newline seen under the lock can only come from a writer that died
mid-write: the next writer moves it to ``<journal>.corrupt`` and truncates it
away, so new records start on a fresh line. A complete line that is not a
valid record (not JSON, not an object, missing fields) is skipped with a
:class:`JournalWarning` and copied to ``<journal>.corrupt`` once. Nothing is
dropped silently.

Sharing (several processes, one study; the contract of Optuna's
``JournalStorage``). Each optimiser reads the records the others appended
before every ``ask`` and ``tell``, under the lock, so it sees their trials and
their outstanding asks; trial numbers are assigned under the lock and are
unique. Asks of a worker that has died (same host, process gone) no longer
count as pending.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import math
import os
import pathlib
import time
import warnings
from typing import Any, Iterator, Mapping

import numpy as np

VERSION = 2


class JournalError(ValueError):
    """A journal cannot be used as asked (missing, of another study, unreadable header)."""


class JournalWarning(UserWarning):
    """A journal line was malformed and set aside."""


@dataclasses.dataclass
class Trial:
    """One evaluated configuration.

    Attributes:
        number: 0-based number, unique within the journal (assigned at ``tell``).
        params: the configuration.
        value: the objective value (``nan`` for a failed trial).
        status: ``"ok"`` or ``"failed"``.
        error: an error message for failures raised by the objective.
        time: wall-clock time (Unix seconds) when the trial was told.
        ask: id of the ask that suggested it (``None`` if told unasked).
        worker: id of the optimiser that told it.
        state: what the teller's next suggestion depends on beyond the trials
            (e.g. the GP hyperparameter warm start), so a resumed study asks
            exactly what the uninterrupted one would.
    """

    number: int
    params: dict
    value: float
    status: str = "ok"
    error: str | None = None
    time: float = dataclasses.field(default_factory=time.time)
    ask: str | None = None
    worker: str | None = None
    state: dict | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict:
        rec = {"type": "trial", "number": self.number, "params": jsonable(self.params),
               "value": self.value if math.isfinite(self.value) else None,
               "status": self.status, "error": self.error, "time": self.time}
        for field in ("ask", "worker", "state"):
            if getattr(self, field) is not None:
                rec[field] = jsonable(getattr(self, field))
        return rec

    @classmethod
    def from_json(cls, rec: Mapping[str, Any]) -> "Trial":
        """Parses a trial record; ``ValueError`` names what is malformed."""
        number = rec.get("number")
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise ValueError(f"trial 'number' must be a non-negative integer, got {number!r}")
        if not isinstance(rec.get("params"), dict):
            raise ValueError(f"trial 'params' must be an object, got {rec.get('params')!r}")
        value = rec.get("value")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"trial 'value' must be a number or null, got {value!r}")
        status = rec.get("status", "ok")
        if status not in ("ok", "failed"):
            raise ValueError(f"trial 'status' must be 'ok' or 'failed', got {status!r}")
        value = float("nan") if value is None else float(value)
        if status == "ok" and not math.isfinite(value):
            status = "failed"
        state = rec.get("state")
        t = rec.get("time", 0.0)
        return cls(number=number, params=dict(rec["params"]), value=value, status=status,
                   error=None if rec.get("error") is None else str(rec["error"]),
                   time=float(t) if isinstance(t, (int, float)) else 0.0,
                   ask=_opt_str(rec.get("ask")), worker=_opt_str(rec.get("worker")),
                   state=state if isinstance(state, dict) else None)


@dataclasses.dataclass
class Ask:
    """A suggestion handed out and not yet told (a running trial)."""

    id: str
    worker: str
    params: dict
    time: float = dataclasses.field(default_factory=time.time)

    def to_json(self) -> dict:
        return {"type": "ask", "id": self.id, "worker": self.worker,
                "params": jsonable(self.params), "time": self.time}

    @classmethod
    def from_json(cls, rec: Mapping[str, Any]) -> "Ask":
        for field in ("id", "worker"):
            if not isinstance(rec.get(field), str):
                raise ValueError(f"ask {field!r} must be a string, got {rec.get(field)!r}")
        if not isinstance(rec.get("params"), dict):
            raise ValueError(f"ask 'params' must be an object, got {rec.get('params')!r}")
        t = rec.get("time", 0.0)
        return cls(rec["id"], rec["worker"], dict(rec["params"]),
                   float(t) if isinstance(t, (int, float)) else 0.0)


def _opt_str(x) -> str | None:
    return None if x is None else str(x)


def jsonable(x):
    """``x`` with numpy scalars/arrays and tuples turned into JSON types."""
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    return x


def _parse(text: str) -> tuple[str, Any]:
    """``(kind, parsed)`` of one complete line; ``ValueError`` if it is no valid record."""
    try:
        rec = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not JSON ({err.msg})") from None
    if not isinstance(rec, dict):
        raise ValueError(f"a record must be a JSON object, got {type(rec).__name__}")
    kind = rec.get("type")
    if kind == "trial":
        return kind, Trial.from_json(rec)
    if kind == "ask":
        return kind, Ask.from_json(rec)
    if kind in ("study", "space"):
        if not isinstance(rec.get("space"), dict):
            raise ValueError("the header has no 'space' object")
        study = rec.get("study")
        return "header", {"space": rec["space"], "study": study if isinstance(study, dict)
                          else None}
    raise ValueError(f"unknown record type {kind!r}")


class Journal:
    """Reads and appends a study's records, durably, under a file lock.

    Args:
        path: the journal file; parent directories are created.
        header: ``{"space": ..., "study": ...}`` written as the first line when
            the journal is new (or empty).
    """

    def __init__(self, path: str | os.PathLike, header: Mapping | None = None):
        self.path = pathlib.Path(path)
        if self.path.is_dir():
            raise JournalError(f"journal path {self.path} is a directory; pass a file path "
                               "such as OUT/journal.jsonl")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise JournalError(f"cannot create the journal {self.path}: a parent is a file")
        self.corrupt_path = self.path.with_name(self.path.name + ".corrupt")
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock_fd: int | None = None
        self._depth = 0
        self._offset = 0
        self._unread: list[tuple[str, Any]] = []
        self._set_aside: set[str] | None = None
        self.header: dict | None = None
        with self.lock():
            self._repair_tail()
            if header is not None and self._size() == 0:
                self.write({"type": "study", "version": VERSION, **jsonable(dict(header))})
                self.header = {"space": jsonable(header["space"]),
                               "study": jsonable(header.get("study"))}

    # -- locking ------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Holds the journal's exclusive lock (re-entrant within this object)."""
        if self._depth == 0:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_fd = fd
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
                self._lock_fd = None

    def _require_lock(self) -> None:
        if self._depth == 0:
            raise RuntimeError("Journal.write/read_new need the lock: use `with journal.lock():`")

    # -- reading ------------------------------------------------------------------
    def _size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def read_new(self) -> list[tuple[str, Any]]:
        """The records appended since the last call, as ``(kind, record)`` pairs
        with kind ``"header"``, ``"ask"`` or ``"trial"``. Needs the lock."""
        self._require_lock()
        out, self._unread = self._unread, []
        if not self.path.exists():
            return out
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # a line without "\n" is torn (see _repair_tail)
        pos = self._offset
        for raw in data[:end].split(b"\n")[:-1]:
            offset, pos = pos, pos + len(raw) + 1
            text = raw.decode("utf-8", errors="replace").strip()
            if not text:
                continue
            try:
                kind, rec = _parse(text)
            except ValueError as err:
                self._set_aside_line(offset, text, str(err))
                continue
            if kind == "header":
                self.header = rec
            out.append((kind, rec))
        self._offset += end
        return out

    def write(self, rec: Mapping) -> None:
        """Appends one record durably. Needs the lock; records of other writers
        not yet read are kept for the next :meth:`read_new`."""
        self._require_lock()
        self._unread += self.read_new()
        line = (json.dumps(jsonable(dict(rec)), allow_nan=False) + "\n").encode("utf-8")
        with open(self.path, "ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
            self._offset = f.tell()

    # -- repair -------------------------------------------------------------------
    def _repair_tail(self) -> None:
        """Moves a torn last line (a writer died mid-write) to the ``.corrupt``
        file and truncates it away. Needs the lock."""
        size = self._size()
        if size == 0:
            return
        with open(self.path, "rb+") as f:
            f.seek(max(0, size - (1 << 20)))
            tail = f.read()
            if tail.endswith(b"\n"):
                return
            cut = size - len(tail) + tail.rfind(b"\n") + 1
            f.seek(cut)
            fragment = f.read().decode("utf-8", errors="replace")
            self._set_aside_line(cut, fragment, "torn last line (a write was interrupted)")
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())

    def _set_aside_line(self, offset: int, text: str, reason: str) -> None:
        key = f"{offset}:{hashlib.sha1(text.encode()).hexdigest()[:16]}"
        if self._set_aside is None:
            self._set_aside = set()
            if self.corrupt_path.exists():
                for line in self.corrupt_path.read_text(errors="replace").splitlines():
                    with contextlib.suppress(json.JSONDecodeError, AttributeError):
                        self._set_aside.add(json.loads(line).get("key"))
        if key in self._set_aside:
            return  # set aside (and reported) before
        self._set_aside.add(key)
        with open(self.corrupt_path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"key": key, "offset": offset, "reason": reason, "line": text,
                                "time": time.time()}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        warnings.warn(f"journal {self.path}: line at byte {offset} set aside in "
                      f"{self.corrupt_path.name} ({reason}): {text[:80]!r}", JournalWarning,
                      stacklevel=3)


def read_journal(path: str | os.PathLike) -> tuple[dict | None, list[Trial]]:
    """Reads a journal without modifying it: ``(space_spec or None, trials)``.

    Malformed lines are skipped with a :class:`JournalWarning`; a torn last
    line is ignored (a writer may still be writing it).

    Raises:
        JournalError: there is no journal at ``path``.
    """
    header, trials, _ = scan_journal(path)
    return (None if header is None else header["space"]), trials


def scan_journal(path: str | os.PathLike, *, quiet: bool = False
                 ) -> tuple[dict | None, list[Trial], list[Ask]]:
    """``(header, trials, asks)`` of a journal, read without the lock or changes
    (malformed lines are skipped, with a warning unless ``quiet``)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise JournalError(f"no journal at {path}: nothing to resume; start a new study "
                           "(without resume) instead")
    header, trials, asks = None, [], []
    lines = path.read_bytes().split(b"\n")[:-1]  # the part after the last "\n" may be torn
    offset = 0
    for raw in lines:
        text = raw.decode("utf-8", errors="replace").strip()
        if text:
            try:
                kind, rec = _parse(text)
            except ValueError as err:
                if not quiet:
                    warnings.warn(f"journal {path}: skipping the line at byte {offset} ({err})",
                                  JournalWarning, stacklevel=2)
                kind = None
            if kind == "header":
                header = rec
            elif kind == "trial":
                trials.append(rec)
            elif kind == "ask":
                asks.append(rec)
        offset += len(raw) + 1
    return header, trials, asks
