"""NAS-Bench-201 space: strings, indices, the HPO encoding and mutation."""

import itertools

import numpy as np
import pytest

from nnopt_jax.nas.nb201 import space

EXAMPLE = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+"
           "|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")


def test_constants():
    assert space.NUM_ARCHS == 15_625 == 5**6
    assert space.EDGES == ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


def test_parse_example_from_readme():
    assert space.parse_arch(EXAMPLE) == (3, 3, 4, 1, 3, 1)
    assert space.arch_to_str((3, 3, 4, 1, 3, 1)) == EXAMPLE


def test_string_and_index_round_trip_all_cells():
    archs = space.all_archs()
    assert archs.shape == (15_625, 6)
    # every tuple of 6 ops appears exactly once, in base-5 order
    assert [tuple(a) for a in archs] == list(itertools.product(range(5), repeat=6))
    strings = set()
    for i, a in enumerate(archs.tolist()):
        a = tuple(a)
        s = space.arch_to_str(a)
        assert space.parse_arch(s) == a
        assert space.arch_to_index(a) == i
        assert space.index_to_arch(i) == a
        strings.add(s)
    assert len(strings) == 15_625


@pytest.mark.parametrize("bad", [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|",               # 2 nodes
    "|conv~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|none~1|none~2|",  # unknown op
    "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",                 # wrong source
    "|none~0|+|none~0|+|none~0|none~1|none~2|",                        # missing edge
    "none~0|+|none~0|none~1|+|none~0|none~1|none~2|",                  # missing bar
    "|none0|+|none~0|none~1|+|none~0|none~1|none~2|",                  # missing ~
])
def test_parse_rejects_malformed(bad):
    with pytest.raises(ValueError):
        space.parse_arch(bad)


def test_bad_arch_and_index_raise():
    with pytest.raises(ValueError, match="6 operation indices"):
        space.arch_to_str((0, 1, 2))
    with pytest.raises(ValueError, match="6 operation indices"):
        space.arch_to_index((0, 0, 0, 0, 0, 5))
    with pytest.raises(ValueError, match="space index"):
        space.index_to_arch(15_625)


def test_hpo_encoding_covers_exactly_the_space():
    sp = space.search_space()
    assert list(sp.dims) == list(space.EDGE_NAMES)
    sizes = [len(sp.dims[n].choices) for n in space.EDGE_NAMES]
    assert sizes == [5] * 6 and int(np.prod(sizes)) == 15_625
    seen = set()
    for i, a in enumerate(space.all_archs()):
        p = space.arch_to_params(a)
        if i % 997 == 0:  # the HPO validator is slow; a spread-out subset suffices
            sp.validate(p)
        assert space.params_to_arch(p) == tuple(int(o) for o in a)
        seen.add(tuple(p[n] for n in space.EDGE_NAMES))
    assert len(seen) == 15_625
    # every configuration the HPO pillar samples decodes to a cell
    for p in sp.sample(50, rng=np.random.default_rng(0)):
        assert space.arch_to_params(space.params_to_arch(p)) == p


def test_params_to_arch_errors():
    with pytest.raises(ValueError, match="missing"):
        space.params_to_arch({"edge_1_0": "none"})
    bad = space.arch_to_params((0,) * 6)
    bad["edge_3_2"] = "conv"
    with pytest.raises(ValueError, match="not an operation"):
        space.params_to_arch(bad)


def test_mutation_changes_exactly_one_edge_and_reaches_all_neighbours():
    rng = np.random.default_rng(0)
    parent = (3, 3, 4, 1, 3, 1)
    children = set()
    for _ in range(2000):
        child = space.mutate(parent, rng=rng)
        assert sum(c != p for c, p in zip(child, parent)) == 1
        children.add(child)
    assert len(children) == 6 * 4  # every one-edge neighbour is reachable
    for _ in range(500):
        a = space.random_arch(rng=rng)
        b = space.mutate(a, rng=rng)
        assert sum(x != y for x, y in zip(a, b)) == 1
