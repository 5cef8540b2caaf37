"""Finite-time singular values of the Jacobian product, each accurate on its own scale."""

from __future__ import annotations

import functools
import numpy as np
from scipy.linalg import blas as _blas

from .._validate import describe
from ._problem import _check_path, _check_state, _jacobian_again, _problem
from .qr import _log_abs, _qr, make_frame


# Largest span (nats) of row scales computed with one reference scale: a row whose scale is 500
# nats below the reference still has its leading terms far above float64's smallest normal
# number (e^-708).
_MAX_COLUMN_SPAN = 500.0
# A block of singular values that stay coupled may span at most this many nats when it goes to
# LAPACK's SVD, whose error is ~ eps * sigma_max: relative error <= eps * e^8.4 = 1e-12 on the
# block's smallest value, far below the 1e-8 that the accumulation guarantees.
_MAX_BLOCK_SPAN = 8.4


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
    return _normalise_rows(row_max, scaled @ v)


def _normalise_rows(log_scale, product):
    """diag(e^log_scale) product as diag(e^l) V with rows of V of max-norm 1 (or zero)."""
    peak = np.max(np.abs(product), axis=-1)
    safe = np.where(peak > 0, peak, 1.0)
    with np.errstate(divide="ignore"):
        log_rows = np.where(peak > 0, log_scale + np.log(safe), -np.inf)
    return log_rows, product / safe[..., None]


def _absorb(r, log_rows, v):
    """R diag(e^l) V as diag(e^l') V' (V' upper triangular, row-graded).

    Row i of the product is scaled by m_i, the largest l_j over its non-zero R_ij. Rows whose
    m_i lie within ``_MAX_COLUMN_SPAN`` nats of each other are computed together: R's columns
    are scaled by e^(l - m_ref) (P exponentials, not the P^2 of :func:`_regrade`) and the rows
    multiplied in one product (a triangular ``trmm``, half a matmul's flops, when one group
    holds them all). Terms more than ~700 nats below a row's scale underflow to zero, far below
    its rounding.
    """
    if v.ndim != 2:
        return _regrade(np.broadcast_to(log_rows[..., None, :], r.shape), r, v)
    row_max = np.max(np.where(r != 0, log_rows[None, :], -np.inf), axis=-1)
    live = np.isfinite(row_max)
    out_rows = np.full(r.shape[0], -np.inf)
    out = np.zeros_like(v)
    if not live.any():
        return out_rows, out
    low = row_max[live].min()
    group = np.where(live, np.floor((row_max - low) / _MAX_COLUMN_SPAN), -1).astype(int)
    for g in np.unique(group[live]):
        rows = np.nonzero(group == g)[0]
        ref = row_max[rows].max()
        with np.errstate(under="ignore", over="ignore"):
            # exp of at most 0 where R_ij != 0; larger l_j only meet R_ij = 0 (capped, times 0).
            scale = np.exp(np.minimum(log_rows - ref, 0.0))
        scaled_r = r[rows] * scale[None, :]
        if rows.size == r.shape[0]:
            # R diag(s) is upper triangular: trmm reads only its upper triangle.
            product = _blas.dtrmm(1.0, scaled_r, v, side=0, lower=0)
        else:
            product = scaled_r @ v
        out_rows[rows], out[rows] = _normalise_rows(np.full(rows.size, ref), product)
    return out_rows, out


def _blocks(coupled):
    """Cut points of the upper-triangular coupling mask: [0, p1, ..., P] such that no entry
    couples rows above a cut to columns below it."""
    size = coupled.shape[-1]
    has = coupled.any(axis=-1)
    last = np.where(has, size - 1 - np.argmax(coupled[:, ::-1], axis=-1), -1)
    reach = np.maximum.accumulate(last)
    # A cut before p is allowed when no row i < p couples to a column j >= p.
    cuts = [p for p in range(1, size) if reach[p - 1] < p]
    return [0] + cuts + [size]


