"""Argument handling shared by the numeric functions: the cell (tied, untied or an ensemble),
the inputs and the initial state, validated once and broadcast to one batch shape."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .._validate import describe, finite_array
from ..cells import Cell


@dataclass(frozen=True)
class _Problem:
    cell_at: object  # t -> Cell
    first: Cell
    n_steps: int
    inputs: np.ndarray | None  # (..., T, I) or None for zero input
    state0: np.ndarray  # (..., S)
    batch_shape: tuple  # inputs', state0's and the ensemble's batch shapes broadcast together
    zero_input: np.ndarray  # (I,), read-only: the input of every step when inputs is None

    def input_at(self, t):
        if self.inputs is None:
            return self.zero_input
        return self.inputs[..., t, :]

    def cell(self, t) -> Cell:
        if self.cell_at is None:
            return self.first
        cell = self.cell_at(t)
        if not isinstance(cell, Cell):
            raise TypeError(
                f"`cell` callable must return a Cell for every step; at t={t} it returned {describe(cell)}."
            )
        if (cell.state_size, cell.n_input, cell.batch_shape) != (
            self.first.state_size, self.first.n_input, self.first.batch_shape
        ):
            raise ValueError(
                f"`cell` callable must return cells of one size; at t={t} it returned state_size="
                f"{cell.state_size}, n_input={cell.n_input}, batch_shape={cell.batch_shape}, expected "
                f"{self.first.state_size}, {self.first.n_input}, {self.first.batch_shape}."
            )
        return cell


def _problem(cell, inputs, state0) -> _Problem:
    if isinstance(cell, Cell):
        cell_at, first = None, cell
    elif callable(cell):
        cell_at, first = cell, cell(0)
        if not isinstance(first, Cell):
            raise TypeError(
                f"`cell` must be a Cell or a callable t -> Cell; the callable returned {describe(first)}."
            )
    else:
        raise TypeError(f"`cell` must be a Cell or a callable t -> Cell; got {describe(cell)}.")

    expected = f"a positive int T or an array of shape (..., T, {first.n_input}) with T >= 1"
    if isinstance(inputs, numbers.Integral) and not isinstance(inputs, bool):
        if inputs < 1:
            raise ValueError(f"`inputs` must be {expected}; got {inputs}.")
        n_steps, inputs_arr, batch = int(inputs), None, ()
    else:
        if isinstance(inputs, bool) or inputs is None:
            raise TypeError(f"`inputs` must be {expected}; got {describe(inputs)}.")
        inputs_arr = finite_array(inputs, "inputs")
        if inputs_arr.ndim < 2 or inputs_arr.shape[-1] != first.n_input or inputs_arr.shape[-2] < 1:
            raise ValueError(f"`inputs` must be {expected}; got shape {inputs_arr.shape}.")
        n_steps, batch = inputs_arr.shape[-2], inputs_arr.shape[:-2]
    if first.batch_shape:
        try:
            batch = np.broadcast_shapes(batch, first.batch_shape)
        except ValueError:
            raise ValueError(
                f"`inputs` must have shape (T, {first.n_input}) (shared by the ensemble) or "
                f"(..., {', '.join(map(str, first.batch_shape))}, T, {first.n_input}) (one sequence per "
                f"member of the ensemble of batch_shape {first.batch_shape}); got shape {inputs_arr.shape}."
            ) from None

    size = first.state_size
    if state0 is None:
        state = np.zeros(batch + (size,))
    else:
        state = finite_array(state0, "state0")
        if state.ndim == 0 or state.shape[-1] != size:
            raise ValueError(
                f"`state0` must have last dimension state_size={size}; got shape {state.shape}."
            )
        try:
            batch = np.broadcast_shapes(batch, state.shape[:-1])
        except ValueError:
            raise ValueError(
                f"`state0` batch shape {state.shape[:-1]} does not broadcast with the inputs' "
                f"{'and the ensemble' + chr(39) + 's ' if first.batch_shape else ''}batch shape {batch}."
            ) from None
        state = np.broadcast_to(state, batch + (size,)).copy()
    if inputs_arr is not None and inputs_arr.shape[:-2] != batch and inputs_arr.ndim > 2:
        # Inputs shared by every member stay (T, I): the cells broadcast them, and each step's
        # slice stays contiguous.
        inputs_arr = np.broadcast_to(inputs_arr, batch + inputs_arr.shape[-2:])
    zero_input = np.zeros(first.n_input)
    zero_input.flags.writeable = False
    return _Problem(cell_at, first, n_steps, inputs_arr, state, tuple(batch), zero_input)


def _check_path(problem: _Problem, path) -> int:
    problem.first._check_path(path)
    return problem.first.path_size(path)


def _check_state(state, t):
    if not np.all(np.isfinite(state)):
        raise FloatingPointError(
            f"the state became non-finite at step {t}: the forward dynamics overflowed float64 "
            "(an unbounded activation with growing state); use a bounded activation, smaller "
            "gain or a shorter horizon."
        )


def _jacobian_again(cell, state, x, path):
    """The Jacobian (operator) of one step, recomputed: what a frame keeps instead of it."""
    return cell._jacobian_operator(state, x, path)[1]
