"""The LeNet-5 step benchmark: its driver (interleaved rounds, rotated order, medians,
ratios, --compare-with rows) on stubbed workers, and one real JAX step measurement."""

import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).parents[2]
_spec = importlib.util.spec_from_file_location("lenet5_vs_torch",
                                               ROOT / "benchmarks" / "lenet5_vs_torch.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_driver_interleaves_rotates_and_reports_medians(tmp_path, monkeypatch):
    calls = []
    seconds = {"torch": [0.10, 0.30, 0.20], "jax": [0.05, 0.07, 0.06], "old": [0.09, 0.08, 0.40]}

    def fake_worker(model, framework, threads, devices, cores, steps, chunk, malloc, library=None):
        key = "old" if library else framework
        calls.append(key)
        return {"s_per_step": seconds[key][sum(c == key for c in calls) - 1],
                "faults_per_step": 7.0 if key == "old" else 0.0}

    monkeypatch.setattr(bench, "_run_worker", fake_worker)
    rows = bench.main(["--models", "svd", "--modes", "one_core", "--repeat", "3",
                       "--compare-with", str(tmp_path / "checkout"), "--compare-label", "before",
                       "--out", str(tmp_path / "out")])
    # every round runs each row once, starting from a different row each time
    assert calls == ["torch", "jax", "old", "jax", "old", "torch", "old", "torch", "jax"]
    by_label = {r["implementation"]: r for r in rows}
    assert set(by_label) == {"PyTorch, 1 thread", "JAX, 1 thread", "JAX, 1 thread, before"}
    assert by_label["PyTorch, 1 thread"]["s_per_step"] == pytest.approx(0.20)
    assert by_label["JAX, 1 thread"]["s_per_step"] == pytest.approx(0.06)
    assert by_label["JAX, 1 thread"]["ratio_to_torch"] == pytest.approx(0.3)
    assert by_label["JAX, 1 thread, before"]["ratio_to_torch"] == pytest.approx(0.45)
    assert by_label["JAX, 1 thread, before"]["faults_per_step"] == 7.0
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["meta"]["repeat"] == 3 and len(saved["rows"]) == 3
    assert "| svd | one core | retain | JAX, 1 thread, before | 90.0 |" in (
        tmp_path / "out" / "results.md").read_text()


def test_jax_step_is_timed_with_its_page_faults():
    seconds, faults, report = bench.jax_step_time("dense", steps=2, chunk=1, devices=1)
    assert 0.0 < seconds < 60.0
    assert faults >= 0.0
    assert report is None  # no layout probe on one device


def test_the_measured_choice_row_runs_the_layout_probe(tmp_path):
    r = bench._run_worker("dense", "jax", 0, -1, "all", 2, 1, "retain")
    assert r["s_per_step"] > 0.0
    if (bench.os.cpu_count() or 1) > 1:  # one CPU device per core, and the probe's figures
        assert r["layout"]["layout"] in ("intra_op", "data_parallel")
        assert set(r["layout"]["ms_per_step"]) == {"intra_op", "data_parallel"}
