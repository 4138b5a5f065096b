"""A tiny deterministic training run, used by tests in subprocesses.

    python tests/helpers/train_worker.py OUT.npz [--out-dir DIR] [--resume]
        [--epochs N] [--sleep S] [--devices K]

Multi-process runs set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
JAX_PROCESS_ID; process 0 writes the final parameters to OUT.npz.
"""

import argparse
import os
import time

import numpy as np


def problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 6, 6, 1)).astype(np.float32)
    y = (x.reshape(256, -1)[:, :18].sum(1) > 0).astype(np.int32)
    return x, y


def run(out_npz, *, out_dir=None, resume=False, epochs=3, sleep=0.0, devices=None,
        distributed=False, checkpoint_every=None, unroll=False):
    import jax
    from nnopt_jax import parallel
    if distributed:
        parallel.initialize_distributed(True)
    import optax
    from nnopt_jax.models import MLP
    from nnopt_jax.training import cross_entropy_loss, fit, init_train_state

    x, y = problem()
    model = MLP(features=(16,), num_classes=2, dropout=0.1)
    params = model.init(jax.random.key(0), x[:1])["params"]
    tx = optax.sgd(0.05, momentum=0.9)
    state = init_train_state(params, tx, key=jax.random.key(1))
    mesh = parallel.make_mesh(jax.devices()[:devices] if devices else None)

    def eval_fn(state):
        time.sleep(sleep)
        return {}

    state, _ = fit(state, loss_fn=cross_entropy_loss(model), tx=tx, train_data=(x, y),
                   batch_size=32, num_epochs=epochs, seed=3, eval_fn=eval_fn, out_dir=out_dir,
                   resume=resume, mesh=mesh, progress=False, steps_per_chunk=4,
                   checkpoint_every=checkpoint_every, unroll=unroll)
    flat = parallel.to_host(jax.tree.leaves(state.params))
    if jax.process_index() == 0 and out_npz:
        np.savez(out_npz, *flat)
    return flat


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("out_npz")
    ap.add_argument("--out-dir")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--sleep", type=float, default=0.0)
    ap.add_argument("--devices", type=int)
    ap.add_argument("--checkpoint-every", type=int)
    a = ap.parse_args()
    run(a.out_npz, out_dir=a.out_dir, resume=a.resume, epochs=a.epochs, sleep=a.sleep,
        devices=a.devices, distributed=bool(os.environ.get("JAX_COORDINATOR_ADDRESS")),
        checkpoint_every=a.checkpoint_every)
