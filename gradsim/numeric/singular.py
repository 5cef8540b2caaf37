"""Finite-time singular values of the Jacobian product, each accurate on its own scale."""

from __future__ import annotations

import numpy as np

from .._validate import describe
from ._problem import _check_path, _check_state, _problem
from .qr import _log_abs, _qr, make_frame


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
        state, jac = problem.cell(t)._jacobian_operator(state, problem.input_at(t), path)
        _check_state(state, t + 1)
        read = (t + 1) in wanted
        if frame.push(jac) or read:
            # Where singular values are read off, Q must be orthonormal to rounding.
            index, factors, _ = frame.flush(everyone=read, orthonormal=read)
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
