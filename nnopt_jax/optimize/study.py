"""``optimize(cfg, out_dir=...)``: the multi-objective study over recipes.

Each trial asks the optimiser (:class:`~nnopt_jax.hpo.multiobjective.ParEGO`
by default, or ``optimizer.method="random"``) for a recipe, runs it
(:func:`nnopt_jax.optimize.recipe.run_trial`) and records it durably in
``journal.jsonl`` (the HPO study journal: header with the space and the study,
one ``trial`` record per trial whose ``params`` hold the active dimensions
only, ``value`` the validation error and ``state.objectives`` every measured
objective). ``resume=True`` re-tells the journal's trials and continues where
the study stopped; a study asks the same recipes whether or not it was
interrupted, up to the latency measurements that feed back into the model.

Objectives are minimised as ``val_error``, ``log10(size_bytes)`` and
``log10(latency ms)`` (the latency at ``latency.objective_batch``): sizes and
times span decades, and ParEGO normalises each objective by its observed range.

Outputs in ``out_dir``: ``config.json``, ``run.json``, ``journal.jsonl``,
``metrics.jsonl`` (one row per trial), ``trials/<n>/export/`` (every trial's
exported model), ``front/<n>/`` (copies of the front's exports), ``front.md``
and ``front.json`` (the Pareto front, the knee marked, with the test error of
each front model), ``front.png`` and ``results.json``.
"""

from __future__ import annotations

import json
import math
import pathlib
import shutil
import time
import traceback

import numpy as np

from nnopt_jax import rundir
from nnopt_jax.config import ConfigError, canonical, check_config, integer, one_of, real
from nnopt_jax.hpo.hypervolume import hypervolume
from nnopt_jax.hpo.journal import Journal, JournalError, Trial, jsonable
from nnopt_jax.hpo.multiobjective import ParEGO
from nnopt_jax.optimize import front as front_lib
from nnopt_jax.optimize.latency import LATENCY_DEFAULTS, latency_key
from nnopt_jax.optimize.recipe import load_splits, recipe_space, run_trial

__all__ = ["optimize", "OBJECTIVES", "MAY_CHANGE_ON_RESUME", "objective_vector"]

OBJECTIVES = ("val_error", "size_bytes", "latency")
MAY_CHANGE_ON_RESUME = ("optimizer.n_trials", "data.data_dir")

RULES = {
    "seed": integer(0),
    "data.validation_fraction": real(0.0, 1.0, low_open=True, high_open=True),
    "model.arch": one_of("mlp", "lenet5"),
    "train.batch_size": integer(1),
    "train.num_epochs": integer(1),
    "train.pretrain_epochs": integer(0),
    "optimizer.method": one_of("parego", "random"),
    "optimizer.n_trials": integer(1),
    "optimizer.n_initial": integer(1),
    "latency.repeats": integer(1),
    "latency.warmup": integer(0),
    "latency.objective_batch": integer(1),
}


def _check(cfg) -> tuple[str, ...]:
    check_config(cfg, RULES, required=("seed", "data.name", "model.arch", "model.base_features",
                                       "train.batch_size", "train.num_epochs", "space",
                                       "objectives", "optimizer.n_trials"))
    objs = tuple(cfg.objectives)
    bad = [o for o in objs if o not in OBJECTIVES]
    if bad or len(objs) < 2 or len(set(objs)) != len(objs):
        raise ConfigError(f"invalid config: objectives={list(objs)}: choose at least two of "
                          f"{list(OBJECTIVES)}, each once")
    lat = {**LATENCY_DEFAULTS, **dict(cfg.get("latency", {}))}
    if int(lat["objective_batch"]) not in [int(b) for b in lat["batch_sizes"]]:
        raise ConfigError(f"invalid config: latency.objective_batch={lat['objective_batch']} is "
                          f"not among latency.batch_sizes={list(lat['batch_sizes'])}")
    ref = cfg.get("optimizer", {}).get("ref_point")
    if ref is not None and set(ref) != set(objs):
        raise ConfigError(f"invalid config: optimizer.ref_point needs one value per objective "
                          f"{list(objs)}, got {sorted(ref)}")
    return objs


def _latency_name(cfg) -> str:
    lat = {**LATENCY_DEFAULTS, **dict(cfg.get("latency", {}))}
    return latency_key(lat["objective_batch"])


