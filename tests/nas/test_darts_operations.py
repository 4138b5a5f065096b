"""DARTS operations: shapes, padding conventions, parameter counts, pooling reference."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt_jax.nas.darts.operations import PRIMITIVES, FactorizedReduce, Pool, make_op
from nnopt_jax.nas.darts.search_model import count_params

X = jax.ShapeDtypeStruct((2, 8, 8, 4), jnp.float32)


def _shapes(name, stride, search):
    op = make_op(name, 4, stride, affine=not search, track_stats=not search, search=search)
    variables = jax.eval_shape(lambda x: op.init(jax.random.PRNGKey(0), x), X)
    out = jax.eval_shape(lambda v, x: op.apply(v, x), variables, X)
    return out.shape, count_params(variables.get("params", {}))


# params at C = 4 (search: BN non-affine; eval: affine BN adds 2C per BN)
SEARCH_PARAMS = {"none": 0, "max_pool_3x3": 0, "avg_pool_3x3": 0,
                 "sep_conv_3x3": 2 * (9 * 4 + 16), "sep_conv_5x5": 2 * (25 * 4 + 16),
                 "dil_conv_3x3": 9 * 4 + 16, "dil_conv_5x5": 25 * 4 + 16}


@pytest.mark.parametrize("name", PRIMITIVES)
@pytest.mark.parametrize("stride", [1, 2])
def test_shapes_and_parameter_counts(name, stride):
    shape, n = _shapes(name, stride, search=True)
    assert shape == (2, 8 // stride, 8 // stride, 4)
    expected = SEARCH_PARAMS.get(name, 0 if stride == 1 else 2 * 4 * 2)  # skip: FR convs
    assert n == expected
    _, n_eval = _shapes(name, stride, search=False)
    n_bn = {"sep_conv_3x3": 2, "sep_conv_5x5": 2, "dil_conv_3x3": 1, "dil_conv_5x5": 1}.get(
        name, 1 if (name == "skip_connect" and stride == 2) else 0)
    assert n_eval == expected + 2 * 4 * n_bn  # pools have no BN in the eval network


def test_avg_pool_excludes_padding_and_max_pool_pads_with_minus_inf():
    x = np.arange(2 * 4 * 4 * 1, dtype=np.float32).reshape(2, 4, 4, 1) - 20.0
    pad = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=np.nan)
    ref_avg = np.zeros((2, 2, 2, 1))
    ref_max = np.zeros((2, 2, 2, 1))
    for i in range(2):
        for j in range(2):
            win = pad[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3, :]
            ref_avg[:, i, j] = np.nanmean(win, axis=(1, 2))
            ref_max[:, i, j] = np.nanmax(win, axis=(1, 2))
    avg = Pool("avg", 2).apply({}, jnp.asarray(x))
    mx = Pool("max", 2).apply({}, jnp.asarray(x))
    np.testing.assert_allclose(avg, ref_avg, rtol=1e-6)
    np.testing.assert_allclose(mx, ref_max, rtol=1e-6)  # all inputs negative: no zero padding


def test_factorized_reduce_uses_shifted_pixels_and_checks_sizes():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 4, 4, 2)), jnp.float32)
    fr = FactorizedReduce(4, affine=False, track_stats=False)
    v = fr.init(jax.random.PRNGKey(0), x)
    k1 = v["params"]["Conv_0"]["kernel"][0, 0]
    k2 = v["params"]["Conv_1"]["kernel"][0, 0]
    relu = np.maximum(np.asarray(x), 0)
    a = relu[:, ::2, ::2] @ np.asarray(k1)
    b = relu[:, 1::2, 1::2] @ np.asarray(k2)
    cat = np.concatenate([a, b], -1)
    ref = (cat - cat.mean((0, 1, 2))) / np.sqrt(cat.var((0, 1, 2)) + 1e-5)
    np.testing.assert_allclose(fr.apply(v, x), ref, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="even height"):
        fr.init(jax.random.PRNGKey(0), jnp.zeros((1, 5, 5, 2)))
    with pytest.raises(ValueError, match="unknown DARTS operation"):
        make_op("conv_7x7", 4, 1, affine=True, track_stats=True)


@pytest.mark.parametrize("k,stride,padding,dilation", [(3, 1, 1, 1), (5, 2, 2, 1),
                                                       (3, 2, 2, 2), (5, 1, 4, 2)])
@pytest.mark.accelerator
def test_shifted_depthwise_conv_equals_grouped_convolution(k, stride, padding, dilation):
    """Values, first and second derivatives of the shifted-slice depthwise conv
    against XLA's grouped convolution, float64."""
    from nnopt_jax.nas.darts.operations import DepthwiseConv

    rng = np.random.default_rng(k + stride + dilation)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.normal(size=(2, 8, 8, 3)))
        shifts = DepthwiseConv(k, stride, padding, dilation, impl="shifts")
        conv = DepthwiseConv(k, stride, padding, dilation, impl="conv")
        v = shifts.init(jax.random.PRNGKey(0), x)
        assert v["params"]["kernel"].shape == (k, k, 1, 3)
        ys, yc = shifts.apply(v, x), conv.apply(v, x)
        assert ys.shape == yc.shape == (2, 8 // stride, 8 // stride, 3)
        np.testing.assert_allclose(ys, yc, rtol=1e-12, atol=1e-12)

        def loss(op):
            return lambda v, x: jnp.sum(jnp.tanh(op.apply(v, x)) ** 2)

        for argnum in (0, 1):
            gs = jax.grad(loss(shifts), argnum)(v, x)
            gc = jax.grad(loss(conv), argnum)(v, x)
            jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12),
                         gs, gc)
        # reverse over reverse, as in the second-order DARTS hypergradient
        hvp = lambda op: jax.grad(lambda x: jnp.vdot(jax.grad(loss(op))(v, x)["params"]["kernel"],
                                                     v["params"]["kernel"]))(x)
        np.testing.assert_allclose(hvp(shifts), hvp(conv), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="unknown depthwise impl"):
        DepthwiseConv(3, impl="fft").init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 2)))


