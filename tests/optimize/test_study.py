"""An optimize study on digits: outputs, journal contents, resume through the CLI."""

import json

import numpy as np
import pytest

from nnopt_jax.config import apply_overrides, load_config
from nnopt_jax.hpo.journal import JournalError
from nnopt_jax.optimize.recipe import recipe_space
from nnopt_jax.optimize.study import optimize

CONFIG = "configs/optimize/digits.py:smoke"
# all trials from the initial design: cheap, and their recipes are known in advance
SETTINGS = ["optimizer.n_initial=4", "model.base_features=(8, 4)", "space.width.high=2",
            "latency.repeats=2"]
ACTIVE = {"dense": set(), "pruning": {"pruning_rate"},
          "sparse_vd": {"kl_warmup_end", "log_alpha_threshold"},
          "vnq": {"kl_warmup_end", "log_alpha_threshold"}}


def _cfg(n_trials):
    return apply_overrides(load_config(CONFIG), SETTINGS + [f"optimizer.n_trials={n_trials}"])


def test_recipe_space_adds_the_method_conditions():
    space = recipe_space(load_config(CONFIG).space)
    assert space.conditions == {"kl_warmup_end": ("method", ("sparse_vd", "vnq")),
                                "log_alpha_threshold": ("method", ("sparse_vd", "vnq")),
                                "pruning_rate": ("method", ("pruning",))}
    with pytest.raises(ValueError, match="unknown names"):
        recipe_space({**load_config(CONFIG).space, "dropout": {"type": "real", "low": 0,
                                                               "high": 1}})


def test_study_writes_the_front_and_resumes_from_its_journal(tmp_path, capsys):
    from nnopt_jax.cli import main

    out = tmp_path / "study"
    first = optimize(_cfg(2), out_dir=out, progress=False)
    assert first["n_trials"] == 2
    before = (out / "journal.jsonl").read_text()
    # resume through the CLI with one more trial: the two recorded ones are not rerun
    assert main(["optimize", "--config", CONFIG, "--out", str(out), "--resume", "--no-progress",
                 *sum((["--set", s] for s in SETTINGS), []), "--set",
                 "optimizer.n_trials=3"]) == 0
    assert "Pareto front" in capsys.readouterr().out
    text = (out / "journal.jsonl").read_text()
    assert text.startswith(before)
    records = [json.loads(line) for line in text.splitlines()]
    trials = [r for r in records if r["type"] == "trial"]
    assert [t["number"] for t in trials] == [0, 1, 2]
    space = recipe_space(_cfg(3).space)
    # the resumed trial is the one the uninterrupted study asks next (ParEGO's design)
    expected = space.sample(1, rng=np.random.default_rng([0, 2]))[0]
    assert trials[2]["params"] == pytest.approx(expected)
    for t in trials:  # inactive knobs are never journaled
        p = t["params"]
        assert set(p) == {"method", "learning_rate", "width"} | ACTIVE[p["method"]]
        if t["status"] == "ok":
            obj = t["state"]["objectives"]
            m = t["state"]["metrics"]
            assert obj[0] == m["val_error"] and obj[1] == pytest.approx(np.log10(m["size_bytes"]))
            assert m["latency_b1_ms"] > 0 and m["latency_b100_ms"] > 0
            assert (out / "trials" / f"{t['number']:04d}" / "export" / "model.npz").is_file()
    res = json.loads((out / "results.json").read_text())
    assert res["n_trials"] == 3 and res["front"]
    assert sum(r["knee"] for r in res["front"]) == 1
    for r in res["front"]:
        assert (out / "front" / f"{r['trial']:04d}" / "meta.json").is_file()
        assert 0.0 <= r["test_error"] <= 1.0
    for name in ("front.md", "front.json", "front.png", "metrics.jsonl", "config.json"):
        assert (out / name).is_file(), name
    assert "**knee**" in (out / "front.md").read_text()
    # a changed study is refused on resume
    with pytest.raises(ValueError, match="train.num_epochs"):
        optimize(apply_overrides(_cfg(3), ["train.num_epochs=3"]), out_dir=out, resume=True,
                 progress=False)


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match="objectives"):
        optimize(apply_overrides(_cfg(1), ["objectives=('val_error',)"]), out_dir=tmp_path / "a")
    with pytest.raises(ValueError, match="objective_batch"):
        optimize(apply_overrides(_cfg(1), ["latency.objective_batch=7"]), out_dir=tmp_path / "b")
