"""Re-orthonormalisation of a frame pushed through Jacobians: the QR kernels, the accuracy each
costs, and the planner that decides how many steps to accumulate before the next QR."""

from __future__ import annotations

import functools
import math

import numpy as np
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
# Longest block: the frame keeps only a recipe per step (its state and input), so this bounds
# memory lightly; the accuracy limits and _MAX_LOG_SCALE decide the interval long before it.
_MAX_INTERVAL = 64


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
        # (min in floats first: a rate near zero makes the quotient inf, which int() refuses)
        cap = max(1, int(min(cap, _MAX_LOG_SCALE / log_rate)))
    best = (math.inf, 1, "householder")
    for kernel, limit in _MAX_LOSS.items():
        # Plan several steps for half the limit: the loss of a block fluctuates with the inputs
        # and grows faster than linearly once columns align, and a block over it is redone.
        # A single step may use the whole limit (_qr falls back to Householder beyond it).
        steps = cap if loss_rate <= 0 else int(min(cap, 0.5 * limit / loss_rate))
        if steps == 0 and loss_rate <= limit:
            steps = 1
        if steps >= 1:
            best = min(best, ((steps + _QR_COST[kernel]) / steps, steps, kernel))
    return best[1], best[2]


def _loss_from(norms, diag) -> float:
    """max_k log(||a_k|| / |R_kk|), the accuracy a QR costs (see the module notes), from the
    column norms of A and the diagonal of R."""
    with np.errstate(divide="ignore", invalid="ignore"):
        worst = float(np.max(norms / np.abs(diag)))
    if 0 < worst < math.inf:
        return math.log(worst)
    # Zero columns (0/0) carry no information to lose; a zero R_kk under a non-zero column
    # loses everything (inf).
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log(norms) - np.log(np.abs(diag))
    return float(np.max(np.where(norms == 0, 0.0, ratio)))


def _gram(matrix):
    """A^T A (upper triangle) by syrk, without the copy f2py makes of a C-ordered A."""
    if matrix.flags.c_contiguous:
        return _blas.dsyrk(1.0, matrix.T, trans=0)
    return _blas.dsyrk(1.0, matrix, trans=1)


def _qr(matrix, kernel: str = "householder"):
    """Thin QR of one frame ``matrix`` (P, k), P >= k: returns ``(q, r, loss)`` (stacks of
    frames go to :func:`_stacked_qr`).

    ``"cholesky"``: R = chol(A^T A), Q = A R^-1, kept only if its loss is within the Cholesky
    limit, else redone by Householder. ``"householder"``: Householder R and Q = A R^-1 by a
    triangular solve, cheaper than forming Q from the reflectors; Q's loss of orthogonality
    (~eps * cond) does not enter the accumulated R, because A = Q R holds to rounding whatever
    Q is. Beyond the Householder limit (near-singular R, dead units), and for
    ``"reflectors"``, Q is formed from the reflectors: orthonormal to rounding.
    """
    if kernel == "cholesky":
        gram = _gram(matrix)
        norms = np.sqrt(np.diagonal(gram))
        # syrk fills the upper triangle only (the lower stays zero), as potrf reads it.
        r, info = _lapack.dpotrf(gram, lower=0, clean=0, overwrite_a=1)
        if info == 0 and np.all(np.diagonal(r) > 0):
            loss = _loss_from(norms, np.diagonal(r))
            if loss <= _MAX_LOSS["cholesky"]:
                return _blas.dtrsm(1.0, r, matrix, side=1, lower=0), r, loss
    k = matrix.shape[1]
    factors, tau, _, _ = _lapack.dgeqrf(matrix, lwork=_workspace("geqrf", matrix.shape))
    r = factors[:k] * _upper(k)
    diag = np.diagonal(r)
    loss = _loss_from(np.sqrt(np.einsum("ij,ij->j", matrix, matrix)), diag)
    # Q = A R^-1 needs every R_kk non-zero (a zero column has R_kk = 0 yet loses nothing).
    solvable = loss < math.inf and (loss > -math.inf and 0.0 not in diag)
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

    def __init__(self, frame):
        self.start = frame
        self.frame = frame
        self.block = []
        self.interval, self.kernel = 1, "householder"

    def push(self, jac, remake) -> bool:
        """Multiply the frame by ``jac``; ``remake()`` gives ``jac`` again should the block have
        to be redone (the Jacobians themselves are not kept: a block may be long)."""
        self.block.append(remake)
        self.frame = jac @ self.frame
        return len(self.block) >= self.interval

    def flush(self, members=None, orthonormal: bool = False):
        if not self.block or (members is not None and not members):  # nothing since the last QR
            return (), [], []
        q, factors, growth, self.interval, self.kernel = _factor(
            self.frame, self.start, lambda: (remake() for remake in self.block), len(self.block),
            self.kernel, orthonormal,
        )
        self.start = self.frame = q
        self.block = []
        return (), [factors], [growth]

    def peek(self):
        """(log|R_ii| of the current block so far, readable), without a QR: see :func:`_peek`."""
        return _peek(self.frame)


