"""The sampler-quality benchmark: its paired statistics, and a --smoke run end to end."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).parents[2]
_PATH = ROOT / "benchmarks" / "optuna_sampler_quality.py"
_spec = importlib.util.spec_from_file_location("optuna_sampler_quality", _PATH)
osq = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(osq)


def test_paired_statistics_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    a, b = [0.3, -1.2, 0.8, 0.1, -0.4, 0.9], [0.1, -1.0, 0.2, 0.3, -0.9, 0.2]
    d = np.subtract(a, b)
    out = osq.paired(a, b)
    assert out["n"] == 6
    assert out["mean_difference"] == pytest.approx(d.mean())
    assert out["standard_error"] == pytest.approx(np.std(d, ddof=1) / np.sqrt(6))
    assert out["wilcoxon_p"] == pytest.approx(stats.wilcoxon(d).pvalue)
    assert osq.paired([1.0, 2.0], [1.0, 2.0])["wilcoxon_p"] == 1.0
    assert osq.paired([1.0], [0.0])["wilcoxon_p"] is None


def test_smoke_run_writes_json_and_table(tmp_path):
    pytest.importorskip("optuna")
    out = tmp_path / "osq"
    proc = subprocess.run([sys.executable, str(_PATH), "--smoke", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads((out / "optuna_sampler_quality.json").read_text())
    cells = data["cells"]
    assert {(c["method"], c["seed"]) for c in cells} == {
        (m, s) for m in osq.METHODS for s in (100, 101)}
    for c in cells:
        assert c["problem"] == "branin" and c["n_evals"] == 8 and len(c["values"]) == 8
        best = np.minimum.accumulate(c["values"])[-1]
        assert c["final_regret"] == pytest.approx(best - 0.397887357729739)
    comp = data["summary"]["problems"]["branin"]["minus_nnopt_bo"]
    # with the BO's own initial design enqueued, the sampler is the ask/tell loop
    assert comp["nnopt_sampler_sobol"]["identical_trajectories"] == 2
    md = (out / "optuna_sampler_quality.md").read_text()
    assert "| branin | 2 |" in md and "all pooled" in md
