"""The LSTM cell (PyTorch form, state concat(h, c)) and its structured full-state Jacobian."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import (
    Cell,
    _affine,
    _affine_grads,
    _affine_tangent,
    _batch_shape,
    _diag,
    _members,
    _mv,
    _sigmoid,
    _sigmoid_slope,
    _sum_to_members,
    _vm,
    _COMPLEX_STEP,
)


def _gates_vjp(a, c, v_h, v_c, n):
    """The LSTM's elementwise part (h', c') = F(a, c) back-propagated, columns on the last axis.

    a (..., 4 N, m) pre-activations, c (..., N, m) cell state, v_h and v_c (..., N, m) the
    cotangents of h' and c' (None for zero) -> (grad_a (..., 4 N, m), grad_c (..., N, m)).
    Complex-safe: the adjoint of the QR method evaluates it at complex points (complex step).
    """
    i = _sigmoid(a[..., :n, :])
    f = _sigmoid(a[..., n : 2 * n, :])
    g = np.tanh(a[..., 2 * n : 3 * n, :])
    o = _sigmoid(a[..., 3 * n :, :])
    tanh_c = np.tanh(f * c + i * g)
    u_c = 0.0 if v_c is None else v_c
    if v_h is not None:
        u_c = u_c + v_h * o * (1.0 - tanh_c * tanh_c)
    u_c = np.broadcast_to(u_c, np.broadcast_shapes(np.shape(u_c), f.shape))
    grad_o = np.zeros_like(u_c) if v_h is None else v_h * tanh_c * _sigmoid_slope(o)
    grad_a = np.concatenate(
        [u_c * g * _sigmoid_slope(i), u_c * c * _sigmoid_slope(f), u_c * i * (1.0 - g * g), grad_o], axis=-2
    )
    return grad_a, u_c * f

@dataclass(frozen=True, eq=False)
class LSTM(Cell):
    r"""LSTM cell in PyTorch's form; the state vector is ``concat(h, c)`` of length 2 N.

    .. math::

        (a_i, a_f, a_g, a_o) = W_{ih} x_t + b_{ih} + W_{hh} h_{t-1} + b_{hh}

        i, f, o = \sigma(a_i), \sigma(a_f), \sigma(a_o), \qquad g = \tanh(a_g)

        c_t = f \odot c_{t-1} + i \odot g, \qquad h_t = o \odot \tanh(c_t)

    Jacobian blocks (THEORY.md section 7), with :math:`\sigma' = \sigma(1-\sigma)`:

    .. math::

        \partial c_t/\partial c_{t-1} = \operatorname{diag}(f)

        \partial c_t/\partial h_{t-1} = \operatorname{diag}(c_{t-1}\sigma'(a_f)) W_{hf}
            + \operatorname{diag}(g\,\sigma'(a_i)) W_{hi} + \operatorname{diag}(i(1-g^2)) W_{hg}

        \partial h_t/\partial c_{t-1} = \operatorname{diag}(o(1-\tanh^2 c_t) f)

        \partial h_t/\partial h_{t-1} = \operatorname{diag}(\tanh(c_t)\sigma'(a_o)) W_{ho}
            + \operatorname{diag}(o(1-\tanh^2 c_t))\, \partial c_t/\partial h_{t-1}

    Paths: ``"full"`` (2N x 2N), ``"cell"`` (the c -> c block diag(f), the constant error
    carousel), ``"hidden"`` (the h -> h block with c held fixed).

    Parameters
    ----------
    weight_ih : array, shape (4 N, I) or None
    weight_hh : array, shape (4 N, N)
    bias_ih, bias_hh : array, shape (4 N,), optional
    """

    weight_ih: np.ndarray | None
    weight_hh: np.ndarray
    bias_ih: np.ndarray | None = None
    bias_hh: np.ndarray | None = None
    paths = ("full", "cell", "hidden")
    n_gates = 4

    def __post_init__(self):
        self._freeze_weights()

    @property
    def state_size(self) -> int:
        return 2 * self.n_hidden

    def _forward(self, state, x):
        n = self.n_hidden
        h, c = state[..., :n], state[..., n:]
        a = _mv(self.weight_hh, h) + self.bias_hh + _affine(x, self.weight_ih, self.bias_ih)
        i = _sigmoid(a[..., :n])
        f = _sigmoid(a[..., n : 2 * n])
        g = np.tanh(a[..., 2 * n : 3 * n])
        o = _sigmoid(a[..., 3 * n :])
        c_new = f * c + i * g
        tanh_c = np.tanh(c_new)
        h_new = o * tanh_c
        parts = dict(c=c, i=i, f=f, g=g, o=o, tanh_c=tanh_c)
        return np.concatenate([h_new, c_new], axis=-1), parts

    def _blocks(self, p):
        """The four N x N Jacobian blocks (dh/dh, dh/dc, dc/dh, dc/dc as a vector f)."""
        n = self.n_hidden
        w = self.weight_hh
        w_i, w_f, w_g, w_o = w[..., :n, :], w[..., n : 2 * n, :], w[..., 2 * n : 3 * n, :], w[..., 3 * n :, :]
        dc_dh = (
            (p["c"] * _sigmoid_slope(p["f"]))[..., :, None] * w_f
            + (p["g"] * _sigmoid_slope(p["i"]))[..., :, None] * w_i
            + (p["i"] * (1.0 - p["g"] ** 2))[..., :, None] * w_g
        )
        out_slope = p["o"] * (1.0 - p["tanh_c"] ** 2)
        dh_dh = (p["tanh_c"] * _sigmoid_slope(p["o"]))[..., :, None] * w_o + out_slope[
            ..., :, None
        ] * dc_dh
        return dh_dh, out_slope * p["f"], dc_dh

    def _jacobian_operator(self, state, x, path):
        if path != "full":
            return self._jacobian(state, x, path)
        new, p = self._forward(state, x)
        dh_dh, dh_dc, dc_dh = self._blocks(p)
        return new, _LSTMJacobian(dh_dh, dh_dc, dc_dh, p["f"])

    def _jacobian(self, state, x, path):
        new, p = self._forward(state, x)
        if path == "cell":
            return new, _diag(p["f"])
        dh_dh, dh_dc, dc_dh = self._blocks(p)
        if path == "hidden":
            return new, dh_dh
        top = np.concatenate([dh_dh, _diag(dh_dc)], axis=-1)
        bottom = np.concatenate([dc_dh, _diag(p["f"])], axis=-1)
        return new, np.concatenate([top, bottom], axis=-2)

    def _vjp(self, state, x, cotangent, path):
        n = self.n_hidden
        _, p = self._forward(state, x)
        if path == "cell":
            return cotangent * p["f"]
        if path == "hidden":
            v_h, v_c = cotangent, np.zeros_like(cotangent)
        else:
            v_h, v_c = cotangent[..., :n], cotangent[..., n:]
        # Gradient reaching c_t, through c_t directly and through h_t = o tanh(c_t).
        u_c = v_c + v_h * p["o"] * (1.0 - p["tanh_c"] ** 2)
        grad_a = np.concatenate(
            [
                u_c * p["g"] * _sigmoid_slope(p["i"]),
                u_c * p["c"] * _sigmoid_slope(p["f"]),
                u_c * p["i"] * (1.0 - p["g"] ** 2),
                v_h * p["tanh_c"] * _sigmoid_slope(p["o"]),
            ],
            axis=-1,
        )
        grad_h = _vm(grad_a, self.weight_hh)
        if path == "hidden":
            return grad_h
        return np.concatenate([grad_h, u_c * p["f"]], axis=-1)

    def _lyapunov_backward(self, state, x, frame, pushed, frame_cotangent, state_cotangent, path, inputs):
        r"""The fused backward step of :meth:`Cell._lyapunov_backward`.

        The step is affine, :math:`a = W_{hh} h + b_{hh} + W_{ih} x + b_{ih}`, then elementwise,
        :math:`(h', c') = F(a, c)`, so :math:`J Q = F_a W Q_h + F_c Q_c`. With :math:`G` the
        elementwise VJP of F for the columns of :math:`\bar A` (and :math:`G_a` its part in a),
        :math:`J^\top \bar A = (W^\top G_a, G_c)`; the second-order term differentiates that
        elementwise VJP along :math:`(W q_{h,j}, q_{c,j})` by the complex step (elementwise, so
        cheap: no complex matmul), and adds :math:`G_a Q_h^\top` to the gradient in
        :math:`W_{hh}` (the Jacobian's own dependence on it). Three 4N x N x k products per step
        (W Q_h, W^T G_a, G_a Q_h^T); the cell path needs none.
        """
        n = self.n_hidden
        w = self.weight_hh
        h, c = state[..., :n], state[..., n:]
        a = _mv(w, h) + self.bias_hh + _affine(x, self.weight_ih, self.bias_ih)
        if path == "full":
            q_h, q_c = frame[..., :n, :], frame[..., n:, :]
            v_h, v_c = frame_cotangent[..., :n, :], frame_cotangent[..., n:, :]
        elif path == "cell":
            q_h, q_c, v_h, v_c = None, frame, None, frame_cotangent
        else:
            q_h, q_c, v_h, v_c = frame, None, frame_cotangent, None
        a_col, c_col = a[..., :, None], c[..., :, None]
        g_a, g_c = _gates_vjp(a_col, c_col, v_h, v_c, n)
        w_t = np.swapaxes(w, -1, -2)
        # The second-order term: the gates' VJP differentiated along (W q_h, q_c).
        a_probe = a_col if q_h is None else a_col + (1j * _COMPLEX_STEP) * (w @ q_h)
        c_probe = c_col if q_c is None else c_col + (1j * _COMPLEX_STEP) * q_c
        d_a, d_c = _gates_vjp(a_probe, c_probe, v_h, v_c, n)
        second_a = np.sum(d_a.imag, axis=-1) / _COMPLEX_STEP
        second_c = np.sum(d_c.imag, axis=-1) / _COMPLEX_STEP
        s_a, s_c = _gates_vjp(a_col, c_col, state_cotangent[..., :n, None], state_cotangent[..., n:, None], n)
        grad_a = second_a + s_a[..., 0]
        shape = _batch_shape(state, x, grad_a)
        params = _affine_grads(grad_a, x, grad_a, h, shape, self.batch_shape)
        if q_h is not None:
            params["weight_hh"] = params["weight_hh"] + _sum_to_members(g_a @ np.swapaxes(q_h, -1, -2), self.batch_shape)
        state_back = np.concatenate([_vm(grad_a, w), second_c + s_c[..., 0]], axis=-1)
        if path == "full":
            frame_back = np.concatenate([w_t @ g_a, g_c], axis=-2)
        elif path == "cell":
            frame_back = g_c
        else:
            frame_back = w_t @ g_a
        x_back = _vm(grad_a, self.weight_ih) if inputs else None
        return frame_back, state_back, params, x_back

    def _path_coordinates(self, path):
        # The cell path's diag(f) is dc'/dc and the hidden path's block dh'/dh: principal
        # sub-blocks of the full Jacobian, on the c and the h coordinates.
        n = self.n_hidden
        return {"full": slice(None), "cell": slice(n, 2 * n), "hidden": slice(0, n)}[path]

    def _param_vjp(self, state, x, cotangent):
        # The same dL/da (all four gates) as the full-path _vjp, then the affine maps' gradients.
        n = self.n_hidden
        _, p = self._forward(state, x)
        v_h, v_c = cotangent[..., :n], cotangent[..., n:]
        u_c = v_c + v_h * p["o"] * (1.0 - p["tanh_c"] ** 2)
        grad_a = np.concatenate(
            [
                u_c * p["g"] * _sigmoid_slope(p["i"]),
                u_c * p["c"] * _sigmoid_slope(p["f"]),
                u_c * p["i"] * (1.0 - p["g"] ** 2),
                v_h * p["tanh_c"] * _sigmoid_slope(p["o"]),
            ],
            axis=-1,
        )
        h = state[..., :n]
        return _affine_grads(grad_a, x, grad_a, h, _batch_shape(state, x, cotangent), self.batch_shape)

    def _param_jvp(self, state, x, tangent):
        r"""The step's derivative along a parameter tangent, (h, c) held fixed.

        .. math::

            \delta a = \delta W_{ih} x + \delta b_{ih} + \delta W_{hh} h + \delta b_{hh}, \qquad
            \delta i = \sigma'(a_i) \delta a_i, \ \delta f = \sigma'(a_f) \delta a_f, \
            \delta g = (1 - g^2) \delta a_g, \ \delta o = \sigma'(a_o) \delta a_o

            \delta c_t = \delta f\, c + \delta i\, g + i\, \delta g, \qquad
            \delta h_t = \delta o \tanh(c_t) + o (1 - \tanh^2 c_t)\, \delta c_t
        """
        n = self.n_hidden
        _, p = self._forward(state, x)
        d_a = _affine_tangent(x, state[..., :n], tangent)
        d_i = _sigmoid_slope(p["i"]) * d_a[..., :n]
        d_f = _sigmoid_slope(p["f"]) * d_a[..., n : 2 * n]
        d_g = (1.0 - p["g"] ** 2) * d_a[..., 2 * n : 3 * n]
        d_o = _sigmoid_slope(p["o"]) * d_a[..., 3 * n :]
        d_c = d_f * p["c"] + d_i * p["g"] + p["i"] * d_g
        d_h = d_o * p["tanh_c"] + p["o"] * (1.0 - p["tanh_c"] ** 2) * d_c
        return np.concatenate([d_h, d_c], axis=-1)


class _LSTMJacobian:
    """The LSTM's full-state Jacobian [[dh/dh, diag(dh/dc)], [dc/dh, diag(f)]] as an operator.

    ``J @ M`` costs two N x N by N x k products (4 N^2 k flops) instead of the dense
    2N x 2N product's 8 N^2 k, because two of the four blocks are diagonal.
    """

    __slots__ = ("dh_dh", "dh_dc", "dc_dh", "f")

    def __init__(self, dh_dh, dh_dc, dc_dh, f):
        self.dh_dh, self.dh_dc, self.dc_dh, self.f = dh_dh, dh_dc, dc_dh, f

    def __matmul__(self, m):
        n = self.f.shape[-1]
        m_h, m_c = m[..., :n, :], m[..., n:, :]
        top = self.dh_dh @ m_h + self.dh_dc[..., :, None] * m_c
        bottom = self.dc_dh @ m_h + self.f[..., :, None] * m_c
        return np.concatenate([top, bottom], axis=-2)

    def member(self, index):
        """The operator of batch member ``index`` (a tuple into the leading dimensions)."""
        return _LSTMJacobian(*_members((self.dh_dh, self.dh_dc, self.dc_dh, self.f), (2, 1, 2, 1), index))
