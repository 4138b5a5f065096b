"""The output directory of a run: fresh runs refuse used directories, resumes
need the same run, overwrite discards only runs, bad paths are clear errors."""

import json

import pytest

from nnopt_jax.config import config_diff, describe_diff
from nnopt_jax.rundir import RunDirError, check_run_dir, fingerprint, holds_run, prepare_run_dir

CFG = {"seed": 0, "data": {"name": "digits", "data_dir": None},
       "model": {"name": "mlp", "hidden": [64, 32]},
       "train": {"num_epochs": 2, "learning_rate": 1e-3}}
MAY = ("train.num_epochs", "data.data_dir")


def _cfg(**changes):
    cfg = json.loads(json.dumps(CFG))
    for key, value in changes.items():
        block, leaf = key.split("__")
        cfg[block][leaf] = value
    return cfg


def _prepare(out, cfg=CFG, **kw):
    kw.setdefault("resume", False)
    return prepare_run_dir(out, cfg, command="train", may_change=MAY, **kw)


def test_fresh_run_writes_config_and_fingerprint(tmp_path):
    out = _prepare(tmp_path / "run")
    assert json.loads((out / "config.json").read_text()) == CFG
    run = json.loads((out / "run.json").read_text())
    assert run["command"] == "train" and run["fingerprint"] == fingerprint(CFG, MAY)
    assert holds_run(out) and not holds_run(tmp_path)
    _prepare(tmp_path / "empty_but_there", overwrite=True)  # nothing to discard: fine


def test_fresh_run_refuses_a_used_directory_and_names_the_fixes(tmp_path):
    _prepare(tmp_path)
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(RunDirError, match="holds a previous run") as info:
        _prepare(tmp_path, _cfg(model__hidden=[8]))
    for text in (str(tmp_path), "--resume", "--overwrite", "--out"):
        assert text in str(info.value)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="is not empty"):
        _prepare(other)


def test_overwrite_discards_a_run_but_not_a_foreign_directory(tmp_path):
    run = tmp_path / "run"
    _prepare(run)
    (run / "checkpoints" / "17").mkdir(parents=True)
    (run / "results.json").write_text("{}")
    _prepare(run, _cfg(model__hidden=[8]), overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "run.json"]
    assert json.loads((run / "config.json").read_text())["model"]["hidden"] == [8]
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(RunDirError, match="leaves it alone"):
        _prepare(foreign, overwrite=True)
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_resume_accepts_the_keys_that_may_change(tmp_path):
    _prepare(tmp_path)
    created = json.loads((tmp_path / "run.json").read_text())["created"]
    new = _cfg(train__num_epochs=5, data__data_dir="/elsewhere")
    _prepare(tmp_path, new, resume=True)
    assert json.loads((tmp_path / "config.json").read_text())["train"]["num_epochs"] == 5
    assert json.loads((tmp_path / "run.json").read_text())["created"] == created


def test_resume_refuses_another_config_naming_keys_and_values(tmp_path):
    _prepare(tmp_path)
    new = _cfg(model__hidden=[64], train__learning_rate=0.01, train__num_epochs=9)
    with pytest.raises(RunDirError) as info:
        _prepare(tmp_path, new, resume=True)
    msg = str(info.value)
    assert "model.hidden: [64, 32] -> [64]" in msg
    assert "train.learning_rate: 0.001 -> 0.01" in msg
    assert "num_epochs" not in msg.split("(only")[0], "a key that may change is not a difference"
    assert json.loads((tmp_path / "config.json").read_text()) == CFG, "refusal writes nothing"


def test_resume_refuses_other_commands_nothing_and_overwrite(tmp_path):
    with pytest.raises(RunDirError, match="nothing to resume.*without --resume"):
        _prepare(tmp_path / "missing", resume=True)
    with pytest.raises(RunDirError, match="nothing to resume"):
        _prepare(tmp_path, resume=True)  # exists, empty
    prepare_run_dir(tmp_path / "c", CFG, command="compress", resume=False)
    with pytest.raises(RunDirError, match="`nnopt compress` run"):
        _prepare(tmp_path / "c", resume=True)
    with pytest.raises(RunDirError, match="only one of them"):
        _prepare(tmp_path / "c", resume=True, overwrite=True)


def test_resume_of_a_directory_from_before_run_json_compares_config_json(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(CFG))
    _prepare(tmp_path, _cfg(train__num_epochs=4), resume=True)
    (tmp_path / "run.json").unlink()
    with pytest.raises(RunDirError, match="model.name"):
        _prepare(tmp_path, _cfg(model__name="lenet"), resume=True)


def test_paths_that_are_files_are_clear_errors(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(RunDirError, match="is a file, not a directory"):
        check_run_dir(f, CFG, command="train", resume=False)
    with pytest.raises(RunDirError, match="lies under .*file"):
        check_run_dir(f / "a" / "b", CFG, command="train", resume=False)


def test_check_writes_nothing(tmp_path):
    check_run_dir(tmp_path / "new", CFG, command="train", resume=False)
    assert not (tmp_path / "new").exists()


def test_diff_and_fingerprint_see_tuples_as_lists_and_nesting():
    a = {"m": {"h": (1, 2)}, "t": {"e": 1}}
    b = {"m": {"h": [1, 2], "extra": 3}, "t": {"e": 2}}
    assert config_diff(a, b, ["t.e"]) == [("m.extra", "(absent)", 3)]
    assert fingerprint(a, ["t.*"]) == fingerprint({"m": {"h": [1, 2]}, "t": {"e": 7}}, ["t.*"])
    assert fingerprint(a) != fingerprint(b)
    assert describe_diff(config_diff(a, b)) == "m.extra: (absent) -> 3, t.e: 1 -> 2"
    many = {f"k{i:02d}": i for i in range(10)}
    assert describe_diff(config_diff(many, {}), limit=2) == \
        "k00: 0 -> (absent), k01: 1 -> (absent) (and 8 more)"


def test_resume_gives_a_run_without_an_added_key_that_key_s_old_value(tmp_path):
    _prepare(tmp_path)  # recorded before the config had train.clip
    added = {"train.clip": False}
    with_old_value = _cfg(train__clip=False)
    check_run_dir(tmp_path, with_old_value, command="train", resume=True, may_change=MAY, added_keys=added)
    with pytest.raises(RunDirError, match=r"train.clip: False -> True"):
        check_run_dir(tmp_path, _cfg(train__clip=True), command="train", resume=True, may_change=MAY,
                      added_keys=added)
    with pytest.raises(RunDirError, match=r"train.clip: \(absent\) -> False"):  # not declared as added
        check_run_dir(tmp_path, with_old_value, command="train", resume=True, may_change=MAY)
    assert config_diff({"a": 1}, {"a": 1}, old_defaults={"b": 2}) == []  # only keys the new side has
