"""Gaussian-process surrogate: masked padding, MAP fitting.

The kernels are tinygp's Matern-5/2, Matern-3/2 and squared-exponential
(:func:`base_kernel`, :func:`make_gp`); the hot path evaluates the same
functions with a hand-vectorised dense implementation (:func:`kernel_matrix`),
which is about 20x faster per marginal-likelihood gradient on CPU than
tinygp's generic vmap path; tests check both paths agree.

Observation arrays are padded to a fixed size (see :func:`padded_size`) and a
0/1 ``mask`` marks real rows. Padded rows are decoupled exactly: the masked
covariance is ``K~ = (m m^T) * K + diag(m * noise + (1 - m))`` and padded
targets are 0, so the padded block is an identity that contributes nothing to
the log-determinant or the quadratic form (only a constant
``-n_pad/2 log 2 pi``, which :func:`log_marginal_likelihood` removes). The
marginal likelihood and posterior are therefore identical to those of the
unpadded GP (Rasmussen & Williams 2006, eqs. 2.25-2.26 and 2.30).

Hyperparameters are fitted by maximum a posteriori with priors:

* lengthscales ``log l_i ~ N(0, 1.5^2)``: centred on the width of the unit
  cube, the mode of Optuna's GPSampler prior. The dimension-scaled prior of
  Hvarfner, Hellsten & Nardi (2024, eq. 5), ``N(sqrt(2) + log(D)/2, 3)``, was
  tried first: on ``benchmarks/bo_vs_peers.py`` (D <= 6, 50 evaluations) its
  long lengthscales left half the Hartmann-6 runs in the local minimum
  (median regret 0.13 against 0.004);
* signal variance ``log s^2 ~ N(0, 1)`` (outputs are standardised);
* noise variance ``log n^2 ~ N(-4, 1)`` (BoTorch's default noise prior since
  2024), lower-bounded by ``min_noise``;
* constant mean ``c ~ N(0, 1)``.

Several restarts (warm start, prior mode, prior draws) run inside one ``jit``
(``lax.map``), each a fixed number of Adam steps on the unconstrained
parameters; the marginal-likelihood gradient is the closed form of R&W eq. 5.9.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from jax.scipy.linalg import solve_triangular

if TYPE_CHECKING:
    import tinygp

KERNELS = ("matern52", "matern32", "rbf")
_MIN_LS, _MAX_LS = 1e-3, 1e3


class GPParams(NamedTuple):
    """Unconstrained GP hyperparameters."""

    log_ls: jax.Array  # (G,) log lengthscales (ARD; G = D unless tied in groups)
    log_amp: jax.Array  # () log signal variance
    log_noise: jax.Array  # () log noise variance (above min_noise)
    mean: jax.Array  # () constant mean


# Exported programs (jax_cache.ExportedJit) take and return GPParams.
jax.export.register_namedtuple_serialization(GPParams, serialized_name="nnopt_jax.hpo.gp.GPParams")


class Posterior(NamedTuple):
    """Cached factorisation for fast predictions (R&W Algorithm 2.1)."""

    params: GPParams
    X: jax.Array  # (N, D) padded inputs
    mask: jax.Array  # (N,) 1 for real rows
    chol_inv: jax.Array  # (N, N) inverse of the lower Cholesky factor of the masked covariance
    alpha: jax.Array  # (N,) K~^{-1} (y - c) m


@functools.lru_cache(maxsize=1)
def _masked_kernel_class():
    """``k((x, m), (x', m')) = m m' k(x, x')`` as a tinygp kernel: padded rows get
    zero covariance. Built on first use: tinygp (and equinox under it) is only
    the reference path's, and importing it costs a fresh process about 0.3 s."""
    import tinygp

    class Masked(tinygp.kernels.Kernel):
        kernel: tinygp.kernels.Kernel

        def evaluate(self, X1, X2):
            (x1, m1), (x2, m2) = X1, X2
            return m1 * m2 * self.kernel.evaluate(x1, x2)

    return Masked


