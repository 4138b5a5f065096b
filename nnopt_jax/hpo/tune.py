"""Tune a training config's hyper-parameters with :func:`nnopt_jax.hpo.minimize`.

The config has two blocks: ``cfg.base``, a training config accepted by
:func:`nnopt_jax.training.train_and_evaluate`, and ``cfg.hpo``::

    hpo=dict(method="bo", n_trials=20, seed=0, metric="val_error",
             space={"train.learning_rate": dict(type="real", low=1e-4, high=1e-1, log=True),
                    "model.width": dict(type="int", low=16, high=512, log=True),
                    "model.activation": dict(type="categorical", choices=["relu", "tanh"])})

Each parameter name is the dotted config key it sets. ``tune`` writes into
``out_dir``: ``journal.jsonl`` (every trial, durable), ``best_config.json``,
``convergence.png`` and ``results.json``; ``resume=True`` continues the journal
(refused when the journal holds a study of another base config, method, seed or
space: only ``hpo.n_trials`` may change on resume), ``overwrite=True`` discards
an earlier study in ``out_dir``.
"""

from __future__ import annotations

import copy
import json
import math
import pathlib
import time
from typing import Any, Callable, Mapping

from nnopt_jax.hpo.base import positive_int, seed_int
from nnopt_jax.hpo.journal import JournalError
from nnopt_jax.hpo.minimize import journal_in_use, minimize
from nnopt_jax.hpo.space import SearchSpace

STUDY_FILES = ("journal.jsonl", "journal.jsonl.corrupt", "journal.jsonl.lock", "results.json",
               "best_config.json", "convergence.png")


class TuneError(ValueError):
    """A study cannot run as configured, or produced no successful trial."""


def set_by_path(cfg, dotted: str, value: Any) -> None:
    """Sets ``cfg[a][b] = value`` for ``dotted == "a.b"``; the key must exist."""
    *parents, leaf = dotted.split(".")
    node = cfg
    for p in parents:
        if p not in node:
            raise ValueError(f"hpo.space key {dotted!r}: config has no block {p!r}")
        node = node[p]
    if leaf not in node:
        raise ValueError(f"hpo.space key {dotted!r}: config block has no key {leaf!r}; known: "
                         f"{sorted(node)}")
    node[leaf] = value


def apply_params(base, params: Mapping[str, Any]):
    """A deep copy of ``base`` with each dotted key in ``params`` set."""
    cfg = copy.deepcopy(base)
    for k, v in params.items():
        set_by_path(cfg, k, v)
    return cfg


def _to_dict(cfg) -> dict:
    return cfg.to_dict() if hasattr(cfg, "to_dict") else json.loads(json.dumps(cfg, default=str))


class _Objective:
    """Picklable objective: trains ``base`` with the params, returns the metric."""

    def __init__(self, base, train_fn: Callable, metric: str, log: Callable | None):
        self.base, self.train_fn, self.metric, self.log = base, train_fn, metric, log
        self.extra: dict[int, dict] = {}

    def __call__(self, params):
        t = time.perf_counter()
        out = self.train_fn(apply_params(self.base, params), out_dir=None, progress=False)
        if self.metric not in out:
            raise KeyError(f"train_fn returned no {self.metric!r}; got {sorted(out)}")
        self.extra[len(self.extra)] = {k: float(v) for k, v in out.items()
                                       if isinstance(v, (int, float))}
        if self.log:
            self.log(f"  {params} -> {self.metric} {float(out[self.metric]):.4f} "
                     f"({time.perf_counter() - t:.1f} s)")
        return float(out[self.metric])


def _study_base(base) -> dict:
    """The base config as the journal records it: where the data lives may change."""
    d = copy.deepcopy(_to_dict(base))
    if isinstance(d.get("data"), dict):
        d["data"].pop("data_dir", None)
    return d


