import numpy as np
import pytest

from nnopt_jax.optimize.front import knee_index


def _line_distance(points, a, b):
    """Distance of each point to the line through a and b (an independent 2-D formula)."""
    d = b - a
    return np.abs(d[0] * (points[:, 1] - a[1]) - d[1] * (points[:, 0] - a[0])) / np.hypot(*d)


def test_knee_of_a_hand_made_two_objective_front():
    front = np.array([[0.0, 1.0], [0.1, 0.3], [0.5, 0.2], [1.0, 0.0]])
    assert knee_index(front) == 1
    dist = _line_distance(front, front[0], front[-1])
    assert knee_index(front) == int(np.argmax(dist))
    # invariant to the units of each objective (normalised space) and to the order
    scaled = front * np.array([0.02, 5e5]) + np.array([0.01, 1e3])
    perm = np.array([3, 0, 2, 1])
    assert knee_index(scaled[perm]) == int(np.flatnonzero(perm == 1)[0])


def test_knee_moves_with_the_front():
    front = np.array([[0.0, 1.0], [0.4, 0.5], [0.6, 0.05], [1.0, 0.0]])
    dist = _line_distance(front, front[0], front[-1])
    assert knee_index(front) == int(np.argmax(dist)) == 2


def test_knee_in_three_objectives_uses_the_plane_through_the_extremes():
    front = np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0], [0.2, 0.2, 0.2], [0.6, 0.6, 0.1]], float)
    # plane through the extremes: f1 + f2 + f3 = 2; D is farthest below it
    assert knee_index(front) == 3
    degenerate = np.array([[0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.3, 0.4, 0.2]])
    assert knee_index(degenerate) in range(3)


def test_knee_errors_and_small_fronts():
    assert knee_index([[1.0, 2.0]]) == 0
    assert knee_index([[0.0, 1.0], [1.0, 0.0]]) in (0, 1)
    with pytest.raises(ValueError, match="non-empty"):
        knee_index(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="finite"):
        knee_index([[0.0, np.nan], [1.0, 0.0], [0.5, 0.5]])
