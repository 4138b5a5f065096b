"""``nnopt demo``: the training stage and the summary files (the pillar stages
are tested in their own packages)."""

import json

from nnopt_jax.demo import STAGES, run_demo


def test_demo_train_stage_writes_the_promised_files(tmp_path):
    rows = run_demo(tmp_path, skip=set(STAGES), progress=False, train_epochs=3)
    assert [r["stage"] for r in rows] == ["train"]
    assert "test error" in rows[0]["result"]
    for name in ("config.json", "metrics.jsonl", "results.json", "learning_curve.png",
                 "summary.json", "summary.md"):
        assert (tmp_path / name).exists(), name
    assert json.loads((tmp_path / "results.json").read_text())["test_error"] < 0.5
