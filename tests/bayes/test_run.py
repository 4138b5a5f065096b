"""End-to-end smoke runs of the compression configs (results.json, export, resume, CLI)."""

import json
import pathlib
import pickle

import numpy as np
import pytest

from nnopt_jax import training
from nnopt_jax.bayes.cli import compress_command
from nnopt_jax.bayes.export import load_export
from nnopt_jax.bayes.run import compress
from nnopt_jax.config import load_config

CONFIGS = pathlib.Path(__file__).resolve().parents[2] / "configs" / "compress"
ALL = ["lenet300_svd", "lenet300_vnq", "lenet5_svd", "lenet5_vnq", "lenet300_pruning", "lenet5_pruning", "lenet300_dense",
       "lenet5_dense", "densenet_cifar10_vnq"]


@pytest.mark.parametrize("name", ALL)
def test_configs_load_with_smoke_variant(name):
    cfg = load_config(CONFIGS / f"{name}.py")
    smoke = load_config(f"{CONFIGS / name}.py:smoke")
    assert cfg.method in ("sparse_vd", "vnq", "dense", "pruning")
    assert smoke.train.num_epochs <= 2 < cfg.train.num_epochs
    with pytest.raises(ValueError, match="variant"):
        from importlib.util import module_from_spec, spec_from_file_location

        spec = spec_from_file_location("c", CONFIGS / f"{name}.py")
        mod = module_from_spec(spec)
        spec.loader.exec_module(mod)
        mod.get_config("huge")


def test_lenet5_authors_variant_validates_and_exports_with_conv_relus():
    from nnopt_jax.bayes.models import ARCHITECTURES, export_arch
    from nnopt_jax.bayes.run import validate_config

    cfg = load_config(f"{CONFIGS / 'lenet5_svd'}.py:authors")
    validate_config(cfg)
    assert (cfg.model.conv_relu, cfg.model.conv_init, cfg.model.conv_mask_noise) == (
        True, "glorot_uniform", True)
    assert [op for op, _ in ARCHITECTURES[export_arch(cfg.model)]][:3] == ["conv", "relu", "maxpool"]
    cfg.model.conv_init = "he"
    with pytest.raises(ValueError, match="model.conv_init"):
        validate_config(cfg)


def _check_results(out: pathlib.Path, quantized=False):
    res = json.loads((out / "results.json").read_text())
    assert 0.0 <= res["test_error"] <= 1.0 and res["compression"] >= 1.0
    for layer in res["layers"]:
        assert set(layer) == {"name", "n_weights", "n_nonzero", "sparsity"}
    if quantized:
        assert res["bits"] == 2 and all(len(c) == 3 for c in res["codebook"].values())
    for f in ("config.json", "metrics.jsonl", "curves.png"):
        assert (out / f).is_file(), f
    return res


def test_vnq_level_learning_rate_factor_is_checked():
    from nnopt_jax.bayes.run import validate_config
    from nnopt_jax.config import ConfigError

    cfg = load_config(f"{CONFIGS / 'lenet5_vnq.py'}:smoke")
    cfg.train.level_lr_factor = 0.0  # a level held where it started is valid
    validate_config(cfg)
    cfg.train.level_lr_factor = -0.01
    with pytest.raises(ConfigError, match=r"train\.level_lr_factor=-0\.01 \(expected a finite number >= 0"):
        validate_config(cfg)


def test_vnq_per_layer_level_settings_are_checked():
    from nnopt_jax.bayes.run import validate_config
    from nnopt_jax.config import ConfigError

    held = load_config(f"{CONFIGS / 'lenet5_vnq.py'}:held_levels")
    validate_config(held)
    assert held.train.level_lr_factor == 0.0 and held.train.level_lr_factor_by_layer == {"conv1": 0.01}
    cfg = load_config(f"{CONFIGS / 'lenet5_vnq.py'}:smoke")
    cfg.train.level_quantile_by_layer = {"conv1": 1.5}
    with pytest.raises(ConfigError, match=r"train\.level_quantile_by_layer=\{'conv1': 1\.5\} \(expected a dict"):
        validate_config(cfg)
    cfg.train.level_quantile_by_layer = {}
    cfg.train.level_lr_factor_by_layer = [0.01]
    with pytest.raises(ConfigError, match=r"train\.level_lr_factor_by_layer"):
        validate_config(cfg)


def test_sparse_vd_smoke_digits_writes_results_and_export(tmp_path):
    cfg = load_config(f"{CONFIGS / 'lenet300_svd'}.py:smoke")
    cfg.model.name = "mlp"  # a small variational MLP keeps the smoke fast
    cfg.model.features = (32,)
    res = compress(cfg, out_dir=tmp_path, progress=False)
    _check_results(tmp_path)
    assert res["epochs_run"] == 2
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and rows[-1]["train_beta"] == 1.0
    exported = load_export(tmp_path / "export")
    assert exported.nbytes == res["export_bytes"]


def test_vnq_per_layer_levels_start_and_move_as_configured(tmp_path):
    """Levels held (factor 0) after pretraining stay at their layer's quantile;
    a per-layer quantile starts one lower, a per-layer factor learns one."""
    cfg = load_config(f"{CONFIGS / 'lenet300_vnq'}.py:smoke")
    cfg.model.name, cfg.model.features = "mlp", (32, 16)
    cfg.train.funnel_clip, cfg.train.level_lr_factor = False, 0.0
    held = compress(cfg, out_dir=tmp_path / "held", progress=False)["codebook"]
    first, learned, other = sorted(held)
    cfg.train.level_quantile_by_layer = {first: 0.5}
    cfg.train.level_lr_factor_by_layer = {learned: 1.0}
    mixed = compress(cfg, out_dir=tmp_path / "mixed", progress=False)["codebook"]
    assert mixed[other] == held[other]  # the same pretraining, both held at the 0.9 quantile
    assert 0.0 < mixed[first][2] < held[first][2]  # held at the 0.5 quantile instead
    assert mixed[learned][2] != held[learned][2]
    cfg.train.level_lr_factor_by_layer = {"conv9": 1.0}
    with pytest.raises(ValueError, match=r"level_lr_factor_by_layer names 'conv9'"):
        compress(cfg, out_dir=tmp_path / "unknown", progress=False)


