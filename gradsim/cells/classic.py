"""Classic RNN cells: the Elman RNN (tanh, ReLU, linear, sigmoid) and the residual RNN."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validate import choice, finite_number
from .base import (
    ACTIVATIONS,
    Cell,
    _affine,
    _affine_grads,
    _affine_tangent,
    _batch_shape,
    _members,
    _sum_to_members,
    _mv,
    _vm,
)

@dataclass(frozen=True, eq=False)
class RNN(Cell):
    r"""Elman RNN cell (``torch.nn.RNN`` with ``nonlinearity`` tanh or relu, plus linear and sigmoid).

    .. math::

        a_t = W_{hh} h_{t-1} + b_{hh} + W_{ih} x_t + b_{ih}, \qquad h_t = \phi(a_t)

        \frac{\partial h_t}{\partial h_{t-1}} = \operatorname{diag}(\phi'(a_t))\, W_{hh}

    Parameters
    ----------
    weight_hh : array, shape (N, N)
    weight_ih : array, shape (N, I), optional
        None means no input (I = 0).
    bias_hh, bias_ih : array, shape (N,), optional
        Zero when None; only their sum matters.
    activation : {"tanh", "relu", "linear", "sigmoid"}
        ReLU's derivative at 0 is taken as 0, as in PyTorch.
    """

    weight_hh: np.ndarray
    weight_ih: np.ndarray | None = None
    bias_hh: np.ndarray | None = None
    bias_ih: np.ndarray | None = None
    activation: str = "tanh"

    def __post_init__(self):
        choice(self.activation, "activation", tuple(ACTIVATIONS))
        self._freeze_weights()

    @property
    def bias(self) -> np.ndarray:
        """The effective bias b_hh + b_ih."""
        return self.bias_hh + self.bias_ih

    def _preactivation(self, state, x):
        return _mv(self.weight_hh, state) + _affine(x, self.weight_ih, self.bias_ih) + self.bias_hh

    def _forward(self, state, x):
        phi, dphi = ACTIVATIONS[self.activation]
        a = self._preactivation(state, x)
        y = phi(a)
        return y, dphi(a, y)

    def _jacobian(self, state, x, path):
        y, slope = self._forward(state, x)
        return y, slope[..., :, None] * self.weight_hh

    def _jacobian_operator(self, state, x, path):
        y, slope = self._forward(state, x)
        return y, _ScaledRows(slope, self.weight_hh)

    def _step(self, state, x):
        return ACTIVATIONS[self.activation][0](self._preactivation(state, x))

    def _vjp(self, state, x, cotangent, path):
        _, slope = self._forward(state, x)
        return _vm(cotangent * slope, self.weight_hh)

    def _param_vjp(self, state, x, cotangent):
        # a = W_hh s + b_hh + W_ih x + b_ih, s' = phi(a): dL/da = v * phi'(a).
        _, slope = self._forward(state, x)
        grad_a = cotangent * slope
        return _affine_grads(grad_a, x, grad_a, state, _batch_shape(state, x, cotangent), self.batch_shape)

    def _lyapunov_backward(self, state, x, frame, pushed, frame_cotangent, state_cotangent, path, inputs):
        return _rnn_lyapunov_backward(
            self, state, x, frame, pushed, frame_cotangent, state_cotangent, inputs, 1.0, False
        )

    def _param_jvp(self, state, x, tangent):
        # d s' = phi'(a) * (dW_hh s + db_hh + dW_ih x + db_ih), s and x fixed.
        _, slope = self._forward(state, x)
        return slope * _affine_tangent(x, state, tangent)


# phi''(a) / phi'(a) from y = phi(a): finite where phi' vanishes (a saturated tanh), so the
# second-order term needs no division; what the adjoint of the QR method needs.
_CURVATURE_RATIOS = {
    "tanh": lambda y: -2.0 * y,
    "relu": lambda y: np.zeros_like(y),
    "linear": lambda y: np.zeros_like(y),
    "sigmoid": lambda y: 1.0 - 2.0 * y,
}


def _rnn_lyapunov_backward(cell, state, x, frame, pushed, frame_cotangent, state_cotangent, inputs, scale, residual):
    r"""The fused backward step of :meth:`Cell._lyapunov_backward` for s' = [s +] c phi(a),
    a = W_hh s + b_hh + W_ih x + b_ih (c = ``scale``; the skip term with ``residual``).

    With :math:`J = [I +]\, c\, \operatorname{diag}(\phi') W`, :math:`B = c\,\phi' \odot
    \bar A` and the pushed frame :math:`A = J Q`:
    :math:`\operatorname{tr}(\bar A^\top J Q) = [\operatorname{tr}(\bar A^\top Q) +]\,
    c \sum_{ij} \phi'(a_i) \bar A_{ij} (W Q)_{ij}`, whose gradient is :math:`B Q^\top` in W
    directly and :math:`g_i = \rho_i \sum_j \bar A_{ij} (A - [Q])_{ij}` in a, with
    :math:`\rho = \phi''/\phi'` (-2 phi for tanh). Two N x N x k products per step
    (W^T B, B Q^T), against the generic path's complex evaluations.
    """
    phi, dphi = ACTIVATIONS[cell.activation]
    w = cell.weight_hh
    a = cell._preactivation(state, x)
    y = phi(a)
    d1 = dphi(a, y)
    branch = pushed - frame if residual else pushed
    w_t = np.swapaxes(w, -1, -2)
    b = (scale * d1)[..., :, None] * frame_cotangent
    frame_back = w_t @ b
    grad_a = _CURVATURE_RATIOS[cell.activation](y) * np.sum(frame_cotangent * branch, axis=-1)
    grad_a = grad_a + scale * state_cotangent * d1
    state_back = _mv(w_t, grad_a) if w.ndim > 2 else grad_a @ w
    if residual:
        frame_back = frame_back + frame_cotangent
        state_back = state_back + state_cotangent
    shape = _batch_shape(state, x, grad_a)
    params = _affine_grads(grad_a, x, grad_a, state, shape, cell.batch_shape)
    params["weight_hh"] = params["weight_hh"] + _sum_to_members(b @ np.swapaxes(frame, -1, -2), cell.batch_shape)
    x_back = _vm(grad_a, cell.weight_ih) if inputs else None
    return frame_back, state_back, params, x_back


@dataclass(frozen=True, eq=False)
class ResidualRNN(RNN):
    r"""RNN cell with an identity skip connection.

    .. math::

        s_t = s_{t-1} + \alpha\, \phi(W_{hh} s_{t-1} + b_{hh} + W_{ih} x_t + b_{ih})

        \frac{\partial s_t}{\partial s_{t-1}} = I + \alpha \operatorname{diag}(\phi'(a_t)) W_{hh}

    Parameters are those of :class:`RNN` plus ``alpha`` (the residual branch's weight).
    The default activation is linear, the setting of THEORY.md section 9.
    """

    activation: str = "linear"
    alpha: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "alpha", finite_number(self.alpha, "alpha"))

    def _forward(self, state, x):
        y, slope = super()._forward(state, x)
        return state + self.alpha * y, slope

    def _jacobian(self, state, x, path):
        y, slope = self._forward(state, x)
        jac = (self.alpha * slope)[..., :, None] * self.weight_hh
        jac = jac + np.eye(self.n_hidden)
        return y, jac

    def _jacobian_operator(self, state, x, path):
        y, slope = self._forward(state, x)
        return y, _ScaledRows(self.alpha * slope, self.weight_hh, identity=True)

    def _step(self, state, x):
        return self._forward(state, x)[0]

    def _vjp(self, state, x, cotangent, path):
        _, slope = self._forward(state, x)
        return cotangent + _vm(self.alpha * cotangent * slope, self.weight_hh)

    def _param_vjp(self, state, x, cotangent):
        # s' = s + alpha phi(a): dL/da = alpha v * phi'(a).
        _, slope = self._forward(state, x)
        grad_a = self.alpha * cotangent * slope
        return _affine_grads(grad_a, x, grad_a, state, _batch_shape(state, x, cotangent), self.batch_shape)

    def _lyapunov_backward(self, state, x, frame, pushed, frame_cotangent, state_cotangent, path, inputs):
        return _rnn_lyapunov_backward(
            self, state, x, frame, pushed, frame_cotangent, state_cotangent, inputs, self.alpha, True
        )

    def _param_jvp(self, state, x, tangent):
        # d s' = alpha phi'(a) * (dW_hh s + db_hh + dW_ih x + db_ih).
        _, slope = self._forward(state, x)
        return (self.alpha * slope) * _affine_tangent(x, state, tangent)


class _ScaledRows:
    """The Jacobian diag(d) W (or I + diag(d) W) as an operator.

    ``J @ M`` is one product W @ M and a row scaling: the P x P matrix is never formed, which
    saves a P^2 write per step (the dominant cost for an ensemble's thin frames).
    """

    __slots__ = ("scale", "weight", "identity")

    def __init__(self, scale, weight, identity=False):
        self.scale, self.weight, self.identity = scale, weight, identity

    def __matmul__(self, m):
        out = self.weight @ m
        scale = self.scale[..., :, None]
        if scale.shape[:-1] == out.shape[:-1]:  # the common case: scale in place
            out *= scale
        else:
            out = out * scale
        if self.identity:
            out += m
        return out

    def member(self, index):
        """The operator of batch member ``index`` (a tuple into the leading dimensions)."""
        return _ScaledRows(*_members((self.scale, self.weight), (1, 2), index), self.identity)
