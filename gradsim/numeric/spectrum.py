"""Lyapunov exponents by QR (Benettin) re-orthonormalisation."""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass

import numpy as np

from .._validate import as_rng, describe, positive_int
from ._problem import _check_path, _check_state, _jacobian_again, _problem
from .qr import make_frame


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
    """

    exponents: np.ndarray
    stderr: np.ndarray
    block_exponents: np.ndarray
    n_steps: int
    participation: np.ndarray | None = None
    block_participation: np.ndarray | None = None


def lyapunov_spectrum(
    cell, inputs, state0=None, k=None, warmup: int = 0, path: str = "full", *, n_blocks: int = 20,
    rng=0, participation: bool = False,
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
    frame = make_frame(np.broadcast_to(start, problem.batch_shape + (size, k)).copy())
    state = problem.state0
    boundaries = set(edges.tolist())
    block = 0  # the averaging block that a QR after `done` steps reports to
    # Growth of each member's current QR block already credited to earlier averaging blocks:
    # a boundary between averaging blocks reads the growth so far without a QR (frame.peek),
    # so that the members keep their own QR schedules.
    credited = np.zeros(problem.batch_shape + (k,))
    if participation:
        block_pr = np.zeros((n_blocks,) + problem.batch_shape)
    for t in range(problem.n_steps):
        cell_t, x_t, previous = problem.cell(t), problem.input_at(t), state
        state, jac = cell_t._jacobian_operator(previous, x_t, path)
        _check_state(state, t + 1)
        done = t + 1
        if done > warmup:
            while done > edges[block + 1]:
                block += 1
        if frame.push(jac, functools.partial(_jacobian_again, cell_t, previous, x_t, path)):
            index, _, growths = frame.flush()
            for i, growth in enumerate(growths):
                member = tuple(axis[i] for axis in index)
                if done > warmup:
                    block_sums[block][member] += growth - credited[member]
                credited[member] = 0.0
        if done in boundaries:
            growth, readable = frame.peek()
            fresh = growth - credited
            credited = growth
            # A member too aligned to be read without a QR has its QR now (and the frame may
            # take others along).
            index, _, growths = frame.flush(np.logical_not(readable))
            for i, member_growth in enumerate(growths):
                member = tuple(axis[i] for axis in index)
                fresh[member] = member_growth - (credited[member] - fresh[member])
                credited[member] = 0.0
            if done > warmup:
                block_sums[block] += fresh
        if participation and done > warmup:
            block_pr[block] += _participation_ratio(frame.frame)
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
    return LyapunovSpectrum(
        exponents=np.take_along_axis(exponents, order, -1),
        stderr=np.take_along_axis(stderr, order, -1),
        block_exponents=np.take_along_axis(block_exponents, order[None], -1),
        n_steps=measured,
        **extra,
    )


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
