"""The exact KL to the VNQ prior, tabulated as a correction to the windowed approximation.

The windowed approximation of Achterhold et al. (2018), eq. (16), mixes the
sparse-VD approximation shifted to each codebook value. Against the KL computed
by quadrature it is biased towards the non-zero spikes: at theta = 0 the
windows of +-a still weigh their (large) shifted terms with
Omega(a) = exp(-a^2 / 2 tau_a^2) = 0.028 each, so a weight pays less at +-a
than at 0 for every sigma, while the exact KL of a broad posterior is lowest
at 0 (for sigma = a it costs 0.30 nats more at theta = a than at 0; the
approximation says 0.025 less).

The prior is p(w) ∝ sum_c 1/|w - c| over {-a, 0, a}; the KL to it is
invariant under w -> w / a up to a constant, so the exact KL is a function of
u = theta / a and v = log(sigma / a). This module computes, by adaptive
quadrature in float64,

    R(u, v) = KL_exact(u, v) - F_windowed(u, v) - C,

with C the far-field offset (|theta| >> a, where the prior tends to 3 / |w| and
the windowed form to the sparse-VD approximation), so that R -> 0 far from
the codebook. :func:`nnopt_jax.bayes.kl.kl_vnq_tabulated` adds R, interpolated
bilinearly, to the windowed form. The table ships with the package
(``vnq_kl_residual.npz``); ``python -m nnopt_jax.bayes.vnq_kl_table`` rebuilds it.
"""

from __future__ import annotations

import pathlib
import warnings

import numpy as np

__all__ = ["U_GRID", "V_GRID", "TABLE_PATH", "exact_kl", "windowed_kl", "residual_table", "load_table"]

U_GRID = np.linspace(0.0, 6.0, 241)
"""|theta| / a at the table's nodes (step 0.025)."""

V_GRID = np.linspace(-5.0, 4.0, 91)
"""log(sigma / a) at the table's nodes (step 0.1): log sigma^2 in (-10, 1) with a in [0.05, 0.3] lies inside."""

TABLE_PATH = pathlib.Path(__file__).with_name("vnq_kl_residual.npz")

_CODEBOOK = (-1.0, 0.0, 1.0)  # level a = 1: the table is scale free


def _log_prior(w: np.ndarray) -> np.ndarray:
    return np.log(sum(1.0 / np.abs(w - c) for c in _CODEBOOK))


def exact_kl(u: float, sigma: float) -> float:
    """KL(N(u, sigma^2) || sum_c 1/|w - c|) at level 1, up to the constant -0.5 log(2 pi e).

    -log sigma - E_q[log p(w)], the expectation by ``scipy.integrate.quad``
    over u +- 12 sigma with the prior's singular points as breakpoints.
    """
    from scipy import integrate

    lo, hi = u - 12.0 * sigma, u + 12.0 * sigma
    density = lambda w: np.exp(-0.5 * ((w - u) / sigma) ** 2) / (sigma * np.sqrt(2.0 * np.pi))
    value, _ = integrate.quad(lambda w: density(w) * _log_prior(np.asarray(w)), lo, hi,
                              points=[c for c in _CODEBOOK if lo < c < hi], limit=400,
                              epsabs=1e-9, epsrel=1e-9)
    return float(-np.log(sigma) - value)


def windowed_kl(u: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Eq. (16) at level 1 in float64 numpy, as ``kl.kl_vnq`` computes it (log alpha clipped to [-8, 8])."""
    from nnopt_jax.bayes.kl import K1, K2, K3, LOG_ALPHA_MAX, LOG_ALPHA_MIN, VNQ_REFERENCE_LEVEL, VNQ_TAU

    def kl_lu(d):
        la = np.clip(np.log(sigma**2) - np.log(d**2 + 1e-300), LOG_ALPHA_MIN, LOG_ALPHA_MAX)
        return -(K1 / (1.0 + np.exp(-(K2 + K3 * la))) - 0.5 * np.log1p(np.exp(-la)) - K1)

    ref = u * VNQ_REFERENCE_LEVEL
    w_pos = np.exp(-((ref - VNQ_REFERENCE_LEVEL) ** 2) / (2.0 * VNQ_TAU**2))
    w_neg = np.exp(-((ref + VNQ_REFERENCE_LEVEL) ** 2) / (2.0 * VNQ_TAU**2))
    return (1.0 - w_pos - w_neg) * kl_lu(u) + w_pos * kl_lu(u - 1.0) + w_neg * kl_lu(u + 1.0)


def far_field_offset() -> float:
    """C: exact KL minus the windowed form where the prior is 3 / |w| (theta = 1e4 a), averaged over alpha."""
    offsets = []
    for log_alpha in np.linspace(-4.0, 4.0, 9):
        u = 1e4
        sigma = u * np.exp(0.5 * log_alpha)
        offsets.append(exact_kl(u, sigma) - float(windowed_kl(np.asarray(u), np.asarray(sigma))))
    return float(np.mean(offsets))


def residual_table(u_grid: np.ndarray = U_GRID, v_grid: np.ndarray = V_GRID) -> np.ndarray:
    """R(u, v) on the grid, shape ``(len(u_grid), len(v_grid))``, float64."""
    c = far_field_offset()
    table = np.empty((len(u_grid), len(v_grid)))
    for j, v in enumerate(v_grid):
        sigma = float(np.exp(v))
        exact = np.array([exact_kl(float(u), sigma) for u in u_grid])
        table[:, j] = exact - windowed_kl(u_grid, np.full_like(u_grid, sigma)) - c
    return table


def load_table() -> np.ndarray:
    """The shipped table (float32), checked against the grids it was built on."""
    with np.load(TABLE_PATH) as f:
        if not (np.array_equal(f["u"], U_GRID) and np.array_equal(f["v"], V_GRID)):
            raise RuntimeError(f"{TABLE_PATH} was built on other grids; rebuild it with "
                               "`python -m nnopt_jax.bayes.vnq_kl_table`")
        return np.asarray(f["residual"], np.float32)


def main() -> None:
    with warnings.catch_warnings():  # quad's round-off notes at 1e-9 tolerance; its error stays below 1e-6
        warnings.simplefilter("ignore")
        table = residual_table()
    np.savez_compressed(TABLE_PATH, u=U_GRID, v=V_GRID, residual=table.astype(np.float32))
    print(f"wrote {TABLE_PATH} ({table.shape[0]} x {table.shape[1]}), residual in "
          f"[{table.min():.3f}, {table.max():.3f}]")


if __name__ == "__main__":
    main()