def _factor(frame, start, block, steps, kernel, orthonormal):
    """QR of a frame pushed ``steps`` steps from ``start``.

    Returns ``(q, factors, growth, interval, kernel)``: the new frame, the R factors earliest
    first, their summed log|R_ii| (the block's growth, (k,)), and the plan for the next block.
    ``block()`` gives the block's Jacobians (needed only to redo a block that lost more than
    allowed).
    """
    q, r, loss = _qr(frame, "reflectors" if orthonormal else kernel)
    factors = [r]
    loss_rate = loss / steps
    if steps > 1 and loss > _MAX_LOSS["householder"]:
        # The dynamics changed within the block and it lost more than allowed: redo it
        # one step at a time (each single step is as accurate as a QR can make it).
        q, factors, loss_rate = _redo(start, block(), steps, orthonormal)
    with np.errstate(divide="ignore", invalid="ignore"):
        growth = np.log(np.abs(np.diagonal(factors[0])))
        for r in factors[1:]:
            growth += np.log(np.abs(np.diagonal(r)))
        log_rate = float(np.max(np.abs(growth))) / steps
    interval, kernel = _plan(loss_rate, log_rate)
    return q, factors, growth, interval, kernel


@functools.lru_cache(maxsize=64)
def _upper(k: int) -> np.ndarray:
    """The 0/1 mask of the upper triangle of a k x k matrix (np.triu's, built once)."""
    mask = np.triu(np.ones((k, k)))
    mask.flags.writeable = False
    return mask


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
    """Member ``index`` (a tuple into the batch shape) of a batched Jacobian or operator; a
    Jacobian without batch dimensions (one network's) is every member's."""
    if isinstance(jac, np.ndarray):
        return jac if jac.ndim == 2 else jac[index]
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
        self.block = []  # remakes of the Jacobians since the earliest pending member's last QR
        self.pending = np.zeros(self.batch, dtype=int)
        self.interval = np.ones(self.batch, dtype=int)
        self.kernel = np.full(self.batch, "householder", dtype=object)

    def peek(self):
        """(log|R_ii| of every member's current block so far, readable mask), without a QR
        (see :func:`_peek`)."""
        return _peek(self.frame)

    def push(self, jac, remake) -> bool:
        """Advance every member one step; True when some member's interval is reached.
        ``remake()`` gives ``jac`` again should a member's block have to be redone."""
        self.block.append(remake)
        self.frame = jac @ self.frame
        self.pending += 1
        return bool(np.any(self.pending >= self.interval))

    def flush(self, members=None, orthonormal: bool = False):
        """Factor the members whose interval is reached, or those of the mask ``members``
        (True: all of them).

        Returns ``(due_index, factors, growths)``: the members' indices (a tuple of index
        arrays, as ``np.nonzero`` gives) and, per member, its R factors earliest first and
        their summed log|R_ii|.
        """
        # Members that had their QR this very step have nothing to factor.
        due = (self.pending >= self.interval) if members is None else (self.pending > 0) & members
        due_index = np.nonzero(due)
        factors, growths = [], []
        for member in zip(*due_index):
            steps = int(self.pending[member])
            block = self.block[len(self.block) - steps :]
            q, member_factors, growth, interval, kernel = _factor(
                self.frame[member], self.start[member], lambda: (_take(remake(), member) for remake in block),
                steps, self.kernel[member], orthonormal,
            )
            self.frame[member] = self.start[member] = q
            self.pending[member], self.interval[member], self.kernel[member] = 0, interval, kernel
            factors.append(member_factors)
            growths.append(growth)
        keep = int(self.pending.max())
        self.block = self.block[len(self.block) - keep :] if keep else []
        return due_index, factors, growths


