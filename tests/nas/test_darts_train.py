"""Training a genotype (smoke config through the CLI entry point) and the demo."""

import json
import pathlib

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_train_command_smoke_on_published_genotype(tmp_path):
    from nnopt_jax.config import load_config
    from nnopt_jax.nas.darts.cli import train_command
    cfg = load_config(f"{ROOT / 'configs/nas/darts_cifar10_train.py'}:smoke")
    assert train_command(cfg, "DARTS_V2", tmp_path, progress=False) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert 0.0 <= res["test_acc"] <= 1.0 and np.isfinite(res["test_loss"])
    assert res["genotype"]["normal"][0] == ["sep_conv_3x3", 0]
    rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["epoch"] == 1 and "train_aux_ce" in rows[-1]  # auxiliary loss was used


def test_make_augment_shapes_and_cutout():
    import jax
    import jax.numpy as jnp
    from nnopt_jax.nas.darts.train import make_augment
    aug = make_augment(crop_padding=2, flip=True, cutout=4)
    x = jnp.ones((8, 8, 8, 3))
    y = aug(x, key=jax.random.PRNGKey(0))
    assert y.shape == x.shape
    zeros = np.asarray((y == 0).all(-1)).reshape(8, -1).sum(1)
    assert np.all(zeros >= 4)  # at least the cutout square's clipped part (or crop padding)
    assert make_augment() is None
