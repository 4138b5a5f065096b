import numpy as np
import pytest

from nnopt_jax.hpo import test_functions as tf


@pytest.mark.parametrize("name", sorted(tf.FUNCTIONS))
def test_known_optima(name):
    f = tf.get_function(name)
    for x in f.optimum_locations:
        assert f(np.array(x)) == pytest.approx(f.optimum_value, abs=1e-4)
    # the optimum is a minimum: random points are not better
    rng = np.random.default_rng(0)
    lo, hi = np.array(f.bounds).T
    vals = [f(lo + (hi - lo) * rng.random(f.dim)) for _ in range(200)]
    assert min(vals) >= f.optimum_value - 1e-6


def test_get_function_unknown():
    with pytest.raises(ValueError, match="unknown test function"):
        tf.get_function("nope")