def objective_vector(res: dict, objectives, latency_name: str) -> list[float]:
    """The minimised objective vector of a trial result: error, log10 bytes, log10 ms."""
    out = []
    for o in objectives:
        if o == "val_error":
            out.append(float(res["val_error"]))
        elif o == "size_bytes":
            out.append(math.log10(float(res["size_bytes"])))
        else:
            out.append(math.log10(float(res[latency_name])))
    return out


def _ref_vector(cfg, objectives) -> np.ndarray | None:
    ref = cfg.get("optimizer", {}).get("ref_point")
    if ref is None:
        return None
    return np.array([float(ref[o]) if o == "val_error" else math.log10(float(ref[o]))
                     for o in objectives])


def _trial_seed(seed: int, number: int) -> int:
    return int(np.random.default_rng([seed, number]).integers(2**31 - 1))


def optimize(cfg, *, out_dir, resume: bool = False, overwrite: bool = False,
             progress: bool = True) -> dict:
    """Runs (or continues) the optimize study ``cfg`` in ``out_dir``.

    Returns:
        The results dict written to ``results.json``: ``front`` (rows),
        ``knee`` (its trial number and row), ``hypervolume`` (when
        ``optimizer.ref_point`` is set; in the objectives' minimised units),
        ``n_trials``, ``n_failed``, ``objectives``, ``seconds``.

    Raises:
        ConfigError: an invalid config value.
        RunDirError: ``out_dir`` holds another run, or none to resume.
        JournalError: the journal holds another study.
    """
    t0 = time.perf_counter()
    objectives = _check(cfg)
    space = recipe_space(cfg.space)
    opt_cfg = dict(cfg.optimizer)
    method = opt_cfg.get("method", "parego")
    n_trials = int(opt_cfg["n_trials"])
    seed = int(cfg.seed)
    lat_name = _latency_name(cfg)
    ref = _ref_vector(cfg, objectives)
    run_dir = dict(config=cfg, command="optimize", resume=resume, overwrite=overwrite,
                   may_change=MAY_CHANGE_ON_RESUME)
    out = rundir.check_run_dir(out_dir, **run_dir)
    splits = load_splits(cfg)
    rundir.prepare_run_dir(out, **run_dir)
    study = {"command": "optimize", "optimizer": method, "seed": seed,
             "objectives": list(objectives), "latency_objective": lat_name,
             "fingerprint": rundir.fingerprint(cfg, MAY_CHANGE_ON_RESUME)}
    journal = Journal(out / "journal.jsonl", {"space": space.to_dict(), "study": study})
    with journal.lock():
        records = journal.read_new()
    header = journal.header or next((r for k, r in records if k == "header"), None)
    if header is not None and (jsonable(header["space"]) != jsonable(space.to_dict())
                               or jsonable(header.get("study")) != jsonable(study)):
        raise JournalError(f"{out / 'journal.jsonl'} holds another optimize study; continue it "
                           "with the same config, or pass another --out")
    trials: list[Trial] = [r for k, r in records if k == "trial"]
    opt = ParEGO(space, len(objectives), seed=seed, n_initial=int(opt_cfg.get("n_initial", 8)),
                 ref_point=ref) if method == "parego" else None
    for t in trials:
        vals = (t.state or {}).get("objectives") if t.ok else None
        if opt is not None:
            opt.tell(space.validate(t.params), vals if vals else [float("nan")] * len(objectives))
    if opt is not None:
        opt._n_asked = len(trials)  # the next ask is the one the uninterrupted study makes
    log = print if progress else (lambda *a, **k: None)
    if trials:
        log(f"resuming: {len(trials)} trial(s) in {out / 'journal.jsonl'}")
    for number in range(len(trials), n_trials):
        if opt is not None:
            params = opt.ask()
        else:
            params = space.sample(1, rng=np.random.default_rng([seed, number, 17]))[0]
        params = space.validate(params)
        tdir = out / "trials" / f"{number:04d}"
        t1 = time.perf_counter()
        try:
            res = run_trial(cfg, params, splits, seed=_trial_seed(seed, number), out_dir=tdir,
                            progress=False)
            vals = objective_vector(res, objectives, lat_name)
            error = None
        except (ValueError, FloatingPointError, ArithmeticError) as err:
            res, vals, error = {}, [float("nan")] * len(objectives), f"{type(err).__name__}: {err}"
            (tdir).mkdir(parents=True, exist_ok=True)
            (tdir / "error.txt").write_text(traceback.format_exc())
        ok = error is None and all(math.isfinite(v) for v in vals)
        metrics = {k: v for k, v in res.items() if k != "latency"}
        trial = Trial(number=number, params=params,
                      value=float(res["val_error"]) if ok else float("nan"),
                      status="ok" if ok else "failed", error=error,
                      state={"objectives": vals if ok else None, "metrics": jsonable(metrics),
                             "latency": jsonable(res.get("latency"))})
        with journal.lock():
            journal.write(trial.to_json())
        trials.append(trial)
        if opt is not None:
            opt.tell(params, vals)
        if ok:
            log(f"trial {number} ({number + 1}/{n_trials}) {params}: val error {res['val_error']:.4f}, "
                f"{res['size_bytes']} B, {lat_name} {res[lat_name]:.3f} "
                f"({time.perf_counter() - t1:.1f} s)", flush=True)
        else:
            log(f"trial {number} ({number + 1}/{n_trials}) {params}: failed ({error})", flush=True)
    results = _finish(cfg, out, trials, splits, objectives, lat_name, ref, method)
    results["seconds"] = time.perf_counter() - t0
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    if progress and results.get("knee"):
        k = results["knee"]
        log(f"front: {len(results['front'])} recipe(s); knee: trial {k['trial']} "
            f"({k['method']}, val error {k['val_error']:.4f}, {k['size_bytes']} B); wrote {out}/")
    return results


