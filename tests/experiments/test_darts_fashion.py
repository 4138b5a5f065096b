"""The Fashion-MNIST DARTS experiment's summary: runs per seed and means per genotype."""

import json
import pathlib

import numpy as np
import pytest

from nnopt_jax.nas.darts import genotypes
from tests.helpers.scripts import load_script

@pytest.fixture(scope="module")
def experiment():
    return load_script("experiments/darts_fashion.py")


def _fake_run(out: pathlib.Path, name: str, acc: float, geno) -> None:
    (out / name).mkdir(parents=True)
    (out / name / "results.json").write_text(json.dumps(
        {"test_acc": acc, "wall_time_s": 1.0, "num_params": 10, "epochs": 1,
         "genotype": genotypes.to_dict(geno)}))


def test_summary_groups_seeds_by_genotype(experiment, tmp_path):
    rng = np.random.default_rng(0)
    g1, g2 = genotypes.random_genotype(rng), genotypes.random_genotype(rng)
    _fake_run(tmp_path, "train_searched", 0.85, g1)
    _fake_run(tmp_path, "train_searched_seed1", 0.87, g1)
    _fake_run(tmp_path, "train_random_0", 0.84, g2)
    (tmp_path / "train_random_1").mkdir()  # unfinished: no results.json
    experiment._write(tmp_path, "cmd")

    summary = json.loads((tmp_path / "summary.json").read_text())
    seeds = {(r["genotype_name"], r["seed"]) for r in summary["rows"]}
    assert seeds == {("searched", 0), ("searched", 1), ("random_0", 0)}
    means = {m["genotype"]: m for m in summary["per_genotype"]}
    assert means["searched"]["n"] == 2
    np.testing.assert_allclose(means["searched"]["mean_test_acc"], 0.86)
    np.testing.assert_allclose(means["searched"]["std_test_acc"], np.std([0.85, 0.87], ddof=1))
    assert means["random_0"]["std_test_acc"] is None
    md = (tmp_path / "summary.md").read_text()
    assert "| searched | 2 | 0.8600 |" in md
    assert md.count("- train searched:") == 1  # each genotype listed once


def test_bad_seeds_are_rejected(experiment, tmp_path):
    with pytest.raises(SystemExit):
        experiment.main(["--seeds", "0,x", "--out", str(tmp_path), "--runs", "random"])


def test_unknown_genotype_names_are_rejected(experiment, tmp_path):
    with pytest.raises(SystemExit):
        experiment.main(["--runs", "random", "--genotypes", "searched", "--out", str(tmp_path)])