def _study_dir(out: pathlib.Path, *, resume: bool, overwrite: bool) -> pathlib.Path:
    """Checks (and creates) the study directory; see :func:`tune` for the rules."""
    if resume and overwrite:
        raise TuneError("--resume and --overwrite exclude each other: continue the study or "
                        "discard it")
    if out.exists() and not out.is_dir():
        raise TuneError(f"--out {out} is a file; pass a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise TuneError(f"--out {out} cannot be created: a parent is a file") from None
    journal = out / "journal.jsonl"
    if overwrite:
        for name in STUDY_FILES:
            (out / name).unlink(missing_ok=True)
    elif resume and not journal_in_use(journal):
        raise JournalError(f"no study to resume in {out} (no {journal.name}); run without "
                           "--resume to start one")
    elif not resume and journal_in_use(journal):
        raise JournalError(f"{out} already holds a study ({journal.name}); pass --resume to "
                           "continue it, --overwrite to discard it, or another --out")
    return out


def tune(cfg, *, out_dir, resume: bool = False, overwrite: bool = False, progress: bool = True,
         train_fn: Callable | None = None) -> dict:
    """Runs the study ``cfg.hpo`` over the training config ``cfg.base``.

    Args:
        cfg: config with ``base`` and ``hpo`` blocks (see the module docstring).
        out_dir: output directory.
        resume: continue from ``out_dir/journal.jsonl``.
        overwrite: delete an earlier study's files in ``out_dir`` first.
        progress: print one line per trial.
        train_fn: ``train_fn(train_cfg, out_dir=None, progress=False) -> dict``;
            defaults to :func:`nnopt_jax.training.train_and_evaluate`.

    Returns:
        The results dict also written to ``results.json``.

    Raises:
        TuneError: a malformed ``hpo`` block, an unusable ``out_dir``, or every
            trial failed.
        JournalError: ``out_dir`` holds a study and neither ``resume`` nor
            ``overwrite`` is set; ``resume`` without a journal; a journal of
            another study.
    """
    if "hpo" not in cfg or "base" not in cfg:
        raise ValueError("an HPO config needs 'base' (the training config) and 'hpo' blocks")
    h = cfg["hpo"]
    if "space" not in h or not h["space"]:
        raise ValueError("cfg.hpo.space is empty: map dotted config keys to "
                         "{type: real|int|categorical, ...}")
    space = SearchSpace.from_dict(_to_dict(h["space"]))
    for k in space.names:  # fail fast on typos
        set_by_path(copy.deepcopy(cfg["base"]), k, None)
    try:
        n_trials = positive_int(h.get("n_trials", 20), "hpo.n_trials")
        seed = seed_int(h.get("seed", 0))
    except ValueError as err:
        raise TuneError(str(err).replace("seed must", "hpo.seed must")) from None
    metric = h.get("metric", "val_error")
    if not isinstance(metric, str):
        raise TuneError(f"hpo.metric must be the name of a result key, got {metric!r}")
    optimizer_kwargs = h.get("optimizer", {})
    if not isinstance(optimizer_kwargs, dict):
        raise TuneError(f"hpo.optimizer must be a dict of optimiser settings, got "
                        f"{optimizer_kwargs!r}")
    if train_fn is None:
        from nnopt_jax.training import train_and_evaluate as train_fn
    out = _study_dir(pathlib.Path(out_dir), resume=resume, overwrite=overwrite)
    journal = out / "journal.jsonl"
    log = print if progress else None
    objective = _Objective(cfg["base"], train_fn, metric, log)

    def callback(trial):
        if progress:
            status = f"{trial.value:.4f}" if trial.ok else f"failed ({trial.error})"
            print(f"trial {trial.number + 1}/{n_trials}: {status}", flush=True)

    (out / "config.json").write_text(json.dumps(_to_dict(cfg), indent=2, default=str))
    t0 = time.perf_counter()
    res = minimize(objective, space, n_trials, method=h.get("method", "bo"), seed=seed,
                   journal=journal, resume=resume, callback=callback,
                   metadata={"base": _study_base(cfg["base"]), "metric": metric},
                   **optimizer_kwargs)
    found = math.isfinite(res.best_value)
    results = {"metric": metric, "best_value": res.best_value if found else None,
               "best_params": res.best_params if found else None,
               "n_trials": len(res.trials), "n_failed": res.n_failed, "method": res.method,
               "seconds": time.perf_counter() - t0,
               "trials": [t.to_json() for t in res.trials]}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    if not found:
        first = next((t.error for t in res.trials if t.error), "objective returned nan/inf")
        raise TuneError(f"all {len(res.trials)} trials failed (first error: {first}); the "
                        f"journal {journal} has every trial's error")
    best_cfg = apply_params(cfg["base"], res.best_params)
    (out / "best_config.json").write_text(json.dumps(_to_dict(best_cfg), indent=2, default=str))
    res.plot_convergence(out / "convergence.png", title=f"HPO ({res.method}): {metric}")
    if progress:
        print(f"best {metric} {res.best_value:.4f} with {res.best_params}; wrote {out}")
    return results
