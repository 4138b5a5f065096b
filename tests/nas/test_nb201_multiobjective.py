"""Multi-objective NAS on NAS-Bench-201: objectives, latency cache, searches, benchmark files."""

import json

import numpy as np
import pytest

from nnopt_jax.nas.nb201 import multiobjective as mo
from nnopt_jax.nas.nb201 import network, space
from nnopt_jax.nas.nb201.table import NB201Table


@pytest.fixture(scope="module")
def table(nasbench201_csv):
    return NB201Table.load(nasbench201_csv)


def test_cost_model_values():
    model = mo.CostModel(["params", "flops"])
    arch = (3, 3, 4, 1, 3, 1)
    assert model(arch) == (network.param_count(arch) / 1e6, network.flops(arch) / 1e6)
    with pytest.raises(ValueError, match="unknown cost"):
        mo.CostModel(["energy"])


def test_latency_cache_measures_once_and_persists(tmp_path):
    calls = []

    def fake(arch, *, batch_size, repeats):
        calls.append(arch)
        return 1.0 + sum(arch)

    cache = mo.LatencyCache(tmp_path / "lat.json", measure=fake)
    a, b = (0, 1, 2, 3, 4, 0), (1,) * 6
    assert cache(a) == 11.0 and cache(a) == 11.0 and cache(b) == 7.0
    assert calls == [a, b]
    again = mo.LatencyCache(tmp_path / "lat.json", measure=fake)
    assert again(a) == 11.0 and len(calls) == 2


def test_measure_latency_on_a_small_network():
    ms = mo.measure_latency((3, 1, 2, 4, 0, 3), batch_size=2, repeats=3, image_size=8,
                            channels=2, cells_per_stage=1)
    assert np.isfinite(ms) and ms > 0


@pytest.mark.parametrize("method", mo.MO_METHODS)
def test_mo_search_budget_and_values(table, method):
    costs = mo.CostModel(["params"])
    # fit_steps=20 shares the compiled GP fit with the single-objective search tests
    t = mo.run_mo_search(method, table, costs, queries=12, seed=1, fit_steps=20)
    assert t.values.shape == (12, 2) and len(t.archs) == 12
    for idx, (neg_val, params) in zip(t.archs, t.values):
        assert -neg_val == table.query(int(idx), "cifar10-val")
        assert params == network.param_count(space.index_to_arch(int(idx))) / 1e6


def test_mo_benchmark_writes_results_and_plot(table, tmp_path):
    res = mo.run_mo_benchmark(["random"], ["flops"], 15, 2, table, tmp_path, progress=False)
    saved = json.loads((tmp_path / "results.json").read_text())
    ref = saved["reference_point"]
    assert ref[0] == -float(np.median(table.column("cifar10-val")))
    assert ref[1] == network.all_flops().max() / 1e6
    hv = saved["methods"]["random"]["hv_mean"]
    assert len(hv) == 15 and np.all(np.diff(hv) >= 0)  # hypervolume never decreases
    assert 0 < saved["methods"]["random"]["final_hv_mean"] <= saved["true_front_hypervolume"]
    assert (tmp_path / "fronts.png").stat().st_size > 0
    assert res["runs"] == 2
