"""Random-forest surrogate (as in SMAC, Hutter et al. 2011, section 4.3).

The predictive mean is the average of the trees' predictions and the
uncertainty their spread (standard deviation across trees), floored so that
expected improvement stays well defined.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import ExtraTreesRegressor


class ForestSurrogate:
    """Extremely randomised trees with mean/std across trees.

    Args:
        n_estimators: number of trees.
        min_samples_leaf: minimum leaf size (SMAC uses 3).
        min_std: floor on the predictive standard deviation.
        seed: random seed.
    """

    def __init__(self, *, n_estimators: int = 64, min_samples_leaf: int = 2,
                 min_std: float = 1e-3, seed: int = 0):
        self.model = ExtraTreesRegressor(n_estimators=n_estimators,
                                         min_samples_leaf=min_samples_leaf, bootstrap=True,
                                         max_features=0.8, random_state=seed, n_jobs=1)
        self.min_std = min_std

    def fit(self, X: np.ndarray, y: np.ndarray) -> "ForestSurrogate":
        self.model.fit(np.asarray(X), np.asarray(y))
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Returns ``(mean, std)`` across trees at ``X`` (n, D)."""
        per_tree = np.stack([t.predict(np.asarray(X)) for t in self.model.estimators_])
        return per_tree.mean(0), np.maximum(per_tree.std(0), self.min_std)
