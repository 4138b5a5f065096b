"""Search network: parameter count as the authors count, shapes through
reduction cells, MixedOp = softmax-weighted sum."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt_jax.nas.darts.operations import PRIMITIVES, make_op
from nnopt_jax.nas.darts.search_model import (ArchParams, MixedOp, SearchNetwork, count_params,
                                              init_alphas, num_edges, reduction_layers)


def test_search_network_has_the_authors_parameter_count():
    # The authors count every nn.Parameter of model_search.Network; α are plain
    # tensors there (not parameters), and non-affine BNs have none. The stem BN
    # is affine (PyTorch default): 96 of the 1,930,618.
    model = SearchNetwork(num_classes=10, channels=16, layers=8)
    alphas = init_alphas(key=jax.random.PRNGKey(0))
    x = jax.ShapeDtypeStruct((2, 32, 32, 3), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, alphas), x)
    assert set(variables) == {"params"}  # no BN state in search
    assert count_params(variables["params"]) == 1_930_618
    assert alphas.normal.shape == alphas.reduce.shape == (14, 8)
    assert 1e-4 < float(jnp.std(alphas.normal)) < 1e-2


def test_shapes_through_reduction_cells():
    assert reduction_layers(8) == (2, 5) and reduction_layers(20) == (6, 13)
    model = SearchNetwork(num_classes=7, channels=4, layers=3)
    alphas = init_alphas(key=jax.random.PRNGKey(0))
    x = jax.ShapeDtypeStruct((2, 8, 8, 3), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, alphas), x)
    feats = jax.eval_shape(
        lambda v, x: model.apply(v, x, alphas, capture_intermediates=True,
                                 mutable=["intermediates"]), variables, x)
    inter = feats[1]["intermediates"]
    # cell 0 normal (C=4, 8x8), cells 1 and 2 reduce (C=8 at 4x4, C=16 at 2x2); concat 4 nodes
    assert inter["cell_0"]["__call__"][0].shape == (2, 8, 8, 16)
    assert inter["cell_1"]["__call__"][0].shape == (2, 4, 4, 32)
    assert inter["cell_2"]["__call__"][0].shape == (2, 2, 2, 64)
    assert feats[0].shape == (2, 7)


def test_mixed_op_is_the_softmax_weighted_sum():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 4, 3)), jnp.float32)
    w = jax.nn.softmax(jnp.arange(8.0) / 4)
    mixed = MixedOp(3, 1)
    v = mixed.init(jax.random.PRNGKey(0), x, w)
    out = mixed.apply(v, x, w)
    ref = 0.0
    for k, name in enumerate(PRIMITIVES):
        op = make_op(name, 3, 1, affine=False, track_stats=False, search=True)
        ref = ref + w[k] * op.apply({"params": v["params"].get(name, {})}, x)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_wrong_alpha_shape_is_rejected():
    model = SearchNetwork(channels=4, layers=3)
    bad = ArchParams(jnp.zeros((10, 8)), jnp.zeros((10, 8)))
    try:
        jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 3)), bad))
    except ValueError as e:
        assert "(14, 8)" in str(e) and num_edges(4) == 14
    else:
        raise AssertionError("expected a ValueError")


@pytest.mark.slow  # 74 s on a slower 2-core machine
def test_remat_changes_memory_not_results():
    """``remat=True`` keeps the parameter tree, the gradients and a
    gradient of a gradient (as in the second-order hypergradient)."""
    prims = ("none", "max_pool_3x3", "skip_connect", "sep_conv_3x3")
    kw = dict(num_classes=3, channels=4, layers=1, steps=2, multiplier=2, stem_multiplier=1,
              primitives=prims)  # one (reduction) cell: compiling grad of grad is the cost
    plain, remat = SearchNetwork(**kw), SearchNetwork(**kw, remat=True)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(4, 8, 8, 3)), jnp.float32)
    a = init_alphas(key=jax.random.PRNGKey(1), steps=2, num_ops=len(prims))
    p = jax.jit(plain.init)(jax.random.PRNGKey(0), x, a)["params"]
    assert jax.tree.structure(jax.eval_shape(remat.init, jax.random.PRNGKey(0), x, a)["params"]) \
        == jax.tree.structure(p)

    def loss(model):
        return lambda p, a: jnp.mean(jnp.square(model.apply({"params": p}, x, a)))

    def grad_of_grad(model):
        return jax.grad(lambda a: sum(jnp.vdot(g, g) for g in jax.tree.leaves(
            jax.grad(loss(model))(p, a))))(a)

    # jitted: op-by-op, the conditionals of the fusion barriers take minutes
    for f in (jax.jit(lambda m: jax.grad(loss(m), (0, 1))(p, a), static_argnums=0),
              jax.jit(grad_of_grad, static_argnums=0)):
        # float32: the recomputed forward pass may round differently
        jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-6),
                     f(plain), f(remat))