def _row(t: Trial, lat_name: str) -> dict:
    m = t.state["metrics"]
    return {"trial": t.number, **t.params, "val_error": m["val_error"],
            "size_bytes": m["size_bytes"], "latency_b1_ms": m.get("latency_b1_ms"),
            "latency_b100_ms": m.get("latency_b100_ms"), lat_name: m.get(lat_name),
            "compression": m["compression"], "objectives": t.state["objectives"]}


def _finish(cfg, out: pathlib.Path, trials: list[Trial], splits, objectives, lat_name, ref,
            method) -> dict:
    from nnopt_jax.bayes.export import load_export

    ok = [t for t in trials if t.ok and (t.state or {}).get("objectives")]
    rows = [_row(t, lat_name) for t in ok]
    with (out / "metrics.jsonl").open("w") as f:
        for t in trials:
            f.write(json.dumps({"trial": t.number, "params": t.params, "status": t.status,
                                "error": t.error, **((t.state or {}).get("metrics") or {})},
                               default=str) + "\n")
    results = {"method": method, "objectives": list(objectives), "latency_objective": lat_name,
               "n_trials": len(trials), "n_failed": len(trials) - len(ok), "front": [],
               "knee": None}
    if not ok:
        return results
    values = np.array([r["objectives"] for r in rows])
    mask = front_lib.pareto_mask(values)
    idx = [int(i) for i in np.flatnonzero(mask)]
    idx.sort(key=lambda i: rows[i]["size_bytes"])
    knee = int(idx[front_lib.knee_index(values[idx])])
    front_dir = out / "front"
    if front_dir.exists():
        shutil.rmtree(front_dir)
    front_rows = []
    for i in idx:
        r = dict(rows[i])
        src = out / "trials" / f"{r['trial']:04d}" / "export"
        dst = front_dir / f"{r['trial']:04d}"
        shutil.copytree(src, dst)
        pred = load_export(dst).predict
        logits = np.concatenate([pred(splits.x_test[j:j + 1000])
                                 for j in range(0, len(splits.x_test), 1000)])
        r["test_error"] = float(np.mean(np.argmax(logits, -1) != splits.y_test))
        r["knee"] = bool(i == knee)
        r["export"] = str(dst)
        front_rows.append(r)
    knee_row = next(r for r in front_rows if r["knee"])
    results["front"] = front_rows
    results["knee"] = knee_row
    if ref is not None:
        results["ref_point"] = {o: float(cfg.optimizer.ref_point[o]) for o in objectives}
        results["hypervolume"] = hypervolume(values, ref)
    params_cols = [n for n in recipe_space(cfg.space).names]
    cols = ["trial", *params_cols, "val_error", "test_error", "size_bytes", "latency_b1_ms",
            "latency_b100_ms", "compression", "knee"]
    md_rows = [{**r, "knee": "**knee**" if r["knee"] else ""} for r in front_rows]
    front_lib.write_front(md_rows, cols, out, title=f"Pareto front ({method}, "
                          f"{len(ok)} successful trials; objectives {', '.join(objectives)})")
    (out / "front.json").write_text(json.dumps(canonical(jsonable(front_rows)), indent=2,
                                               default=str))
    front_lib.plot_front(rows, idx, knee, out / "front.png", latency_key=lat_name,
                         title=f"{cfg.get('name', 'optimize')}: {method}, {len(ok)} trials")
    return results
