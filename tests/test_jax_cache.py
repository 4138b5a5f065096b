"""The persistent compilation cache: where it lives, how to turn it off, and that a
fresh process really loads what an earlier one compiled (counted by JAX's own
cache-hit events, since a host's XLA may reject CPU entries)."""

import json
import os
import subprocess
import sys

import pytest

from nnopt_jax import jax_cache

# A fresh process: enables the cache by importing nnopt_jax.hpo, runs a BO study
# past its initial design and prints JAX's cache events and the directory used.
STUDY = """
import json, jax
events = []
jax.monitoring.register_event_listener(lambda name, **kw: events.append(name))
from nnopt_jax import hpo
f = hpo.get_function("branin")
opt = hpo.BayesianOptimizer(f.space(), seed=0, n_initial=3, n_candidates=64, n_refine=1,
                            refine_steps=3, fit_steps=3, n_screen=4)
for _ in range(4):
    p = opt.ask()
    opt.tell(p, f(p))
print(json.dumps({"hits": events.count("/jax/compilation_cache/cache_hits"),
                  "misses": events.count("/jax/compilation_cache/cache_misses"),
                  "dir": jax.config.jax_compilation_cache_dir}))
"""


def _run_study(env_overrides: dict) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("JAX_COMPILATION_CACHE_DIR", jax_cache.ENV)}
    env.update(env_overrides)
    out = subprocess.run([sys.executable, "-c", STUDY], env=env, capture_output=True,
                         text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("value, expected", [
    ("", "XDG/nnopt/jax"), ("off", None), ("OFF", None), ("0", None), ("false", None),
    ("CUSTOM", "CUSTOM"),
])
def test_cache_dir_follows_the_environment(monkeypatch, tmp_path, value, expected):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "XDG"))
    monkeypatch.setenv(jax_cache.ENV, value.replace("CUSTOM", str(tmp_path / "CUSTOM")))
    got = jax_cache.cache_dir()
    assert got == (None if expected is None else tmp_path / expected)


def test_default_dir_is_under_the_home_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert jax_cache.default_dir() == tmp_path / ".cache" / "nnopt" / "jax"


