"""The bilevel hypergradient (Liu et al. 2018, Eqs. 6-8) in float64 on a tiny cell.

One compiled function computes everything, so the test pays one compilation:
the exact second-order hypergradient (autodiff through the virtual step), the
first-order gradient, the second-order one with ξ = 0, the paper's finite
difference with a small r, and central differences of L_val(w′(α), α) along
random directions of α.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt_jax.nas.darts import architect
from nnopt_jax.nas.darts.search_model import ArchParams, SearchNetwork, init_alphas
from nnopt_jax.types import Batch

XI, MU, WD, H = 1.0, 0.9, 3e-4, 1e-5
PRIMS = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
         "dil_conv_3x3")  # one of each kind of operation (keeps compilation short)
N_DIRS = 4
FD_R = 1e-6  # ε = r/‖v‖: small enough that no ReLU or max-pool kink lies within ε


@pytest.fixture(scope="module")
def results():
    with jax.enable_x64(True):
        # one reduction cell (layers=1) with 2 nodes: 5 edges x 6 operations
        model = SearchNetwork(num_classes=3, channels=2, layers=1, steps=2, multiplier=2,
                              stem_multiplier=1, primitives=PRIMS)
        apply_fn = lambda p, a, x: model.apply({"params": p}, x, a)
        k = jax.random.split(jax.random.PRNGKey(0), 8)
        x_t = jax.random.normal(k[0], (4, 8, 8, 3), jnp.float64)
        x_v = jax.random.normal(k[1], (4, 8, 8, 3), jnp.float64)
        tb = Batch(x_t, jnp.array([0, 1, 2, 0]))
        vb = Batch(x_v, jnp.array([2, 1, 0, 1]))
        alphas = init_alphas(key=k[2], steps=2, num_ops=len(PRIMS), scale=0.5,
                             dtype=jnp.float64)
        # Flax keeps params in float32 by default: cast, so the gradient inside the
        # virtual step is float64 too (else its rounding swamps the differences)
        @jax.jit  # one compilation, not hundreds of eager ones
        def init(key, kmom):
            params = jax.tree.map(lambda w: w.astype(jnp.float64),
                                  model.init(key, x_t, alphas)["params"])
            return params, jax.tree.map(
                lambda w: 0.1 * jax.random.normal(kmom, w.shape, w.dtype), params)

        params, momentum = init(k[3], k[4])
        dirs = [init_alphas(key=kk, steps=2, num_ops=len(PRIMS), scale=1.0, dtype=jnp.float64)
                for kk in jax.random.split(k[5], N_DIRS)]
        dirs = jax.tree.map(lambda *d: jnp.stack(d), *dirs)
        kw = dict(momentum_coef=MU, weight_decay=WD)

        @jax.jit
        def everything(params, alphas, momentum, dirs, xi):
            f = functools.partial(architect.unrolled_val_loss, params=params, momentum=momentum,
                                  train_batch=tb, val_batch=vb, apply_fn=apply_fn, xi=xi, **kw)
            shift = lambda s: jax.vmap(
                lambda d: f(jax.tree.map(lambda a, di: a + s * di, alphas, d)))(dirs)
            return {"second": architect.second_order_grad(apply_fn, params, alphas, momentum,
                                                          tb, vb, xi=xi, **kw)[1],
                    "first": architect.first_order_grad(apply_fn, params, alphas, vb)[1],
                    "fd_small_r": architect.finite_difference_grad(
                        apply_fn, params, alphas, momentum, tb, vb, xi=xi, r=FD_R, **kw)[1],
                    "fd_dir": (shift(H) - shift(-H)) / (2 * H), "dirs": dirs}

        args = (params, alphas, momentum, dirs)
        out = jax.device_get(everything(*args, XI))  # one compilation, two calls
        out["xi0"] = jax.device_get(everything(*args, 0.0))["second"]
        return out


def _flat(t):
    return np.concatenate([np.ravel(a) for a in jax.tree.leaves(t)])


@pytest.mark.accelerator
def test_second_order_matches_central_differences(results):
    g = results["second"]
    dirs = results["dirs"]
    analytic = np.array([np.sum(g.normal * dirs.normal[i]) + np.sum(g.reduce * dirs.reduce[i])
                         for i in range(N_DIRS)])
    np.testing.assert_allclose(analytic, results["fd_dir"], rtol=1e-4, atol=1e-10)
    # the second-order term is not negligible here, so this checks it
    assert np.linalg.norm(_flat(g) - _flat(results["first"])) > 1e-3 * np.linalg.norm(_flat(g))


def test_xi_zero_equals_first_order(results):
    np.testing.assert_allclose(_flat(results["xi0"]), _flat(results["first"]),
                               rtol=1e-12, atol=1e-15)


def test_normal_alpha_unused_by_a_single_reduction_cell(results):
    assert np.all(results["second"].normal == 0.0)


@pytest.mark.accelerator
def test_finite_difference_converges_to_exact_on_a_darts_cell(results):
    """Eq. 8 on the real cell (ReLUs, max pooling, fusion barriers, the ± loop):
    with a small r it equals the exact hypergradient up to float64 rounding."""
    exact, fd = _flat(results["second"]), _flat(results["fd_small_r"])
    assert np.linalg.norm(fd - exact) < 1e-6 * np.linalg.norm(exact)


def _smooth_problem():
    """A smooth two-edge 'cell' (tanh/sin/identity mixed by softmax(α)): the paper's
    finite difference has error O(ε²) only where the loss is smooth in w (ReLU and
    max-pool kinks within ε of w break that on a tiny DARTS cell)."""
    k = jax.random.split(jax.random.PRNGKey(1), 8)

    def apply_fn(p, a, x):
        wn, wr = jax.nn.softmax(a.normal, -1), jax.nn.softmax(a.reduce, -1)
        h = jnp.tanh(x @ p["w0"])
        for e in range(2):
            ops = (jnp.tanh(h @ p["a"][e]), jnp.sin(h @ p["b"][e]), h)
            h = sum(wn[e, i] * o for i, o in enumerate(ops))
        return (wr[0, 0] * h + wr[0, 1] * jnp.tanh(h) + wr[0, 2] * h ** 2 / 4) @ p["out"]

    p = {"w0": jax.random.normal(k[0], (5, 6)), "a": jax.random.normal(k[1], (2, 6, 6)) / 2,
         "b": jax.random.normal(k[2], (2, 6, 6)) / 2, "out": jax.random.normal(k[3], (6, 3))}
    alphas = ArchParams(jax.random.normal(k[4], (2, 3)), jax.random.normal(k[5], (1, 3)))
    tb = Batch(jax.random.normal(k[6], (16, 5)), jnp.arange(16) % 3)
    vb = Batch(jax.random.normal(k[7], (16, 5)), (jnp.arange(16) + 1) % 3)
    mom = jax.tree.map(lambda w: 0.1 * jnp.ones_like(w), p)
    return apply_fn, p, alphas, mom, tb, vb


def test_finite_difference_option_error_is_second_order_in_r():
    with jax.enable_x64(True):
        apply_fn, *data = _smooth_problem()
        p, alphas, mom, tb, vb = jax.tree.map(
            lambda a: a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a,
            data)
        kw = dict(xi=0.1, momentum_coef=MU, weight_decay=WD)
        exact = _flat(architect.second_order_grad(apply_fn, p, alphas, mom, tb, vb, **kw)[1])
        w_prime = architect.virtual_step(apply_fn, p, alphas, mom, tb, xi=0.1,
                                         momentum_coef=MU, weight_decay=WD)
        direct = _flat(architect.first_order_grad(apply_fn, w_prime, alphas, vb)[1])
        errs = [np.linalg.norm(_flat(architect.finite_difference_grad(
            apply_fn, p, alphas, mom, tb, vb, r=r, **kw)[1]) - exact) for r in (1e-2, 5e-3)]
    term = np.linalg.norm(exact - direct)  # ξ‖∇²_{α,w} L_train · ∇w′ L_val‖
    assert term > 1e-3
    assert errs[0] < 1e-3 * term  # the paper's r = 0.01 is accurate on a smooth loss
    assert 3.0 < errs[0] / errs[1] < 5.0  # O(ε²): halving r quarters the error


def test_unknown_order_is_rejected():
    with pytest.raises(ValueError, match="second_fd"):
        architect.hypergradient("third", None, None, None, None, None, None, xi=0.0)
