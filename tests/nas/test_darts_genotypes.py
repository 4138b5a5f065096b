"""Genotype derivation by the paper's rule, published cells, JSON, pictures."""

import json

import numpy as np
import pytest

from nnopt_jax.nas.darts import genotypes as G
from nnopt_jax.nas.darts.operations import PRIMITIVES
from nnopt_jax.nas.darts.search_model import ArchParams, edge_index


def _ix(name):
    return PRIMITIVES.index(name)


def _hand_made():
    """α logits where the intended edges/ops are clear, including the traps:
    a 'none'-dominated edge that must still be judged by its best non-none op,
    and 'none' never chosen."""
    a = np.zeros((14, 8))
    # node 0 (edges 0, 1): both inputs kept; input 1 sep3 strong, input 0 skip
    a[edge_index(0, 0), _ix("skip_connect")] = 2.0
    a[edge_index(0, 1), _ix("sep_conv_3x3")] = 3.0
    # node 1: inputs 0, 1, 2 -> keep 2 (dil5, strongest) and 0 (max pool); 'none' huge on 1
    a[edge_index(1, 0), _ix("max_pool_3x3")] = 1.5
    a[edge_index(1, 1), _ix("none")] = 9.0
    a[edge_index(1, 1), _ix("avg_pool_3x3")] = 1.0
    a[edge_index(1, 2), _ix("dil_conv_5x5")] = 2.5
    # node 2: inputs 0..3 -> keep 3 and 1
    a[edge_index(2, 3), _ix("sep_conv_5x5")] = 4.0
    a[edge_index(2, 1), _ix("dil_conv_3x3")] = 3.5
    a[edge_index(2, 0), _ix("sep_conv_3x3")] = 0.5
    # node 3: inputs 0..4 -> keep 4 and 0
    a[edge_index(3, 4), _ix("avg_pool_3x3")] = 5.0
    a[edge_index(3, 0), _ix("skip_connect")] = 4.5
    return a


def test_derive_hand_made_alpha():
    a = _hand_made()
    g = G.derive_genotype(ArchParams(a, a))
    expected = (("sep_conv_3x3", 1), ("skip_connect", 0),
                ("dil_conv_5x5", 2), ("max_pool_3x3", 0),
                ("sep_conv_5x5", 3), ("dil_conv_3x3", 1),
                ("avg_pool_3x3", 4), ("skip_connect", 0))
    assert g.normal == expected and g.reduce == expected
    assert g.normal_concat == (2, 3, 4, 5)


def test_edge_strength_ignores_none_weight():
    # Edge 1 of node 1 has by far the largest softmax mass on 'none' but its
    # best real op (avg pool, logit 1) loses to the other two inputs.
    g = G.derive_genotype(ArchParams(_hand_made(), _hand_made()))
    assert ("avg_pool_3x3", 1) not in g.normal[2:4]
    assert all(op != "none" for op, _ in g.normal + g.reduce)


def test_uniform_alpha_ties_pick_first():
    a = np.zeros((14, 8))
    g = G.derive_genotype(ArchParams(a, a))
    # ties: lower input index first, first non-none op (max_pool_3x3)
    assert g.normal == tuple(("max_pool_3x3", j) for _ in range(4) for j in (0, 1))


def test_published_genotypes_match_design():
    assert G.DARTS_V2.normal == (("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0),
                                 ("sep_conv_3x3", 1), ("sep_conv_3x3", 1), ("skip_connect", 0),
                                 ("skip_connect", 0), ("dil_conv_3x3", 2))
    assert G.DARTS_V1.reduce[-1] == ("avg_pool_3x3", 0)
    for g in (G.DARTS_V1, G.DARTS_V2):
        G.validate(g, steps=4)
    assert G.load_genotype("DARTS") == G.DARTS_V2


def test_json_roundtrip_and_errors(tmp_path):
    path = G.save_genotype(G.DARTS_V1, tmp_path / "g.json")
    assert G.load_genotype(path) == G.DARTS_V1
    assert json.loads(path.read_text())["normal"][0] == ["sep_conv_3x3", 1]
    with pytest.raises(FileNotFoundError, match="published name"):
        G.load_genotype(tmp_path / "missing.json")
    bad = G.to_dict(G.DARTS_V1)
    bad["normal"][0] = ["conv_9x9", 0]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="conv_9x9"):
        G.load_genotype(tmp_path / "bad.json")
    bad = G.to_dict(G.DARTS_V1)
    bad["reduce"][0] = ["max_pool_3x3", 3]  # node 0 cannot read node 1
    with pytest.raises(ValueError, match="earlier state"):
        G.from_dict(bad)


def test_parameter_free_share():
    # V2: normal 2 skips of 8, reduce 8 of 8 parameter-free -> 10/16
    assert G.parameter_free_share(G.DARTS_V2) == pytest.approx(10 / 16)


def test_random_genotype_is_valid():
    rng = np.random.default_rng(0)
    for _ in range(20):
        G.validate(G.random_genotype(rng), steps=4)


def test_plot_writes_png_and_svg(tmp_path):
    paths = G.plot_genotype(G.DARTS_V2, tmp_path)
    names = sorted(p.name for p in paths)
    assert names == ["normal.png", "normal.svg", "reduce.png", "reduce.svg"]
    assert (tmp_path / "normal.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "sep_conv_3x3" in (tmp_path / "normal.svg").read_text()
