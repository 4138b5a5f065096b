"""Training core: exact resume after SIGKILL, metrics, evaluation, optimisers."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nnopt_jax.checkpoint import CheckpointError, latest_step
from nnopt_jax.config import Config
from nnopt_jax.training import (_chunk_bounds, _chunk_length, evaluate, make_optimizer,
                                read_jsonl)
from tests.helpers import train_worker

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _wait_for_checkpoint(ckpt_dir, proc, min_step, timeout=180):
    t0 = time.time()
    while time.time() - t0 < timeout:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        try:  # orbax may be writing or pruning a step directory right now
            step = latest_step(ckpt_dir) if ckpt_dir.exists() else None
        except OSError:
            step = None
        if step is not None and step >= min_step:
            return step
        time.sleep(0.2)
    raise TimeoutError("no checkpoint appeared")


def test_killed_run_resumes_to_the_same_parameters(tmp_path):
    out_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=1")
    # 8 steps per epoch, 12 epochs; evaluation sleeps so the kill lands mid-run.
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests/helpers/train_worker.py"), "",
         "--out-dir", str(out_dir), "--epochs", "12", "--sleep", "0.4",
         "--checkpoint-every", "4", "--devices", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed_at = _wait_for_checkpoint(out_dir / "checkpoints", proc, min_step=20)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert latest_step(out_dir / "checkpoints") < 96, "the run finished before the kill"
    assert killed_at >= 20

    resumed = train_worker.run(None, out_dir=str(out_dir), resume=True, epochs=12, devices=1)
    straight = train_worker.run(None, epochs=12, devices=1)
    for a, b in zip(resumed, straight):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    rows = read_jsonl(out_dir / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == list(range(1, 13))  # no duplicated epochs


@pytest.mark.accelerator
def test_unrolled_chunks_train_exactly_like_the_scan():
    looped = train_worker.run(None, epochs=2, devices=1)
    unrolled = train_worker.run(None, epochs=2, devices=1, unroll=True)
    for a, b in zip(looped, unrolled):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_resume_from_corrupt_checkpoint_falls_back_then_errors(tmp_path):
    out_dir = tmp_path / "run"
    train_worker.run(None, out_dir=str(out_dir), epochs=2, devices=1)
    ckpt = out_dir / "checkpoints"
    steps = sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit())
    assert steps == [8, 16]
    for f in (ckpt / "16").rglob("*"):
        if f.is_file():
            f.write_bytes(b"garbage")
    with pytest.warns(RuntimeWarning, match="unreadable"):
        params = train_worker.run(None, out_dir=str(out_dir), resume=True, epochs=2, devices=1)
    straight = train_worker.run(None, epochs=2, devices=1)
    for a, b in zip(params, straight):  # resumed from step 8 and redid epoch 2
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for step_dir in ckpt.iterdir():
        for f in step_dir.rglob("*"):
            if f.is_file():
                f.write_bytes(b"garbage")
    with warnings.catch_warnings():  # none readable: one error, no warning per step
        warnings.simplefilter("error")
        with pytest.raises(CheckpointError, match="without --resume"):
            train_worker.run(None, out_dir=str(out_dir), resume=True, epochs=3, devices=1)


def test_chunks_never_cross_epochs_or_checkpoints():
    bounds = list(_chunk_bounds(0, steps_per_epoch=10, total=30, chunk=4, checkpoint_every=6))
    ends = [e for _, e in bounds]
    assert bounds[0][0] == 0 and ends[-1] == 30
    assert all(b < e for b, e in bounds)
    assert all(b == e0 for (b, _), (_, e0) in zip(bounds[1:], bounds))
    for must in (10, 20, 6, 12, 18, 24, 4, 8):
        assert must in ends
    # Resuming at step 12 replays exactly the remaining chunks.
    assert list(_chunk_bounds(12, 10, 30, 4, 6)) == [b for b in bounds if b[0] >= 12]


@pytest.mark.accelerator
def test_evaluate_matches_numpy_with_padding():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 3)).astype(np.float32)
    x = rng.normal(size=(23, 5)).astype(np.float32)
    y = rng.integers(0, 3, size=23).astype(np.int32)
    res = evaluate(lambda p, s, xb: xb @ p, w, {}, x, y, batch_size=10)
    logits = (x @ w).astype(np.float64)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(res["loss"], -logp[np.arange(23), y].mean(), rtol=1e-5)
    assert res["error"] == pytest.approx(np.mean(logits.argmax(1) != y))


def test_divergence_is_reported_not_silently_trained_on(tmp_path):
    import flax.linen as nn
    from nnopt_jax.training import fit, init_train_state

    def loss_fn(params, model_state, batch, *, key, step):
        return jnp.sum(params["w"]) * jnp.inf, (model_state, {})

    tx = optax.sgd(1.0)
    state = init_train_state({"w": jnp.ones(2)}, tx, key=jax.random.key(0))
    x, y = np.zeros((8, 2), np.float32), np.zeros(8, np.int32)
    with pytest.raises(FloatingPointError, match="diverged"):
        fit(state, loss_fn=loss_fn, tx=tx, train_data=(x, y), batch_size=4, num_epochs=1,
            seed=0, progress=False)


@pytest.mark.parametrize("opt,schedule", [("adam", "cosine"), ("adamw", "constant"),
                                          ("sgd", "linear")])
def test_make_optimizer_schedules(opt, schedule):
    cfg = Config(optimizer=opt, learning_rate=0.1, weight_decay=1e-4, momentum=0.9,
                 schedule=schedule, num_epochs=2, grad_clip=1.0)
    tx = make_optimizer(cfg, steps_per_epoch=5)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    updates, _ = tx.update({"w": jnp.ones(3)}, state, params)
    assert np.all(np.isfinite(updates["w"])) and np.all(updates["w"] < 0)


def test_make_optimizer_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer(Config(optimizer="lion", learning_rate=1.0, num_epochs=1), 1)
    with pytest.raises(ValueError, match="unknown schedule"):
        make_optimizer(Config(learning_rate=1.0, num_epochs=1, schedule="step"), 1)


@pytest.mark.parametrize("steps,target,expected", [(600, 100, 100), (468, 100, 78),
                                                   (22, 100, 22), (449, 100, 100), (7, 1, 1)])
def test_chunk_length_divides_the_epoch_when_it_can(steps, target, expected):
    assert _chunk_length(steps, target) == expected


def test_train_config_chunking_keys_reach_the_loop_and_are_checked(monkeypatch):
    from nnopt_jax import training
    from nnopt_jax.config import ConfigError, load_config

    cfg = load_config(f"{ROOT / 'configs' / 'digits_lenet.py'}:default")
    assert cfg.train.unroll is True and cfg.train.steps_per_chunk == 1
    seen = {}

    def fake_fit(state, **kw):
        seen.update(kw)
        raise RuntimeError("stop after the call")

    monkeypatch.setattr(training, "fit", fake_fit)
    cfg.train.num_epochs = 1
    with pytest.raises(RuntimeError, match="stop after the call"):
        training.train_and_evaluate(cfg, progress=False)
    assert seen["unroll"] is True and seen["steps_per_chunk"] == 1
    cfg.train.steps_per_chunk = 0
    with pytest.raises(ConfigError, match="train.steps_per_chunk"):
        training.validate_config(cfg)