def test_a_second_process_loads_the_programs_the_first_compiled(tmp_path):
    cache = tmp_path / "cache"
    # every program stored, however fast it compiled (on a loaded host a program
    # near the 0.1 s threshold may be stored by one process and not another)
    env = {jax_cache.ENV: str(cache), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    first = _run_study(env)
    assert first["dir"] == str(cache)
    assert first["misses"] >= 2  # the GP fit and the proposal, at least
    assert len(list(cache.iterdir())) >= 2
    second = _run_study(env)
    assert second["hits"] >= first["misses"], (first, second)
    assert second["misses"] == 0


def test_a_model_suggestion_runs_two_programs_and_no_eager_ones(tmp_path):
    """The GP fit and the proposal; an eager JAX op on the way (an array built
    outside jit) would be a program of its own, a cache load in every fresh process."""
    env = {jax_cache.ENV: str(tmp_path / "cache"), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    first = _run_study(env)
    assert first["hits"] + first["misses"] == 2, first


def test_off_writes_nothing(tmp_path):
    result = _run_study({jax_cache.ENV: "off", "XDG_CACHE_HOME": str(tmp_path)})
    assert not result["dir"] and result["hits"] == result["misses"] == 0
    assert not (tmp_path / "nnopt").exists()


def test_a_directory_the_user_chose_is_kept(tmp_path):
    mine = tmp_path / "mine"
    result = _run_study({"JAX_COMPILATION_CACHE_DIR": str(mine),
                         jax_cache.ENV: str(tmp_path / "ours")})
    assert result["dir"] == str(mine) and result["misses"] >= 2
    assert mine.is_dir() and not (tmp_path / "ours").exists()


def _affine(x, params, *, scale):
    from nnopt_jax.hpo.gp import GPParams

    return GPParams(params.log_ls * scale + x.sum(), params.log_amp, params.log_noise,
                    params.mean - x.mean())


@pytest.fixture
def own_cache(monkeypatch, tmp_path):
    """This package's cache in ``tmp_path``, as :func:`jax_cache.enable` would set it."""
    import jax

    before = jax.config.jax_compilation_cache_dir
    monkeypatch.setenv(jax_cache.ENV, str(tmp_path))
    jax.config.update("jax_compilation_cache_dir", str(tmp_path))
    yield tmp_path
    jax.config.update("jax_compilation_cache_dir", before)


def test_exported_jit_matches_jit_and_reloads_from_disk(monkeypatch, own_cache):
    import jax
    import numpy as np

    from nnopt_jax.hpo.gp import GPParams

    tmp_path = own_cache
    x = np.arange(6.0, dtype=np.float32)
    params = GPParams(np.ones(3, np.float32), np.float32(0.5), np.float32(-1.0), np.float32(2.0))
    want = jax.jit(_affine, static_argnames=("scale",))(x, params, scale=3.0)
    got = jax_cache.ExportedJit(_affine, static_argnames=("scale",))(x, params, scale=3.0)
    assert isinstance(got, GPParams)
    jax.tree.map(np.testing.assert_array_equal, got, want)
    assert len(list((tmp_path / "exported").iterdir())) == 1
    # a fresh wrapper (as in a new process) deserialises instead of tracing again
    export = jax.export.export
    monkeypatch.setattr(jax.export, "export", lambda *a, **k: pytest.fail("traced again"))
    again = jax_cache.ExportedJit(_affine, static_argnames=("scale",))(x, params, scale=3.0)
    jax.tree.map(np.testing.assert_array_equal, again, want)
    # another static value is another program
    monkeypatch.setattr(jax.export, "export", export)
    jax_cache.ExportedJit(_affine, static_argnames=("scale",))(x, params, scale=2.0)
    assert len(list((tmp_path / "exported").iterdir())) == 2


def test_exported_programs_are_keyed_by_the_package_code(monkeypatch, own_cache, tmp_path):
    import jax
    import numpy as np

    from nnopt_jax.hpo.gp import GPParams

    # the fingerprint follows every .py file's name and bytes
    src = tmp_path / "pkg"
    (src / "sub").mkdir(parents=True)
    (src / "a.py").write_text("x = 1\n")
    (src / "sub" / "b.py").write_text("y = 2\n")
    first = jax_cache.code_fingerprint(src)
    assert jax_cache.code_fingerprint(src) == first
    (src / "sub" / "b.py").write_text("y = 3\n")
    assert jax_cache.code_fingerprint(src) != first
    (src / "sub" / "b.py").rename(src / "sub" / "c.py")
    assert len({first, jax_cache.code_fingerprint(src)}) == 2
    # an edited package (another fingerprint) traces anew instead of loading the old program
    x = np.arange(3.0, dtype=np.float32)
    params = GPParams(np.ones(3, np.float32), np.float32(0.5), np.float32(-1.0), np.float32(2.0))
    jax_cache.ExportedJit(_affine, static_argnames=("scale",))(x, params, scale=3.0)
    monkeypatch.setattr(jax_cache, "_package_fingerprint", lambda: "edited")
    jax_cache.ExportedJit(_affine, static_argnames=("scale",))(x, params, scale=3.0)
    assert len(list((own_cache / "exported").iterdir())) == 2


def test_exported_jit_is_plain_jit_with_the_cache_off(monkeypatch, tmp_path):
    import jax
    import numpy as np

    from nnopt_jax.hpo.gp import GPParams

    monkeypatch.setenv(jax_cache.ENV, "off")
    monkeypatch.setattr(jax.export, "export", lambda *a, **k: pytest.fail("exported"))
    params = GPParams(np.ones(3), np.float64(0.5), np.float64(-1.0), np.float64(2.0))
    out = jax_cache.ExportedJit(_affine, static_argnames=("scale",))(np.ones(2), params,
                                                                    scale=1.0)
    assert float(out.mean) == 1.0
