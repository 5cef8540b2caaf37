"""The numeric layer: unrolled trajectories and the Jacobian products along them.

Notation: states s_0 .. s_T with s_{t+1} = cell_t.step(s_t, x_t) for t = 0 .. T-1, one-step
Jacobians J_t = d s_t / d s_{t-1}, and the forward product P_t = J_t ... J_1 = d s_t / d s_0.
Back-propagation through time multiplies by the transposed J_t in reverse order.

Growth is reported as natural logarithms, per step for rates, so that a 100 000-step product
with gain 10 or 0.1 gives finite numbers. Nothing here stores a P x P matrix per step: memory
is that of a few P x P matrices plus the requested outputs.

``cell`` is a :class:`~gradsim.cells.Cell` (tied weights) or a callable ``t -> Cell`` giving
the cell of step t (untied weights, the mean-field setting); the callable must return the same
cell for the same t, because :func:`gradient_norms` calls it again on the way back.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass

import numpy as np
import scipy.linalg as _linalg
from scipy.linalg import blas as _blas
from scipy.linalg import lapack as _lapack

from .._validate import as_rng, describe, finite_array, positive_int
from ..cells import Cell

__all__ = [
    "unroll",
    "jacobian_product",
    "log_singular_values",
    "lyapunov_spectrum",
    "gradient_norms",
    "LyapunovSpectrum",
    "untied",
]

# Re-orthonormalisation (Benettin et al. 1980; Geist, Parlitz & Lauterborn 1990). Pushing a
# frame through m steps before a QR lets its columns align with the fastest direction: column k
# keeps only |R_kk| / ||a_k|| of its norm orthogonal to the columns before it, and rounding in
# the products and in the QR costs relative accuracy ~ eps * ||a_k|| / |R_kk| in R_kk
# (Householder QR is columnwise backward stable; Higham 2002, ch. 19), ~ its square for a
# Cholesky QR (Gram matrix; BLAS-3 only, ~2x cheaper here). The "loss" of a block is
# max_k log(||a_k|| / |R_kk|); it is measured after every QR, a block that lost more than
# allowed is redone one step at a time, and the next interval is planned from it. The limits
# keep rounding under 1e-8 relative per QR, far below the statistical error of any feasible
# run (a standard error ~ 1/sqrt(T) >= 1e-3 per step at T <= 1e6).
_ACCURACY = 1e-8
_EPS = float(np.finfo(np.float64).eps)
_MAX_LOSS = {"householder": math.log(_ACCURACY / _EPS)}  # 17.6 nats
_MAX_LOSS["cholesky"] = _MAX_LOSS["householder"] / 2.0  # 8.8 nats
# Cost of one QR in units of one step's P x P matmul, from `python -m gradsim.bench`-style
# timings with OpenBLAS on one thread (geqrf + trsm ~3x, syrk + potrf + trsm ~2x).
_QR_COST = {"householder": 3.0, "cholesky": 2.0}
# Largest growth or decay (nats) of any column between QRs, far from float64's +-709.
_MAX_LOG_SCALE = 200.0
_MAX_INTERVAL = 32


# ------------------------------------------------------------------------------------------
# argument handling
@dataclass(frozen=True)
class _Problem:
    cell_at: object  # t -> Cell
    first: Cell
    n_steps: int
    inputs: np.ndarray | None  # (..., T, I) or None for zero input
    state0: np.ndarray  # (..., S)
    batch_shape: tuple

    def input_at(self, t):
        if self.inputs is None:
            return np.zeros(self.batch_shape + (self.first.n_input,))
        return self.inputs[..., t, :]

    def cell(self, t) -> Cell:
        if self.cell_at is None:
            return self.first
        cell = self.cell_at(t)
        if not isinstance(cell, Cell):
            raise TypeError(
                f"`cell` callable must return a Cell for every step; at t={t} it returned {describe(cell)}."
            )
        if cell.state_size != self.first.state_size or cell.n_input != self.first.n_input:
            raise ValueError(
                f"`cell` callable must return cells of one size; at t={t} it returned state_size="
                f"{cell.state_size}, n_input={cell.n_input}, expected {self.first.state_size}, "
                f"{self.first.n_input}."
            )
        return cell


def _problem(cell, inputs, state0) -> _Problem:
    if isinstance(cell, Cell):
        cell_at, first = None, cell
    elif callable(cell):
        cell_at, first = cell, cell(0)
        if not isinstance(first, Cell):
            raise TypeError(
                f"`cell` must be a Cell or a callable t -> Cell; the callable returned {describe(first)}."
            )
    else:
        raise TypeError(f"`cell` must be a Cell or a callable t -> Cell; got {describe(cell)}.")

    expected = f"a positive int T or an array of shape (..., T, {first.n_input}) with T >= 1"
    if isinstance(inputs, numbers.Integral) and not isinstance(inputs, bool):
        if inputs < 1:
            raise ValueError(f"`inputs` must be {expected}; got {inputs}.")
        n_steps, inputs_arr, batch = int(inputs), None, ()
    else:
        if isinstance(inputs, bool) or inputs is None:
            raise TypeError(f"`inputs` must be {expected}; got {describe(inputs)}.")
        inputs_arr = finite_array(inputs, "inputs")
        if inputs_arr.ndim < 2 or inputs_arr.shape[-1] != first.n_input or inputs_arr.shape[-2] < 1:
            raise ValueError(f"`inputs` must be {expected}; got shape {inputs_arr.shape}.")
        n_steps, batch = inputs_arr.shape[-2], inputs_arr.shape[:-2]

    size = first.state_size
    if state0 is None:
        state = np.zeros(batch + (size,))
    else:
        state = finite_array(state0, "state0")
        if state.ndim == 0 or state.shape[-1] != size:
            raise ValueError(
                f"`state0` must have last dimension state_size={size}; got shape {state.shape}."
            )
        try:
            batch = np.broadcast_shapes(batch, state.shape[:-1])
        except ValueError:
            raise ValueError(
                f"`state0` batch shape {state.shape[:-1]} does not broadcast with the inputs' "
                f"batch shape {batch}."
            ) from None
        state = np.broadcast_to(state, batch + (size,)).copy()
    if inputs_arr is not None and inputs_arr.shape[:-2] != batch:
        inputs_arr = np.broadcast_to(inputs_arr, batch + inputs_arr.shape[-2:])
    return _Problem(cell_at, first, n_steps, inputs_arr, state, tuple(batch))


def _check_path(problem: _Problem, path) -> int:
    problem.first._check_path(path)
    return problem.first.path_size(path)


def _check_state(state, t):
    if not np.all(np.isfinite(state)):
        raise FloatingPointError(
            f"the state became non-finite at step {t}: the forward dynamics overflowed float64 "
            "(an unbounded activation with growing state); use a bounded activation, smaller "
            "gain or a shorter horizon."
        )


# ------------------------------------------------------------------------------------------
def unroll(cell, inputs, state0=None) -> np.ndarray:
    """Run the recurrence forward.

    Parameters
    ----------
    cell : Cell or callable t -> Cell
    inputs : int or array, shape (..., T, n_input)
        An int T means T steps of zero input.
    state0 : array, shape (..., S), optional
        Zeros by default.

    Returns
    -------
    ndarray, shape (..., T + 1, S)
        ``states[..., 0, :] = state0`` and ``states[..., t + 1, :] = cell_t.step(states[..., t, :], x_t)``.
    """
    problem = _problem(cell, inputs, state0)
    states = np.empty(problem.batch_shape + (problem.n_steps + 1, problem.first.state_size))
    state = problem.state0
    states[..., 0, :] = state
    for t in range(problem.n_steps):
        state = problem.cell(t)._step(state, problem.input_at(t))
        _check_state(state, t + 1)
        states[..., t + 1, :] = state
    return states


def jacobian_product(cell, inputs, state0=None, path: str = "full"):
    """The product P_T = J_T ... J_1 = d s_T / d s_0, as a scale and a matrix.

    Parameters
    ----------
    cell, inputs, state0
        As in :func:`unroll`.
    path : str
        ``"full"``, or a sub-path of the cell (see :meth:`Cell.path_size`).

    Returns
    -------
    log_scale : ndarray, shape (...)
    matrix : ndarray, shape (..., P, P)
        ``P_T = exp(log_scale) * matrix``; the matrix's largest entry is kept near 1 so that the
        product never overflows however long the horizon.
    """
    problem = _problem(cell, inputs, state0)
    size = _check_path(problem, path)
    product = np.broadcast_to(np.eye(size), problem.batch_shape + (size, size)).copy()
    log_scale = np.zeros(problem.batch_shape)
    state = problem.state0
    for t in range(problem.n_steps):
        state, jac = problem.cell(t)._jacobian_operator(state, problem.input_at(t), path)
        _check_state(state, t + 1)
        product = jac @ product
        # Rescaling costs O(P^2) against the O(P^3) matmul; doing it only when needed keeps
        # the loop at the matmul rate.
        peak = np.max(np.abs(product), axis=(-2, -1))
        if np.any((peak > 1e100) | (peak < 1e-100)):
            with np.errstate(divide="ignore"):
                log_peak = np.where(peak > 0, np.log(np.where(peak > 0, peak, 1.0)), 0.0)
            product = product * np.exp(-log_peak)[..., None, None]
            log_scale = log_scale + log_peak
    return log_scale, product


# ------------------------------------------------------------------------------------------
# QR accumulation
def _log_abs(x):
    with np.errstate(divide="ignore"):
        return np.log(np.abs(x))


def _plan(loss_rate: float, log_rate: float):
    """(steps to accumulate before the next QR, QR kernel).

    ``loss_rate`` is the last block's loss per step (nats) and ``log_rate`` its largest
    |log R_ii| per step. Among the intervals each kernel allows, take the one with the lowest
    predicted cost per step, (m + cost of one QR) / m.
    """
    if not (math.isfinite(loss_rate) and math.isfinite(log_rate)):
        return 1, "householder"
    cap = _MAX_INTERVAL
    if log_rate > 0:
        cap = max(1, min(cap, int(_MAX_LOG_SCALE / log_rate)))
    best = (math.inf, 1, "householder")
    for kernel, limit in _MAX_LOSS.items():
        # Plan several steps for half the limit: the loss of a block fluctuates with the inputs
        # and grows faster than linearly once columns align, and a block over it is redone.
        # A single step may use the whole limit (_qr falls back to Householder beyond it).
        steps = cap if loss_rate <= 0 else min(cap, int(0.5 * limit / loss_rate))
        if steps == 0 and loss_rate <= limit:
            steps = 1
        if steps >= 1:
            best = min(best, ((steps + _QR_COST[kernel]) / steps, steps, kernel))
    return best[1], best[2]


def _loss(matrix, r) -> float:
    """max_k log(||a_k|| / |R_kk|): the accuracy a QR of ``matrix`` costs (see module notes)."""
    norms = np.linalg.norm(matrix, axis=-2)
    diag = np.abs(np.diagonal(r, axis1=-2, axis2=-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log(norms) - np.log(diag)
    # A zero column (0/0) carries no information to lose.
    ratio = np.where(norms == 0, 0.0, ratio)
    return float(np.max(ratio))


def _qr(matrix, kernel: str = "householder"):
    """Thin QR of ``matrix`` (..., P, k), P >= k: returns ``(q, r, loss)``.

    ``"cholesky"``: R = chol(A^T A), Q = A R^-1, kept only if its loss is within the Cholesky
    limit, else redone by Householder. ``"householder"``: Householder R and Q = A R^-1 by a
    triangular solve, cheaper than forming Q from the reflectors; Q's loss of orthogonality
    (~eps * cond) does not enter the accumulated R, because A = Q R holds to rounding whatever
    Q is. Beyond the Householder limit (near-singular R, dead units), and for
    ``"reflectors"``, Q is formed from the reflectors: orthonormal to rounding.
    """
    if matrix.ndim != 2:
        q, r = np.linalg.qr(matrix)
        return q, r, _loss(matrix, r)
    if kernel == "cholesky":
        gram = _blas.dsyrk(1.0, matrix, trans=1)
        try:
            r = _linalg.cholesky(gram, lower=False, check_finite=False, overwrite_a=True)
        except np.linalg.LinAlgError:
            r = None
        if r is not None and np.all(np.diagonal(r) > 0):
            loss = _loss(matrix, r)
            if loss <= _MAX_LOSS["cholesky"]:
                return _blas.dtrsm(1.0, r, matrix, side=1, lower=0), r, loss
    k = matrix.shape[1]
    factors, tau, _, _ = _lapack.dgeqrf(matrix, lwork=_workspace("geqrf", matrix.shape))
    r = np.triu(factors[:k])
    loss = _loss(matrix, r)
    # Q = A R^-1 needs every R_kk non-zero (a zero column has R_kk = 0 yet loses nothing).
    solvable = bool(np.all(np.diagonal(r) != 0))
    if kernel != "reflectors" and solvable and loss <= _MAX_LOSS["householder"]:
        return _blas.dtrsm(1.0, r, matrix, side=1, lower=0), r, loss
    q, _, _ = _lapack.dorgqr(factors[:, :k], tau, lwork=_workspace("orgqr", (matrix.shape[0], k)))
    return q, r, loss


class _Frame:
    """A frame pushed through the Jacobians, re-orthonormalised every few steps.

    ``push`` multiplies the frame by one Jacobian and says whether the planned interval is
    reached; ``flush`` factors the accumulated block and returns its R factors, earliest
    first, so that J_m ... J_1 Q_start = Q R_last ... R_first.
    """

    def __init__(self, frame):
        self.start = frame
        self.frame = frame
        self.block = []
        self.interval, self.kernel = 1, "householder"

    def push(self, jac) -> bool:
        self.block.append(jac)
        self.frame = jac @ self.frame
        return len(self.block) >= self.interval

    def flush(self, orthonormal: bool = False) -> list:
        steps = len(self.block)
        q, r, loss = _qr(self.frame, "reflectors" if orthonormal else self.kernel)
        factors = [r]
        loss_rate = loss / steps
        if steps > 1 and loss > _MAX_LOSS["householder"]:
            # The dynamics changed within the block and it lost more than allowed: redo it
            # one step at a time (each single step is as accurate as a QR can make it).
            q, factors, loss_rate = self.start, [], 0.0
            for i, jac in enumerate(self.block):
                last = orthonormal and i == steps - 1
                q, r, loss = _qr(jac @ q, "reflectors" if last else "householder")
                factors.append(r)
                loss_rate = max(loss_rate, loss)
        log_r = sum(_log_abs(np.diagonal(r, axis1=-2, axis2=-1)) for r in factors)
        with np.errstate(invalid="ignore"):
            log_rate = float(np.max(np.abs(log_r))) / steps
        self.interval, self.kernel = _plan(loss_rate, log_rate)
        self.start = self.frame = q
        self.block = []
        return factors


@functools.lru_cache(maxsize=64)
def _workspace(routine: str, shape) -> int:
    """LAPACK's optimal workspace; the f2py default (the minimum) runs the unblocked, BLAS-2
    algorithm, several times slower than the blocked one."""
    probe = np.zeros(shape)
    if routine == "geqrf":
        return max(1, int(_lapack.dgeqrf(probe, lwork=-1)[2][0]))
    return max(1, int(_lapack.dorgqr(probe, np.zeros(shape[1]), lwork=-1)[1][0]))


@dataclass(frozen=True)
class LyapunovSpectrum:
    """Result of :func:`lyapunov_spectrum`.

    Attributes
    ----------
    exponents : ndarray, shape (..., k)
        Per-step growth rates (natural log), descending.
    stderr : ndarray, shape (..., k)
        Standard error of each exponent from the spread of the per-block estimates.
    block_exponents : ndarray, shape (n_blocks, ..., k)
        The exponent measured over each block of steps after the warm-up.
    n_steps : int
        Steps averaged over (T - warmup).
    """

    exponents: np.ndarray
    stderr: np.ndarray
    block_exponents: np.ndarray
    n_steps: int


def lyapunov_spectrum(
    cell, inputs, state0=None, k=None, warmup: int = 0, path: str = "full", *, n_blocks: int = 20,
    rng=0,
) -> LyapunovSpectrum:
    r"""Lyapunov exponents of the Jacobian products by QR (Benettin et al. 1980) re-orthonormalisation.

    A k-column orthonormal frame is pushed forward, :math:`Q \leftarrow J_t Q`, and
    re-orthonormalised by QR; the exponents are the time averages of :math:`\log|R_{ii}|`.
    The QR is done every few steps, adaptively: the last QR's spread of growth rates predicts
    how fast the frame's condition number grows, and the next QR comes before rounding could
    cost more than 1e-8 relative accuracy in any R_ii (at least every 32 steps). Where the
    spread allows, a Cholesky QR (BLAS-3 only) replaces Householder's.

    Parameters
    ----------
    cell, inputs, state0
        As in :func:`unroll`.
    k : int, optional
        Number of leading exponents, 1 <= k <= P (all P by default).
    warmup : int
        Steps run (state and frame) before averaging starts; 0 <= warmup < T.
    path : str
        Jacobian path.
    n_blocks : int
        The averaging window is cut into this many blocks (fewer if there are fewer steps);
        the standard error is the standard deviation of the block estimates over sqrt(n_blocks).
    rng : seed or Generator
        Draws the Haar-random starting frame when k < P (seed 0 by default, so results are
        reproducible); the full spectrum starts from the identity.

    Returns
    -------
    LyapunovSpectrum
    """
    problem = _problem(cell, inputs, state0)
    size = _check_path(problem, path)
    if k is None:
        k = size
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= size:
        raise ValueError(
            f"`k` must be an integer in [1, {size}] (the state size along path {path!r}); got {describe(k)}."
        )
    if isinstance(warmup, bool) or not isinstance(warmup, numbers.Integral) or not 0 <= warmup < problem.n_steps:
        raise ValueError(
            f"`warmup` must be an integer in [0, T) = [0, {problem.n_steps}); got {describe(warmup)}."
        )
    n_blocks = positive_int(n_blocks, "n_blocks")
    measured = problem.n_steps - warmup
    n_blocks = min(n_blocks, measured)
    # Block b covers measured steps [edges[b], edges[b + 1]).
    edges = warmup + np.linspace(0, measured, n_blocks + 1).round().astype(int)
    block_sums = np.zeros((n_blocks,) + problem.batch_shape + (k,))

    if k == size:
        start = np.eye(size)
    else:
        # A leading-k frame must not start orthogonal to (or be wiped out along) the fastest
        # directions, as coordinate axes can be (e.g. LSTM h-axes at zero weights): start
        # from a Haar-random frame.
        start = np.linalg.qr(as_rng(rng).standard_normal((size, k)))[0]
    frame = _Frame(np.broadcast_to(start, problem.batch_shape + (size, k)).copy())
    state = problem.state0
    boundaries = set(edges.tolist())
    for t in range(problem.n_steps):
        state, jac = problem.cell(t)._jacobian_operator(state, problem.input_at(t), path)
        _check_state(state, t + 1)
        done = t + 1
        if frame.push(jac) or done in boundaries:
            log_r = sum(_log_abs(np.diagonal(r, axis1=-2, axis2=-1)) for r in frame.flush())
            if done > warmup:
                block_sums[np.searchsorted(edges, done, side="left") - 1] += log_r
    lengths = np.diff(edges).reshape((n_blocks,) + (1,) * (len(problem.batch_shape) + 1))
    block_exponents = block_sums / lengths
    exponents = block_sums.sum(axis=0) / measured
    with np.errstate(invalid="ignore"):
        if n_blocks > 1:
            spread = np.std(block_exponents, axis=0, ddof=1)
            stderr = spread / math.sqrt(n_blocks)
        else:
            stderr = np.full_like(exponents, np.nan)
    order = np.argsort(-exponents, axis=-1, kind="stable")
    return LyapunovSpectrum(
        exponents=np.take_along_axis(exponents, order, -1),
        stderr=np.take_along_axis(stderr, order, -1),
        block_exponents=np.take_along_axis(block_exponents, order[None], -1),
        n_steps=measured,
    )


# ------------------------------------------------------------------------------------------
# finite-time singular values
def _regrade(log_coeff_rows, coeff, v):
    """Row-graded product: rows i of (coeff * e^{log scales}) @ v, returned as (l, V).

    ``coeff`` (P, P) and ``log_coeff_rows`` (P, P) hold a matrix A with
    A_ik = coeff_ik * exp(log_coeff_rows_ik); the result is A @ v = diag(e^l) V with every row
    of V of max-norm 1 (or zero), computed without ever forming a number outside float64.
    """
    masked = np.where(coeff != 0, log_coeff_rows, -np.inf)
    row_max = np.max(masked, axis=-1)
    with np.errstate(invalid="ignore"):
        shift = masked - row_max[..., None]
    # A row whose entries are all zero has row_max = -inf and shift NaN: it stays zero.
    scaled = coeff * np.exp(np.where(np.isnan(shift), -np.inf, shift))
    product = scaled @ v
    peak = np.max(np.abs(product), axis=-1)
    safe = np.where(peak > 0, peak, 1.0)
    with np.errstate(divide="ignore"):
        log_rows = np.where(peak > 0, row_max + np.log(safe), -np.inf)
    return log_rows, product / safe[..., None]


def _absorb(r, log_rows, v):
    """R diag(e^l) V as diag(e^l') V' (V' upper triangular, row-graded)."""
    return _regrade(np.broadcast_to(log_rows[..., None, :], r.shape), r, v)


def _graded_log_svd(log_rows, v, *, max_iter: int = 60):
    """Natural-log singular values of diag(e^log_rows) V for upper-triangular, row-graded V.

    Unshifted QR iteration on the graded factor: with V^T = Q2 R2, the matrix R2 diag(e^l)
    has the same singular values and its off-diagonal entries shrink by the ratio of the
    singular values they couple, so widely separated values decouple in a few iterations
    without any number leaving float64. The matrix is then cut into diagonal blocks whose
    mutual coupling is below machine precision, and each block (whose values are close and
    therefore representable together) goes to LAPACK's SVD.

    Limit: after ``max_iter`` iterations a block that is still coupled goes to LAPACK as it
    is; if its values spanned more than float64's ~700 nats its smallest ones would lose
    relative accuracy (not seen in practice: coupled values are close by construction).
    """
    size = v.shape[-1]
    tiny = np.log(np.finfo(float).eps) - np.log(size)
    for _ in range(max_iter):
        coupling = _coupling(log_rows, v)
        if not np.any(coupling > tiny):
            break
        _, r2, _ = _qr(v.T)
        log_coeff = np.broadcast_to(log_rows[None, :], r2.shape)
        log_rows, v = _regrade(log_coeff, r2, np.eye(size))
    coupling = _coupling(log_rows, v)
    # A cut before index p is allowed when no entry couples rows above it to columns below it.
    cut_ok = [True] + [
        not np.any(coupling[:p, p:] > tiny) for p in range(1, size)
    ] + [True]
    out = []
    start = 0
    for p in range(1, size + 1):
        if cut_ok[p]:
            rows = log_rows[start:p]
            top = np.max(rows)
            if not np.isfinite(top):
                out.append(np.full(p - start, -np.inf))
            else:
                block = np.exp(rows - top)[:, None] * v[start:p, start:p]
                sv = np.linalg.svd(block, compute_uv=False)
                out.append(_log_abs(sv) + top)
            start = p
    return np.sort(np.concatenate(out))[::-1]


def _coupling(log_rows, v):
    """log(|M_ij| / min(|M_ii|, |M_jj|)) for i < j, M = diag(e^l) V; -inf on and below the diagonal."""
    log_entries = log_rows[:, None] + _log_abs(v)
    log_diag = np.diagonal(log_entries)
    floor = np.minimum(log_diag[:, None], log_diag[None, :])
    with np.errstate(invalid="ignore"):
        ratio = log_entries - floor
    ratio = np.where(np.triu(np.ones(v.shape, dtype=bool), 1), ratio, -np.inf)
    # A zero diagonal entry with a non-zero entry in its row or column is fully coupled.
    return np.nan_to_num(ratio, nan=-np.inf, posinf=np.inf)


def _check_times(times, n_steps):
    if times is None:
        return np.array([n_steps])
    arr = np.asarray(times)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"`times` must be a 1-d sequence of integer steps in [0, T] = [0, {n_steps}]; got {describe(times)}."
        )
    bad = arr[(arr < 0) | (arr > n_steps)]
    if bad.size:
        raise ValueError(
            f"`times` must be integer steps in [0, T] = [0, {n_steps}]; got {int(bad[0])}."
        )
    return arr.astype(int)


def log_singular_values(cell, inputs, state0=None, times=None, path: str = "full") -> np.ndarray:
    r"""Natural-log singular values of P_t = J_t ... J_1 at the requested steps.

    The product is carried as :math:`P_t = Q\,\mathrm{diag}(e^{l})\,V` with Q orthonormal and
    V upper triangular with rows of max-norm 1 (QR accumulation, re-orthonormalised every few
    steps as in :func:`lyapunov_spectrum`); the singular values are then extracted from the
    graded factor by an unshifted QR iteration, so that values spanning far more than float64's
    range are each accurate relative to themselves, not to the largest.

    Parameters
    ----------
    cell, inputs, state0
        As in :func:`unroll`.
    times : sequence of int, optional
        Step counts in [0, T] (default: [T]). Time 0 gives P_0 = I, all zeros.
    path : str
        Jacobian path.

    Returns
    -------
    ndarray, shape (..., len(times), P)
        Descending in the last axis. An exactly zero singular value (a dead ReLU unit) is -inf.
    """
    problem = _problem(cell, inputs, state0)
    size = _check_path(problem, path)
    times = _check_times(times, problem.n_steps)
    wanted = set(times.tolist())
    batch = problem.batch_shape
    out = np.empty(batch + (len(times), size))
    frame = _Frame(np.broadcast_to(np.eye(size), batch + (size, size)).copy())
    log_rows = np.zeros(batch + (size,))
    v = np.broadcast_to(np.eye(size), batch + (size, size)).copy()
    results = {}

    def record(step):
        for index in np.ndindex(*batch):
            results.setdefault(step, {})[index] = _graded_log_svd(log_rows[index], v[index])

    if 0 in wanted:
        record(0)
    state = problem.state0
    for t in range(max(wanted)):
        state, jac = problem.cell(t)._jacobian_operator(state, problem.input_at(t), path)
        _check_state(state, t + 1)
        read = (t + 1) in wanted
        if frame.push(jac) or read:
            # Where singular values are read off, Q must be orthonormal to rounding.
            for r in frame.flush(orthonormal=read):
                log_rows, v = _absorb(r, log_rows, v)
        if read:
            record(t + 1)
    for j, step in enumerate(times.tolist()):
        for index in np.ndindex(*batch):
            out[index + (j,)] = results[step][index]
    return out


# ------------------------------------------------------------------------------------------
def gradient_norms(cell, inputs, state0=None, upstream=None, path: str = "full") -> np.ndarray:
    r"""Log-norm of the back-propagated gradient at every step.

    For the loss :math:`L = u \cdot s_T` (``u`` = ``upstream``) the gradient with respect to
    :math:`s_t` is :math:`g_t = J_{t+1}^T \cdots J_T^T u`, computed by vector-Jacobian products
    in O(T P^2) time. The vector is renormalised every step and its log-norm accumulated, so the
    result stays finite however fast it grows or decays. States are checkpointed every
    ~sqrt(T) steps and recomputed segment by segment on the way back, so memory grows as
    sqrt(T), not T.

    Parameters
    ----------
    cell, inputs, state0
        As in :func:`unroll`.
    upstream : array, shape (..., P), optional
        dL/ds_T along the path; the unit vector of equal entries 1/sqrt(P) by default.
    path : str
        Jacobian path (the vector lives in that path's coordinates).

    Returns
    -------
    ndarray, shape (..., T + 1)
        ``out[..., t] = log ||dL/ds_t||``; ``out[..., T] = log ||upstream||``. A gradient that is
        exactly zero (dead ReLU units) gives -inf from there back.
    """
    problem = _problem(cell, inputs, state0)
    size = _check_path(problem, path)
    batch = problem.batch_shape
    if upstream is None:
        vec = np.full(batch + (size,), 1.0 / math.sqrt(size))
    else:
        vec = finite_array(upstream, "upstream")
        if vec.ndim == 0 or vec.shape[-1] != size:
            raise ValueError(
                f"`upstream` must have last dimension {size} (path {path!r}); got shape {vec.shape}."
            )
        vec = np.broadcast_to(vec, batch + (size,)).copy()
        if np.any(np.linalg.norm(vec, axis=-1) == 0):
            raise ValueError("`upstream` must have a non-zero norm; got all zeros.")
    n_steps = problem.n_steps
    stride = max(1, math.isqrt(n_steps))
    checkpoints = {}
    state = problem.state0
    for t in range(n_steps):
        if t % stride == 0:
            checkpoints[t] = state
        state = problem.cell(t)._step(state, problem.input_at(t))
        _check_state(state, t + 1)

    out = np.empty(batch + (n_steps + 1,))
    norm = np.linalg.norm(vec, axis=-1)
    log_norm = _log_abs(norm)
    vec = vec / np.where(norm > 0, norm, 1.0)[..., None]
    out[..., n_steps] = log_norm
    for start in sorted(checkpoints, reverse=True):
        stop = min(start + stride, n_steps)
        segment = [checkpoints[start]]
        for t in range(start, stop - 1):
            segment.append(problem.cell(t)._step(segment[-1], problem.input_at(t)))
        for t in range(stop - 1, start - 1, -1):
            vec = problem.cell(t)._vjp(segment[t - start], problem.input_at(t), vec, path)
            norm = np.linalg.norm(vec, axis=-1)
            log_norm = log_norm + _log_abs(norm)
            vec = vec / np.where(norm > 0, norm, 1.0)[..., None]
            out[..., t] = log_norm
    return out


# ------------------------------------------------------------------------------------------
def untied(make, rng=None):
    """A callable ``t -> Cell`` with fresh, reproducible weights at every step.

    Parameters
    ----------
    make : callable (rng) -> Cell
        Builds one cell from a Generator, e.g. ``lambda r: make_cell("rnn", 64, rng=r)``.
    rng : seed or Generator
        Root of the per-step seeds: step t uses ``SeedSequence(root, spawn_key=(t,))``, so the
        cell of step t is the same on every call and independent of the other steps.

    Returns
    -------
    callable int -> Cell
    """
    if not callable(make):
        raise TypeError(f"`make` must be a callable rng -> Cell; got {describe(make)}.")
    root = int(as_rng(rng).integers(2**63))

    def cell_at(t: int) -> Cell:
        return make(np.random.default_rng(np.random.SeedSequence(root, spawn_key=(int(t),))))

    return cell_at
