import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt_jax.models.conv import Conv, conv2d, lrt_conv2d


def _numpy_conv(x, w, pad):
    """Float64 reference: explicit sum over kernel taps (cross-correlation, as XLA's)."""
    (a, b), (c, d) = pad
    x = np.pad(x, ((0, 0), (a, b), (c, d), (0, 0)))
    kh, kw = w.shape[:2]
    ho, wo = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = np.zeros((x.shape[0], ho, wo, w.shape[3]))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nhwc,cf->nhwf", x[:, i:i + ho, j:j + wo, :], w[i, j])
    return out


CASES = [((2, 12, 12, 3), (5, 5, 3, 4), "VALID", ((0, 0), (0, 0))),
         ((2, 9, 7, 2), (3, 3, 2, 5), "SAME", ((1, 1), (1, 1))),
         ((1, 8, 8, 1), (4, 2, 1, 3), ((2, 1), (0, 3)), ((2, 1), (0, 3)))]


@pytest.mark.accelerator
@pytest.mark.parametrize("x_shape,w_shape,padding,explicit", CASES)
def test_values_and_gradients_match_xla_and_numpy_in_float64(x_shape, w_shape, padding, explicit):
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.normal(size=x_shape))
        w = jnp.asarray(rng.normal(size=w_shape))
        y = conv2d(x, w, padding=padding, impl="gemm")
        np.testing.assert_allclose(np.asarray(y), _numpy_conv(np.asarray(x), np.asarray(w), explicit),
                                   rtol=1e-12, atol=1e-12)
        r = jnp.asarray(rng.normal(size=y.shape))

        def loss(impl):
            return lambda x, w: jnp.sum(jnp.tanh(conv2d(x, w, padding=padding, impl=impl)) * r)

        dx, dw = jax.grad(loss("gemm"), (0, 1))(x, w)
        dx_ref, dw_ref = jax.grad(loss("xla"), (0, 1))(x, w)
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(dw, dw_ref, rtol=1e-11, atol=1e-12)
        # and an independent central difference along a random direction
        v = jnp.asarray(rng.normal(size=x_shape))
        h = 1e-6
        fd = (loss("gemm")(x + h * v, w) - loss("gemm")(x - h * v, w)) / (2 * h)
        assert float(jnp.vdot(dx, v)) == pytest.approx(float(fd), rel=1e-6)


@pytest.mark.accelerator
@pytest.mark.parametrize("x_shape,w_shape,padding,explicit", CASES)
def test_lrt_pair_values_and_gradients_match_numpy_and_xla_in_float64(x_shape, w_shape, padding,
                                                                      explicit):
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.normal(size=x_shape))
        theta = jnp.asarray(rng.normal(size=w_shape))
        var = jnp.asarray(rng.uniform(0.1, 1.0, size=w_shape))
        mean, s2 = lrt_conv2d(x, theta, var, padding=padding, impl="gemm")
        xn = np.asarray(x)
        np.testing.assert_allclose(mean, _numpy_conv(xn, np.asarray(theta), explicit), rtol=1e-12,
                                   atol=1e-12)
        np.testing.assert_allclose(s2, _numpy_conv(xn * xn, np.asarray(var), explicit), rtol=1e-12,
                                   atol=1e-12)
        r1, r2 = (jnp.asarray(rng.normal(size=mean.shape)) for _ in range(2))

        def loss(impl):
            def f(x, theta, var):
                m, s = lrt_conv2d(x, theta, var, padding=padding, impl=impl)
                return jnp.sum(jnp.tanh(m) * r1) + jnp.sum(jnp.sqrt(s + 1.0) * r2)
            return f

        ours = jax.jit(jax.grad(loss("gemm"), (0, 1, 2)))(x, theta, var)
        for g, g_ref in zip(ours, jax.grad(loss("xla"), (0, 1, 2))(x, theta, var)):
            np.testing.assert_allclose(g, g_ref, rtol=1e-11, atol=1e-12)
        # and an independent central difference along a random direction of each argument
        args, h = (x, theta, var), 1e-6
        for k, g in enumerate(ours):
            v = jnp.asarray(rng.normal(size=args[k].shape))
            plus = [a + h * v if i == k else a for i, a in enumerate(args)]
            minus = [a - h * v if i == k else a for i, a in enumerate(args)]
            fd = (loss("gemm")(*plus) - loss("gemm")(*minus)) / (2 * h)
            assert float(jnp.vdot(g, v)) == pytest.approx(float(fd), rel=1e-6)


def test_lrt_pair_strided_uses_xla():
    rng = np.random.default_rng(4)
    x = jnp.asarray(rng.normal(size=(1, 9, 9, 2)), jnp.float32)
    theta = jnp.asarray(rng.normal(size=(3, 3, 2, 4)), jnp.float32)
    for ours, ref in zip(lrt_conv2d(x, theta, theta * theta, strides=(2, 2), impl="gemm"),
                         lrt_conv2d(x, theta, theta * theta, strides=(2, 2), impl="xla")):
        np.testing.assert_allclose(ours, ref)
    with pytest.raises(ValueError, match="unknown convolution impl"):
        lrt_conv2d(x, theta, theta, impl="im2col")


def test_gemm_gradient_under_jit_in_float32():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(4, 12, 12, 20)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(5, 5, 20, 50)) * 0.1, jnp.float32)
    f = lambda impl: jax.jit(jax.grad(lambda x, w: jnp.sum(conv2d(x, w, impl=impl) ** 2), (0, 1)))
    for ours, ref in zip(f("gemm")(x, w), f("xla")(x, w)):
        scale = float(jnp.max(jnp.abs(ref)))
        np.testing.assert_allclose(ours, ref, atol=1e-5 * scale)


def test_strided_convolution_uses_xla_and_unknown_impl_is_an_error():
    x = jnp.ones((1, 8, 8, 2))
    w = jnp.ones((3, 3, 2, 1))
    np.testing.assert_allclose(conv2d(x, w, strides=(2, 2), impl="gemm"),
                               conv2d(x, w, strides=(2, 2), impl="xla"))
    with pytest.raises(ValueError, match="unknown convolution impl 'cudnn'"):
        conv2d(x, w, impl="cudnn")


def test_conv_module_has_flax_parameters_and_outputs():
    x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 10, 10, 3)), jnp.float32)
    ours, ref = Conv(4, (5, 5), padding="VALID"), nn.Conv(4, (5, 5), padding="VALID")
    p_ours = ours.init(jax.random.key(0), x)
    p_ref = ref.init(jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, p_ours) == jax.tree.map(jnp.shape, p_ref)
    np.testing.assert_allclose(p_ours["params"]["kernel"], p_ref["params"]["kernel"])
    np.testing.assert_allclose(ours.apply(p_ref, x), ref.apply(p_ref, x), rtol=1e-5, atol=1e-5)
