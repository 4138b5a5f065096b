import json

import pytest

from nnopt_jax.config import Config
from nnopt_jax.hpo.tune import apply_params, tune


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
    with pytest.raises(FileExistsError, match="--resume"):
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
