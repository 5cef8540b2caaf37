r"""Sensitivity of the states to the parameters, in forward mode.

Along a parameter direction :math:`v` (one array per parameter), the tangent
:math:`\delta s_t = (\partial s_t / \partial \theta)\, v` obeys the linear recurrence

.. math::

    \delta s_0 = 0, \qquad
    \delta s_t = J_t\, \delta s_{t-1} + \frac{\partial f}{\partial \theta}(s_{t-1}, x_t)\, v,

with :math:`J_t = \partial s_t / \partial s_{t-1}` the one-step Jacobian: one Jacobian-vector
product (the cell's operator applied to a vector) and one parameter JVP
(:meth:`gradsim.cells.Cell.param_jvp`) per step. This is the quantity of the curse of memory
(Zucchet & Orvieto 2024): it can explode as a recurrence's memory grows even when
:math:`\partial s_T / \partial s_0` does not.
"""

from __future__ import annotations

import numpy as np

from ._problem import _check_state, _problem


def parameter_jvp(cell, inputs, tangent, state0=None) -> np.ndarray:
    r"""Forward-mode derivative of every state along a parameter direction.

    Parameters
    ----------
    cell : Cell or callable t -> Cell
        As in :func:`gradsim.unroll`. For untied weights (a callable) every step's cell moves
        along the same ``tangent``: :math:`\theta_t \to \theta_t + \epsilon v` for all t.
    inputs : int or array, shape (..., T, n_input)
        An int T means T steps of zero input.
    tangent : dict
        Parameter name (see ``cell.parameters()``) -> array of that parameter's shape (for an
        ensemble, with the members' leading dimensions, like the parameter itself); missing
        names count as zero. Validated as by :meth:`~gradsim.cells.Cell.param_jvp`.
    state0 : array, shape (..., S), optional
        Zeros by default. It does not depend on the parameters.

    Returns
    -------
    ndarray, shape (..., T + 1, S)
        ``out[..., t, :]`` :math:`= \sum_\theta (\partial s_t / \partial \theta)\, v_\theta`;
        ``out[..., 0, :] = 0``. The batch shape is that of ``gs.unroll(cell, inputs, state0)``.

    Notes
    -----
    Time O(T) steps of (one Jacobian-vector product + one parameter JVP); memory O(T S) for the
    output and O(S) per batch member besides: no S x S matrix is kept, and none is formed when
    the cell's Jacobian operator (``_jacobian_operator``) is structured (all cells but the GRU,
    whose operator is its dense Jacobian).
    """
    problem = _problem(cell, inputs, state0)
    first = problem.first
    tangent = first._check_tangent(tangent)
    size = first.state_size
    batch = problem.batch_shape
    out = np.empty(batch + (problem.n_steps + 1, size))
    out[..., 0, :] = 0.0
    state = problem.state0
    d_state = np.zeros(batch + (size,))
    for t in range(problem.n_steps):
        step_cell = problem.cell(t)
        x = problem.input_at(t)
        forcing = step_cell._param_jvp(state, x, tangent)
        state, jac = step_cell._jacobian_operator(state, x, "full")
        _check_state(state, t + 1)
        d_state = (jac @ d_state[..., None])[..., 0] + forcing
        if not np.all(np.isfinite(d_state)):
            raise FloatingPointError(
                f"the parameter tangent became non-finite at step {t + 1}: the sensitivity "
                "overflowed float64 (scale the tangent down or shorten the horizon)."
            )
        out[..., t + 1, :] = d_state
    return out