def test_interrupted_vnq_run_resumes_to_the_same_results(tmp_path, monkeypatch):
    """A VNQ run (pretraining, then the KL-weighted stage) interrupted after the
    first checkpoint of its second stage and resumed ends exactly where the
    uninterrupted run ends: same metrics per epoch, same exported weights."""
    cfg = load_config(f"{CONFIGS / 'lenet300_vnq'}.py:smoke")
    cfg.model.name, cfg.model.features = "mlp", (32,)
    cfg.train.num_epochs = 3
    cfg.train.funnel_clip = True  # the projection's (empty) optimiser state resumes too
    straight = compress(cfg, out_dir=tmp_path / "straight", progress=False)

    save = training.save_checkpoint

    def save_then_stop(directory, tree, *, step, **kw):
        save(directory, tree, step=step, **kw)
        if pathlib.Path(directory).parent.name == "stage_main" and step >= 10:
            raise KeyboardInterrupt  # as a kill just after the checkpoint
    monkeypatch.setattr(training, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        compress(cfg, out_dir=tmp_path / "resumed", progress=False)
    monkeypatch.setattr(training, "save_checkpoint", save)
    assert not (tmp_path / "resumed" / "results.json").exists()
    resumed = compress(cfg, out_dir=tmp_path / "resumed", resume=True, progress=False)

    rows = [[json.loads(l) for l in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
            for run in ("straight", "resumed")]
    assert [(r["stage"], r["epoch"]) for r in rows[1]] == [("pretrain", 1), ("main", 1),
                                                          ("main", 2), ("main", 3)]
    for a, b in zip(*rows):
        for k in ("test_error", "compression", "train_loss"):
            np.testing.assert_allclose(b[k], a[k], rtol=1e-6, err_msg=k)
    assert resumed["test_error"] == straight["test_error"]
    assert resumed["layers"] == straight["layers"] and resumed["codebook"] == straight["codebook"]
    # each KL-stage epoch records the snapped network; the last is the run's result
    assert all(("test_error_snapped" in r) == (r["stage"] == "main") for r in rows[0])
    assert rows[0][-1]["test_error_snapped"] == straight["test_error"]
    assert rows[0][-1]["compression_snapped"] == pytest.approx(straight["compression"])
    # the epochs of the interrupted call count in the run's training time
    assert resumed["train_time_s"] == pytest.approx(sum(r["epoch_time_s"] for r in rows[1]))
    by_layer = straight["test_error_one_layer_snapped"]  # one entry per quantised layer
    assert set(by_layer) == set(straight["codebook"]) and all(0.0 <= e <= 1.0 for e in by_layer.values())
    # experiments/vnq_inspect.py reads the same posterior back from the last checkpoint
    from tests.helpers.scripts import load_script

    vnq_inspect = load_script("experiments/vnq_inspect.py")
    report = vnq_inspect.inspect(tmp_path / "straight", [2.0, float(cfg.model.threshold)])
    assert report["epoch"] == cfg.train.num_epochs
    assert report["by_threshold"][float(cfg.model.threshold)]["error"] == straight["test_error"]
    assert {n: r["error_only_this_layer_snapped"] for n, r in report["layers"].items()} == by_layer
    assert all(0.0 <= r["error_all_but_this_layer_snapped"] <= 1.0 for r in report["layers"].values())
    assert {n: r["level"] for n, r in report["layers"].items()} == pytest.approx(
        {n: c[2] for n, c in straight["codebook"].items()})


def test_pruning_smoke_reaches_target_sparsity(tmp_path):
    cfg = load_config(f"{CONFIGS / 'lenet300_pruning'}.py:smoke")
    cfg.pruning.stages = (1.0,)
    assert compress_command(cfg, tmp_path, progress=False) == 0
    res = _check_results(tmp_path)
    sp = {l["name"]: l["sparsity"] for l in res["layers"]}
    for name, target in cfg.pruning.sparsity.items():
        assert sp[name] == pytest.approx(target, abs=0.01)


def _write_cifar(root: pathlib.Path, n=64):
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, size=n).tolist()}
        with open(d / name, "wb") as f:
            pickle.dump(batch, f)


def test_densenet_cifar10_vnq_smoke(tmp_path):
    _write_cifar(tmp_path / "data")
    cfg = load_config(f"{CONFIGS / 'densenet_cifar10_vnq'}.py:smoke")
    cfg.data.data_dir = str(tmp_path / "data")
    cfg.train.pretrain_epochs = 0  # one compiled train step keeps the smoke short
    res = compress(cfg, out_dir=tmp_path / "out", progress=False)
    _check_results(tmp_path / "out", quantized=True)
    assert res["epochs_run"] == 1
    assert res["bits"] == 2 and load_export(tmp_path / "out" / "export").meta["format"] == "ternary2bit"


def test_unknown_method_is_rejected(tmp_path):
    cfg = load_config(f"{CONFIGS / 'lenet300_svd'}.py:smoke")
    cfg.method = "magic"
    with pytest.raises(ValueError, match="method"):
        compress(cfg, out_dir=tmp_path, progress=False)