# Frames with at least this many rows per column are "thin" (see _ThinFrames).
_THIN = 4
# Up to this many members are planned one by one (_plan), more at once (_plan_many, the same
# rule element by element): the cheaper of the two, same results.
_FEW = 8


def _redo(start, jacobians, steps, orthonormal):
    """A block redone one step at a time from ``start``: (q, factors, loss rate)."""
    q, factors, loss_rate = start, [], 0.0
    for i, jac in enumerate(jacobians):
        last = orthonormal and i == steps - 1
        q, r, loss = _qr(jac @ q, "reflectors" if last else "householder")
        factors.append(r)
        loss_rate = max(loss_rate, loss)
    return q, factors, loss_rate


def _plan_many(loss_rate, log_rate):
    """:func:`_plan` for arrays of members: (intervals, cholesky flags), element by element."""
    finite = np.isfinite(loss_rate) & np.isfinite(log_rate)
    loss_rate = np.where(finite, loss_rate, 1.0)
    log_rate = np.where(finite, log_rate, 1.0)
    positive = log_rate > 0
    with np.errstate(over="ignore"):
        quotient = _MAX_LOG_SCALE / np.where(positive, log_rate, 1.0)
    cap = np.where(positive, np.clip(np.floor(quotient), 1, _MAX_INTERVAL), _MAX_INTERVAL)
    best = np.full(loss_rate.shape, math.inf)
    best_steps = np.ones(loss_rate.shape)
    best_cholesky = np.zeros(loss_rate.shape, dtype=bool)
    for kernel, limit in _MAX_LOSS.items():
        # (a rate near zero makes the quotient overflow to inf: min() with the cap handles it)
        with np.errstate(over="ignore"):
            allowed = np.floor(0.5 * limit / np.where(loss_rate > 0, loss_rate, 1.0))
        steps = np.where(loss_rate <= 0, cap, np.minimum(cap, allowed))
        steps = np.where((steps == 0) & (loss_rate <= limit), 1, steps)
        cost = np.where(steps >= 1, (steps + _QR_COST[kernel]) / np.maximum(steps, 1), math.inf)
        # The tie-break of _plan's min over (cost, steps, kernel name): "cholesky" < "householder".
        cholesky = kernel == "cholesky"
        better = (steps >= 1) & (
            (cost < best) | ((cost == best) & ((steps < best_steps) | ((steps == best_steps) & cholesky)))
        )
        best = np.where(better, cost, best)
        best_steps = np.where(better, steps, best_steps)
        best_cholesky = np.where(better, cholesky, best_cholesky)
    return np.where(finite, best_steps, 1).astype(int), finite & best_cholesky


def _grams(frames):
    """A^T A of every member of a stack (..., P, k), each by its own 2-d product: a reduction
    done once per member in the same way, so that a member's bits do not depend on the stack."""
    out = np.empty(frames.shape[:-2] + (frames.shape[-1],) * 2)
    for member in np.ndindex(*frames.shape[:-2]):
        out[member] = frames[member].T @ frames[member]
    return out