@pytest.mark.accelerator
def test_kernel_gradient_under_vmap_maps_each_element():
    """Under ``vmap`` the depthwise kernel gradient maps over the batched
    operand (one edge at a time); with either operand batched or both, and
    under a nested ``vmap``, it equals the per-element gradient computed by
    XLA's grouped convolution (float64)."""
    from nnopt_jax.nas.darts.operations import depthwise_kernel_grad

    k, s, p, d = 3, 2, 2, 2
    rng = np.random.default_rng(7)
    with jax.enable_x64(True):
        xs = jnp.asarray(rng.normal(size=(4, 2, 8, 8, 3)))
        dys = jnp.asarray(rng.normal(size=(4, 2, 4, 4, 3)))

        def ref(x, dy):  # d/dkernel of <conv(x, kernel), dy>
            conv = lambda kern: jax.lax.conv_general_dilated(
                x, kern, (s, s), [(p, p)] * 2, rhs_dilation=(d, d),
                dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=3)
            return jax.grad(lambda kern: jnp.vdot(conv(kern), dy))(jnp.zeros((k, k, 1, 3)))

        ours = lambda x, dy: depthwise_kernel_grad(x, dy, k, s, p, d)
        want = jnp.stack([ref(x, dy) for x, dy in zip(xs, dys)])
        np.testing.assert_allclose(jax.vmap(ours)(xs, dys), want, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(jax.jit(jax.vmap(ours, (None, 0)))(xs[0], dys),
                                   jnp.stack([ref(xs[0], dy) for dy in dys]), rtol=1e-12)
        np.testing.assert_allclose(jax.vmap(ours, (0, None))(xs, dys[0]),
                                   jnp.stack([ref(x, dys[0]) for x in xs]), rtol=1e-12)
        nested = jax.vmap(jax.vmap(ours))(xs.reshape(2, 2, 2, 8, 8, 3), dys.reshape(2, 2, 2, 4, 4, 3))
        np.testing.assert_allclose(nested.reshape(want.shape), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride", [1, 2])
def test_max_pool_and_pointwise_conv_match_flax(stride):
    """The CPU-friendly max pool and 1x1 conv equal flax's reduce_window max
    pool and ``nn.Conv`` (values and gradients, float64)."""
    from nnopt_jax.nas.darts.operations import PointwiseConv, max_pool_3x3

    rng = np.random.default_rng(stride)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.normal(size=(2, 8, 8, 3)))
        ref = lambda x: nn.max_pool(x, (3, 3), strides=(stride, stride), padding=[(1, 1)] * 2)
        ours = lambda x: max_pool_3x3(x, stride=stride)
        np.testing.assert_array_equal(ours(x), ref(x))
        grad_f = lambda f: jax.grad(lambda y: jnp.sum(jnp.sin(f(y))))
        np.testing.assert_allclose(grad_f(ours)(x), grad_f(ref)(x), rtol=1e-12)
        # gradient of the gradient (second-order DARTS), jitted: the tap
        # index and the output gradient pass through fusion barriers
        gg = lambda f: jax.jit(jax.grad(lambda y: jnp.sum(grad_f(f)(y) ** 2)))(x)
        np.testing.assert_allclose(gg(ours), gg(ref), rtol=1e-10, atol=1e-12)

        pw = PointwiseConv(5, stride=stride)
        conv = nn.Conv(5, (1, 1), strides=stride, padding="VALID", use_bias=False)
        v = pw.init(jax.random.PRNGKey(0), x)
        np.testing.assert_allclose(pw.apply(v, x), conv.apply(v, x), rtol=1e-12)


def test_max_pool_routes_gradient_of_ties_like_select_and_scatter():
    """Integer inputs make ties in most windows: the gradient goes to the first
    maximum of each window, as XLA's select-and-scatter (flax's max pool)."""
    from nnopt_jax.nas.darts.operations import max_pool_3x3

    x = jnp.asarray(np.random.default_rng(3).integers(0, 3, size=(2, 7, 7, 3)), jnp.float32)
    for stride in (1, 2):
        ref = lambda x: nn.max_pool(x, (3, 3), strides=(stride, stride), padding=[(1, 1)] * 2)
        ours = lambda x: max_pool_3x3(x, stride=stride)
        w = jnp.asarray(np.random.default_rng(stride).normal(size=ref(x).shape), jnp.float32)
        g = lambda f: jax.grad(lambda x: jnp.sum(f(x) * w))(x)
        np.testing.assert_allclose(g(ours), g(ref), rtol=1e-6, atol=1e-6)


@pytest.mark.accelerator
def test_batch_normalize_closed_form_vjp_matches_autodiff():
    """Value, gradient and gradient of the gradient (second-order DARTS) of the
    batch-statistics normalisation against autodiff of its formula, float64."""
    from nnopt_jax.nas.darts.operations import BN_EPS, batch_normalize

    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.normal(size=(3, 4, 4, 5)) * 2.0 + 1.0)
        w = jnp.asarray(rng.normal(size=x.shape))

        def ref(x):
            mean = jnp.mean(x, (0, 1, 2))
            return (x - mean) / jnp.sqrt(jnp.mean((x - mean) ** 2, (0, 1, 2)) + BN_EPS)

        loss = lambda bn: (lambda x: jnp.sum(jnp.tanh(bn(x)) * w))
        np.testing.assert_allclose(batch_normalize(x), ref(x), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(jax.grad(loss(batch_normalize))(x), jax.grad(loss(ref))(x),
                                   rtol=1e-10, atol=1e-12)
        hess = lambda bn: jax.grad(lambda x: jnp.sum(jax.grad(loss(bn))(x) ** 2))(x)
        np.testing.assert_allclose(hess(batch_normalize), hess(ref), rtol=1e-10, atol=1e-12)
