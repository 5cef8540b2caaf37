"""Re-orthonormalisation of a frame pushed through Jacobians: the QR kernels, the accuracy each
costs, and the planner that decides how many steps to accumulate before the next QR."""

from __future__ import annotations

import functools
import math

import numpy as np
import scipy.linalg as _linalg
from scipy.linalg import blas as _blas
from scipy.linalg import lapack as _lapack


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
    first, so that J_m ... J_1 Q_start = Q R_last ... R_first. ``flush`` has the signature of
    :meth:`_EnsembleFrame.flush` (one member, index ``()``), so that callers serve both.
    """

    everyone = True

    def __init__(self, frame):
        self.start = frame
        self.frame = frame
        self.block = []
        self.interval, self.kernel = 1, "householder"

    def push(self, jac) -> bool:
        self.block.append(jac)
        self.frame = jac @ self.frame
        return len(self.block) >= self.interval

    def flush(self, due=True, orthonormal: bool = False):
        q, factors, self.interval, self.kernel = _factor(
            self.frame, self.start, lambda: self.block, len(self.block), self.kernel, orthonormal
        )
        self.start = self.frame = q
        self.block = []
        return (), [factors]


def _factor(frame, start, block, steps, kernel, orthonormal):
    """QR of a frame pushed ``steps`` steps from ``start``: ``(q, factors, interval, kernel)``.

    ``block()`` gives the block's Jacobians (needed only to redo a block that lost more than
    allowed); the returned interval and kernel are the plan for the next block.
    """
    q, r, loss = _qr(frame, "reflectors" if orthonormal else kernel)
    factors = [r]
    loss_rate = loss / steps
    if steps > 1 and loss > _MAX_LOSS["householder"]:
        # The dynamics changed within the block and it lost more than allowed: redo it
        # one step at a time (each single step is as accurate as a QR can make it).
        q, factors, loss_rate = start, [], 0.0
        for i, jac in enumerate(block()):
            last = orthonormal and i == steps - 1
            q, r, loss = _qr(jac @ q, "reflectors" if last else "householder")
            factors.append(r)
            loss_rate = max(loss_rate, loss)
    log_r = sum(_log_abs(np.diagonal(r, axis1=-2, axis2=-1)) for r in factors)
    with np.errstate(invalid="ignore"):
        log_rate = float(np.max(np.abs(log_r))) / steps
    interval, kernel = _plan(loss_rate, log_rate)
    return q, factors, interval, kernel


@functools.lru_cache(maxsize=64)
def _workspace(routine: str, shape) -> int:
    """LAPACK's optimal workspace; the f2py default (the minimum) runs the unblocked, BLAS-2
    algorithm, several times slower than the blocked one."""
    probe = np.zeros(shape)
    if routine == "geqrf":
        return max(1, int(_lapack.dgeqrf(probe, lwork=-1)[2][0]))
    return max(1, int(_lapack.dorgqr(probe, np.zeros(shape[1]), lwork=-1)[1][0]))


# ------------------------------------------------------------------------------------------
# ensembles
def _take(jac, index):
    """Member ``index`` (a tuple into the batch shape) of a batched Jacobian or operator."""
    if isinstance(jac, np.ndarray):
        return jac[index]
    return jac.member(index)


class _EnsembleFrame:
    """:class:`_Frame` for a batch of independent frames (an ensemble, or batched inputs).

    The frames move together (one stacked product per step), but every member keeps its own
    plan and is factored by the same kernels as a lone frame, so a member's QR schedule,
    accuracy and result are those it would have alone, to rounding. ``push`` returns the mask
    of members whose interval is reached; ``flush(due)`` factors those members.
    """

    def __init__(self, frame):
        self.frame = frame  # (*batch, P, k)
        self.batch = frame.shape[:-2]
        self.start = frame.copy()
        self.block = []  # Jacobians since the earliest pending member's last QR
        self.pending = np.zeros(self.batch, dtype=int)
        self.interval = np.ones(self.batch, dtype=int)
        self.kernel = np.full(self.batch, "householder", dtype=object)
        self.everyone = np.ones(self.batch, dtype=bool)

    def push(self, jac) -> np.ndarray:
        self.block.append(jac)
        self.frame = jac @ self.frame
        self.pending += 1
        return self.pending >= self.interval

    def flush(self, due, orthonormal: bool = False):
        """Factor the members where ``due`` (a mask of the batch shape) holds.

        Returns ``(due_index, factors)``: the members' indices (a tuple of index arrays, as
        ``np.nonzero`` gives) and, per member, its R factors earliest first.
        """
        due_index = np.nonzero(due)
        factors = []
        for member in zip(*due_index):
            steps = int(self.pending[member])
            block = self.block[len(self.block) - steps :]
            q, member_factors, interval, kernel = _factor(
                self.frame[member], self.start[member], lambda: [_take(j, member) for j in block],
                steps, self.kernel[member], orthonormal,
            )
            self.frame[member] = self.start[member] = q
            self.pending[member], self.interval[member], self.kernel[member] = 0, interval, kernel
            factors.append(member_factors)
        keep = int(self.pending.max())
        self.block = self.block[len(self.block) - keep :] if keep else []
        return due_index, factors


def make_frame(frame):
    """A :class:`_Frame` for one frame (P, k), an :class:`_EnsembleFrame` for a batch of them."""
    return _Frame(frame) if frame.ndim == 2 else _EnsembleFrame(frame)
