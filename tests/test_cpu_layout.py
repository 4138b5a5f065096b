"""The CPU layout: one JAX CPU device per core for ``nnopt``, and the measured
choice between one device and data parallelism (fresh processes: a device
count is fixed once JAX starts)."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from nnopt_jax import cpu_layout

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _python(code: str, *, devices: int | None = None, **env_extra) -> dict:
    """Runs ``code`` in a fresh interpreter; its last stdout line is JSON."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("XLA_FLAGS", cpu_layout.ENV, "JAX_NUM_CPU_DEVICES")}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT), **env_extra)
    if devices:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_requested_layout_reads_the_environment(monkeypatch):
    monkeypatch.delenv(cpu_layout.ENV, raising=False)
    assert cpu_layout.requested() == "auto"
    monkeypatch.setenv(cpu_layout.ENV, " Data_Parallel ")
    assert cpu_layout.requested() == "data_parallel"
    monkeypatch.setenv(cpu_layout.ENV, "threads")
    with pytest.raises(ValueError, match="NNOPT_CPU_LAYOUT='threads' is not one of auto"):
        cpu_layout.requested()


CONFIGURE = """
    import json, jax
    from nnopt_jax import cpu_layout
    made = cpu_layout.configure(cores=3)
    late = cpu_layout.configure(cores=2)  # JAX has started: a no-op, not an error
    print(json.dumps({"made": made, "late": late, "devices": jax.device_count()}))
"""


def test_configure_makes_one_device_per_core_before_jax_starts():
    out = _python(CONFIGURE.replace("late = cpu_layout", "jax.numpy.ones(1); late = cpu_layout"))
    assert out == {"made": 3, "late": None, "devices": 3}


def test_configure_leaves_a_chosen_device_count_and_intra_op_alone():
    assert _python(CONFIGURE, devices=2)["devices"] == 2
    assert _python(CONFIGURE, devices=2)["made"] is None
    assert _python(CONFIGURE, **{cpu_layout.ENV: "intra_op"}) == {
        "made": None, "late": None, "devices": 1}


CHOOSE = """
    import json, jax, jax.numpy as jnp, numpy as np, optax
    from nnopt_jax import cpu_layout, training
    from nnopt_jax.models.mlp import MLP

    model = MLP(features=(16,), num_classes=3)
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(2, 8, 5)).astype(np.float32)
    ys = rng.integers(0, 3, size=(2, 8)).astype(np.int32)
    tx = optax.adam(1e-2)
    params = model.init(jax.random.key(0), xs[0])["params"]
    state = training.init_train_state(params, tx, key=jax.random.key(1))
    before = jax.tree.map(np.asarray, jax.device_get(state.params))
    step = training.make_train_step(training.cross_entropy_loss(model), tx)
    now = [0.0]
    cost = {COST}  # fake seconds per chunk, by the number of devices it runs on

    def build(mesh):
        chunk = training.make_train_chunk(step, mesh=mesh)
        def timed(*args):
            now[0] += cost[1 if mesh is None else mesh.size]
            return chunk(*args)
        return timed

    out = {}
    for name, kw in {KWARGS}.items():
        mesh, chunk, report = cpu_layout.choose_mesh(build, state, lambda: (xs, ys), clock=lambda: now[0],
                                                     log=lambda m: None, **kw)
        out[name] = {"devices": None if mesh is None else mesh.size, "report": report}
    after = jax.tree.map(np.asarray, jax.device_get(state.params))
    out["state_untouched"] = all(np.array_equal(a, b) for a, b in
                                 zip(jax.tree.leaves(before), jax.tree.leaves(after)))
    print(json.dumps(out))
"""


def _choose(cost, kwargs, **env):
    code = CHOOSE.replace("{COST}", repr(cost)).replace("{KWARGS}", repr(kwargs))
    return _python(code, devices=2, **env)


def test_the_probe_keeps_the_faster_layout_and_leaves_the_state_as_it_was():
    long = dict(batch_size=8, steps=10_000)
    out = _choose({1: 0.03, 2: 0.02}, {"dp_faster": long})
    assert out["dp_faster"]["devices"] == 2
    report = out["dp_faster"]["report"]
    assert report["layout"] == "data_parallel" and report["devices"] == 2
    assert report["ms_per_step"] == {"intra_op": 15.0, "data_parallel": 10.0}  # 2 steps a chunk
    assert out["state_untouched"]
    out = _choose({1: 0.02, 2: 0.03}, {"one_faster": long})
    assert out["one_faster"]["devices"] == 1
    assert out["one_faster"]["report"]["layout"] == "intra_op"
    assert _choose({1: 0.02, 2: 0.02}, {"tie": long})["tie"]["devices"] == 1  # no collectives


