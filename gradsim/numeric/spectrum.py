"""Lyapunov exponents by QR (Benettin) re-orthonormalisation."""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass

import numpy as np

from .._validate import as_rng, describe, positive_int
from ._problem import _check_path, _check_state, _jacobian_again, _problem
from .qr import _MAX_LOSS, make_frame


@dataclass(frozen=True)
class LyapunovSpectrum:
    r"""Result of :func:`lyapunov_spectrum`.

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
    participation : ndarray, shape (...), or None
        With ``participation=True``: the participation ratio :math:`1 / \sum_i q_i^4` of the
        leading Lyapunov vector q (the frame's first column, unit norm), averaged over the
        measured steps; between 1 (one coordinate) and P (all coordinates alike). Divide by P
        for the fraction of coordinates it spreads over. None unless asked for.
    block_participation : ndarray, shape (n_blocks, ...), or None
        Its average over each block of :attr:`block_exponents`; None unless asked for.
    local_exponents : ndarray, shape (n_windows, ..., k), or None
        With ``local_steps=L``: the local (finite-time) exponents, the growth rate per step over
        each of the consecutive windows of L measured steps (the last may be shorter), in the
        column order of :attr:`exponents` (like :attr:`block_exponents`; a window's values need
        not be descending). Their length-weighted mean is :attr:`exponents` (to rounding); with
        L = 1 they are the per-step log|R_ii|. n_windows * prod(batch) * k floats. None unless
        asked for.
    local_lengths : ndarray of int, shape (n_windows,), or None
        The steps in each window (L, except perhaps the last); None unless asked for.
    """

    exponents: np.ndarray
    stderr: np.ndarray
    block_exponents: np.ndarray
    n_steps: int
    participation: np.ndarray | None = None
    block_participation: np.ndarray | None = None
    local_exponents: np.ndarray | None = None
    local_lengths: np.ndarray | None = None


