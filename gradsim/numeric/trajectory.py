"""Unrolled trajectories and the dense Jacobian product along them."""

from __future__ import annotations

import numpy as np

from ._problem import _check_path, _check_state, _problem


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