def test_short_runs_odd_batches_and_the_environment_skip_the_probe():
    cost = {1: 0.03, 2: 0.02}  # data parallelism would win a probe
    out = _choose(cost, {"short": dict(batch_size=8, steps=100),
                         "odd_batch": dict(batch_size=7, steps=10_000)})
    assert out["short"] == {"devices": 1, "report": None}
    assert out["odd_batch"] == {"devices": 1, "report": None}
    long = {"long": dict(batch_size=8, steps=10_000)}
    assert _choose(cost, long, **{cpu_layout.ENV: "intra_op"})["long"] == {
        "devices": 1, "report": None}
    assert _choose({1: 0.01, 2: 0.05}, long, **{cpu_layout.ENV: "data_parallel"})["long"] == {
        "devices": 2, "report": None}


def test_a_resumed_run_keeps_the_layout_its_probe_chose():
    cost = {1: 0.03, 2: 0.02}  # a new probe would choose data parallelism
    long = dict(batch_size=8, steps=10_000)
    out = _choose(cost, {"kept": dict(long, previous={"layout": "intra_op", "devices": 1}),
                         "gone": dict(long, previous={"layout": "data_parallel", "devices": 4}),
                         "junk": dict(long, previous={"layout": "gpu"})})
    assert out["kept"] == {"devices": 1, "report": None}
    assert out["gone"]["report"]["layout"] == "data_parallel"  # 4 devices are not there: probed
    assert out["junk"]["report"]["layout"] == "data_parallel"


def test_read_report_ignores_a_missing_or_corrupt_file(tmp_path):
    assert cpu_layout.read_report(tmp_path / "layout.json") is None
    (tmp_path / "layout.json").write_text("{not json")
    assert cpu_layout.read_report(tmp_path / "layout.json") is None
    (tmp_path / "layout.json").write_text('{"layout": "intra_op", "devices": 1}')
    assert cpu_layout.read_report(tmp_path / "layout.json") == {"layout": "intra_op", "devices": 1}


FIT = """
    import json, jax, numpy as np, optax
    from nnopt_jax import cpu_layout, training
    from nnopt_jax.models.mlp import MLP

    model = MLP(features=(16,), num_classes=3)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    y = rng.integers(0, 3, size=64).astype(np.int32)
    tx = optax.adam(1e-2)
    params = jax.tree.map(np.asarray, model.init(jax.random.key(0), x[:1])["params"])
    out = {}
    for mesh in ("auto", jax.sharding.Mesh(np.asarray(jax.devices()[:1]), ("data",))):
        state = training.init_train_state(params, tx, key=jax.random.key(1))
        cpu_layout.PROBE_MIN_STEPS = 1 if isinstance(mesh, str) else 10**9
        state, hist = training.fit(state, loss_fn=training.cross_entropy_loss(model), tx=tx,
                                   train_data=(x, y), batch_size=16, num_epochs=3, seed=0,
                                   out_dir=OUT + "/" + str(len(out)), mesh=mesh,
                                   progress=False, steps_per_chunk=2)
        out[str(len(out))] = [float(np.sum(np.abs(l))) for l in jax.tree.leaves(state.params)]
    # resumed for a fourth epoch: the layout its probe wrote is kept, not probed again
    report = OUT + "/0/layout.json"
    kept = dict(json.load(open(report)), layout="intra_op", devices=1, marker=True)
    json.dump(kept, open(report, "w"))
    cpu_layout.PROBE_MIN_STEPS = 1
    training.fit(state, loss_fn=training.cross_entropy_loss(model), tx=tx, train_data=(x, y),
                 batch_size=16, num_epochs=4, seed=0, out_dir=OUT + "/0", mesh="auto",
                 resume=True, progress=False, steps_per_chunk=2)
    out["kept"] = json.load(open(report)) == kept
    print(json.dumps(out))
"""


def test_fit_auto_probes_writes_layout_json_and_trains_as_either_layout(tmp_path):
    out = _python(FIT.replace("OUT", repr(str(tmp_path))), devices=2)
    report = json.loads((tmp_path / "0" / "layout.json").read_text())
    assert report["layout"] in ("intra_op", "data_parallel")
    assert set(report["ms_per_step"]) == {"intra_op", "data_parallel"}
    assert not (tmp_path / "1" / "layout.json").exists()
    # the same training whichever layout won (data-parallel sums its gradient in another order)
    assert out["0"] == pytest.approx(out["1"], rel=1e-5)
    assert out["kept"]