def padded_size(n: int, minimum: int = 64) -> int:
    """The size schedule: the next power of two, at least ``minimum``.

    A 50-trial study thus runs one size (two programs to compile or load);
    at 10--32 observations the larger padding costs ~5 ms per suggestion on
    one CPU core, less than tracing and loading the programs of two more sizes.
    """
    return max(minimum, 1 << max(0, math.ceil(math.log2(max(n, 1)))))


def lengthscales(log_ls, groups: tuple[int, ...] | None = None) -> jax.Array:
    """The ``(D,)`` lengthscale of every input column.

    ``groups[j]`` names the lengthscale of column ``j``: a categorical's one-hot
    columns share one, so the kernel sees a Hamming-type distance per
    categorical (the squared distance between two choices is ``2 / l^2``) and
    a space of ``c`` categoricals with ``k`` choices each has ``c``
    lengthscales to fit, not ``c k``. ``None``: one per column.
    """
    ls = jnp.exp(jnp.clip(log_ls, math.log(_MIN_LS), math.log(_MAX_LS)))
    return ls if groups is None else ls[..., np.asarray(groups)]


def n_lengthscales(dim: int, groups: tuple[int, ...] | None) -> int:
    """How many lengthscales ``dim`` input columns have under ``groups``."""
    return dim if groups is None else max(groups) + 1


def base_kernel(params: GPParams, kernel: str,
                groups: tuple[int, ...] | None = None) -> tinygp.kernels.Kernel:
    """``s^2 * k(x / l, x' / l)`` for ``kernel`` in ``matern52 | matern32 | rbf``."""
    import tinygp

    ls = lengthscales(params.log_ls, groups)
    if kernel == "matern52":
        k = tinygp.kernels.Matern52(distance=tinygp.kernels.distance.L2Distance())
    elif kernel == "matern32":
        k = tinygp.kernels.Matern32(distance=tinygp.kernels.distance.L2Distance())
    elif kernel == "rbf":
        k = tinygp.kernels.ExpSquared()
    else:
        raise ValueError(f"unknown kernel {kernel!r}; choose from {KERNELS}")
    amp = jnp.exp(jnp.clip(params.log_amp, -10.0, 10.0))
    return amp * tinygp.transforms.Linear(1.0 / ls, k)


def noise_variance(params: GPParams, min_noise: float) -> jax.Array:
    return min_noise + jnp.exp(jnp.clip(params.log_noise, -20.0, 2.0))


def make_gp(params: GPParams, X, mask, *, kernel: str, min_noise: float,
            groups: tuple[int, ...] | None = None):
    """The masked tinygp ``GaussianProcess`` over padded inputs."""
    import tinygp

    diag = mask * noise_variance(params, min_noise) + (1.0 - mask)
    masked = _masked_kernel_class()
    return tinygp.GaussianProcess(masked(base_kernel(params, kernel, groups)), (X, mask),
                                  diag=diag,
                                  mean=0.0)


def _stationary(r2, kernel: str):
    """Unit-variance stationary kernel of the squared scaled distance ``r2``.

    Matern-5/2: ``(1 + r + r^2/3) exp(-r)``, ``r = sqrt(5 r2)``; Matern-3/2:
    ``(1 + r) exp(-r)``, ``r = sqrt(3 r2)``; RBF: ``exp(-r2 / 2)``
    (R&W eqs. 4.9, 4.17). The square root uses the double-``where`` trick so
    gradients at ``r2 = 0`` are finite.
    """
    if kernel == "rbf":
        return jnp.exp(-0.5 * r2)
    if kernel not in ("matern52", "matern32"):
        raise ValueError(f"unknown kernel {kernel!r}; choose from {KERNELS}")
    pos = r2 > 0
    r = jnp.where(pos, jnp.sqrt(jnp.where(pos, r2, 1.0)), 0.0)
    if kernel == "matern52":
        r = math.sqrt(5.0) * r
        return (1.0 + r + r * r / 3.0) * jnp.exp(-r)
    r = math.sqrt(3.0) * r
    return (1.0 + r) * jnp.exp(-r)


