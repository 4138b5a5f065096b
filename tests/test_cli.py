"""The ``nnopt`` command line: help, a smoke training run, and clear errors."""

import json
import pathlib

import pytest

from nnopt_jax.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "configs" / "digits_mlp.py") + ":smoke"


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for command in ("demo", "train", "hpo", "compress", "nas", "data"):
        assert command in text


def test_train_smoke_writes_the_run_files_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--config", SMOKE, "--out", str(out), "--no-progress"]) == 0
    for name in ("config.json", "metrics.jsonl", "results.json", "learning_curve.png"):
        assert (out / name).exists(), name
    results = json.loads((out / "results.json").read_text())
    assert 0.0 <= results["test_error"] < 0.5  # 2 epochs already beat chance (0.9)
    assert json.loads((out / "config.json").read_text())["model"]["name"] == "mlp"
    # A finished run resumed for more epochs continues from its last checkpoint.
    assert main(["train", "--config", SMOKE, "--out", str(out), "--resume", "--no-progress",
                 "--set", "train.num_epochs=3"]) == 0
    epochs = [json.loads(l)["epoch"] for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]


@pytest.mark.parametrize("args,message", [
    (["--set", "train.learnig_rate=0.1"], "unknown config key 'train.learnig_rate'"),
    (["--set", "train.num_epochs=many"], "expected a value of type int"),
])
def test_bad_overrides_exit_with_a_clear_message(args, message, capsys, tmp_path):
    assert main(["train", "--config", SMOKE, "--out", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err


def test_missing_dataset_says_where_it_looked(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NNOPT_DATA_DIR", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["train", "--config", str(ROOT / "configs" / "mnist_lenet300.py") + ":smoke",
                 "--data-dir", str(empty), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert str(empty) in err and "train-images-idx3-ubyte" in err


def test_missing_config_file(capsys):
    assert main(["train", "--config", "configs/nope.py"]) == 2
    assert "not found" in capsys.readouterr().err
