"""The NAS-Bench-201 network: parameter count and FLOPs against hand counts, cell semantics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnopt_jax.nas.nb201 import network, space

ALL_3X3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
MIXED = "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_1x1~2|"

# Hand count (trainable parameters; a BN layer has 2c: scale and bias).
#   stem: conv 3*16*9 = 432, BN 32                                  ->      464
#   reduction 16->32: conv 16*32*9 = 4608 + BN 64, conv 32*32*9 = 9216 + BN 64,
#                     shortcut 1x1 16*32 = 512                      ->   14,464
#   reduction 32->64: 32*64*9 = 18432 + 128, 64*64*9 = 36864 + 128, 32*64 = 2048
#                                                                   ->   57,600
#   final BN 2*64 = 128; classifier 64*10 + 10 = 650                ->      778
FIXED = 464 + 14_464 + 57_600 + 778  # 73,306: every cell without convolutions
# A 3x3 op at width c: 9c^2 + 2c (16: 2,336; 32: 9,280; 64: 36,992).
# A 1x1 op at width c:  c^2 + 2c (16:   288; 32: 1,088; 64:  4,224).
HAND = {
    # 6 conv3x3 per cell, 5 cells per stage
    ALL_3X3: FIXED + 5 * 6 * (2_336 + 9_280 + 36_992),                  # 1,531,546
    # per cell: two 1x1 and one 3x3
    MIXED: FIXED + 5 * (2 * 288 + 2_336) + 5 * (2 * 1_088 + 9_280) + 5 * (2 * 4_224 + 36_992),
    "|none~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|none~1|skip_connect~2|": FIXED,
}


@pytest.mark.parametrize("arch_str", list(HAND))
def test_param_count_matches_hand_count(arch_str):
    arch = space.parse_arch(arch_str)
    model = network.build_network(arch_str)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
    assert network.count_params(variables["params"]) == HAND[arch_str]
    assert network.param_count(arch) == HAND[arch_str]
    assert set(variables) == {"params", "batch_stats"}


def test_all_3x3_matches_benchmark_published_size():
    # NAS-Bench-201 reports 1.53 MB of parameters and 220.11 MFLOPs for this cell (CIFAR-10)
    arch = space.parse_arch(ALL_3X3)
    assert round(network.param_count(arch) / 1e6, 2) == 1.53
    # MACs: cells 3 stages x 30 convs x (hw c^2 9) with hw c^2 = 1024*256 = 256*1024 = 64*4096
    cells = 3 * 30 * 9 * 262_144
    stem = 1024 * 3 * 16 * 9
    red = 256 * (16 * 32 * 9 + 32 * 32 * 9 + 16 * 32) + 64 * (32 * 64 * 9 + 64 * 64 * 9 + 32 * 64)
    assert network.flops(arch) == cells + stem + red + 640 == 220_119_680


def test_all_counts_are_consistent_over_the_space():
    params, flops = network.all_param_counts(), network.all_flops()
    n3 = (space.all_archs() == 3).sum(1)
    n1 = (space.all_archs() == 2).sum(1)
    np.testing.assert_array_equal(params, FIXED + 5 * (n3 * 48_608 + n1 * 5_600))
    assert params.min() == FIXED and params.max() == HAND[ALL_3X3]
    assert flops.min() > 0 and np.all(np.diff(flops[np.argsort(params)]) >= -10**8)


def _cell_apply(arch, x):
    cell = network.NB201Cell(tuple(arch), x.shape[-1])
    return jax.jit(lambda x: cell.apply(cell.init(jax.random.key(0), x), x))(x)


def test_cell_dag_semantics():
    x = jax.random.normal(jax.random.key(1), (2, 5, 5, 3))
    skip, none, pool = 1, 0, 4  # none edges are exercised by the pooling case
    # node1 = x, node2 = x + node1 = 2x, node3 = x + node1 + node2 = 4x
    np.testing.assert_allclose(_cell_apply((skip,) * 6, x), 4 * x, rtol=1e-6)
    # node3 = avgpool(node1) with node1 = avgpool(x); padding excluded from the mean
    out = _cell_apply((pool, none, none, none, pool, none), x)
    xn = np.asarray(x, np.float64)

    def ref_pool(a):
        res = np.zeros_like(a)
        h, w = a.shape[1:3]
        for i in range(h):
            for j in range(w):
                res[:, i, j] = a[:, max(i - 1, 0):i + 2, max(j - 1, 0):j + 2].mean(axis=(1, 2))
        return res

    np.testing.assert_allclose(out, ref_pool(ref_pool(xn)), rtol=1e-5, atol=1e-6)


@pytest.mark.accelerator
def test_forward_and_batch_stats_on_a_small_instance():
    model = network.NB201Network(space.parse_arch(MIXED), num_classes=7, channels=4,
                                 cells_per_stage=1)
    x = jax.random.normal(jax.random.key(0), (3, 8, 8, 3))
    v = network.dummy_variables(model, x.shape, seed=1)  # compiling init is slow on CPU
    logits, updates = jax.jit(
        lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(v, x)
    assert logits.shape == (3, 7) and bool(jnp.all(jnp.isfinite(logits)))
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), v["batch_stats"],
                           updates["batch_stats"])
    assert any(jax.tree.leaves(changed))
    assert jax.eval_shape(model.apply, v, x).shape == (3, 7)