def kernel_matrix(params: GPParams, X1, X2, *, kernel: str = "matern52",
                  groups: tuple[int, ...] | None = None):
    """Dense ``s^2 k(X1 / l, X2 / l)``: the same function as :func:`base_kernel`,
    vectorised by hand (about 20x faster than tinygp's generic path on CPU)."""
    ls = lengthscales(params.log_ls, groups)
    amp = jnp.exp(jnp.clip(params.log_amp, -10.0, 10.0))
    Z1, Z2 = X1 / ls, X2 / ls
    # |z1 - z2|^2 = |z1|^2 + |z2|^2 - 2 z1.z2: one matmul instead of an (N, M, D)
    # broadcast, which XLA:CPU fuses poorly (3x slower kernel, 2x slower gradient).
    # The rounding error, ~eps |z|^2, is far below any lengthscale in float64.
    sq1 = jnp.sum(Z1 * Z1, axis=-1)[..., :, None]
    sq2 = jnp.sum(Z2 * Z2, axis=-1)[..., None, :]
    r2 = jnp.maximum(sq1 + sq2 - 2.0 * Z1 @ jnp.swapaxes(Z2, -1, -2), 0.0)
    return amp * _stationary(r2, kernel)


def masked_covariance(params: GPParams, X, mask, *, kernel: str, min_noise: float,
                      groups: tuple[int, ...] | None = None):
    """``K~ = (m m^T) * K + diag(m * noise + (1 - m))`` (padded rows decoupled)."""
    K = kernel_matrix(params, X, X, kernel=kernel, groups=groups) * (mask[:, None] * mask[None, :])
    return K + jnp.diag(mask * noise_variance(params, min_noise) + (1.0 - mask))


def cholesky(cov):
    """Lower Cholesky factor of a covariance built symmetric (LAPACK's ``potrf``
    reads only its lower triangle), without ``jnp.linalg.cholesky``'s
    symmetrising pass ``(K + K^T) / 2``: on one CPU core that pass took twice
    as long as the 64 x 64 factorisation itself. A matrix that is not
    positive definite gives NaN, as with ``jnp.linalg.cholesky``."""
    return jax.lax.linalg.cholesky(cov, symmetrize_input=False)


@jax.custom_vjp
def gaussian_log_density(cov, r):
    """``-1/2 r^T K^-1 r - 1/2 log|K|`` via Cholesky (R&W Algorithm 2.1).

    Custom VJP with the closed-form gradients (R&W eq. 5.9):
    ``dL/dK = 1/2 (a a^T - K^-1)``, ``dL/dr = -a`` with ``a = K^-1 r``; jax's
    generic Cholesky derivative is two orders of magnitude slower on CPU.
    Undifferentiated (e.g. screening hyperparameter starts) it needs only
    ``w = L^-1 r``, one triangular solve: ``-1/2 w^T w - sum log diag L``.
    """
    chol = cholesky(cov)
    w = solve_triangular(chol, r, lower=True)
    return -0.5 * w @ w - jnp.sum(jnp.log(jnp.diag(chol)))


def tril_inverse(chol):
    """Inverse of a lower-triangular matrix by recursive 2x2 blocking.

    ``[[A, 0], [C, D]]^-1 = [[A^-1, 0], [-D^-1 C A^-1, D^-1]]``; blocks of at
    most 32 rows use a triangular solve. On XLA:CPU, triangular solves with
    matrix right-hand sides are pathologically slow beyond ~32 rows, while the
    matmuls of the recursion are fast.
    """
    n = chol.shape[-1]
    if n <= 32:
        return solve_triangular(chol, jnp.eye(n, dtype=chol.dtype), lower=True)
    m = n // 2
    a_inv = tril_inverse(chol[:m, :m])
    d_inv = tril_inverse(chol[m:, m:])
    lower = -d_inv @ chol[m:, :m] @ a_inv
    top = jnp.concatenate([a_inv, jnp.zeros((m, n - m), chol.dtype)], axis=1)
    return jnp.concatenate([top, jnp.concatenate([lower, d_inv], axis=1)], axis=0)


