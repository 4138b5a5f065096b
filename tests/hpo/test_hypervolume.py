"""Hypervolume and Pareto utilities against brute-force references."""

import itertools

import jax
import numpy as np
import pytest

from nnopt_jax.hpo import hypervolume as hv


def _grid_count_2d(points, ref):
    """Brute force: count the unit cells [i, i+1] x [j, j+1] inside the dominated region."""
    count = 0
    for i in range(int(ref[0])):
        for j in range(int(ref[1])):
            count += any(p[0] <= i and p[1] <= j for p in points)
    return count


def _inclusion_exclusion(points, ref):
    """Exact union volume of the boxes [p, ref] by inclusion-exclusion (small n only)."""
    points = [p for p in points if np.all(p < ref)]
    total = 0.0
    for k in range(1, len(points) + 1):
        for subset in itertools.combinations(points, k):
            corner = np.max(subset, axis=0)
            total += (-1) ** (k + 1) * np.prod(ref - corner)
    return total


@pytest.mark.parametrize("seed", range(5))
def test_2d_matches_brute_force_grid(seed):
    rng = np.random.default_rng(seed)
    pts = rng.integers(0, 12, size=(15, 2)).astype(float)
    ref = np.array([12.0, 12.0])
    assert hv.hypervolume_2d(pts, ref) == _grid_count_2d(pts, ref)
    assert hv.hypervolume(pts, ref) == _grid_count_2d(pts, ref)


def test_2d_real_valued_against_inclusion_exclusion_and_monte_carlo():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, size=(9, 2))
    ref = np.array([1.1, 1.2])
    exact = hv.hypervolume_2d(pts, ref)
    np.testing.assert_allclose(exact, _inclusion_exclusion(pts, ref), rtol=1e-12)
    mc = hv.hypervolume_mc(pts, ref, key=jax.random.key(0), num_samples=50_000)
    box = np.prod(ref - pts.min(0))
    p = exact / box
    assert abs(mc - exact) < 5 * box * np.sqrt(p * (1 - p) / 50_000)


@pytest.mark.parametrize("d, n", [(3, 7), (4, 6)])
def test_nd_exact_against_inclusion_exclusion(d, n):
    rng = np.random.default_rng(d)
    pts = rng.uniform(0, 1, size=(n, d))
    ref = np.full(d, 1.05)
    np.testing.assert_allclose(hv.hypervolume(pts, ref), _inclusion_exclusion(pts, ref),
                               rtol=1e-10)


def test_points_outside_reference_and_dominated_points_add_nothing():
    ref = np.array([4.0, 4.0])
    base = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    v = hv.hypervolume_2d(base, ref)
    assert v == 3 + 2 + 1
    more = np.vstack([base, [[2.5, 2.5], [5.0, 0.0], [0.5, 4.0], [np.nan, 0.0]]])
    assert hv.hypervolume_2d(more, ref) == v
    assert hv.hypervolume_2d(np.zeros((0, 2)), ref) == 0.0


def test_pareto_front_and_mask():
    pts = np.array([[1.0, 5.0], [2.0, 2.0], [3.0, 3.0], [2.0, 2.0], [5.0, 1.0], [4.0, 1.0]])
    mask = hv.pareto_mask(pts)
    np.testing.assert_array_equal(mask, [True, True, False, True, False, True])
    front = hv.pareto_front(pts)
    np.testing.assert_array_equal(front, [[1, 5], [2, 2], [2, 2], [4, 1]])
    # every removed point is dominated by a front point
    for p in pts[~mask]:
        assert any(np.all(f <= p) and np.any(f < p) for f in front)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="reference point has 3"):
        hv.hypervolume(np.zeros((2, 2)), [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="2 objectives"):
        hv.hypervolume_2d(np.zeros((2, 3)), [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="2-D array"):
        hv.pareto_mask(np.zeros(3))
