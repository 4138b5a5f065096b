"""The ``nnopt`` command line: help, a smoke training run, and clear errors."""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys

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


# ----------------------------------------------------------------------------- clear errors

def _error_line(capsys) -> str:
    """The one stderr line of a failed command (no traceback, no warnings)."""
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("nnopt: error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished smoke run (2 epochs, width 128), copied by the tests that change it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", "--config", SMOKE, "--out", str(out), "--no-progress"]) == 0
    return out


def _copy(run, tmp_path):
    dest = tmp_path / "run"
    shutil.copytree(run, dest)
    return dest


def test_fresh_run_into_a_used_out_is_refused(finished_run, tmp_path, capsys):
    out = _copy(finished_run, tmp_path)
    capsys.readouterr()
    assert main(["train", "--config", SMOKE, "--out", str(out), "--no-progress",
                 "--set", "model.width=32"]) == 2
    line = _error_line(capsys)
    assert str(out) in line and "--resume" in line and "--overwrite" in line
    assert json.loads((out / "config.json").read_text())["model"]["width"] == 128


def test_resume_with_another_config_is_refused_naming_the_keys(finished_run, tmp_path, capsys):
    out = _copy(finished_run, tmp_path)
    capsys.readouterr()
    assert main(["train", "--config", SMOKE, "--out", str(out), "--resume", "--no-progress",
                 "--set", "model.width=64", "--set", "train.num_epochs=3"]) == 2
    line = _error_line(capsys)
    assert "model.width: 128 -> 64" in line and "num_epochs:" not in line
    results = json.loads((out / "results.json").read_text())
    assert results["epochs"] == 2, "the old run's results stay as they were"


def test_overwrite_starts_afresh(finished_run, tmp_path, capsys):
    out = _copy(finished_run, tmp_path)
    assert main(["train", "--config", SMOKE, "--out", str(out), "--overwrite", "--no-progress",
                 "--set", "model.width=32", "--set", "train.num_epochs=1"]) == 0
    epochs = [json.loads(l)["epoch"] for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1]
    assert json.loads((out / "config.json").read_text())["model"]["width"] == 32


def test_resume_from_unreadable_checkpoints_prints_one_line(finished_run, tmp_path):
    """In a subprocess: stderr is exactly the error line (orbax's asyncio tracebacks
    of the aborted reads and its logging are silenced)."""
    out = _copy(finished_run, tmp_path)
    for f in (out / "checkpoints").rglob("*"):
        if f.is_file() and f.parent.name == "d":
            f.write_bytes(b"garbage")
    proc = _nnopt(["train", "--config", SMOKE, "--out", str(out), "--resume", "--no-progress"],
                  {}, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("nnopt: error: no readable checkpoint in"), proc.stderr[-3000:]
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-3000:]


@pytest.mark.parametrize("override,message", [
    ("train.batch_size=0", "train.batch_size=0 (expected an integer >= 1)"),
    ("train.batch_size=-4", "train.batch_size=-4 (expected an integer >= 1)"),
    ("train.num_epochs=0", "train.num_epochs=0 (expected an integer >= 1)"),
    ("train.num_epochs=-1", "train.num_epochs=-1 (expected an integer >= 1)"),
    ("train.learning_rate=-1.0", "train.learning_rate=-1.0 (expected a finite number > 0"),
    ("train.learning_rate=0", "train.learning_rate=0.0 (expected a finite number > 0"),
    ("data.validation_fraction=1.5", "data.validation_fraction=1.5 (expected"),
    ("data.validation_fraction=-0.1", "data.validation_fraction=-0.1 (expected"),
    ("data.train_subset=10", "data.train_subset=10 is smaller than train.batch_size=64"),
    ("data.validation_fraction=0.99", "exceeds the 14 training examples"),
    ("train.schedule=step", "train.schedule='step' (expected one of"),
    ("train.weight_decay=-1e-4", "train.weight_decay=-0.0001 (expected"),
    ("data.name=imagenet", "data.name='imagenet' (expected a dataset name"),
])
def test_bad_train_values_are_one_line_errors(override, message, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["train", "--config", SMOKE, "--out", str(out), "--no-progress",
                 "--set", override]) == 2
    assert message in _error_line(capsys)
    assert not out.exists(), "a refused run leaves nothing behind"