def _gld_fwd(cov, r):
    chol = cholesky(cov)
    l_inv = tril_inverse(chol)
    a = l_inv.T @ (l_inv @ r)
    value = -0.5 * r @ a - jnp.sum(jnp.log(jnp.diag(chol)))
    return value, (l_inv, a)


def _gld_bwd(res, g):
    l_inv, a = res
    k_inv = l_inv.T @ l_inv
    return g * 0.5 * (jnp.outer(a, a) - k_inv), -g * a


gaussian_log_density.defvjp(_gld_fwd, _gld_bwd)


def log_marginal_likelihood(params: GPParams, X, y, mask, *, kernel: str = "matern52",
                            min_noise: float = 1e-6, groups: tuple[int, ...] | None = None):
    """``log p(y | X, theta)`` of the real rows (R&W eq. 2.30), padding removed."""
    cov = masked_covariance(params, X, mask, kernel=kernel, min_noise=min_noise, groups=groups)
    n = jnp.sum(mask)
    return gaussian_log_density(cov, (y - params.mean) * mask) - 0.5 * n * jnp.log(2 * jnp.pi)


def log_marginal_likelihood_tinygp(params: GPParams, X, y, mask, *,
                                   kernel: str = "matern52", min_noise: float = 1e-6,
                                   groups: tuple[int, ...] | None = None):
    """The same quantity through ``tinygp.GaussianProcess`` (reference path)."""
    gp = make_gp(params, X, mask, kernel=kernel, min_noise=min_noise, groups=groups)
    n_pad = jnp.sum(1.0 - mask)
    return gp.log_probability((y - params.mean) * mask) + 0.5 * n_pad * jnp.log(2 * jnp.pi)


def prior_mean_std(dim: int) -> tuple[GPParams, GPParams]:
    """Means and standard deviations of the Gaussian priors on ``GPParams``.

    NumPy float64 arrays, which JAX reads as its default float dtype (float32
    unless x64 is on), as ``jnp.zeros`` would give: built outside jit, JAX
    arrays here would each dispatch a compiled program, tens of milliseconds
    apiece on a process's first suggestion.
    """
    vec = lambda v: np.full((dim,), v, dtype=np.float64)
    one = lambda v: np.asarray(v, dtype=np.float64)
    mu = GPParams(vec(0.0), one(0.0), one(-4.0), one(0.0))
    sd = GPParams(vec(1.5), one(1.0), one(1.0), one(1.0))
    return mu, sd


def log_prior(params: GPParams) -> jax.Array:
    mu, sd = prior_mean_std(params.log_ls.shape[-1])
    terms = jax.tree.map(lambda p, m, s: jnp.sum(-0.5 * ((p - m) / s) ** 2), params, mu, sd)
    return sum(jax.tree.leaves(terms))


def neg_log_posterior(params: GPParams, X, y, mask, *, kernel: str, min_noise: float,
                      groups: tuple[int, ...] | None = None):
    return -(log_marginal_likelihood(params, X, y, mask, kernel=kernel, min_noise=min_noise,
                                     groups=groups)
             + log_prior(params))


