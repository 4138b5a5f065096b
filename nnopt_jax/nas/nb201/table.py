"""Reader and query interface for the NAS-Bench-201 accuracy table.

The table (``nb201_hp12_accuracy.csv``, see its README) holds one row per cell
of the space with the accuracies the benchmark recorded after 12 epochs of
training. Queries return those numbers; nothing is trained.
"""

from __future__ import annotations

import csv
import os
import pathlib
from typing import Sequence

import numpy as np

from nnopt_jax.nas.nb201 import space

COLUMNS: tuple[str, ...] = (
    "index",
    "arch_str",
    "cifar10-test",
    "cifar10-val",
    "cifar100-test",
    "cifar100-val",
    "imagenet-test",
    "imagenet-val",
)
METRICS: tuple[str, ...] = COLUMNS[2:]
DEFAULT_FILENAME = "nb201_hp12_accuracy.csv"

_FIX = (
    "pass the path of the benchmark's nb201_hp12_accuracy.csv "
    "(shipped under shared/data/nasbench201/; its README gives the format)"
)


def default_path() -> pathlib.Path:
    """Where the table is looked for when no path is given.

    ``$NNOPT_DATA_DIR/nasbench201/``, then ``~/.cache/nnopt/nasbench201/``, then
    the project's ``../shared/data/nasbench201/``.
    """
    candidates = []
    if os.environ.get("NNOPT_DATA_DIR"):
        candidates.append(pathlib.Path(os.environ["NNOPT_DATA_DIR"]) / "nasbench201")
    candidates.append(pathlib.Path.home() / ".cache" / "nnopt" / "nasbench201")
    root = pathlib.Path(__file__).resolve().parents[3]
    candidates.append(root.parent / "shared" / "data" / "nasbench201")
    for c in candidates:
        if (c / DEFAULT_FILENAME).exists():
            return c / DEFAULT_FILENAME
    return candidates[-1] / DEFAULT_FILENAME


ArchLike = str | int | Sequence[int]


class NB201Table:
    """The NAS-Bench-201 table, indexed by the space index of :mod:`.space`.

    Attributes:
      path: the file it was read from.
      bench_index: (15625,) the benchmark's own ``index`` of each cell.
      arch_strs: the benchmark strings, in space-index order.
    """

    def __init__(self, path: str | os.PathLike, bench_index: np.ndarray,
                 metrics: dict[str, np.ndarray], arch_strs: Sequence[str] | None = None):
        self.path = pathlib.Path(path)
        self.bench_index = bench_index
        self._metrics = metrics
        self.arch_strs = (list(arch_strs) if arch_strs is not None else
                          [space.arch_to_str(a) for a in space.all_archs()])

    # -- construction -----------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> "NB201Table":
        """Reads and validates the CSV.

        Checks: the exact header, 15,625 data rows, each ``arch_str`` a valid
        cell printed in canonical form, no duplicated index or cell (so every
        cell of the space appears once), accuracies finite and in [0, 100].

        Raises:
          FileNotFoundError: if the file does not exist.
          ValueError: naming the file, the line and the fix.
        """
        path = pathlib.Path(path) if path is not None else default_path()
        if path.is_dir():
            path = path / DEFAULT_FILENAME
        if not path.exists():
            raise FileNotFoundError(f"NAS-Bench-201 table not found at {path}: {_FIX}")

        def fail(msg: str, line: int | None = None) -> ValueError:
            where = f"{path}" + (f", line {line}" if line is not None else "")
            return ValueError(f"{where}: {msg}; {_FIX}")

        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise fail("the file is empty")
            if tuple(h.strip() for h in header) != COLUMNS:
                raise fail(f"header must be {','.join(COLUMNS)}, got {','.join(header)}", 1)
            rows = list(reader)

        if len(rows) != space.NUM_ARCHS:
            raise fail(f"expected {space.NUM_ARCHS} data rows (one per cell), got {len(rows)}")

        bench_index = np.full(space.NUM_ARCHS, -1, dtype=np.int64)
        metrics = {m: np.full(space.NUM_ARCHS, np.nan) for m in METRICS}
        seen_bench: dict[int, int] = {}
        arch_strs = [""] * space.NUM_ARCHS
        for lineno, row in enumerate(rows, start=2):
            if len(row) != len(COLUMNS):
                raise fail(f"expected {len(COLUMNS)} fields, got {len(row)}", lineno)
            try:
                bidx = int(row[0])
            except ValueError:
                raise fail(f"index {row[0]!r} is not an integer", lineno) from None
            if not 0 <= bidx < space.NUM_ARCHS:
                raise fail(f"index {bidx} is outside [0, {space.NUM_ARCHS})", lineno)
            if bidx in seen_bench:
                raise fail(f"index {bidx} duplicates line {seen_bench[bidx]}", lineno)
            seen_bench[bidx] = lineno
            try:
                arch = space.parse_arch(row[1])
            except ValueError as e:
                raise fail(f"bad arch_str: {e}", lineno) from None
            sidx = space.arch_to_index(arch)
            if bench_index[sidx] >= 0:
                raise fail(f"cell {row[1]} appears twice (also index {bench_index[sidx]})",
                           lineno)
            bench_index[sidx] = bidx
            arch_strs[sidx] = row[1]  # parse_arch accepts only the canonical form
            for name, text in zip(METRICS, row[2:]):
                try:
                    value = float(text)
                except ValueError:
                    raise fail(f"{name} {text!r} is not a number", lineno) from None
                if not (np.isfinite(value) and 0.0 <= value <= 100.0):
                    raise fail(f"{name}={text} is not an accuracy in [0, 100]", lineno)
                metrics[name][sidx] = value
        # 15,625 distinct cells in a space of 15,625 -> every cell present.
        return cls(path, bench_index, metrics, arch_strs)

    # -- queries ----------------------------------------------------------
    def __len__(self) -> int:
        return space.NUM_ARCHS

    @staticmethod
    def space_index(arch: ArchLike) -> int:
        """Space index of an arch given as a string, a space index or 6 op indices."""
        if isinstance(arch, str):
            return space.arch_to_index(space.parse_arch(arch))
        if isinstance(arch, (int, np.integer)):
            if not 0 <= int(arch) < space.NUM_ARCHS:
                raise ValueError(f"space index must be in [0, {space.NUM_ARCHS}), got {arch}")
            return int(arch)
        return space.arch_to_index(arch)

    def _column(self, metric: str) -> np.ndarray:
        if metric not in self._metrics:
            raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
        return self._metrics[metric]

    def query(self, arch: ArchLike, metric: str = "cifar10-val") -> float:
        """Recorded accuracy (percent) of one architecture."""
        return float(self._column(metric)[self.space_index(arch)])

    def column(self, metric: str) -> np.ndarray:
        """A read-only view of one metric for all cells, in space-index order."""
        view = self._column(metric).view()
        view.flags.writeable = False
        return view

    def index_of_bench(self, bench_index: int) -> int:
        """Space index of the benchmark's ``index``."""
        hits = np.flatnonzero(self.bench_index == int(bench_index))
        if hits.size != 1:
            raise ValueError(f"benchmark index {bench_index} is not in the table")
        return int(hits[0])

    def oracle(self, select: str = "cifar10-val", report: str = "cifar10-test") -> tuple[int, float]:
        """The cell with the best ``select`` metric in the whole table and its ``report`` value."""
        best = int(np.argmax(self._column(select)))
        return best, float(self._column(report)[best])
