"""The cell protocol: the base class every recurrent cell derives from, and shared helpers.

Parameters use PyTorch's layout and names (``weight_ih``, ``weight_hh``, ``bias_ih``,
``bias_hh``; gates stacked i, f, g, o for the LSTM and r, z, n for the GRU), so that weights
move between gradsim and ``torch.nn`` without reshaping. The time loop lives in
:mod:`gradsim.numeric`; a cell only knows one step.

Every method accepts leading batch dimensions: ``state`` of shape ``(..., state_size)`` and
``x`` of shape ``(..., n_input)``; Jacobians then have shape ``(..., S, S)``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from .._validate import choice, finite_array, frozen


def _sigmoid_slope(s):
    return s * (1.0 - s)


# name -> (phi(a), phi'(a)); phi' takes the pre-activation a and the output phi(a).
ACTIVATIONS = {
    "tanh": (np.tanh, lambda a, y: 1.0 - y * y),
    "relu": (lambda a: np.maximum(a, 0.0), lambda a, y: (a > 0).astype(np.float64)),
    "linear": (lambda a: a, lambda a, y: np.ones_like(a)),
    "sigmoid": (expit, lambda a, y: _sigmoid_slope(y)),
}


def _affine(x, weight, bias):
    """x @ weight.T + bias, tolerating an input size of zero."""
    if weight.shape[1] == 0:
        return np.broadcast_to(bias, x.shape[:-1] + bias.shape)
    return x @ weight.T + bias


def _outer_sum(grad, inp):
    """sum over leading dims of grad[..., :, None] * inp[..., None, :] (broadcasting batches).

    grad (..., R), inp (..., C) -> (R, C): the weight gradient of an affine map.
    """
    shape = np.broadcast_shapes(grad.shape[:-1], inp.shape[:-1])
    grad = np.broadcast_to(grad, shape + grad.shape[-1:]).reshape(-1, grad.shape[-1])
    inp = np.broadcast_to(inp, shape + inp.shape[-1:]).reshape(-1, inp.shape[-1])
    return grad.T @ inp


def _batch_sum(grad, shape):
    """grad (..., R) summed over the batch shape ``shape`` it broadcasts to -> (R,)."""
    full = np.broadcast_to(grad, tuple(shape) + grad.shape[-1:])
    return full.reshape(-1, grad.shape[-1]).sum(axis=0)


def _affine_grads(grad_x, x, grad_h, h, shape):
    """Parameter gradients of the two affine maps a_x = W_ih x + b_ih and a_h = W_hh h + b_hh,
    given the gradients ``grad_x`` (of a_x) and ``grad_h`` (of a_h); ``shape`` is the batch shape."""
    return {
        "weight_hh": _outer_sum(grad_h, h),
        "weight_ih": _outer_sum(grad_x, x),
        "bias_hh": _batch_sum(grad_h, shape),
        "bias_ih": _batch_sum(grad_x, shape),
    }


def _batch_shape(*arrays):
    return np.broadcast_shapes(*(a.shape[:-1] for a in arrays))


class Cell:
    """Base class of the recurrent cells.

    Subclasses are frozen dataclasses holding read-only float64 arrays and implement
    ``_forward`` (the step with its intermediates), ``_jacobian``, ``_vjp`` and ``_param_vjp``
    (the gradient with respect to the weights, for BPTT training in :mod:`gradsim.training.backprop`).

    Attributes
    ----------
    state_size : int
        Length S of the state vector (2 N for the LSTM, whose state is concat(h, c)).
    n_hidden : int
        N, the number of hidden units.
    n_input : int
        Length of the input vector (0 when the cell has no input weights).
    paths : tuple of str
        The Jacobian paths this cell supports (see :meth:`path_size`).
    """

    paths: tuple[str, ...] = ("full",)
    n_gates: int = 1  # blocks of N rows stacked in weight_hh and weight_ih

    @property
    def n_hidden(self) -> int:
        return self.weight_hh.shape[1]

    @property
    def n_input(self) -> int:
        return self.weight_ih.shape[1]

    def _freeze_weights(self):
        """Validate the PyTorch-layout weights and store read-only float64 copies."""
        arrays = _check_weights(
            type(self).__name__, self.n_gates, self.weight_hh, self.weight_ih, self.bias_hh, self.bias_ih
        )
        for name, value in zip(("weight_hh", "weight_ih", "bias_hh", "bias_ih"), arrays):
            object.__setattr__(self, name, value)

    # -- public API -----------------------------------------------------------------------
    @property
    def state_size(self) -> int:
        return self.n_hidden

    def path_size(self, path: str = "full") -> int:
        """Size of the (square) Jacobian along ``path``."""
        self._check_path(path)
        return self.state_size if path == "full" else self.n_hidden

    def step(self, state, x=None):
        """The next state, shape ``(..., state_size)``."""
        state, x = self._check_args(state, x)
        return self._step(state, x)

    def jacobian(self, state, x=None, path: str = "full"):
        """d step(state, x) / d state along ``path``, shape ``(..., P, P)``, P = path_size(path)."""
        state, x = self._check_args(state, x)
        self._check_path(path)
        return self._jacobian(state, x, path)[1]

    def vjp(self, state, x, cotangent, path: str = "full"):
        """cotangent @ jacobian(state, x, path): the back-propagated gradient, shape ``(..., P)``."""
        state, x = self._check_args(state, x)
        self._check_path(path)
        p = self.path_size(path)
        cotangent = finite_array(cotangent, "cotangent")
        if cotangent.ndim == 0 or cotangent.shape[-1] != p:
            raise ValueError(
                f"`cotangent` must have last dimension {p} (path {path!r}); got shape {cotangent.shape}."
            )
        return self._vjp(state, x, cotangent, path)

    def param_vjp(self, state, x, cotangent) -> dict:
        r"""Gradient of :math:`\langle v, \mathrm{step}(s, x)\rangle` with respect to every weight.

        With :math:`v` = ``cotangent`` (the gradient reaching the next state), returns
        :math:`\partial (v \cdot s') / \partial \theta` for each parameter array
        :math:`\theta`, summed over the leading batch dimensions. In BPTT, summing this over the
        steps t with :math:`v = \partial L/\partial s_{t+1}` gives :math:`\partial L/\partial
        \theta` of the tied weights. Scalar hyper-parameters (``alpha``, the activation) are not
        parameters.

        Parameters
        ----------
        state : array, shape (..., state_size)
        x : array, shape (..., n_input), or None for zero input
        cotangent : array, shape (..., state_size)
            Batch shapes of the three broadcast together.

        Returns
        -------
        dict
            ``"weight_hh"``, ``"weight_ih"``, ``"bias_hh"``, ``"bias_ih"`` -> arrays of the
            parameters' shapes.
        """
        state, x = self._check_args(state, x)
        cotangent = finite_array(cotangent, "cotangent")
        if cotangent.ndim == 0 or cotangent.shape[-1] != self.state_size:
            raise ValueError(
                f"`cotangent` must have last dimension state_size={self.state_size}; got shape "
                f"{cotangent.shape}."
            )
        try:
            np.broadcast_shapes(state.shape[:-1], x.shape[:-1], cotangent.shape[:-1])
        except ValueError:
            raise ValueError(
                f"`cotangent` must have a batch shape broadcastable with the state's and x's; got "
                f"{cotangent.shape[:-1]}, {state.shape[:-1]} and {x.shape[:-1]}."
            ) from None
        return self._param_vjp(state, x, cotangent)

    def step_and_jacobian(self, state, x=None, path: str = "full"):
        """``(step(state, x), jacobian(state, x, path))`` from one forward pass."""
        state, x = self._check_args(state, x)
        self._check_path(path)
        return self._jacobian(state, x, path)

    # -- unchecked fast paths used by the time loops ------------------------------------
    def _step(self, state, x):
        return self._forward(state, x)[0]

    def _jacobian_operator(self, state, x, path):
        """(next state, J) where J supports ``J @ M``; a structured operator where that is
        cheaper than the dense matrix (the LSTM's diagonal blocks)."""
        return self._jacobian(state, x, path)

    # -- checks ----------------------------------------------------------------------------
    def _check_path(self, path):
        choice(path, "path", self.paths)

    def _check_args(self, state, x):
        state = finite_array(state, "state")
        if state.ndim == 0 or state.shape[-1] != self.state_size:
            raise ValueError(
                f"`state` must have last dimension state_size={self.state_size}; got shape {state.shape}."
            )
        if x is None:
            x = np.zeros(state.shape[:-1] + (self.n_input,))
        x = finite_array(x, "x")
        if x.ndim == 0 or x.shape[-1] != self.n_input:
            raise ValueError(
                f"`x` must have last dimension n_input={self.n_input}; got shape {x.shape}."
            )
        try:
            np.broadcast_shapes(state.shape[:-1], x.shape[:-1])
        except ValueError:
            raise ValueError(
                f"`state` and `x` must have broadcastable batch shapes; got {state.shape[:-1]} "
                f"and {x.shape[:-1]}."
            ) from None
        return state, x


def _check_weights(cls_name, n_gates, weight_hh, weight_ih, bias_hh, bias_ih):
    """Validate PyTorch-layout weights; return frozen (weight_hh, weight_ih, bias_hh, bias_ih)."""
    weight_hh = finite_array(weight_hh, "weight_hh", ndim=2)
    rows, n = weight_hh.shape
    if rows != n_gates * n:
        want = "square (N, N)" if n_gates == 1 else f"of shape ({n_gates} N, N)"
        raise ValueError(f"`weight_hh` must be {want} for {cls_name}; got shape {weight_hh.shape}.")
    if n == 0:
        raise ValueError(f"`weight_hh` must have at least one hidden unit; got shape {weight_hh.shape}.")
    if weight_ih is None:
        weight_ih = np.zeros((rows, 0))
    weight_ih = finite_array(weight_ih, "weight_ih", ndim=2)
    if weight_ih.shape[0] != rows:
        raise ValueError(
            f"`weight_ih` must have {rows} rows (n_input columns); got shape {weight_ih.shape}."
        )
    biases = []
    for name, bias in (("bias_hh", bias_hh), ("bias_ih", bias_ih)):
        biases.append(np.zeros(rows) if bias is None else finite_array(bias, name, shape=(rows,)))
    return frozen(weight_hh), frozen(weight_ih), frozen(biases[0]), frozen(biases[1])


def _diag(v):
    """Batched diagonal matrix: (..., n) -> (..., n, n)."""
    out = np.zeros(v.shape + (v.shape[-1],))
    idx = np.arange(v.shape[-1])
    out[..., idx, idx] = v
    return out
