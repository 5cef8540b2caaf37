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
    return LyapunovSpectrum(
        exponents=np.take_along_axis(exponents, order, -1),
        stderr=np.take_along_axis(stderr, order, -1),
        block_exponents=np.take_along_axis(block_exponents, order[None], -1),
        n_steps=measured,
    )


def _sum_over_blocks(values):
    """values (n_blocks, ...) summed over the first axis in order, element by element."""
    total = values[0].copy()
    for block in values[1:]:
        total += block
    return total
