"""Checkpoints: another model's state and unreadable files give one clear
CheckpointError (no warning storm); a fallback to an older step warns once."""

import pathlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nnopt_jax.checkpoint import CheckpointError, restore_checkpoint, save_checkpoint
from nnopt_jax.training import init_train_state


def _state(width):
    params = {"fc": {"kernel": jnp.ones((3, width)), "bias": jnp.zeros(width)}}
    return init_train_state(params, optax.adam(1e-3), key=jax.random.key(0))


def _corrupt(step_dir: pathlib.Path):
    for f in step_dir.rglob("*"):
        if f.is_file() and f.parent.name == "d":
            f.write_bytes(b"garbage")


def test_another_models_state_names_the_leaves_and_shapes(tmp_path):
    for step in (4, 8):
        save_checkpoint(tmp_path, _state(4), step=step)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one error, no warning per step
        with pytest.raises(CheckpointError) as info:
            restore_checkpoint(tmp_path, _state(6))
    msg = str(info.value)
    assert "steps 8, 4" in msg and "another model's state" in msg
    assert "params.fc.bias stored (4,), expected (6,)" in msg
    assert "params.fc.kernel stored (3, 4), expected (3, 6)" in msg
    assert "\n" not in msg and len(msg) < 700


def test_unreadable_checkpoints_are_one_error(tmp_path):
    for step in (4, 8):
        save_checkpoint(tmp_path, _state(4), step=step)
        _corrupt(tmp_path / str(step))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(CheckpointError, match="steps? 8.*unreadable"):
            restore_checkpoint(tmp_path, _state(4))


def test_fallback_to_an_older_step_warns_once(tmp_path):
    save_checkpoint(tmp_path, _state(4), step=4)
    newer = jax.tree.map(lambda x: x + 1 if x.dtype == jnp.float32 else x, _state(4))
    save_checkpoint(tmp_path, newer, step=8)
    _corrupt(tmp_path / "8")
    with pytest.warns(RuntimeWarning, match="step 8: unreadable.*resumed from step 4") as rec:
        tree, step = restore_checkpoint(tmp_path, _state(4))
    assert step == 4 and len(rec) == 1
    np.testing.assert_array_equal(tree.params["fc"]["kernel"], np.ones((3, 4)))


def test_empty_directory_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint in"):
        restore_checkpoint(tmp_path, _state(4))
