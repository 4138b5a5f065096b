import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt_jax.optimize.latency import latency_key, measure_latency


class _Tiny:
    """A tiny linear model that records the batch shapes it is called with."""

    def __init__(self):
        self.w = np.random.default_rng(0).standard_normal((12, 3)).astype(np.float32)
        self.shapes = []

    def __call__(self, x):
        self.shapes.append(x.shape)
        return x.reshape(x.shape[0], -1) @ self.w


def test_latency_medians_repeats_and_batch_sizes():
    model = _Tiny()
    x = np.ones((7, 3, 4), np.float32)  # fewer examples than the largest batch: tiled
    res = measure_latency(model, x, batch_sizes=(1, 5, 20), repeats=4, warmup=2)
    assert sorted(res) == ["b1", "b20", "b5"]
    for b in (1, 5, 20):
        r = res[f"b{b}"]
        assert r["batch_size"] == b and r["repeats"] == 4 and r["warmup"] == 2
        assert len(r["times_ms"]) == 4
        assert all(t > 0 and math.isfinite(t) for t in r["times_ms"])
        assert r["median_ms"] > 0 and math.isfinite(r["median_ms"])
        assert r["median_ms"] == pytest.approx(float(np.median(r["times_ms"])))
    # warm-up + timed calls, in order of the batch sizes, with the right shapes
    assert model.shapes == [(1, 3, 4)] * 6 + [(5, 3, 4)] * 6 + [(20, 3, 4)] * 6
    assert latency_key(100) == "latency_b100_ms"


def test_latency_of_a_jax_function_blocks_on_its_output():
    f = jax.jit(lambda x: jnp.tanh(x @ jnp.ones((4, 2))))
    res = measure_latency(f, np.ones((3, 4), np.float32), batch_sizes=(2,), repeats=3, warmup=1)
    assert len(res["b2"]["times_ms"]) == 3 and res["b2"]["median_ms"] > 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(repeats=0), "repeats >= 1"),
    (dict(warmup=-1), "warmup >= 0"),
    (dict(batch_sizes=(0,)), "positive integers"),
])
def test_latency_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        measure_latency(_Tiny(), np.ones((2, 12), np.float32), **kwargs)


def test_latency_rejects_a_predict_that_drops_the_batch():
    with pytest.raises(ValueError, match="one output row per input"):
        measure_latency(lambda x: x.sum(), np.ones((4, 2)), batch_sizes=(4,), repeats=1)