def _stacked_qr(frames, cholesky):
    """Thin QR of a stack of frames (n, P, k): ``(q, r, loss)`` with ``loss`` (n,).

    Members flagged in ``cholesky`` (n,) get a Cholesky QR (Gram matrix, Cholesky factor,
    triangular solve) where it is within the Cholesky limit; the others, and those it fails,
    a Householder QR with Q from the reflectors (orthonormal to rounding).
    """
    n, _, k = frames.shape
    q = np.empty_like(frames)
    r = np.empty((n, k, k))
    loss = np.empty(n)
    householder = ~cholesky
    if cholesky.any():
        members = np.nonzero(cholesky)[0]
        a = frames[members]
        gram = _grams(a)
        norms = np.sqrt(np.diagonal(gram, axis1=-2, axis2=-1))
        try:
            lower = np.linalg.cholesky(gram)
        except np.linalg.LinAlgError:
            lower = None
        if lower is None:
            householder[members] = True
        else:
            diag = np.diagonal(lower, axis1=-2, axis2=-1)
            with np.errstate(divide="ignore", invalid="ignore"):
                member_loss = np.log(np.max(norms / np.abs(diag), axis=-1))
            good = np.all(diag > 0, axis=-1) & (member_loss <= _MAX_LOSS["cholesky"])
            kept = members[good]
            if kept.size:
                q[kept] = np.linalg.solve(lower[good], a[good].transpose(0, 2, 1)).transpose(0, 2, 1)
                r[kept] = lower[good].transpose(0, 2, 1)
                loss[kept] = member_loss[good]
            householder[members[~good]] = True
    if householder.any():
        members = np.nonzero(householder)[0]
        a = frames[members]
        q[members], r[members] = np.linalg.qr(a)
        norms = np.array([np.sqrt(np.einsum("ij,ij->j", a_m, a_m)) for a_m in a])
        diag = np.diagonal(r[members], axis1=-2, axis2=-1)
        loss[members] = [_loss_from(m_norms, m_diag) for m_norms, m_diag in zip(norms, diag)]
    return q, r, loss


