"""The GRU cell in three variants: PyTorch (reset after), reset before, and Chung et al."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validate import choice
from .base import (
    Cell,
    _affine,
    _affine_grads,
    _batch_shape,
    _batch_sum,
    _diag,
    _mv,
    _outer_sum,
    _sigmoid,
    _sigmoid_slope,
    _sum_to_members,
    _vm,
    _COMPLEX_STEP,
)


def _torch_gates_vjp(p, ax, h, v, n):
    """The PyTorch GRU's elementwise part h' = F(p, ax, h) back-propagated, columns last.

    p (..., 3 N, m) = W_hh h + b_hh, ax (..., 3 N, m) = W_ih x + b_ih, h (..., N, m), v the
    cotangent of h' (..., N, m) -> (grad_p, grad_ax, grad_h) of those shapes.
    r = sigma(ax_r + p_r), z = sigma(ax_z + p_z), n = tanh(ax_n + r p_n), h' = z h + (1 - z) n.
    Complex-safe (the complex step of the adjoint of the QR method evaluates it at complex p, h).
    """
    r = _sigmoid(ax[..., :n, :] + p[..., :n, :])
    z = _sigmoid(ax[..., n : 2 * n, :] + p[..., n : 2 * n, :])
    p_n = p[..., 2 * n :, :]
    cand = np.tanh(ax[..., 2 * n :, :] + r * p_n)
    g_an = v * (1.0 - z) * (1.0 - cand * cand)
    g_az = v * (h - cand) * _sigmoid_slope(z)
    g_ar = g_an * p_n * _sigmoid_slope(r)
    grad_ax = np.concatenate([g_ar, g_az, g_an], axis=-2)
    grad_p = np.concatenate([g_ar, g_az, g_an * r], axis=-2)
    return grad_p, grad_ax, v * z

GRU_VARIANTS = ("torch", "reset_before", "chung")


@dataclass(frozen=True, eq=False)
class GRU(Cell):
    r"""GRU cell; gates stacked r, z, n as in ``torch.nn.GRU``.

    .. math::

        r = \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}), \qquad
        z = \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz})

    ``variant="torch"`` (reset after the matmul, as PyTorch, cuDNN and Keras ``reset_after=True``):

    .. math::

        n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})), \qquad
        h' = (1 - z) \odot n + z \odot h

        \partial h'/\partial h = \operatorname{diag}(z) + \operatorname{diag}((h - n)\sigma'(a_z)) W_{hz}
            + \operatorname{diag}((1-z)(1-n^2))\,[\operatorname{diag}(r) W_{hn}
            + \operatorname{diag}((W_{hn} h + b_{hn})\sigma'(a_r)) W_{hr}]

    ``variant="reset_before"`` (Cho et al. 2014; Keras ``reset_after=False``):
    :math:`n = \tanh(W_{in} x + b_{in} + W_{hn}(r \odot h) + b_{hn})`, same update as torch.

    ``variant="chung"`` (Chung et al. 2014): reset before, and the roles of z swapped,
    :math:`h' = (1 - z) \odot h + z \odot n`.

    Paths: ``"full"`` and ``"direct"`` (the skip term alone: diag(z), or diag(1 - z) for chung).

    Parameters
    ----------
    weight_ih : array, shape (3 N, I) or None
    weight_hh : array, shape (3 N, N)
    bias_ih, bias_hh : array, shape (3 N,), optional
    variant : {"torch", "reset_before", "chung"}
    """

    weight_ih: np.ndarray | None
    weight_hh: np.ndarray
    bias_ih: np.ndarray | None = None
    bias_hh: np.ndarray | None = None
    variant: str = "torch"
    paths = ("full", "direct")
    n_gates = 3

    def __post_init__(self):
        choice(self.variant, "variant", GRU_VARIANTS)
        self._freeze_weights()

    def _forward(self, h, x):
        n = self.n_hidden
        w = self.weight_hh
        b = self.bias_hh
        ax = _affine(x, self.weight_ih, self.bias_ih)
        hr = _mv(w[..., : 2 * n, :], h) + b[..., : 2 * n]
        r = _sigmoid(ax[..., :n] + hr[..., :n])
        z = _sigmoid(ax[..., n : 2 * n] + hr[..., n:])
        if self.variant == "torch":
            hn = _mv(w[..., 2 * n :, :], h) + b[..., 2 * n :]
            cand = np.tanh(ax[..., 2 * n :] + r * hn)
        else:
            hn = None
            cand = np.tanh(ax[..., 2 * n :] + _mv(w[..., 2 * n :, :], r * h) + b[..., 2 * n :])
        keep = z if self.variant != "chung" else 1.0 - z
        h_new = keep * h + (1.0 - keep) * cand
        return h_new, dict(h=h, r=r, z=z, n=cand, hn=hn, keep=keep)

    def _candidate_grad(self, p, v):
        """v -> v^T dn/dh for the candidate n (both reset placements)."""
        n = self.n_hidden
        w = self.weight_hh
        w_r, w_n = w[..., :n, :], w[..., 2 * n :, :]
        g_an = v * (1.0 - p["n"] ** 2)
        if self.variant == "torch":
            return _vm(g_an * p["r"], w_n) + _vm(g_an * p["hn"] * _sigmoid_slope(p["r"]), w_r)
        g_rh = _vm(g_an, w_n)  # gradient wrt (r * h)
        return g_rh * p["r"] + _vm(g_rh * p["h"] * _sigmoid_slope(p["r"]), w_r)

    def _jacobian(self, state, x, path):
        new, p = self._forward(state, x)
        if path == "direct":
            return new, _diag(p["keep"])
        n = self.n_hidden
        w = self.weight_hh
        w_r, w_z, w_n = w[..., :n, :], w[..., n : 2 * n, :], w[..., 2 * n :, :]
        if self.variant == "torch":
            dn = (1.0 - p["n"] ** 2)[..., :, None] * (
                p["r"][..., :, None] * w_n + (p["hn"] * _sigmoid_slope(p["r"]))[..., :, None] * w_r
            )
        else:
            # d(r*h)/dh = diag(r) + diag(h sigma'(a_r)) W_hr
            drh = _diag(p["r"]) + (p["h"] * _sigmoid_slope(p["r"]))[..., :, None] * w_r
            dn = (1.0 - p["n"] ** 2)[..., :, None] * (w_n @ drh)
        # h' = keep h + (1 - keep) n with keep = z (torch, reset_before) or 1 - z (chung).
        sign = 1.0 if self.variant != "chung" else -1.0
        dz = (sign * (p["h"] - p["n"]) * _sigmoid_slope(p["z"]))[..., :, None] * w_z
        jac = _diag(p["keep"]) + dz + (1.0 - p["keep"])[..., :, None] * dn
        return new, jac

    def _vjp(self, state, x, cotangent, path):
        _, p = self._forward(state, x)
        if path == "direct":
            return cotangent * p["keep"]
        n = self.n_hidden
        w_z = self.weight_hh[..., n : 2 * n, :]
        sign = 1.0 if self.variant != "chung" else -1.0
        grad = cotangent * p["keep"]
        grad = grad + _vm(cotangent * sign * (p["h"] - p["n"]) * _sigmoid_slope(p["z"]), w_z)
        return grad + self._candidate_grad(p, cotangent * (1.0 - p["keep"]))

    def _lyapunov_backward(self, state, x, frame, pushed, frame_cotangent, state_cotangent, path, inputs):
        r"""The fused backward step of :meth:`Cell._lyapunov_backward` for the PyTorch variant's
        full path (the others take the generic one).

        The step is affine, :math:`p = W_{hh} h + b_{hh}` and :math:`a_x = W_{ih} x + b_{ih}`,
        then elementwise, :math:`h' = F(p, a_x, h)`, so :math:`J Q = F_p W Q + F_h Q`: with
        :math:`G` the elementwise VJP of F for the columns of :math:`\bar A`,
        :math:`J^\top \bar A = W^\top G_p + G_h`; the second-order term differentiates that
        VJP along :math:`(W q_j, q_j)` by the complex step (elementwise), and adds
        :math:`G_p Q^\top` to the gradient in :math:`W_{hh}`. Three 3N x N x k products per step.
        """
        if self.variant != "torch" or path != "full":
            return super()._lyapunov_backward(state, x, frame, pushed, frame_cotangent, state_cotangent, path, inputs)
        n = self.n_hidden
        w = self.weight_hh
        p = _mv(w, state) + self.bias_hh
        ax = _affine(x, self.weight_ih, self.bias_ih)
        p_col, ax_col, h_col = p[..., :, None], ax[..., :, None], state[..., :, None]
        g_p, _, g_h = _torch_gates_vjp(p_col, ax_col, h_col, frame_cotangent, n)
        probe_p = p_col + (1j * _COMPLEX_STEP) * (w @ frame)
        probe_h = h_col + (1j * _COMPLEX_STEP) * frame
        d_p, d_ax, d_h = _torch_gates_vjp(probe_p, ax_col, probe_h, frame_cotangent, n)
        s_p, s_ax, s_h = _torch_gates_vjp(p_col, ax_col, h_col, state_cotangent[..., :, None], n)
        grad_p = np.sum(d_p.imag, axis=-1) / _COMPLEX_STEP + s_p[..., 0]
        grad_ax = np.sum(d_ax.imag, axis=-1) / _COMPLEX_STEP + s_ax[..., 0]
        grad_h = np.sum(d_h.imag, axis=-1) / _COMPLEX_STEP + s_h[..., 0]
        shape = _batch_shape(state, x, grad_p)
        params = _affine_grads(grad_ax, x, grad_p, state, shape, self.batch_shape)
        params["weight_hh"] = params["weight_hh"] + _sum_to_members(g_p @ np.swapaxes(frame, -1, -2), self.batch_shape)
        frame_back = np.swapaxes(w, -1, -2) @ g_p + g_h
        state_back = _vm(grad_p, w) + grad_h
        x_back = _vm(grad_ax, self.weight_ih) if inputs else None
        return frame_back, state_back, params, x_back

    def _frame_vjp(self, state, x, frame, cotangent, path, inputs=True):
        r"""As :meth:`Cell._frame_vjp`; the ``"direct"`` path's diag(keep) is not a sub-block
        of the full Jacobian, so its second-order term is written out:
        :math:`\sum_j a_j^\top \operatorname{diag}(\kappa) q_j = u \cdot \kappa` with
        :math:`u = \sum_j a_j \odot q_j` and :math:`\kappa = z` (or 1 - z for chung),
        :math:`z = \sigma(a_z)`: its gradient is that of the gate pre-activation
        :math:`a_z = W_{iz} x + b_{iz} + W_{hz} h + b_{hz}` with cotangent
        :math:`\pm u\, \sigma'(a_z)`."""
        if path != "direct":
            return super()._frame_vjp(state, x, frame, cotangent, path, inputs)
        n = self.n_hidden
        _, p = self._forward(state, x)
        u = np.sum(frame * cotangent, axis=-1)
        sign = 1.0 if self.variant != "chung" else -1.0
        grad_z = sign * u * _sigmoid_slope(p["z"])
        shape = _batch_shape(state, x, u)
        grad_a = np.zeros(shape + (3 * n,))
        grad_a[..., n : 2 * n] = grad_z
        grad_state = _vm(grad_z, self.weight_hh[..., n : 2 * n, :])
        grad_x = _vm(grad_z, self.weight_ih[..., n : 2 * n, :]) if inputs else None
        grad_params = _affine_grads(grad_a, x, grad_a, state, shape, self.batch_shape)
        return grad_state, grad_x, grad_params

    def _param_vjp(self, state, x, cotangent):
        # h' = keep h + (1 - keep) n, keep = z (or 1 - z): the gradients of the pre-activations
        # a_z, a_n, a_r, split into their input part (W_ih x + b_ih) and hidden part.
        n = self.n_hidden
        _, p = self._forward(state, x)
        sign = 1.0 if self.variant != "chung" else -1.0
        g_az = cotangent * sign * (p["h"] - p["n"]) * _sigmoid_slope(p["z"])
        g_an = cotangent * (1.0 - p["keep"]) * (1.0 - p["n"] ** 2)
        shape = _batch_shape(state, x, cotangent)
        if self.variant == "torch":
            # a_n = (W_in x + b_in) + r * (W_hn h + b_hn)
            g_ar = g_an * p["hn"] * _sigmoid_slope(p["r"])
            g_hidden = np.concatenate([g_ar, g_az, g_an * p["r"]], axis=-1)
            g_input = np.concatenate([g_ar, g_az, g_an], axis=-1)
            return _affine_grads(g_input, x, g_hidden, state, shape, self.batch_shape)
        # a_n = (W_in x + b_in) + W_hn (r * h) + b_hn
        rh = p["r"] * p["h"]
        g_ar = _vm(g_an, self.weight_hh[..., 2 * n :, :]) * p["h"] * _sigmoid_slope(p["r"])
        g_gates = np.concatenate([g_ar, g_az], axis=-1)
        g_input = np.concatenate([g_ar, g_az, g_an], axis=-1)
        grads = _affine_grads(g_input, x, g_gates, state, shape, self.batch_shape)
        grads["weight_hh"] = np.concatenate(
            [grads["weight_hh"], _outer_sum(g_an, rh, self.batch_shape)], axis=-2
        )
        grads["bias_hh"] = np.concatenate(
            [grads["bias_hh"], _batch_sum(g_an, shape, self.batch_shape)], axis=-1
        )
        return grads

    def _param_jvp(self, state, x, tangent):
        r"""The step's derivative along a parameter tangent, h held fixed.

        With :math:`\delta a^x = \delta W_{ih} x + \delta b_{ih}` and
        :math:`\delta a^h = \delta W_{hh} h + \delta b_{hh}` (rows r, z, n):

        .. math::

            \delta r = \sigma'(a_r) (\delta a^x_r + \delta a^h_r), \qquad
            \delta z = \sigma'(a_z) (\delta a^x_z + \delta a^h_z)

            \delta a_n = \delta a^x_n + \delta r \odot (W_{hn} h + b_{hn}) + r \odot \delta a^h_n
            \quad \text{(torch)}, \qquad
            \delta a_n = \delta a^x_n + \delta W_{hn} (r h) + W_{hn} (\delta r\, h) + \delta b_{hn}
            \quad \text{(reset before)}

            \delta h' = \delta\kappa\, (h - n) + (1 - \kappa)(1 - n^2)\, \delta a_n

        with the kept fraction :math:`\kappa = z` (:math:`\delta\kappa = \delta z`), or
        :math:`1 - z` for chung (:math:`\delta\kappa = -\delta z`).
        """
        n = self.n_hidden
        _, p = self._forward(state, x)
        d_x = _affine(x, tangent["weight_ih"], tangent["bias_ih"])
        d_w, d_b = tangent["weight_hh"], tangent["bias_hh"]
        d_gates = d_x[..., : 2 * n] + _mv(d_w[..., : 2 * n, :], state) + d_b[..., : 2 * n]
        d_r = _sigmoid_slope(p["r"]) * d_gates[..., :n]
        d_z = _sigmoid_slope(p["z"]) * d_gates[..., n:]
        if self.variant == "torch":
            d_hn = _mv(d_w[..., 2 * n :, :], state) + d_b[..., 2 * n :]
            d_an = d_x[..., 2 * n :] + d_r * p["hn"] + p["r"] * d_hn
        else:
            rh = p["r"] * state
            d_an = (
                d_x[..., 2 * n :]
                + _mv(d_w[..., 2 * n :, :], rh)
                + _mv(self.weight_hh[..., 2 * n :, :], d_r * state)
                + d_b[..., 2 * n :]
            )
        d_keep = d_z if self.variant != "chung" else -d_z
        return d_keep * (state - p["n"]) + (1.0 - p["keep"]) * (1.0 - p["n"] ** 2) * d_an