def fit(X, y, mask, init: GPParams, *, key, kernel: str = "matern52", n_restarts: int = 4,
        n_steps: int = 100, learning_rate: float = 0.1, min_noise: float = 1e-6,
        n_screen: int = 0, groups: tuple[int, ...] | None = None) -> GPParams:
    """MAP hyperparameters by Adam from ``n_restarts`` starts, all in one program.

    The starts are ``init`` (a warm start), the prior mean and prior draws.
    With ``n_screen > n_restarts``, that many starts are drawn and only the
    ``n_restarts`` with the lowest negative log posterior are optimised: a
    screen costs one likelihood evaluation per start, far less than a gradient
    step, and finds the better modes of a multi-modal marginal likelihood.
    Returns the optimised start with the lowest negative log posterior. Pure;
    jit it with every keyword except ``key`` static. (Fixed-step Adam compiles
    in seconds and is cheaper per step than L-BFGS with a line search.)
    ``groups`` ties lengthscales (:func:`lengthscales`); ``init.log_ls`` then
    has one entry per group.
    """
    dim = n_lengthscales(X.shape[-1], groups)
    mu, sd = prior_mean_std(dim)
    n_starts = max(n_screen, n_restarts)
    n_rand = max(n_starts - 2, 0)
    leaves, treedef = jax.tree.flatten(mu)
    keys = jax.random.split(key, len(leaves))
    draws = [m + s * jax.random.normal(k, (n_rand,) + m.shape)
             for m, s, k in zip(leaves, jax.tree.leaves(sd), keys)]
    rand = jax.tree.unflatten(treedef, draws)
    starts = jax.tree.map(lambda a, b, c: jnp.concatenate([a[None], b[None], c])[:n_starts],
                          init, mu, rand)

    loss = lambda p: neg_log_posterior(p, X, y, mask, kernel=kernel, min_noise=min_noise,
                                       groups=groups)
    if n_starts > n_restarts:
        start_losses = jax.lax.map(loss, starts)
        start_losses = jnp.where(jnp.isfinite(start_losses), start_losses, jnp.inf)
        keep = jnp.argsort(start_losses)[:n_restarts]
        starts = jax.tree.map(lambda a: a[keep], starts)
    opt = optax.adam(learning_rate)

    def run(p0):
        # Adam on one flat vector: the same elementwise updates as on the four
        # leaves, in a quarter of the (tiny, overhead-bound) operations
        v0, unravel = ravel_pytree(p0)
        flat_loss = lambda v: loss(unravel(v))

        def step(carry, _):
            v, state = carry
            grad = jax.grad(flat_loss)(v)
            grad = jnp.where(jnp.isfinite(grad), grad, 0.0)
            updates, state = opt.update(grad, state, v)
            return (optax.apply_updates(v, updates), state), None

        (v, _), _ = jax.lax.scan(step, (v0, opt.init(v0)), None, length=n_steps)
        return unravel(v), flat_loss(v)

    # lax.map, not vmap: batched Cholesky factorisations are far slower than a
    # loop of unbatched ones on CPU.
    ps, losses = jax.lax.map(run, starts)
    losses = jnp.where(jnp.isfinite(losses), losses, jnp.inf)
    best = jnp.argmin(losses)
    return jax.tree.map(lambda a: a[best], ps)


def posterior(params: GPParams, X, y, mask, *, kernel: str = "matern52",
              min_noise: float = 1e-6, groups: tuple[int, ...] | None = None) -> Posterior:
    """Factorises the masked covariance once for repeated predictions."""
    cov = masked_covariance(params, X, mask, kernel=kernel, min_noise=min_noise, groups=groups)
    chol_inv = tril_inverse(cholesky(cov))
    alpha = chol_inv.T @ (chol_inv @ ((y - params.mean) * mask))
    return Posterior(params, X, mask, chol_inv, alpha)


def predict_batch(post: Posterior, Xq, *, kernel: str = "matern52",
                  groups: tuple[int, ...] | None = None):
    """Latent posterior means and variances at the ``(M, D)`` rows ``Xq``
    (R&W eqs. 2.25-2.26), as two matrix products: ``K_q alpha`` and
    ``K_q L^-T`` (``v = L^-1 k_q`` of every row). For 2048 rows against 64
    observations on one CPU core: 1.09 ms, against 2.20 ms for a ``vmap`` of
    single-point matrix-vector products."""
    Kq = kernel_matrix(post.params, Xq, post.X, kernel=kernel, groups=groups) * post.mask
    mean = post.params.mean + Kq @ post.alpha
    V = Kq @ post.chol_inv.T
    var = jnp.exp(jnp.clip(post.params.log_amp, -10.0, 10.0)) - jnp.sum(V * V, axis=-1)
    return mean, jnp.maximum(var, 1e-12)


def predict(post: Posterior, x, *, kernel: str = "matern52",
            groups: tuple[int, ...] | None = None):
    """Latent posterior mean and variance at one point ``x`` (:func:`predict_batch`)."""
    mean, var = predict_batch(post, x[None], kernel=kernel, groups=groups)
    return mean[0], var[0]