class _ThinFrames:
    """Frames of a few columns (k <= P / 4), one or a batch, re-orthonormalised in stacked QRs.

    For a thin frame a lone QR costs far more in Python than in arithmetic, so the QRs of all
    the members due at a step are one stacked LAPACK call (:func:`_stacked_qr`). To make the
    members fall due together without depending on each other, every interval is a power of two
    and a QR comes at the multiples of its member's interval in global steps: each member's
    schedule and kernels are a function of its own losses alone, so its result does not depend on
    the other members (nor on whether it runs alone), bit for bit. The interval is the lone rule's
    (:func:`_plan_many`) rounded down to a power of two, and a block ends no later than planned.
    """

    def __init__(self, frame):
        # One network's frame stays (P, k) between QRs (its products are plain 2-d ones); the
        # bookkeeping below sees it as a batch of one.
        self.single = frame.ndim == 2
        self.frame = frame  # (*batch, P, k)
        self.batch = frame.shape[:-2] or (1,)
        self.start = self._stack(frame).copy()
        self.block = []  # remakes of the Jacobians since the earliest pending member's last QR
        self.steps = 0
        self.pending = np.zeros(self.batch, dtype=int)
        self.interval = np.ones(self.batch, dtype=int)
        self.cholesky = np.zeros(self.batch, dtype=bool)
        self.next_due = 1  # the earliest step at which some member's interval is reached
        self.counted = 0  # the step up to which `pending` is counted

    def _stack(self, frame):
        return frame[None] if self.single else frame

    def push(self, jac, remake) -> bool:
        """Advance every member one step; True when some member's interval is reached.
        ``remake()`` gives ``jac`` again should a member's block have to be redone."""
        self.block.append(remake)
        self.frame = jac @ self.frame
        self.steps += 1
        return self.steps >= self.next_due

    def flush(self, members=None, orthonormal: bool = False):
        """As :meth:`_EnsembleFrame.flush`; the growths are an array (n_due, k)."""
        # Steps are counted once per flush, not per push: pending = steps since the last QR.
        pending = self.pending + (self.steps - self.counted)
        if members is None:
            due = self.steps % self.interval == 0
        else:
            chosen = np.asarray(members, dtype=bool)
            due = np.broadcast_to(chosen.reshape(1) if self.single else chosen, self.batch)
        due = due & (pending > 0)
        due_index = np.nonzero(due)
        steps = pending[due_index]
        cholesky = self.cholesky[due_index] & (not orthonormal)
        frame = self._stack(self.frame)
        q, r, loss = _stacked_qr(frame[due_index], cholesky)
        factors = [[r_m] for r_m in r]
        loss_rate = loss / np.maximum(steps, 1)
        # A block that lost more than allowed is redone one step at a time, as a lone frame's.
        for i in np.nonzero((steps > 1) & (loss > _MAX_LOSS["householder"]))[0]:
            member = tuple(axis[i] for axis in due_index)
            block = self.block[len(self.block) - int(steps[i]) :]
            q[i], factors[i], loss_rate[i] = _redo(
                self.start[member], (_take(remake(), member) for remake in block), int(steps[i]), orthonormal
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            growths = np.log(np.abs(np.diagonal(r, axis1=-2, axis2=-1)))
            for i, member_factors in enumerate(factors):
                if len(member_factors) > 1:
                    growths[i] = sum(np.log(np.abs(np.diagonal(f))) for f in member_factors)
            log_rate = np.max(np.abs(growths), axis=-1) / np.maximum(steps, 1)
        if loss_rate.size <= _FEW:
            plans = [_plan(float(a), float(b)) for a, b in zip(loss_rate, log_rate)]
            intervals = np.array([steps_m for steps_m, _ in plans], dtype=int)
            cholesky = np.array([kernel == "cholesky" for _, kernel in plans], dtype=bool)
        else:
            intervals, cholesky = _plan_many(loss_rate, log_rate)
        # Rounded down to a power of two: 2 ** (bit length - 1), exact in integers.
        self.interval[due_index] = [1 << (int(m).bit_length() - 1) for m in intervals]
        self.cholesky[due_index] = cholesky
        frame[due_index] = q
        self.start[due_index] = q
        pending[due_index] = 0
        self.pending, self.counted = pending, self.steps
        # The next multiple of each member's interval, and the first of them.
        self.next_due = int(np.min((self.steps // self.interval + 1) * self.interval))
        keep = int(pending.max())
        self.block = self.block[len(self.block) - keep :] if keep else []
        if self.single:
            return (), factors, list(growths)
        return due_index, factors, growths

    def peek(self):
        """(log|R_ii| of every member's current block so far, readable mask), without a QR."""
        growth, readable = _peek(self._stack(self.frame))
        if self.single:
            return growth[0], bool(readable[0])
        return growth, readable


def _peek(frame):
    """The growth log|R_ii| of ``frame`` (..., P, k) = Q R since its block began, from the
    Cholesky factor of its Gram matrix, and the mask of members for which that is accurate.

    It reads a block's growth between QRs (at the edges of averaging blocks) without
    re-orthonormalising, so the QR schedule is not disturbed. Its error is ~eps * cond^2 of the
    column-scaled frame; the test below bounds cond by max ||a_k|| / R_kk, which can
    underestimate it (against a QR every step, reads were seen off by up to 7e-7 in log R_kk,
    not the 1e-8 the limit aims at); a member outside the limit needs a QR instead. It only
    decides which averaging block a growth is credited to (so block exponents, hence standard
    errors, may carry ~1e-7 per block), never the exponents: every growth is credited in full
    at the next QR. Local exponents (``local_steps``) are read by Householder instead. Each member's Cholesky factor is LAPACK's potrf on that member alone, so one
    network and an ensemble's member give the same bits.
    """
    gram = _grams(frame)
    batch = gram.shape[:-2]
    lower = np.zeros_like(gram)
    readable = np.ones(batch, dtype=bool)
    try:
        lower[...] = np.linalg.cholesky(gram)
    except np.linalg.LinAlgError:
        for member in np.ndindex(*batch):
            try:
                lower[member] = np.linalg.cholesky(gram[member])
            except np.linalg.LinAlgError:
                readable[member] = False
    diag = np.diagonal(lower, axis1=-2, axis2=-1)
    norms = np.sqrt(np.diagonal(gram, axis1=-2, axis2=-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        worst = np.max(norms / diag, axis=-1)
        readable &= np.all(diag > 0, axis=-1) & (np.log(worst) <= _MAX_LOSS["cholesky"])
        growth = np.where(readable[..., None], np.log(np.where(diag > 0, diag, 1.0)), 0.0)
    return growth, (bool(readable) if not batch else readable)


def make_frame(frame):
    """The frame object for ``frame`` (..., P, k): :class:`_ThinFrames` for a few columns
    (k <= P / 4), else a :class:`_Frame` for one frame and an :class:`_EnsembleFrame` for a batch."""
    size, k = frame.shape[-2:]
    if _THIN * k <= size:
        return _ThinFrames(frame)
    return _Frame(frame) if frame.ndim == 2 else _EnsembleFrame(frame)
