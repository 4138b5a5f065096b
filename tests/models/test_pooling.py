import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt_jax.models.pooling import avg_pool_exclude_padding


@pytest.mark.parametrize("shape", [(2, 8, 8, 3), (1, 7, 5, 2)])
@pytest.mark.parametrize("window,stride,padding", [(3, 1, 1), (3, 2, 1), (5, 2, 2)])
def test_equals_flax_count_include_pad_false(shape, window, stride, padding):
    x = jnp.asarray(np.random.default_rng(0).normal(size=shape), jnp.float32)
    ref = nn.avg_pool(x, (window, window), strides=(stride, stride),
                      padding=[(padding, padding)] * 2, count_include_pad=False)
    ours = avg_pool_exclude_padding(x, window, stride, padding)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6)


def test_corner_averages_only_real_pixels():
    x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    out = avg_pool_exclude_padding(x, 3, 1, 1)
    assert float(out[0, 0, 0, 0]) == pytest.approx(np.mean([0, 1, 4, 5]))


def test_differentiable_under_jit_and_matches_flax_gradient():
    import jax

    x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 6, 6, 3)), jnp.float32)
    w = jnp.asarray(np.random.default_rng(2).normal(size=(2, 3, 3, 3)), jnp.float32)
    ours = jax.jit(jax.grad(lambda x: jnp.sum(avg_pool_exclude_padding(x, 3, 2, 1) * w)))(x)
    ref = jax.grad(lambda x: jnp.sum(nn.avg_pool(x, (3, 3), strides=(2, 2), padding=[(1, 1)] * 2,
                                                 count_include_pad=False) * w))(x)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape,window", [((2, 24, 24, 3), 2), ((1, 9, 7, 2), 2), ((2, 9, 9, 1), 3)])
def test_max_pool_matches_flax_values_and_gradients(shape, window):
    import jax

    from nnopt_jax.models.pooling import max_pool

    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)  # continuous: no tied maxima
    ref_fn = lambda x: nn.max_pool(x, (window, window), strides=(window, window))
    ours, ref = max_pool(x, window), ref_fn(x)
    np.testing.assert_array_equal(ours, ref)
    r = jnp.asarray(rng.normal(size=ref.shape), jnp.float32)
    g_ours = jax.jit(jax.grad(lambda x: jnp.sum(max_pool(x, window) * r)))(x)
    g_ref = jax.grad(lambda x: jnp.sum(ref_fn(x) * r))(x)
    np.testing.assert_allclose(g_ours, g_ref, rtol=1e-6, atol=1e-7)