def lyapunov_spectrum(
    cell, inputs, state0=None, k=None, warmup: int = 0, path: str = "full", *, n_blocks: int = 20,
    rng=0, participation: bool = False, local_steps: int | None = None,
) -> LyapunovSpectrum:
    r"""Lyapunov exponents of the Jacobian products by QR (Benettin et al. 1980) re-orthonormalisation.

    A k-column orthonormal frame is pushed forward, :math:`Q \leftarrow J_t Q`, and
    re-orthonormalised by QR; the exponents are the time averages of :math:`\log|R_{ii}|`.
    The QR is done every few steps, adaptively: the last QR's spread of growth rates predicts
    how fast the frame's condition number grows, and the next QR comes before rounding could
    cost more than 1e-8 relative accuracy in any R_ii (at least every 256 steps). Where the
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
    participation : bool
        Also measure the participation ratio of the leading Lyapunov vector, the frame's first
        column q (unit norm), :math:`\mathrm{PR} = 1 / \sum_i q_i^4`, at every measured step
        (Engelken, Wolf & Abbott 2023's code reads it after each QR; the first column of
        a Gram-Schmidt frame is the first pushed column normalised, so reading it every step
        needs no QR and does not depend on the QR schedule). It is the vector whose growth
        gives the first exponent before sorting: the leading one, unless the frame started
        orthogonal to it. Costs O(P) per step and changes no other result.
    local_steps : int, optional
        Also measure the local exponents: the measured steps (after the warm-up) are cut into
        consecutive windows of ``local_steps`` steps (the last one shorter when they do not
        divide), and each window's finite-time exponents, its summed log|R_ii| over its length,
        are returned as :attr:`LyapunovSpectrum.local_exponents`. Their distribution (the
        fluctuations of the local exponents) is what the literature reads beside the averages;
        with ``local_steps=1`` they are the per-step log|R_ii| of a QR-every-step method, read
        without forcing a QR every step: a window edge reads the growth so far from the
        frame's Householder R without changing the frame, and makes a QR only where the frame
        is too aligned to be read (beyond the 8.8 nats of the Cholesky limit, where a block
        edge's read gives up too). Each QR and each read is accurate to 1e-8 in log|R_ii|, so a
        window of n steps is within (n + 2) * 1e-8 / n <= 3e-8 (against a QR every step:
        < 1e-9 in the tests). Costs one Householder R of the frame per window edge (at L = 1
        about a QR per step: ~1.7x the run time of N = 64 without windows, ~1.05x at L = 10)
        and one Gram matrix per QR. Memory: n_windows * prod(batch) * k floats (L = 1 at
        T = 1e5 with k = 512: 400 MB). The averaging blocks keep their own reads and are
        unchanged bit for bit, except where a window edge forces a QR (the QR schedule then
        changes: the exponents by rounding, ~1e-11, the blocks by their edges' read accuracy,
        ~1e-7 over a block). None (the default) measures nothing more and changes nothing.

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
    if local_steps is not None and (
        isinstance(local_steps, bool) or not isinstance(local_steps, numbers.Integral) or local_steps < 1
    ):
        raise ValueError(
            f"`local_steps` must be None or an integer >= 1 (steps per window of local exponents); "
            f"got {describe(local_steps)}."
        )
    measured = problem.n_steps - warmup
    n_blocks = min(n_blocks, measured)
    edges = warmup + np.linspace(0, measured, n_blocks + 1).round().astype(int)

    if k == size:
        start = np.eye(size)
    else:
        # A leading-k frame must not start orthogonal to (or be wiped out along) the fastest
        # directions, as coordinate axes can be (e.g. LSTM h-axes at zero weights): start
        # from a Haar-random frame.
        start = np.linalg.qr(as_rng(rng).standard_normal((size, k)))[0]
    frame = make_frame(np.broadcast_to(start, problem.batch_shape + (size, k)).copy())
    state = problem.state0
    # The averaging blocks, and the local windows when asked for: each a ledger of the growth
    # credited to it. Block b covers measured steps [edges[b], edges[b + 1]).
    blocks = _Ledger(edges, problem.batch_shape, k)
    ledgers = [blocks]
    if local_steps is not None:
        # Consecutive windows of local_steps steps from the end of the warm-up, the last shorter.
        window_edges = np.append(warmup + np.arange(0, measured, local_steps), warmup + measured)
        windows = _Ledger(window_edges, problem.batch_shape, k, exact_starts=True)
        ledgers.append(windows)
    boundaries = set().union(*(ledger.boundaries for ledger in ledgers))
    if participation:
        block_pr = np.zeros((n_blocks,) + problem.batch_shape)
    for t in range(problem.n_steps):
        cell_t, x_t, previous = problem.cell(t), problem.input_at(t), state
        state, jac = cell_t._jacobian_operator(previous, x_t, path)
        _check_state(state, t + 1)
        done = t + 1
        measuring = done > warmup
        if measuring:
            for ledger in ledgers:
                ledger.advance(done)
        if frame.push(jac, functools.partial(_jacobian_again, cell_t, previous, x_t, path)):
            index, _, growths = frame.flush()
            starts = _start_growths(frame, index, len(growths)) if local_steps is not None else None
            for ledger in ledgers:
                ledger.credit_qr(index, growths, measuring, starts)
        if done in boundaries:
            # The edge of a block or of a window: read the growth so far without a QR. A block
            # edge reads it as it always has (frame.peek: a Cholesky factor, accurate enough
            # for blocks, whose reads telescope over the run); a window edge by Householder
            # (see _read), as accurate as a QR, for windows as short as one step.
            unreadable = False
            if done in blocks.boundaries:
                growth, readable = frame.peek()
                unreadable = np.logical_not(readable)
            if local_steps is not None and done in windows.boundaries:
                window_growth, window_readable = _read(frame.frame)
                unreadable = unreadable | np.logical_not(window_readable)
            # A member too aligned to be read without a QR has its QR now; a ledger without an
            # edge here credits it as any QR.
            index, _, growths = frame.flush(unreadable)
            starts = _start_growths(frame, index, len(growths)) if local_steps is not None else None
            for ledger in ledgers:
                if done in ledger.boundaries:
                    read = growth if ledger is blocks else window_growth
                    ledger.credit_read(read, index, growths, measuring, starts)
                else:
                    ledger.credit_qr(index, growths, measuring, starts)
        if participation and measuring:
            block_pr[blocks.index] += _participation_ratio(frame.frame)
    block_sums = blocks.sums
    lengths = np.diff(edges).reshape((n_blocks,) + (1,) * (len(problem.batch_shape) + 1))
    block_exponents = block_sums / lengths
    # Sums over the blocks one block at a time: numpy's reductions may sum pairwise or in
    # order depending on the array's other dimensions, and a member's bits must not depend on
    # how many members there are.
    exponents = _sum_over_blocks(block_sums) / measured
    with np.errstate(invalid="ignore"):
        if n_blocks > 1:
            mean = _sum_over_blocks(block_exponents) / n_blocks
            spread = np.sqrt(_sum_over_blocks((block_exponents - mean) ** 2) / (n_blocks - 1))
            stderr = spread / math.sqrt(n_blocks)
        else:
            stderr = np.full_like(exponents, np.nan)
    order = np.argsort(-exponents, axis=-1, kind="stable")
    extra = {}
    if participation:
        extra["participation"] = _sum_over_blocks(block_pr) / measured
        extra["block_participation"] = block_pr / lengths[..., 0]
    if local_steps is not None:
        local_lengths = np.diff(window_edges)
        per_step = windows.sums / local_lengths.reshape((-1,) + (1,) * (len(problem.batch_shape) + 1))
        # In the column order of `exponents` (each member's own sort), like block_exponents.
        extra["local_exponents"] = np.take_along_axis(per_step, order[None], -1)
        extra["local_lengths"] = local_lengths
    return LyapunovSpectrum(
        exponents=np.take_along_axis(exponents, order, -1),
        stderr=np.take_along_axis(stderr, order, -1),
        block_exponents=np.take_along_axis(block_exponents, order[None], -1),
        n_steps=measured,
        **extra,
    )


class _Ledger:
    """Growth credited to consecutive windows of steps (the averaging blocks, or the windows of
    the local exponents), window ``w`` covering steps ``[edges[w], edges[w + 1])``.

    A QR credits its block's growth to the window current at that step; an edge reads the growth
    so far without a QR (``frame.peek`` for the blocks, :func:`_read` for the windows) and
    credits it to the window it closes. ``credited``
    holds, per member, the growth of its current QR block already credited to earlier windows,
    so that the members keep their own QR schedules whatever the edges.

    With ``exact_starts`` the growths are measured from orthonormal frames. A QR's new frame Q
    is orthonormal only to rounding (a Cholesky QR's to ~eps cond^2, up to ~1e-7 within its
    limit), Q = Q' S with S upper triangular near I, and what the next QR or read measures is
    the growth of Q's columns, diag R(J Q') S: a window edge would pass log|S_ii| from one
    window to the next. Over a whole run that telescopes away (so the exponents and the
    blocks, without it, are right to the QR's accuracy); the windows of local exponents, as
    short as one step, are credited log|S_ii| of the frame a QR leaves (``starts``) at that
    QR, and their reads count from it.
    """

    def __init__(self, edges, batch_shape, k, exact_starts=False):
        self.edges = edges
        self.boundaries = frozenset(edges.tolist())
        self.sums = np.zeros((len(edges) - 1,) + tuple(batch_shape) + (k,))
        self.index = 0  # the window that a QR after `done` steps reports to
        self.credited = np.zeros(tuple(batch_shape) + (k,))
        self.exact_starts = exact_starts

    def advance(self, done):
        while done > self.edges[self.index + 1]:
            self.index += 1

    def credit_qr(self, index, growths, measuring, starts):
        """Credit QR growths (per member, as ``frame.flush`` gives them) to the current window;
        ``starts``: log|S_ii| of each such member's new frame (see the class notes)."""
        for i, growth in enumerate(growths):
            member = tuple(axis[i] for axis in index)
            if self.exact_starts:
                if measuring:
                    self.sums[self.index][member] += (growth + starts[i]) - self.credited[member]
                self.credited[member] = starts[i]
            else:
                if measuring:
                    self.sums[self.index][member] += growth - self.credited[member]
                self.credited[member] = 0.0

    def credit_read(self, growth, index, growths, measuring, starts):
        """At an edge: the read ``growth`` (every member's), where the members
        ``index`` could not be read and had the QRs ``growths`` instead (``starts`` as in
        :meth:`credit_qr`)."""
        fresh = growth - self.credited
        # (a copy: other ledgers read the same growth)
        self.credited = growth.copy()
        for i, member_growth in enumerate(growths):
            member = tuple(axis[i] for axis in index)
            if self.exact_starts:
                fresh[member] = (member_growth + starts[i]) - (self.credited[member] - fresh[member])
                self.credited[member] = starts[i]
            else:
                fresh[member] = member_growth - (self.credited[member] - fresh[member])
                self.credited[member] = 0.0
        if measuring:
            self.sums[self.index] += fresh


def _read(frames):
    """The growth log|R_ii| of every frame of ``frames`` (..., P, k) since its QR block began,
    from a Householder R (geqrf; the frames are not changed), and the mask of those it reads:
    max_k log(||a_k|| / |R_kk|) <= 8.8 nats, the Cholesky limit that a block edge's read
    (``frame.peek``) uses too. Householder would be accurate to twice that, but a frame forced
    to a QR beyond 17.6 nats has its block redone step by step, whose plan then underestimates
    the alignment and the next block overruns again (measured: every block of an N = 64 rate
    network redone, 2.7x the time); at 8.8 nats the forced QR is an early, ordinary one.

    The Cholesky read of ``frame.peek`` is cheaper, but its error grows as eps times the square
    of the column-scaled frame's condition number, which exceeds (||a_k|| / R_kk)^2 by up to
    ~e^3 here (measured up to ~7e-7 in log R_kk near its limit, against a QR every step);
    Householder's grows as eps times the condition number (~5e-12 measured).
    Each member is factored on its own (its bits do not depend on the batch). Returns
    ``(growth (k,), bool)`` for one frame (P, k).
    """
    single = frames.ndim == 2
    stack = frames[None] if single else frames
    batch = stack.shape[:-2]
    growth = np.zeros(batch + stack.shape[-1:])
    readable = np.ones(batch, dtype=bool)
    for member in np.ndindex(*batch):
        a = stack[member]
        diag = np.abs(np.diagonal(np.linalg.qr(a, mode="r")))
        norms = np.sqrt(np.einsum("ij,ij->j", a, a))
        with np.errstate(divide="ignore", invalid="ignore"):
            worst = np.max(norms / diag)
            ok = bool(np.all(diag > 0) and np.log(worst) <= _MAX_LOSS["cholesky"])
            if ok:
                growth[member] = np.log(diag)
        readable[member] = ok
    if single:
        return growth[0], bool(readable[0])
    return growth, readable


def _start_growths(frame, index, count):
    """log|S_ii| of the frames that the last flush left for its ``count`` members ``index``,
    Q = Q' S with Q' orthonormal (see :class:`_Ledger`): from the Cholesky factor of Q^T Q,
    near I and so accurate to a few eps, each member's on its own (a member's bits do not
    depend on the batch). A frame whose Gram matrix is not positive definite (a zero column
    of a dead unit) counts as orthonormal: 0."""
    out = []
    for i in range(count):
        q = frame.frame[tuple(axis[i] for axis in index)]
        try:
            lower = np.linalg.cholesky(q.T @ q)
        except np.linalg.LinAlgError:
            out.append(np.zeros(q.shape[-1]))
            continue
        diag = np.diagonal(lower)
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append(np.where(diag > 0, np.log(np.where(diag > 0, diag, 1.0)), 0.0))
    return out


def _participation_ratio(frame):
    """1 / sum_i q_i^4 of the unit vector q along the first column of ``frame`` (..., P, k).

    The column is scaled by its largest entry first (between QRs it may have grown or shrunk by
    up to e^200, whose fourth power is outside float64). Each member's sums run over its own
    contiguous row, so a member's bits do not depend on the batch.
    """
    column = np.abs(frame[..., 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        u = column / np.max(column, axis=-1, keepdims=True)
        u2 = u * u
        return np.sum(u2, axis=-1) ** 2 / np.sum(u2 * u2, axis=-1)


def _sum_over_blocks(values):
    """values (n_blocks, ...) summed over the first axis in order, element by element."""
    total = values[0].copy()
    for block in values[1:]:
        total += block
    return total