def test_a_bad_cpu_layout_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NNOPT_CPU_LAYOUT", "threads")
    out = tmp_path / "o"
    assert main(["train", "--config", SMOKE, "--out", str(out), "--no-progress"]) == 2
    assert "NNOPT_CPU_LAYOUT='threads' is not one of auto, intra_op, data_parallel" in _error_line(capsys)
    assert not out.exists()


def test_out_that_is_a_file_or_under_one(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["train", "--config", SMOKE, "--out", str(f)]) == 2
    assert "is a file, not a directory" in _error_line(capsys)
    assert main(["train", "--config", SMOKE, "--out", str(f / "run")]) == 2
    assert "lies under" in _error_line(capsys)


def test_resume_with_nothing_to_resume(tmp_path, capsys):
    assert main(["train", "--config", SMOKE, "--out", str(tmp_path / "new"), "--resume"]) == 2
    assert "nothing to resume" in _error_line(capsys)


def test_config_directory_and_missing_data_dir(tmp_path, capsys):
    assert main(["train", "--config", str(ROOT / "configs"), "--out", str(tmp_path)]) == 2
    assert "is a directory" in _error_line(capsys)
    assert main(["train", "--config", SMOKE, "--data-dir", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "--data-dir" in _error_line(capsys) and not (tmp_path / "o").exists()


def test_compress_and_nas_refuse_bad_values_and_used_dirs(tmp_path, capsys):
    compress_smoke = str(ROOT / "configs" / "compress" / "lenet300_svd.py") + ":smoke"
    assert main(["compress", "--config", compress_smoke, "--out", str(tmp_path / "c"),
                 "--set", "train.batch_size=0"]) == 2
    assert "train.batch_size=0" in _error_line(capsys)
    search_smoke = str(ROOT / "configs" / "nas" / "darts_cifar10_search.py") + ":smoke"
    assert main(["nas", "search", "--config", search_smoke, "--out", str(tmp_path / "s"),
                 "--set", "search.epochs=0"]) == 2
    assert "search.epochs=0" in _error_line(capsys)
    used = tmp_path / "used"
    used.mkdir()
    (used / "run.json").write_text("{}")
    train_smoke = str(ROOT / "configs" / "nas" / "darts_cifar10_train.py") + ":smoke"
    for argv in (["compress", "--config", compress_smoke],
                 ["nas", "search", "--config", search_smoke],
                 ["nas", "train", "--config", train_smoke, "--genotype", "DARTS_V2"]):
        assert main([*argv, "--out", str(used), "--no-progress"]) == 2
        assert "holds a previous run" in _error_line(capsys)


@pytest.mark.parametrize("content,message", [
    ("{bad", "is not valid JSON"),
    ('{"normal": []}', "missing keys normal_concat, reduce, reduce_concat"),
    ("[1, 2]", "expected a JSON object"),
    (None, "unknown or disallowed op 'conv_9x9'"),
])
def test_malformed_genotype_file_names_file_and_problem(content, message, tmp_path, capsys):
    from nnopt_jax.nas.darts import genotypes
    path = tmp_path / "g.json"
    if content is None:
        bad = genotypes.to_dict(genotypes.DARTS_V2)
        bad["normal"][3] = ["conv_9x9", 1]
        content = json.dumps(bad)
    path.write_text(content)
    train_smoke = str(ROOT / "configs" / "nas" / "darts_cifar10_train.py") + ":smoke"
    assert main(["nas", "train", "--config", train_smoke, "--genotype", str(path),
                 "--out", str(tmp_path / "o")]) == 2
    line = _error_line(capsys)
    assert str(path) in line and message in line


def _nnopt(args, env_extra, timeout=60):
    """``python -m nnopt_jax.cli ARGS`` in a fresh process (JAX not yet initialised)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("JAX_COORDINATOR_ADDRESS", "NNOPT_COORDINATOR_ADDRESS",
                        "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")}
    return subprocess.run([sys.executable, "-m", "nnopt_jax.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT,
                          env={**env, "JAX_PLATFORMS": "cpu", **env_extra})


def test_distributed_without_a_coordinator(tmp_path):
    proc = _nnopt(["train", "--config", SMOKE, "--out", str(tmp_path), "--distributed"], {})
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nnopt: error: --distributed needs a "
                                                   "coordinator"), proc.stderr[-3000:]
    assert "JAX_COORDINATOR_ADDRESS" in lines[0]


def test_distributed_coordinator_that_never_answers_times_out(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": "2",
           "JAX_PROCESS_ID": "1", "NNOPT_DISTRIBUTED_TIMEOUT": "2"}
    proc = _nnopt(["train", "--config", SMOKE, "--out", str(tmp_path / "o")], env)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("nnopt: waiting up to 2 s for the coordinator"), proc.stderr
    assert lines[1].startswith("nnopt: error: the coordinator at 127.0.0.1:") and \
        "did not answer within 2 s" in lines[1] and len(lines) == 2, proc.stderr


# ----------------------------------------------------------------------------- one convention

def _subcommands(parser, prefix=()):
    """``(words, parser)`` for every sub-command, nested ones included."""
    import argparse
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _subcommands(sub, (*prefix, name))


def _options(parser) -> dict[str, object]:
    return {opt: a for a in parser._actions for opt in a.option_strings}


def test_version(capsys):
    from nnopt_jax import __version__
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"nnopt_jax {__version__}"


def test_every_help_ends_with_an_example():
    from nnopt_jax.cli import build_parser
    parser = build_parser()
    assert "nnopt demo" in parser.format_help()
    commands = dict(_subcommands(parser))
    assert {("train",), ("nas", "bench201"), ("data", "check")} <= set(commands)
    for words, sub in commands.items():
        text = sub.format_help()
        assert "Example:\n  nnopt " in text, f"nnopt {' '.join(words)} --help has no example"
        example = text.split("Example:\n  ", 1)[1].split()
        assert example[:1 + len(words)] == ["nnopt", *words], (words, example)


def test_run_commands_share_their_flags():
    from nnopt_jax.cli import SEED_KEYS, build_parser
    commands = dict(_subcommands(build_parser()))
    common = {"--config", "--set", "--seed", "--data-dir", "--out", "--resume", "--overwrite",
              "--no-progress", "--distributed"}
    for name in SEED_KEYS:
        opts = _options(commands[tuple(name.split())])
        assert common <= set(opts), (name, common - set(opts))
        assert opts["--config"].metavar == "FILE[:VARIANT]"
    for words, sub in commands.items():  # a flag means one thing wherever it appears
        opts = _options(sub)
        if "--out" in opts:
            assert opts["--out"].dest == "out", words
        if "--data-dir" in opts:
            assert opts["--data-dir"].dest == "data_dir", words


@pytest.mark.parametrize("command,key", [
    (["train", "--config", SMOKE], ("seed",)),
    (["hpo", "--config", str(ROOT / "configs" / "hpo" / "digits_mlp.py") + ":smoke"],
     ("hpo", "seed")),
    (["compress", "--config", str(ROOT / "configs" / "compress" / "lenet300_svd.py") + ":smoke"],
     ("seed",)),
    (["nas", "search", "--config",
      str(ROOT / "configs" / "nas" / "darts_fashion_search.py") + ":smoke"], ("search", "seed")),
    (["nas", "train", "--config", str(ROOT / "configs" / "nas" / "darts_fashion_train.py") +
      ":smoke", "--genotype", "DARTS_V2"], ("train", "seed")),
])
def test_seed_sets_the_configs_seed_and_set_wins(command, key):
    from nnopt_jax import cli

    def loaded(*extra):
        node = cli._load(cli.build_parser().parse_args([*command, *extra]))
        for k in key:
            node = node[k]
        return node

    assert loaded("--seed", "7") == 7
    assert loaded("--seed", "7", "--set", f"{'.'.join(key)}=8") == 8
    assert loaded() != 7  # the config's own default stays without --seed


def test_bench201_data_dir_and_its_hidden_alias(tmp_path, capsys):
    from nnopt_jax.cli import build_parser
    parser = build_parser()
    for flag in ("--data-dir", "--data"):
        args = parser.parse_args(["nas", "bench201", flag, str(tmp_path)])
        assert args.data_dir == tmp_path
    bench = dict(_subcommands(parser))[("nas", "bench201")]
    usage = bench.format_help()
    assert "--data-dir" in usage and "--data " not in usage and "--data\n" not in usage
    missing = tmp_path / "absent"
    assert main(["nas", "bench201", "--data", str(missing), "--runs", "1", "--queries", "1",
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnopt: error: NAS-Bench-201 table not found") and str(missing) in err
