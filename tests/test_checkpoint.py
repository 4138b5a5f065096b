"""Checkpoints: another model's state and unreadable files give one clear
CheckpointError (no warning storm); a fallback to an older step warns once."""

import asyncio
import gc
import logging
import pathlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import tensorstore as ts

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


def _abandoned_task_failing_with(exc_factory) -> None:
    """Runs a task that fails and drops it without retrieving its exception, as
    orbax does with the other reads of a restore once one read failed."""
    async def read():
        raise exc_factory()
    loop = asyncio.new_event_loop()
    task = loop.create_task(read())
    loop.run_until_complete(asyncio.wait([task]))
    loop.close()
    del task
    gc.collect()


def _abandoned_future_failing_with(exc) -> None:
    """A bare future set to fail and dropped unread: asyncio reports it as
    "Future exception was never retrieved" (tensorstore's reads are futures)."""
    loop = asyncio.new_event_loop()
    future = loop.create_future()
    future.set_exception(exc)
    loop.close()
    del future
    gc.collect()


def _tensorstore_error(path: pathlib.Path) -> Exception:
    try:
        ts.open({"driver": "zarr", "kvstore": {"driver": "file", "path": str(path)}}).result()
    except Exception as err:
        return err
    raise AssertionError("opening a missing zarr array succeeded")


def test_abandoned_tensorstore_reads_log_nothing(tmp_path, caplog):
    """asyncio reports each abandoned failed read as "Task (or Future) exception
    was never retrieved" whenever the collector frees it (in a run: at a random later
    moment, on stderr); once a restore ran, those reports are dropped and other
    asyncio reports are not."""
    save_checkpoint(tmp_path, _state(4), step=4)
    restore_checkpoint(tmp_path, _state(4))
    err = _tensorstore_error(tmp_path / "missing")
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        _abandoned_task_failing_with(lambda: err)
        _abandoned_future_failing_with(err)
        _abandoned_task_failing_with(lambda: ValueError("some other failure"))
        _abandoned_future_failing_with(ValueError("another failure"))
    reports = [r for r in caplog.records if r.name == "asyncio"]
    assert [str(r.exc_info[1]) for r in reports] == ["some other failure", "another failure"]


def test_abandoned_coroutines_of_an_aborted_restore_do_not_warn(tmp_path):
    """Orbax leaves coroutines of the reads it abandoned; freed (often at exit)
    they would warn "coroutine ... was never awaited" after the one-line error."""
    save_checkpoint(tmp_path, _state(4), step=4)
    _corrupt(tmp_path / "4")
    with pytest.raises(CheckpointError):
        restore_checkpoint(tmp_path, _state(4))

    async def read():
        pass
    with warnings.catch_warnings(record=True) as caught:
        abandoned = read()
        del abandoned
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]


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
