from nnopt_jax.config import load_config
from nnopt_jax.hpo import demo
from nnopt_jax.hpo.cli import hpo_command


def _fast_train(cfg, *, out_dir=None, progress=False):
    return {"val_error": cfg.train.learning_rate * 10 + cfg.model.dropout, "test_error": 0.0}


def test_configs_load_and_have_smoke_variants():
    for name in ("digits_mlp", "mnist_lenet300"):
        for variant in ("default", "smoke"):
            cfg = load_config(f"configs/hpo/{name}.py:{variant}")
            assert cfg.hpo.space and cfg.base.model.name == "mlp"
            for key in cfg.hpo.space:
                block, leaf = key.split(".")
                assert leaf in cfg.base[block]


def test_demo_with_cheap_trainer(tmp_path):
    out = demo.run_demo(tmp_path, progress=False, train_fn=_fast_train)
    assert out["best_val_error"] < 0.2 and (tmp_path / "convergence.png").exists()


def test_hpo_command_runs_random_smoke(tmp_path, monkeypatch):
    import nnopt_jax.hpo.tune as tune_mod

    monkeypatch.setattr("nnopt_jax.training.train_and_evaluate", _fast_train)
    cfg = load_config("configs/hpo/digits_mlp.py:smoke")
    cfg.hpo.method = "random"
    assert hpo_command(cfg, tmp_path, False) == 0
    assert (tmp_path / "best_config.json").exists()
    assert tune_mod is not None
