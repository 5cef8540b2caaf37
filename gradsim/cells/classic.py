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

    def _param_jvp(self, state, x, tangent):
        # d s' = phi'(a) * (dW_hh s + db_hh + dW_ih x + db_ih), s and x fixed.
        _, slope = self._forward(state, x)
        return slope * _affine_tangent(x, state, tangent)


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
