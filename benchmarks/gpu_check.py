"""One prepared accelerator check: tests, DARTS, sparse VD, BO and NAS-Bench-201 on a GPU.

Runs from the repository root under a Python that already has jax (with its
CUDA plugin), flax, optax, numpyro, chex, orbax and PyTorch, installing
nothing: tinygp and the other pure-Python packages come unpacked under
``.carry/`` (built here by ``benchmarks/gpu_prepare.sh``), MNIST under
``.carry/mnist``. Each step runs in its own process with its own time limit
inside a global budget; a failure or a time limit loses only that step and is
recorded. Writes ``gpu_check.json`` and ``gpu_check.md`` under ``--out`` and
prints the table.

Steps, in order of value: the ``accelerator``-marked tests; one DARTS search
iteration at the paper configuration (batch 64, 32x32x3, C = 16, 8 cells,
synthetic images; first order, exact second order, finite-difference second
order; JAX and the PyTorch step of ``benchmarks/darts_step.py``) with peak
device memory; sparse-VD LeNet-5 on MNIST (the config as written for two
epochs, then the 200-epoch paper schedule with 100-step scans for as many
epochs as fit); seconds per BO suggestion with the GP on the device and on
the host; NAS-Bench-201 inference latency for a few cells.

Run:
  bash benchmarks/gpu_prepare.sh                                  # here: builds .carry/
  PYTHONPATH=. python3 benchmarks/gpu_check.py --out "$OUT"       # on the GPU machine
  PYTHONPATH=. python benchmarks/gpu_check.py --dry-run --out runs/bench/gpu_check_dry  # CPU, toy sizes
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time
import traceback

ROOT = pathlib.Path(__file__).resolve().parents[1]
CARRY = ROOT / ".carry"
SITE, FALLBACK = CARRY / "site", CARRY / "fallback"

DARTS_PAPER = dict(batch=64, size=32, channels=16, layers=8)
DARTS_TOY = dict(batch=2, size=8, channels=2, layers=1)
"""Dry-run DARTS size for JAX (one reduction cell: XLA:CPU compiles the 8-cell
step for minutes); PyTorch gets 3 cells, since its step differentiates the
normal cells' α, which a single reduction cell leaves unused."""
ACCEL_TEST_FILES = ("tests/nas/test_darts_operations.py", "tests/nas/test_darts_architect.py",
                    "tests/models/test_conv.py", "tests/bayes/test_layers.py", "tests/hpo/test_gp.py",
                    "tests/test_training.py", "tests/nas/test_nb201_network.py")
"""The files holding ``accelerator``-marked tests (collecting only these keeps the
device run clear of other tests' optional imports)."""
NB201_CELLS = {
    "all_conv3x3": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "resnet_like": "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|",
    "mixed": "|nor_conv_1x1~0|+|avg_pool_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|avg_pool_3x3~2|",
    "all_skip": "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|",
}


def add_carry_paths() -> None:
    """``.carry/site`` (packages the device lacks) and ``.carry/fallback`` (used only
    where the device has none of its own) go at the end of ``sys.path``."""
    for p in (SITE, FALLBACK):
        if p.is_dir() and str(p) not in sys.path:
            sys.path.append(str(p))


# ----------------------------------------------------------------------------- steps (children)


