r"""Gradients of Lyapunov exponents: the adjoint of the QR method.

The QR (Benettin) method pushes a k-column orthonormal frame through the one-step Jacobians,
:math:`A_t = J_t Q_{t-1} = Q_t R_t`, and averages :math:`\log|R_{t,ii}|`. Every quantity in
that recursion is a differentiable function of the weights, the inputs and the initial state:
the Jacobians through the trajectory :math:`s_t = f(s_{t-1}, x_t)`, and the frames and the
triangular factors through the QR factorisations. :func:`lyapunov_vjp` runs the recursion
forward with a QR at every step, and back-propagates a cotangent on the exponents through it
(reverse mode, exact to rounding):

.. math::

    \bar R_t = \operatorname{diag}(w / R_{t,ii}) \ (t > \text{warmup}), \qquad
    M = R_t \bar R_t^\top - \bar Q_t^\top Q_t, \qquad
    \bar A_t = (\bar Q_t + Q_t \operatorname{copyltu}(M))\, R_t^{-\top}

    \bar Q_{t-1} = J_t^\top \bar A_t, \qquad
    \bar s_{t-1} = J_t^{(\text{full})\top} \bar s_t
        + \nabla_{s}\operatorname{tr}(\bar A_t^\top J_t Q_{t-1}), \qquad
    \bar\theta \mathrel{+}= \nabla_\theta\, \bar s_t^\top f(s_{t-1}, x_t)
        + \nabla_\theta \operatorname{tr}(\bar A_t^\top J_t Q_{t-1})

with :math:`w` the cotangent divided by the number of measured steps (in the frame's column
order), :math:`\operatorname{copyltu}(M) = \operatorname{tril}(M) + \operatorname{tril}(M,
-1)^\top` (the QR adjoint of Walter & Lehmann 2018 and Seeger et al. 2017, valid for a thin
P x k frame, k <= P), and the second-order terms :math:`\nabla \operatorname{tr}(\bar A^\top J
Q)` from :meth:`gradsim.Cell._frame_vjp`. This is what gradient flossing (Engelken 2023)
back-propagates through; the one-step R is as well conditioned as the frame's spread of growth
rates over one step allows, so the recursion is stable over long horizons for the frame
(its cotangent orthogonal to the frame decays at :math:`\lambda_{k+1} - \lambda_k` per step),
while the trajectory's cotangent :math:`\bar s_t` grows as back-propagation through time does
(at :math:`\lambda_1` per step in a chaotic network).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_triangular

from .._validate import as_rng, describe, finite_array
from ..cells import Cell
from ._problem import _check_path, _check_state, _problem


@dataclass(frozen=True)
class LyapunovGradient:
    r"""Result of :func:`lyapunov_vjp`.

    Attributes
    ----------
    exponents : ndarray, shape (..., k)
        The leading k Lyapunov exponents per step, descending (those of
        :func:`lyapunov_spectrum` with the same arguments, to rounding: here with a QR at every
        step).
    parameters : dict
        Parameter name -> gradient of :math:`c \cdot \lambda` with respect to that parameter
        array (its shape; an ensemble's per member), like :meth:`gradsim.Cell.param_vjp`.
    inputs : ndarray, shape of the inputs (..., T, I), or None
        Gradient with respect to every input, when ``inputs`` was an array and
        ``input_gradient=True``; None otherwise.
    state0 : ndarray, shape (..., S)
        Gradient with respect to the initial state.
    n_steps : int
        Steps averaged over (T - warmup).
    """

    exponents: np.ndarray
    parameters: dict
    inputs: np.ndarray | None
    state0: np.ndarray
    n_steps: int


def lyapunov_vjp(
    cell, inputs, k, cotangent, state0=None, warmup: int = 0, path: str = "full", *, rng=0,
    input_gradient: bool = True,
) -> LyapunovGradient:
    r"""The leading k Lyapunov exponents and the gradient of ``cotangent . exponents`` with
    respect to every parameter, input and the initial state, by the adjoint of the QR method.

    The exponents are :math:`\lambda_i = \frac{1}{T - w} \sum_{t > w} \log|R_{t,ii}|` with
    :math:`J_t Q_{t-1} = Q_t R_t` (the frame's columns in QR order, then sorted descending, as
    :func:`lyapunov_spectrum` reports them); the gradient is taken through the trajectory, the
    Jacobians and every QR (see the module notes for the recursion), exactly, not by finite
    differences: it equals the derivative of :func:`lyapunov_spectrum` (same ``k``,
    ``warmup``, ``path`` and ``rng``, so the same starting frame) wherever the exponents are
    distinct. The sort is held fixed: the gradient of the i-th exponent is that of the
    column that gives it.

    Parameters
    ----------
    cell : Cell
        One network or an ensemble (tied weights; a callable ``t -> Cell`` has no single set
        of parameters to differentiate and is refused).
    inputs : int or array, shape (..., T, I)
        As in :func:`unroll`.
    k : int
        Number of leading exponents, 1 <= k <= P (the path size).
    cotangent : array, shape (k,) or (..., k)
        Weights c of the exponents (descending order) in the scalar :math:`c \cdot \lambda`
        whose gradient is returned; for an ensemble, per member or shared.
    state0 : array, shape (..., S), optional
    warmup : int
        Steps run before averaging starts (their QRs still carry the gradient: the frame at
        the end of the warm-up depends on the parameters).
    path : str
        Jacobian path.
    rng : seed or Generator
        Draws the Haar-random starting frame when k < P, as :func:`lyapunov_spectrum` does
        (seed 0 by default: the same frame).
    input_gradient : bool
        Also return the gradient with respect to the inputs (k n_input complex evaluations of
        the cell's VJP per step more; see :meth:`gradsim.Cell._frame_vjp`).

    Returns
    -------
    LyapunovGradient

    Notes
    -----
    Memory: the states, frames (before and after each QR) and triangular factors of every
    step, about T (S + 2 P k + k^2) floats per network, O(T k P). Cost per step: the forward QR, and backward one QR
    adjoint (O(P k^2)), one VJP of k columns and the second-order term (k complex VJPs and
    parameter VJPs of the cell), about 4 times :func:`lyapunov_spectrum`'s per step for a
    dense cell (``python -m gradsim.bench.lyapunov_grad``).

    A zero :math:`R_{t,ii}` (a frame column annihilated, e.g. by dead ReLU units) makes the
    exponent :math:`-\infty` and its gradient undefined: a FloatingPointError says so.
    """
    if not isinstance(cell, Cell):
        raise TypeError(
            "`cell` must be a Cell (tied weights, one network or an ensemble); the gradient of an "
            f"untied callable t -> Cell has no single set of parameters; got {describe(cell)}."
        )
    problem = _problem(cell, inputs, state0)
    size = _check_path(problem, path)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= size:
        raise ValueError(
            f"`k` must be an integer in [1, {size}] (the state size along path {path!r}); got {describe(k)}."
        )
    if isinstance(warmup, bool) or not isinstance(warmup, numbers.Integral) or not 0 <= warmup < problem.n_steps:
        raise ValueError(
            f"`warmup` must be an integer in [0, T) = [0, {problem.n_steps}); got {describe(warmup)}."
        )
    batch = problem.batch_shape
    cotangent = finite_array(cotangent, "cotangent")
    if cotangent.ndim == 0 or cotangent.shape[-1] != k:
        raise ValueError(
            f"`cotangent` must have shape (k,) = ({k},) or (..., {k}) (one weight per exponent); "
            f"got shape {cotangent.shape}."
        )
    try:
        cotangent = np.broadcast_to(cotangent, batch + (k,))
    except ValueError:
        raise ValueError(
            f"`cotangent` must have shape ({k},) or the exponents' shape {batch + (k,)}; got shape "
            f"{cotangent.shape}."
        ) from None

    n_steps = problem.n_steps
    measured = n_steps - warmup
    if k == size:
        start = np.eye(size)
    else:
        start = np.linalg.qr(as_rng(rng).standard_normal((size, k)))[0]

    # -- forward: the trajectory, and a QR at every step ----------------------------------------
    states = np.empty((n_steps + 1,) + batch + (cell.state_size,))
    frames = np.empty((n_steps + 1,) + batch + (size, k))
    pushed = np.empty((n_steps,) + batch + (size, k))  # J_t Q_{t-1}, before its QR
    triangles = np.empty((n_steps,) + batch + (k, k))
    states[0] = problem.state0
    frames[0] = start
    log_growth = np.zeros(batch + (k,))
    for t in range(n_steps):
        new, jac = cell._jacobian_operator(states[t], problem.input_at(t), path)
        _check_state(new, t + 1)
        states[t + 1] = new
        pushed[t] = jac @ frames[t]
        q, r = np.linalg.qr(pushed[t])
        frames[t + 1], triangles[t] = q, r
        if t >= warmup:
            diag = np.abs(np.diagonal(r, axis1=-2, axis2=-1))
            if np.any(diag == 0):
                raise FloatingPointError(
                    f"a frame column was annihilated at step {t + 1} (R_ii = 0): an exponent is -inf "
                    "and its gradient undefined (dead units: a ReLU network with every unit off, "
                    "or a Jacobian of rank < k)."
                )
            log_growth += np.log(diag)
    exponents = log_growth / measured
    order = np.argsort(-exponents, axis=-1, kind="stable")
    # The cotangent of the sorted exponents, back in the frame's column order, per measured step.
    weights = np.zeros(batch + (k,))
    np.put_along_axis(weights, order, cotangent, axis=-1)
    weights = weights / measured

    # -- backward -----------------------------------------------------------------------------
    grads = {name: np.zeros(value.shape) for name, value in cell.parameters().items()}
    want_inputs = input_gradient and problem.inputs is not None
    grad_inputs = np.zeros(batch + (n_steps, cell.n_input)) if want_inputs else None
    frame_bar = np.zeros(batch + (size, k))
    state_bar = np.zeros(batch + (cell.state_size,))
    on_and_below = np.tril(np.ones((k, k)))
    below = np.tril(np.ones((k, k)), -1)
    for t in range(n_steps - 1, -1, -1):
        q, r, q_prev, s_prev = frames[t + 1], triangles[t], frames[t], states[t]
        x_t = problem.input_at(t)
        m = -np.swapaxes(frame_bar, -1, -2) @ q
        if t >= warmup:
            # R R_bar^T with R_bar = diag(w / R_ii): column i of R scaled by w_i / R_ii.
            diag = np.diagonal(r, axis1=-2, axis2=-1)
            m = m + r * (weights / diag)[..., None, :]
        copyltu = m * on_and_below + np.swapaxes(m * below, -1, -2)
        rhs = frame_bar + q @ copyltu
        a_bar = _solve_right_transpose(rhs, r)  # rhs R^{-T}
        # One step back through the cell: the frame's cotangent J^T a_bar, the state's, and
        # the parameters' and the input's gradients (Cell._lyapunov_backward).
        frame_bar, state_bar, step_grads, x_grad = cell._lyapunov_backward(
            s_prev, x_t, q_prev, pushed[t], a_bar, state_bar, path, want_inputs
        )
        for name, value in step_grads.items():
            grads[name] += value
        if want_inputs:
            grad_inputs[..., t, :] = x_grad
    if want_inputs and problem.inputs.shape[:-2] != batch:
        # Inputs shared by the ensemble (or the batch): their gradient sums over it.
        lead = len(batch) - (problem.inputs.ndim - 2)
        grad_inputs = grad_inputs.sum(axis=tuple(range(lead)))
    sorted_exponents = np.take_along_axis(exponents, order, -1)
    return LyapunovGradient(
        exponents=sorted_exponents,
        parameters=grads,
        inputs=grad_inputs,
        state0=state_bar,
        n_steps=measured,
    )


def _solve_right_transpose(rhs, r):
    """rhs @ inv(r).T for upper-triangular r (..., k, k) and rhs (..., P, k): r X^T = rhs^T."""
    if r.ndim == 2:
        return solve_triangular(r, rhs.T, lower=False, check_finite=False).T
    out = np.empty(np.broadcast_shapes(rhs.shape[:-2], r.shape[:-2]) + rhs.shape[-2:])
    rhs = np.broadcast_to(rhs, out.shape)
    for member in np.ndindex(*out.shape[:-2]):
        out[member] = solve_triangular(r[member], rhs[member].T, lower=False, check_finite=False).T
    return out
