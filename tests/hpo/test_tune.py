import json

import pytest

from nnopt_jax.config import Config
from nnopt_jax.hpo.journal import JournalError, JournalWarning
from nnopt_jax.hpo.tune import TuneError, apply_params, tune


def fake_train(cfg, *, out_dir=None, progress=False):
    """val_error is minimal at lr=1e-2, width=64, relu; nan for one activation."""
    import math

    if cfg.model.activation == "bad":
        raise FloatingPointError("diverged")
    v = (abs(math.log10(cfg.train.learning_rate) + 2) + abs(math.log2(cfg.model.width) - 6) / 4
         + cfg.model.dropout)
    return {"val_error": v, "test_error": v + 0.01}


def _cfg(n_trials=6):
    base = Config(seed=0, model=dict(name="mlp", width=32, activation="relu", dropout=0.0),
                  train=dict(learning_rate=1e-3, weight_decay=0.0))
    space = {"train.learning_rate": dict(type="real", low=1e-4, high=1e-1, log=True),
             "model.width": dict(type="int", low=16, high=256, log=True),
             "model.dropout": dict(type="real", low=0.0, high=0.5),
             "model.activation": dict(type="categorical", choices=["relu", "bad"])}
    return Config(base=base, hpo=dict(method="random", n_trials=n_trials, seed=0, space=space))


def test_tune_writes_outputs_and_resumes(tmp_path):
    res = tune(_cfg(5), out_dir=tmp_path, progress=False, train_fn=fake_train)
    assert res["n_trials"] == 5
    for name in ("journal.jsonl", "best_config.json", "convergence.png", "results.json"):
        assert (tmp_path / name).exists()
    best = json.loads((tmp_path / "best_config.json").read_text())
    assert best["train"]["learning_rate"] == res["best_params"]["train.learning_rate"]
    assert best["model"]["activation"] == "relu"
    ok = [t for t in res["trials"] if t["status"] == "ok"]
    assert res["best_value"] == min(t["value"] for t in ok)
    with pytest.raises(JournalError, match="--resume"):
        tune(_cfg(5), out_dir=tmp_path, progress=False, train_fn=fake_train)
    res2 = tune(_cfg(8), out_dir=tmp_path, resume=True, progress=False, train_fn=fake_train)
    assert res2["n_trials"] == 8
    assert [t["params"] for t in res2["trials"][:5]] == [t["params"] for t in res["trials"]]
    assert res2["best_value"] <= res["best_value"]


def test_bad_space_key_is_reported(tmp_path):
    cfg = _cfg()
    cfg.hpo.space["model.widht"] = dict(type="int", low=1, high=4)
    with pytest.raises(ValueError, match="widht"):
        tune(cfg, out_dir=tmp_path, progress=False, train_fn=fake_train)


def test_apply_params_copies():
    base = _cfg().base
    cfg = apply_params(base, {"model.width": 99})
    assert cfg.model.width == 99 and base.model.width == 32


def test_torn_last_line_is_set_aside_and_resume_ends_with_unique_trials(tmp_path):
    tune(_cfg(3), out_dir=tmp_path, progress=False, train_fn=fake_train)
    journal = tmp_path / "journal.jsonl"
    data = journal.read_bytes()
    last = data[:-1].rfind(b"\n") + 1
    journal.write_bytes(data[:last + (len(data) - last) // 2])  # a write cut in half
    with pytest.warns(JournalWarning, match="torn last line"):
        res = tune(_cfg(5), out_dir=tmp_path, resume=True, progress=False,
                   train_fn=fake_train)
    assert [t["number"] for t in res["trials"]] == [0, 1, 2, 3, 4]
    assert (tmp_path / "journal.jsonl.corrupt").read_text().count("\n") == 1
    assert journal.read_bytes().endswith(b"\n")
    res = tune(_cfg(6), out_dir=tmp_path, resume=True, progress=False, train_fn=fake_train)
    assert [t["number"] for t in res["trials"]] == list(range(6))


@pytest.mark.parametrize("change, key", [
    (lambda c: c.base.train.__setitem__("weight_decay", 0.1), "base.train.weight_decay"),
    (lambda c: c.hpo.__setitem__("method", "bo"), "optimizer"),
    (lambda c: c.hpo.__setitem__("seed", 3), "seed"),
    (lambda c: c.hpo.space["model.dropout"].__setitem__("high", 0.9), "model.dropout.high"),
])
def test_resume_of_another_study_is_refused_naming_the_difference(tmp_path, change, key):
    tune(_cfg(2), out_dir=tmp_path, progress=False, train_fn=fake_train)
    cfg = _cfg(4)
    change(cfg)
    with pytest.raises(JournalError, match=key):
        tune(cfg, out_dir=tmp_path, resume=True, progress=False, train_fn=fake_train)
    cfg = _cfg(4)  # only n_trials changed: continues
    assert tune(cfg, out_dir=tmp_path, resume=True, progress=False,
                train_fn=fake_train)["n_trials"] == 4


def test_study_directory_rules(tmp_path):
    with pytest.raises(JournalError, match="no study to resume"):
        tune(_cfg(2), out_dir=tmp_path / "new", resume=True, progress=False,
             train_fn=fake_train)
    tune(_cfg(2), out_dir=tmp_path / "s", progress=False, train_fn=fake_train)
    res = tune(_cfg(3), out_dir=tmp_path / "s", overwrite=True, progress=False,
               train_fn=fake_train)
    assert res["n_trials"] == 3  # a new study, not a continued one
    (tmp_path / "file").write_text("x")
    with pytest.raises(TuneError, match="is a file"):
        tune(_cfg(2), out_dir=tmp_path / "file", progress=False, train_fn=fake_train)
    with pytest.raises(TuneError, match="parent is a file"):
        tune(_cfg(2), out_dir=tmp_path / "file" / "sub", progress=False, train_fn=fake_train)


@pytest.mark.parametrize("edit, match", [
    (lambda h: h.__setitem__("n_trials", 2.5), "hpo.n_trials must be a positive integer"),
    (lambda h: h.__setitem__("n_trials", "3"), "hpo.n_trials must be a positive integer"),
    (lambda h: h.__setitem__("seed", -1), "hpo.seed"),
    (lambda h: h.__setitem__("optimizer", {"n_candidtes": 3}), "unknown setting"),
    (lambda h: h["space"]["model.width"].pop("high"), "'model.width': int needs low and high"),
    (lambda h: h["space"]["model.width"].__setitem__("low", "a"), "'model.width'.*'a'"),
    (lambda h: h["space"]["model.width"].__setitem__("low", 16.5), "'model.width'.*integers"),
    (lambda h: h["space"]["model.activation"].__setitem__("choices", "relu"),
     "'model.activation'.*list of choices"),
])
def test_malformed_hpo_blocks_are_clear_errors(tmp_path, edit, match):
    cfg = _cfg(2)
    edit(cfg.hpo)
    with pytest.raises(ValueError, match=match):
        tune(cfg, out_dir=tmp_path, progress=False, train_fn=fake_train)


def test_every_trial_failed_is_a_clear_error_with_results_written(tmp_path):
    cfg = _cfg(2)
    cfg.hpo.space["model.activation"] = dict(type="categorical", choices=["bad"])
    with pytest.raises(TuneError, match="all 2 trials failed.*FloatingPointError: diverged"):
        tune(cfg, out_dir=tmp_path, progress=False, train_fn=fake_train)
    assert json.loads((tmp_path / "results.json").read_text())["n_failed"] == 2