def _write(path: pathlib.Path, obj: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    tmp.replace(path)


def step_env(a) -> dict:
    import importlib.util
    import platform

    mods = ["jax", "jaxlib", "flax", "optax", "numpyro", "chex", "orbax", "tinygp", "equinox",
            "torch", "pytest", "scipy", "sklearn", "matplotlib", "rich", "flatbuffers"]
    out = {"python": platform.python_version(), "node": platform.node(),
           "missing_modules": [m for m in mods if importlib.util.find_spec(m) is None]}
    import jax

    out.update(jax=jax.__version__, backend=jax.default_backend(),
               devices=[f"{d.platform}:{getattr(d, 'device_kind', '')}" for d in jax.devices()])
    try:
        import torch

        out.update(torch=torch.__version__, torch_cuda=torch.cuda.is_available(),
                   torch_device=torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")
    except Exception as e:  # recorded, the other steps go on
        out["torch_error"] = repr(e)
    return out


def _jax_peak_bytes() -> float | None:
    import jax

    stats = jax.local_devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def step_darts(a) -> dict:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import darts_step

    cfg = DARTS_PAPER if not a.dry_run else dict(DARTS_TOY, layers=1 if a.framework == "jax" else 3)
    iters = 1 if a.dry_run else 10
    if a.framework == "jax":
        res = darts_step.run_jax(dict(cfg), a.order, iters)
        peak = _jax_peak_bytes()
        res["peak_device_mb"] = None if peak is None else peak / 2**20
        return {**res, "config": cfg}
    import torch

    cuda = torch.cuda.is_available()
    if cuda:
        torch.set_default_device("cuda")

        class _SyncedTime:  # darts_step times with perf_counter: wait for the GPU first
            @staticmethod
            def perf_counter():
                torch.cuda.synchronize()
                return time.perf_counter()

        darts_step.time = _SyncedTime
    res = darts_step.run_torch(dict(cfg), a.order, iters)
    res["peak_device_mb"] = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    res.update(config=cfg, cudnn_tf32=torch.backends.cudnn.allow_tf32,
               matmul_tf32=torch.backends.cuda.matmul.allow_tf32)
    return res


def step_svd(a) -> dict:
    """Runs compress() on the LeNet-5 sparse-VD config; the parent reads metrics.jsonl."""
    import importlib.util

    from nnopt_jax.bayes.run import compress

    spec = importlib.util.spec_from_file_location("cfg", ROOT / "configs/compress/lenet5_svd.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cfg = mod.get_config("smoke" if a.dry_run else "default")
    cfg.data.data_dir = a.data_dir
    cfg.export = False
    if a.epochs:
        cfg.train.num_epochs = a.epochs
    if a.chunk:
        cfg.train.steps_per_chunk, cfg.train.unroll = a.chunk, False
    res = compress(cfg, out_dir=a.work, overwrite=True, progress=False)
    return {k: res.get(k) for k in ("test_error", "compression", "epochs_run", "wall_time_s", "backend")}


def step_bo(a) -> dict:
    import contextlib

    import jax
    import numpy as np

    from nnopt_jax import hpo
    from nnopt_jax.hpo.test_functions import get_function

    f = get_function("hartmann6")
    n_trials = 14 if a.dry_run else 30
    ctx = jax.default_device(jax.devices("cpu")[0]) if a.mode == "host_in_process" else contextlib.nullcontext()
    times = []
    with ctx:
        opt = hpo.BayesianOptimizer(f.space(), seed=0, **({"n_candidates": 256} if a.dry_run else {}))
        n_init = None
        for i in range(n_trials):
            t = time.perf_counter()
            p = opt.ask()
            times.append(time.perf_counter() - t)
            opt.tell(p, f(p))
    n_init = min(10, 2 * f.dim + 2)
    model = times[n_init:]
    return {"mode": a.mode, "backend": jax.default_backend(), "first_model_ask_s": model[0],
            "s_per_suggestion": float(np.median(model[1:])) if len(model) > 1 else None,
            "n_model_asks": len(model), "best": float(opt.best[1])}


def step_nb201(a) -> dict:
    from nnopt_jax.nas.nb201.multiobjective import measure_latency

    kw = dict(channels=4, cells_per_stage=1) if a.dry_run else {}
    out = {}
    for bs in ((2,) if a.dry_run else (32, 256)):
        for name, cell in NB201_CELLS.items():
            out[f"{name}_bs{bs}_ms"] = measure_latency(cell, batch_size=bs,
                                                      repeats=3 if a.dry_run else 30, **kw)
    return out


def step_fail(a) -> dict:
    raise RuntimeError("deliberate failure (--fail-step)")


STEP_FNS = {"env": step_env, "darts": step_darts, "svd": step_svd, "bo": step_bo,
            "nb201": step_nb201, "fail": step_fail}


def run_child(a) -> int:
    add_carry_paths()
    out = pathlib.Path(a.result)
    try:
        res = {"status": "ok", **STEP_FNS[a.step](a)}
    except BaseException as e:  # noqa: BLE001 - recorded for the parent
        res = {"status": "error", "error": f"{type(e).__name__}: {e}",
               "traceback": traceback.format_exc()[-2000:]}
    _write(out, res)
    return 0


def run_pytest(args: list[str]) -> int:
    add_carry_paths()
    import pytest

    return pytest.main(args)


# ----------------------------------------------------------------------------- plan (parent)


class Step:
    """One guarded step: ``argv`` for a child process, a wanted and a minimum time."""

    def __init__(self, name, argv, *, want_s, min_s, env=None, collect=None, rest=False):
        self.name, self.argv, self.want_s, self.min_s = name, argv, want_s, min_s
        self.env, self.collect, self.rest = env or {}, collect, rest


def _collect_pytest(step, work, proc_out):
    tail = proc_out[-3000:]
    summary = [l for l in tail.splitlines() if " passed" in l or " failed" in l or " error" in l]
    return {"summary": summary[-1].strip("= ") if summary else None, "output_tail": tail[-1500:]}


def _collect_svd(step, work, proc_out):
    rows = []
    for p in sorted(work.glob("stage_*/metrics.jsonl")):
        rows += [json.loads(l) for l in p.read_text().splitlines() if l.strip()]
    rows = [r for r in rows if "epoch" in r]
    res = {}
    if rows:
        times = [r["epoch_time_s"] for r in rows]
        last = rows[-1]
        res = {"epochs_done": len(rows), "first_epoch_s": times[0],
               "epoch_s": sorted(times[1:])[len(times[1:]) // 2] if len(times) > 1 else None,
               "test_error": last.get("test_error"), "compression": last.get("compression")}
        if res["epoch_s"]:
            res["estimated_200_epochs_s"] = 200 * res["epoch_s"]
    return res


def build_plan(a) -> list[Step]:
    me = [sys.executable, str(pathlib.Path(__file__).resolve())]
    dry = ["--dry-run"] if a.dry_run else []
    data_dir = a.data_dir or str(CARRY / "mnist")
    plan = [Step("env", me + ["--step", "env"] + dry, want_s=60, min_s=10)]
    if a.fail_step:
        plan.append(Step("fail", me + ["--step", "fail"], want_s=30, min_s=5))
    tests = (["tests/nas/test_darts_operations.py", "-k", "grouped_convolution and 3-1-1-1"]
             if a.dry_run else list(ACCEL_TEST_FILES))
    plan.append(Step("tests", me + ["--pytest", "-o", "addopts=", "-m", "accelerator", "-q", "-p", "no:randomly",
                                    "-p", "no:cacheprovider", "--continue-on-collection-errors", *tests],
                     want_s=150, min_s=30, collect=_collect_pytest,
                     env={"XLA_FLAGS": os.environ.get("XLA_FLAGS", "")}))

    def darts(fw, order, want, mn):
        return Step(f"darts_{fw}_{order}", me + ["--step", "darts", "--framework", fw,
                                                 "--order", order] + dry, want_s=want, min_s=mn)

    plan += [darts("jax", "second", 120, 30), darts("torch", "second", 45, 15),
             darts("jax", "first", 75, 20), darts("torch", "first", 30, 10)]
    svd = me + ["--step", "svd", "--data-dir", data_dir] + dry
    plan.append(Step("svd_config_2_epochs", svd + ["--epochs", "2"], want_s=60, min_s=20,
                     collect=_collect_svd))
    plan.append(Step("svd_paper_schedule", svd + ["--chunk", "100"] + (["--epochs", "3"] if a.dry_run else []),
                     want_s=10**6, min_s=30, collect=_collect_svd, rest=True))
    plan += [darts("jax", "second_fd", 75, 20), darts("torch", "second_fd", 30, 10)]
    plan += [Step("bo_device", me + ["--step", "bo", "--mode", "device"] + dry, want_s=60, min_s=15),
             Step("bo_host", me + ["--step", "bo", "--mode", "host"] + dry, want_s=60, min_s=15,
                  env={"JAX_PLATFORMS": "cpu"}),
             Step("nb201_latency", me + ["--step", "nb201"] + dry, want_s=60, min_s=15),
             Step("bo_host_in_process", me + ["--step", "bo", "--mode", "host_in_process"] + dry,
                  want_s=45, min_s=15)]
    return plan


def run_plan(plan: list[Step], *, budget_s: float, out: pathlib.Path) -> list[dict]:
    """Runs each step in a child process with a time limit; never raises for a step."""
    t0 = time.perf_counter()
    work_root = out / "work"
    work_root.mkdir(parents=True, exist_ok=True)
    env0 = dict(os.environ)
    env0["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(SITE)] + (
        [env0["PYTHONPATH"]] if env0.get("PYTHONPATH") else []))
    env0.setdefault("NNOPT_JAX_CACHE", str(work_root / "jax_cache"))
    rows = []
    for i, st in enumerate(plan):
        left = budget_s - (time.perf_counter() - t0)
        reserve = sum(s.min_s for s in plan[i + 1:]) if st.rest else 0.0
        limit = min(st.want_s, left - reserve)
        row = {"step": st.name, "limit_s": round(max(limit, 0.0), 1)}
        if limit < st.min_s:
            rows.append({**row, "status": "skipped", "error": f"budget: {left:.0f} s left"})
            print(json.dumps(rows[-1]), flush=True)
            continue
        work = work_root / st.name
        work.mkdir(parents=True, exist_ok=True)
        result = work / "result.json"
        argv = st.argv + (["--result", str(result), "--work", str(work)] if "--step" in st.argv else [])
        t = time.perf_counter()
        proc_out, status = "", None
        try:
            p = subprocess.run(argv, cwd=ROOT, env={**env0, **st.env}, capture_output=True,
                               text=True, timeout=limit)
            proc_out = p.stdout + p.stderr
            rc = p.returncode
        except subprocess.TimeoutExpired as e:
            proc_out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            rc, status = None, "timeout"
        row["wall_s"] = round(time.perf_counter() - t, 2)
        res = json.loads(result.read_text()) if result.exists() else {}
        if st.collect is not None:
            res = {**res, **st.collect(st, work, proc_out)}
        if status is None:
            status = res.get("status") or ("ok" if rc == 0 else "error")
            if st.name == "tests" and rc not in (0, None):
                status = "failed" if rc == 1 else "error"
        res.pop("status", None)
        if status in ("error", "timeout") and "error" not in res:
            res["error"] = f"timeout after {limit:.0f} s" if status == "timeout" else (
                proc_out.strip().splitlines() or [f"exit status {rc}"])[-1][:300]
        rows.append({**row, "status": status, **res})
        print(json.dumps({k: v for k, v in rows[-1].items() if k not in ("traceback", "output_tail")},
                         default=str), flush=True)
    return rows


def _fmt(v, nd=3):
    if v is None:
        return ""
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def markdown(rows: list[dict], meta: dict) -> str:
    env = next((r for r in rows if r["step"] == "env"), {})
    lines = [f"GPU check ({'dry run, CPU toy sizes' if meta['dry_run'] else 'full'}): "
             f"devices {env.get('devices')}, jax {env.get('jax')}, torch {env.get('torch')}, "
             f"python {env.get('python')}, {meta['date']}, budget {meta['budget_s']} s, "
             f"total {meta['total_s']:.0f} s.", "",
             "| step | status | wall (s) | result |", "|---|---|---|---|"]
    for r in rows:
        s = r["step"]
        if r["status"] not in ("ok", "failed"):
            res = f"{r.get('error', '')}"[:120].replace("|", "/")
        elif s == "env":
            res = f"backend {r.get('backend')}; missing {r.get('missing_modules')}"
        elif s == "tests":
            res = str(r.get("summary"))
        elif s.startswith("darts"):
            res = (f"{_fmt(r.get('step_s'))} s / iteration; compile {_fmt(r.get('compile_s'), 1)} s; "
                   f"peak device {_fmt(r.get('peak_device_mb'), 0)} MB")
        elif s.startswith("svd"):
            te = r.get("test_error")
            res = (f"{r.get('epochs_done')} epochs; epoch {_fmt(r.get('epoch_s'))} s "
                   f"(first {_fmt(r.get('first_epoch_s'), 1)} s); test error "
                   f"{'' if te is None else f'{100 * te:.2f} %'}; compression {_fmt(r.get('compression'), 1)}x")
        elif s.startswith("bo"):
            res = (f"{_fmt(r.get('s_per_suggestion'))} s / suggestion on {r.get('backend')} "
                   f"(first model suggestion {_fmt(r.get('first_model_ask_s'), 1)} s)")
        elif s.startswith("nb201"):
            res = "; ".join(f"{k[:-3]} {v:.3f} ms" for k, v in r.items() if k.endswith("_ms"))
        else:
            res = ""
        if r["status"] == "timeout" and s.startswith("svd") and r.get("epochs_done"):
            res += f" — stopped at epoch {r['epochs_done']}: {_fmt(r.get('epoch_s'))} s/epoch"
        lines.append(f"| {s} | {r['status']} | {_fmt(r.get('wall_s'), 1)} | {res} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--pytest"]:
        return run_pytest(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench/gpu_check")
    ap.add_argument("--budget-s", type=float, default=450.0,
                    help="global time budget; each step gets at most its share")
    ap.add_argument("--dry-run", action="store_true", help="CPU, toy sizes (the test suite runs this)")
    ap.add_argument("--data-dir", default=None, help="MNIST directory (default .carry/mnist)")
    ap.add_argument("--only", nargs="+", default=None, help="run only these steps (names; a trailing * matches a prefix, e.g. darts_*)")
    ap.add_argument("--fail-step", action="store_true", help=argparse.SUPPRESS)
    # child-process arguments
    ap.add_argument("--step", choices=list(STEP_FNS), help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--framework", help=argparse.SUPPRESS)
    ap.add_argument("--order", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--epochs", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--chunk", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.step:
        return run_child(a)
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    plan = build_plan(a)
    if a.only:
        plan = [s for s in plan if any(s.name == o or (o.endswith("*") and s.name.startswith(o[:-1]))
                                       for o in a.only)]
    t0 = time.perf_counter()
    rows = run_plan(plan, budget_s=a.budget_s, out=out)
    meta = {"dry_run": a.dry_run, "budget_s": a.budget_s, "total_s": time.perf_counter() - t0,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    (out / "gpu_check.json").write_text(json.dumps({**meta, "rows": rows}, indent=2, default=str))
    md = markdown(rows, meta)
    (out / "gpu_check.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
