"""Evaluation network from a genotype: the authors' parameter count for DARTS_V2,
auxiliary head placement, drop path."""

import jax
import jax.numpy as jnp
import numpy as np

from nnopt_jax.nas.darts.eval_model import EvalNetwork, drop_path
from nnopt_jax.nas.darts.genotypes import DARTS_V1, DARTS_V2
from nnopt_jax.nas.darts.search_model import count_params


def _variables(model, shape):
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    return jax.eval_shape(lambda x: model.init({"params": jax.random.PRNGKey(0),
                                                "drop_path": jax.random.PRNGKey(1)},
                                               x, train=True), x)


def test_darts_v2_has_the_authors_parameter_count():
    # utils.count_parameters_in_MB skips names containing "auxiliary"; BN affine
    # scale/bias count, running statistics (our batch_stats) do not.
    v = _variables(EvalNetwork(DARTS_V2, num_classes=10, channels=36, layers=20), (2, 32, 32, 3))
    assert count_params(v["params"], exclude="auxiliary") == 3_349_342
    assert count_params(v["params"]) > 3_349_342  # the auxiliary head exists in training


def test_shapes_and_aux_head_only_in_training():
    model = EvalNetwork(DARTS_V1, num_classes=5, channels=4, layers=3)
    v = _variables(model, (2, 8, 8, 1))
    x = jax.ShapeDtypeStruct((2, 8, 8, 1), jnp.float32)
    (logits, aux), _ = jax.eval_shape(
        lambda v, x: model.apply(v, x, train=True, drop_prob=0.2,
                                 rngs={"drop_path": jax.random.PRNGKey(0)},
                                 mutable=["batch_stats"]), v, x)
    assert logits.shape == aux.shape == (2, 5)
    logits, aux = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), v, x)
    assert logits.shape == (2, 5) and aux is None


def test_drop_path_keeps_the_mean_and_drops_whole_examples():
    x = jnp.ones((4000, 2, 2, 3))
    y = np.asarray(drop_path(x, 0.2, key=jax.random.PRNGKey(0)))
    per_example = y.reshape(4000, -1)
    assert np.all((per_example == 0).all(1) | np.isclose(per_example, 1 / 0.8).all(1))
    frac_dropped = (per_example == 0).all(1).mean()
    assert abs(frac_dropped - 0.2) < 4 * np.sqrt(0.2 * 0.8 / 4000)
    np.testing.assert_array_equal(drop_path(x, 0.0, key=jax.random.PRNGKey(0)), x)
