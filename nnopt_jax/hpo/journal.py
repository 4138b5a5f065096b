"""Study journal: an append-only JSONL record of every told trial.

Each trial is written as one line and flushed with ``os.fsync`` before
``tell`` returns, so a process killed at any moment loses no told trial
(at most a half-written last line, which :func:`read_journal` skips).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import time
from typing import Any, Mapping

import numpy as np


@dataclasses.dataclass
class Trial:
    """One evaluated configuration.

    Attributes:
        number: 0-based index in the order trials were told.
        params: the configuration.
        value: the objective value (``nan`` for a failed trial).
        status: ``"ok"`` or ``"failed"``.
        error: an error message for failures raised by the objective.
        time: wall-clock time (Unix seconds) when the trial was told.
    """

    number: int
    params: dict
    value: float
    status: str = "ok"
    error: str | None = None
    time: float = dataclasses.field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict:
        return {"type": "trial", "number": self.number, "params": _jsonable(self.params),
                "value": self.value if math.isfinite(self.value) else None,
                "status": self.status, "error": self.error, "time": self.time}

    @classmethod
    def from_json(cls, rec: Mapping[str, Any]) -> "Trial":
        value = rec.get("value")
        return cls(number=int(rec["number"]), params=dict(rec["params"]),
                   value=float("nan") if value is None else float(value),
                   status=rec.get("status", "ok"), error=rec.get("error"),
                   time=float(rec.get("time", 0.0)))


def _jsonable(x):
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


class Journal:
    """Appends trials to a JSONL file, durably.

    Args:
        path: the journal file; parent directories are created.
        space_spec: optional ``SearchSpace.to_dict()`` written as a header line
            when the file is new.
    """

    def __init__(self, path: str | os.PathLike, space_spec: Mapping | None = None):
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        if new and space_spec is not None:
            self._write({"type": "space", "space": _jsonable(dict(space_spec))})

    def append(self, trial: Trial) -> None:
        self._write(trial.to_json())

    def _write(self, rec: Mapping) -> None:
        line = json.dumps(rec, allow_nan=False) + "\n"
        # Open per write: robust to forks/subprocess kills; O_APPEND keeps lines whole.
        with open(self.path, "a", encoding="utf-8") as f:
            # A previous crash may have left a partial line without "\n".
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def read_journal(path: str | os.PathLike) -> tuple[dict | None, list[Trial]]:
    """Reads a journal, returning ``(space_spec or None, trials)``.

    A truncated final line (a crash during a write) is ignored.
    """
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"journal {path} does not exist; start a new study instead of "
                                "resuming")
    space, trials = None, []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # partial line from an interrupted write
            if rec.get("type") == "space":
                space = rec["space"]
            elif rec.get("type") == "trial":
                trials.append(Trial.from_json(rec))
    return space, trials
