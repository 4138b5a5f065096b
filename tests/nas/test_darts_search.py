"""The search loop: 4-device sharded iteration equals the single-device one;
checkpoint/resume continues exactly; the experiment configs load.

Both heavy tests run in subprocesses (XLA device count; a private compilation
cache lets the repeated runs of the resume test reuse the compiled step)."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

SHARDED = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from nnopt_jax import parallel
    from nnopt_jax.nas.darts.search import (SearchHParams, init_search_state, jit_search_step,
                                            make_optimizers, make_search_step)
    from nnopt_jax.nas.darts.search_model import SearchNetwork
    from nnopt_jax.types import Batch
    assert jax.device_count() == 4
    prims = ("none", "max_pool_3x3", "skip_connect", "sep_conv_3x3")
    model = SearchNetwork(num_classes=3, channels=2, layers=1, steps=2, multiplier=2,
                          stem_multiplier=1, primitives=prims)
    apply_fn = lambda p, a, x: model.apply({"params": p}, x, a)
    hp = SearchHParams(order="second")
    w_tx, a_tx, sched = make_optimizers(hp, 10)
    rng = np.random.default_rng(0)
    tb = Batch(rng.normal(size=(8, 8, 8, 3)).astype(np.float32), rng.integers(0, 3, 8).astype(np.int32))
    vb = Batch(rng.normal(size=(8, 8, 8, 3)).astype(np.float32), rng.integers(0, 3, 8).astype(np.int32))
    state = init_search_state(model, w_tx, a_tx, jnp.asarray(tb.x[:2]), key=jax.random.PRNGKey(0))
    step_fn = make_search_step(apply_fn, w_tx, a_tx, sched, hp)
    single = jax.jit(step_fn, device=jax.devices()[0]) if False else None
    s1 = jax.device_put(state, jax.devices()[0])
    one = jax.jit(step_fn)
    mesh = parallel.make_mesh()
    many = jit_search_step(step_fn, mesh)
    s4 = parallel.replicate(state, mesh)
    for _ in range(2):
        s1, m1 = one(s1, jax.device_put(tb, jax.devices()[0]), jax.device_put(vb, jax.devices()[0]))
        s4, m4 = many(s4, parallel.shard_batch(tb, mesh), parallel.shard_batch(vb, mesh))
    assert len(s4.params["classifier"]["kernel"].sharding.device_set) == 4
    a, b = parallel.to_host(s1), parallel.to_host(s4)
    err = max(float(np.max(np.abs(x - y))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    scale = max(float(np.max(np.abs(x))) for x in jax.tree.leaves(a.alphas))
    print("MAXERR", err, "ALPHA_SCALE", scale)
    np.testing.assert_allclose(np.asarray(a.alphas.reduce), np.asarray(b.alphas.reduce), rtol=1e-4, atol=1e-6)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
    print("OK")
""")

RESUME = textwrap.dedent("""
    import json, sys, pathlib, numpy as np
    from nnopt_jax.config import load_config
    from nnopt_jax.nas.darts.search import run_search
    out = pathlib.Path(sys.argv[1])
    cfg = load_config(sys.argv[2] + ":smoke")
    cfg.search.epochs = 2
    straight = run_search(cfg, out_dir=out / "a", progress=False)
    cfg.search.stop_after_epoch = 1
    run_search(cfg, out_dir=out / "b", progress=False)
    cfg.search.stop_after_epoch = 0
    resumed = run_search(cfg, out_dir=out / "b", resume=True, progress=False)
    sa, sb = straight["state"], resumed["state"]
    assert int(sa.step) == int(sb.step) == 2 * (32 // 16)
    np.testing.assert_array_equal(np.asarray(sa.alphas.normal), np.asarray(sb.alphas.normal))
    rows = [json.loads(l) for l in (out / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2], rows
    for k in ("hessian_eig", "param_free_share", "genotype", "val_acc"):
        assert k in rows[-1], k
    assert (out / "b" / "genotype.json").exists() and (out / "b" / "normal.png").exists()
    print("RESULT", json.dumps({k: straight[k] for k in ("genotype_str", "val_acc")}))
""")


def _run(code, *args, env_extra, timeout=1800):
    env = {**os.environ, **env_extra}
    p = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                       text=True, env=env, cwd=ROOT, timeout=timeout)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-4000:]
    return p.stdout


def test_sharded_step_equals_single_device_step():
    out = _run(SHARDED, env_extra={"XLA_FLAGS": "--xla_force_host_platform_device_count=4",
                                   "JAX_PLATFORMS": "cpu"})
    assert "OK" in out


@pytest.mark.slow  # ~9 min of XLA compilation on 2 CPU cores: `make test-slow`
def test_resume_continues_exactly_and_logs_diagnostics(tmp_path):
    out = _run(RESUME, tmp_path, ROOT / "configs/nas/darts_cifar10_search.py",
               env_extra={"JAX_COMPILATION_CACHE_DIR": str(tmp_path / "cache"),
                          "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                          "JAX_PLATFORMS": "cpu"})
    assert "RESULT" in out


@pytest.mark.parametrize("name", ["darts_cifar10_search", "darts_cifar10_train",
                                  "darts_fashion_search", "darts_fashion_train"])
def test_configs_have_default_and_smoke(name):
    from nnopt_jax.config import load_config
    path = ROOT / "configs" / "nas" / f"{name}.py"
    default, smoke = load_config(str(path)), load_config(f"{path}:smoke")
    assert default.name == smoke.name == name
    if "cifar10_search" in name:
        s = default.search
        assert (default.model.channels, default.model.layers, s.batch_size, s.epochs) == (16, 8, 64, 50)
        assert (s.lr, s.lr_min, s.momentum, s.weight_decay, s.grad_clip) == (0.025, 0.001, 0.9, 3e-4, 5.0)
        assert (s.arch_lr, s.arch_b1, s.arch_b2, s.arch_weight_decay) == (3e-4, 0.5, 0.999, 1e-3)
    if "cifar10_train" in name:
        t = default.train
        assert (default.model.channels, default.model.layers, t.batch_size, t.epochs) == (36, 20, 96, 600)
        assert (t.aux_weight, t.drop_path_prob, t.cutout) == (0.4, 0.2, 16)
