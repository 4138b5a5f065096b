"""The compression table's rows: each names a config variant that exists and validates."""

import json

import pytest

from nnopt_jax.bayes.run import validate_config
from nnopt_jax.config import load_config
from tests.helpers.scripts import ROOT, load_script


@pytest.fixture(scope="module")
def table():
    return load_script("experiments/compression_table.py")


def test_every_row_config_loads_and_validates(table):
    for config, name, model, method in table.ROWS:
        for smoke in (False, True):
            cfg = load_config(str(ROOT / table.config_spec(config, smoke=smoke)))
            validate_config(cfg)
            assert cfg.method == method
    assert table.config_spec("lenet5_vnq:held_levels", smoke=False) == "configs/compress/lenet5_vnq.py:held_levels"
    assert table.config_spec("lenet5_vnq:held_levels", smoke=True) == "configs/compress/lenet5_vnq.py:smoke"


def test_collect_only_reads_each_rows_run_dir(table, tmp_path):
    res = {"test_error": 0.0063, "compression": 4.46, "layers": [
        {"name": "fc1", "n_weights": 10, "n_nonzero": 2, "sparsity": 0.8}], "epochs_run": 195}
    (tmp_path / "lenet5_vnq_held").mkdir()
    (tmp_path / "lenet5_vnq_held" / "results.json").write_text(json.dumps(res))
    out = table.main(["--runs", str(tmp_path), "--out", str(tmp_path / "table"), "--collect-only"])
    assert [r["config"] for r in out["rows"]] == ["lenet5_vnq_held"]
    assert out["rows"][0]["command"].startswith("nnopt compress --config configs/compress/lenet5_vnq.py:held_levels")
    assert (tmp_path / "table" / "table.md").read_text() == out["markdown"]