def _graded_log_svd(log_rows, v, *, max_iter: int = 60):
    """Natural-log singular values of diag(e^log_rows) V for upper-triangular, row-graded V.

    Unshifted QR iteration on the graded factor: with V^T = Q2 R2, the matrix R2 diag(e^l)
    has the same singular values and its off-diagonal entries shrink by the ratio of the
    singular values they couple, so widely separated values decouple in a few iterations
    without any number leaving float64. The matrix is then cut into diagonal blocks whose
    mutual coupling changes no singular value by more than eps / P relative (see
    :func:`_coupling`); the iteration stops as soon as every block
    spans at most ``_MAX_BLOCK_SPAN`` nats, and each block goes to LAPACK's SVD, accurate to
    ~1e-12 relative on its smallest value.

    Limit: after ``max_iter`` iterations a block that is still coupled goes to LAPACK as it
    is; if its values spanned more than float64's ~700 nats its smallest ones would lose
    relative accuracy (not seen in practice: coupled values are close by construction).
    """
    size = v.shape[-1]
    tiny = np.log(np.finfo(float).eps) - np.log(size)
    for _ in range(max_iter):
        cuts = _blocks(_coupling(log_rows, v) > tiny)
        if all(_span(log_rows[a:b]) <= _MAX_BLOCK_SPAN for a, b in zip(cuts[:-1], cuts[1:])):
            break
        _, r2, _ = _qr(v.T)
        log_coeff = np.broadcast_to(log_rows[None, :], r2.shape)
        log_rows, v = _regrade(log_coeff, r2, np.eye(size))
    else:
        cuts = _blocks(_coupling(log_rows, v) > tiny)
    out = []
    for start, p in zip(cuts[:-1], cuts[1:]):
        rows = log_rows[start:p]
        top = np.max(rows)
        if not np.isfinite(top):
            out.append(np.full(p - start, -np.inf))
        else:
            block = np.exp(rows - top)[:, None] * v[start:p, start:p]
            sv = np.linalg.svd(block, compute_uv=False)
            out.append(_log_abs(sv) + top)
    return np.sort(np.concatenate(out))[::-1]


def _span(rows) -> float:
    finite = rows[np.isfinite(rows)]
    return float(finite.max() - finite.min()) if finite.size > 1 else 0.0


def _coupling(log_rows, v):
    """For i < j, the log of the relative change that dropping M_ij makes in the singular values
    of M = diag(e^l) V; -inf on and below the diagonal.

    The first-order change vanishes (M_ij is off the diagonal); the second-order change in the
    2 x 2 triangle [[M_ii, M_ij], [0, M_jj]] is (M_ij / max)^2 (M_ij / min)^2 relative, with
    max and min the larger and smaller of |M_ii|, |M_jj| (and at most (M_ij / max)^2 when
    |M_ij| < min), so the measure is 2 (c_max + max(c_min, 0)), c = log(|M_ij| / .).
    """
    log_entries = log_rows[:, None] + _log_abs(v)
    log_diag = np.diagonal(log_entries)
    low = np.minimum(log_diag[:, None], log_diag[None, :])
    high = np.maximum(log_diag[:, None], log_diag[None, :])
    with np.errstate(invalid="ignore"):
        measure = 2.0 * ((log_entries - high) + np.maximum(log_entries - low, 0.0))
    measure = np.where(np.triu(np.ones(v.shape, dtype=bool), 1), measure, -np.inf)
    # A zero diagonal entry with a non-zero entry in its row or column is fully coupled.
    return np.nan_to_num(measure, nan=-np.inf, posinf=np.inf)


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
    frame = make_frame(np.broadcast_to(np.eye(size), batch + (size, size)).copy())
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
        cell_t, x_t, previous = problem.cell(t), problem.input_at(t), state
        state, jac = cell_t._jacobian_operator(previous, x_t, path)
        _check_state(state, t + 1)
        read = (t + 1) in wanted
        if frame.push(jac, functools.partial(_jacobian_again, cell_t, previous, x_t, path)) or read:
            # Where singular values are read off, Q must be orthonormal to rounding.
            index, factors, _ = frame.flush(True if read else None, orthonormal=read)
            for i, member_factors in enumerate(factors):
                member = tuple(axis[i] for axis in index)
                for r in member_factors:
                    log_rows[member], v[member] = _absorb(r, log_rows[member], v[member])
        if read:
            record(t + 1)
    for j, step in enumerate(times.tolist()):
        for index in np.ndindex(*batch):
            out[index + (j,)] = results[step][index]
    return out
