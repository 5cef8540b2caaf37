"""Back-propagated gradient norms by vector-Jacobian products, with checkpointing."""

from __future__ import annotations

import math

import numpy as np

from .._validate import finite_array
from ._problem import _check_path, _check_state, _problem
from .qr import _log_abs


def gradient_norms(cell, inputs, state0=None, upstream=None, path: str = "full") -> np.ndarray:
    r"""Log-norm of the back-propagated gradient at every step.

    For the loss :math:`L = u \cdot s_T` (``u`` = ``upstream``) the gradient with respect to
    :math:`s_t` is :math:`g_t = J_{t+1}^T \cdots J_T^T u`, computed by vector-Jacobian products
    in O(T P^2) time. The vector is renormalised every step and its log-norm accumulated, so the
    result stays finite however fast it grows or decays. States are checkpointed every
    ~sqrt(T) steps and recomputed segment by segment on the way back, so memory grows as
    sqrt(T), not T.

    Parameters
    ----------
    cell, inputs, state0
        As in :func:`unroll`.
    upstream : array, shape (..., P), optional
        dL/ds_T along the path; the unit vector of equal entries 1/sqrt(P) by default.
    path : str
        Jacobian path (the vector lives in that path's coordinates).

    Returns
    -------
    ndarray, shape (..., T + 1)
        ``out[..., t] = log ||dL/ds_t||``; ``out[..., T] = log ||upstream||``. A gradient that is
        exactly zero (dead ReLU units) gives -inf from there back.
    """
    problem = _problem(cell, inputs, state0)
    size = _check_path(problem, path)
    batch = problem.batch_shape
    if upstream is None:
        vec = np.full(batch + (size,), 1.0 / math.sqrt(size))
    else:
        vec = finite_array(upstream, "upstream")
        if vec.ndim == 0 or vec.shape[-1] != size:
            raise ValueError(
                f"`upstream` must have last dimension {size} (path {path!r}); got shape {vec.shape}."
            )
        try:
            vec = np.broadcast_to(vec, batch + (size,)).copy()
        except ValueError:
            raise ValueError(
                f"`upstream` must have a batch shape that broadcasts to {batch} (the inputs', state0's "
                f"and the cell's); got shape {vec.shape}."
            ) from None
        if np.any(np.linalg.norm(vec, axis=-1) == 0):
            raise ValueError("`upstream` must have a non-zero norm; got all zeros.")
    n_steps = problem.n_steps
    stride = max(1, math.isqrt(n_steps))
    checkpoints = {}
    state = problem.state0
    for t in range(n_steps):
        if t % stride == 0:
            checkpoints[t] = state
        state = problem.cell(t)._step(state, problem.input_at(t))
        _check_state(state, t + 1)

    out = np.empty(batch + (n_steps + 1,))
    norm = np.linalg.norm(vec, axis=-1)
    log_norm = _log_abs(norm)
    vec = vec / np.where(norm > 0, norm, 1.0)[..., None]
    out[..., n_steps] = log_norm
    for start in sorted(checkpoints, reverse=True):
        stop = min(start + stride, n_steps)
        segment = [checkpoints[start]]
        for t in range(start, stop - 1):
            segment.append(problem.cell(t)._step(segment[-1], problem.input_at(t)))
        for t in range(stop - 1, start - 1, -1):
            vec = problem.cell(t)._vjp(segment[t - start], problem.input_at(t), vec, path)
            norm = np.linalg.norm(vec, axis=-1)
            log_norm = log_norm + _log_abs(norm)
            vec = vec / np.where(norm > 0, norm, 1.0)[..., None]
            out[..., t] = log_norm
    return out
