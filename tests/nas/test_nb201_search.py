"""Search methods on NAS-Bench-201: budget, protocol (val only for selection), benchmark files."""

import json

import numpy as np
import pytest

from nnopt_jax.nas.nb201 import search
from nnopt_jax.nas.nb201.table import NB201Table


@pytest.fixture(scope="module")
def table(nasbench201_csv):
    return NB201Table.load(nasbench201_csv)


class RecordingTable:
    """Wraps a table; records every (metric, index) read and can permute the test column."""

    def __init__(self, table, permute_test_seed=None):
        self._t = table
        self.path = table.path
        self.reads: list[tuple[str, int]] = []
        self._perm = (np.random.default_rng(permute_test_seed).permutation(len(table))
                      if permute_test_seed is not None else None)

    def query(self, arch, metric="cifar10-val"):
        idx = NB201Table.space_index(arch)
        self.reads.append((metric, idx))
        if metric == "cifar10-test" and self._perm is not None:
            idx = int(self._perm[idx])
        return self._t.query(idx, metric)


FAST = {"random": {}, "evolution": {"population_size": 5, "sample_size": 3},
        "bo_overlap": {"n_initial": 10}}


@pytest.mark.parametrize("method", list(FAST))
def test_budget_and_protocol(table, method):
    q = 14
    rec = RecordingTable(table)
    traj = search.run_search(method, rec, queries=q, seed=3, **FAST[method])
    assert len(traj.archs) == len(traj.val) == len(traj.test) == q
    n_val = sum(m == "cifar10-val" for m, _ in rec.reads)
    assert n_val == q  # exactly the budget
    metrics = [m for m, _ in rec.reads]
    first_test = metrics.index("cifar10-test")
    # all selection happens before any test read; test reads only for incumbents
    assert set(metrics[:first_test]) == {"cifar10-val"}
    assert set(metrics[first_test:]) == {"cifar10-test"}
    assert {i for m, i in rec.reads if m == "cifar10-test"} == set(traj.incumbent.tolist())
    # the reported figure is the test accuracy of the running best-val cell
    np.testing.assert_array_equal(traj.best_val, np.maximum.accumulate(traj.val))
    for k in range(q):
        assert traj.val[list(traj.archs).index(traj.incumbent[k])] == traj.best_val[k]
        assert traj.test[k] == table.query(int(traj.incumbent[k]), "cifar10-test")
    # decisions do not depend on the test column: scrambling it changes nothing queried
    scrambled = search.run_search(method, RecordingTable(table, permute_test_seed=0),
                                  queries=q, seed=3, **FAST[method])
    np.testing.assert_array_equal(scrambled.archs, traj.archs)


def test_random_is_distinct_and_evolution_mutates(table):
    t = search.run_search("random", table, queries=200, seed=0)
    assert len(set(t.archs.tolist())) == 200
    from nnopt_jax.nas.nb201 import space

    e = search.run_search("evolution", table, queries=40, seed=0, population_size=10,
                          sample_size=3)
    # after the initial population each child differs from some earlier cell in one edge
    archs = [space.index_to_arch(int(i)) for i in e.archs]
    for k in range(10, 40):
        assert any(sum(a != b for a, b in zip(archs[k], p)) == 1 for p in archs[:k])


def test_oracle_enforces_budget(table):
    oracle = search.ValidationOracle(table, 2)
    oracle(0)
    oracle(1)
    with pytest.raises(search.BudgetExceeded):
        oracle(2)


def test_bad_arguments(table):
    with pytest.raises(ValueError, match="unknown method"):
        search.run_search("anneal", table, queries=5, seed=0)
    with pytest.raises(ValueError, match="queries"):
        search.run_search("random", table, queries=0, seed=0)
    with pytest.raises(ValueError, match="sample_size"):
        search.run_search("evolution", table, queries=5, seed=0, sample_size=30)


def test_benchmark_writes_json_png_and_resumes(table, tmp_path):
    res = search.run_benchmark(["random", "evolution"], 12, 3, table, tmp_path, progress=False,
                               options={"evolution": {"population_size": 5, "sample_size": 2}})
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["methods"]["random"]["runs"] == 3
    assert len(saved["methods"]["evolution"]["test_mean"]) == 12
    assert (tmp_path / "curves.png").stat().st_size > 0
    finals = [json.loads((tmp_path / "random" / f"run_{r:03d}.json").read_text())["test"][-1]
              for r in range(3)]
    assert saved["methods"]["random"]["final_test_mean"] == pytest.approx(np.mean(finals))
    assert saved["oracle"]["test"] == table.oracle()[1]
    # resume: an existing run file is reused, not recomputed
    path = tmp_path / "random" / "run_001.json"
    d = json.loads(path.read_text())
    d["test"] = [50.0] * 12
    path.write_text(json.dumps(d))
    res2 = search.run_benchmark(["random"], 12, 3, table, tmp_path, progress=False)
    assert res2["methods"]["random"]["final_test_mean"] == pytest.approx(
        (finals[0] + 50.0 + finals[2]) / 3)
    assert res["queries"] == 12
