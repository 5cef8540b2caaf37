"""Recurrent cells: immutable parameter holders with pure step, Jacobian and VJP functions.

Parameters use PyTorch's layout and names (``weight_ih``, ``weight_hh``, ``bias_ih``,
``bias_hh``; gates stacked i, f, g, o for the LSTM and r, z, n for the GRU), so that weights
move between gradsim and ``torch.nn`` without reshaping. The time loop lives in
:mod:`gradsim.products`; a cell only knows one step.

Every method accepts leading batch dimensions: ``state`` of shape ``(..., state_size)`` and
``x`` of shape ``(..., n_input)``; Jacobians then have shape ``(..., S, S)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from . import init as _init
from ._validate import (
    as_rng,
    choice,
    finite_array,
    finite_number,
    frozen,
    positive_int,
    positive_number,
)

__all__ = ["Cell", "RNN", "ResidualRNN", "LSTM", "GRU", "make_cell", "ACTIVATIONS", "CELL_KINDS"]


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
    (the gradient with respect to the weights, for BPTT training in :mod:`gradsim.train`).

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


# ------------------------------------------------------------------------------------------
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
        return state @ self.weight_hh.T + _affine(x, self.weight_ih, self.bias_ih) + self.bias_hh

    def _forward(self, state, x):
        phi, dphi = ACTIVATIONS[self.activation]
        a = self._preactivation(state, x)
        y = phi(a)
        return y, dphi(a, y)

    def _jacobian(self, state, x, path):
        y, slope = self._forward(state, x)
        return y, slope[..., :, None] * self.weight_hh

    def _vjp(self, state, x, cotangent, path):
        _, slope = self._forward(state, x)
        return (cotangent * slope) @ self.weight_hh

    def _param_vjp(self, state, x, cotangent):
        # a = W_hh s + b_hh + W_ih x + b_ih, s' = phi(a): dL/da = v * phi'(a).
        _, slope = self._forward(state, x)
        grad_a = cotangent * slope
        return _affine_grads(grad_a, x, grad_a, state, _batch_shape(state, x, cotangent))


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

    def _vjp(self, state, x, cotangent, path):
        _, slope = self._forward(state, x)
        return cotangent + (self.alpha * cotangent * slope) @ self.weight_hh

    def _param_vjp(self, state, x, cotangent):
        # s' = s + alpha phi(a): dL/da = alpha v * phi'(a).
        _, slope = self._forward(state, x)
        grad_a = self.alpha * cotangent * slope
        return _affine_grads(grad_a, x, grad_a, state, _batch_shape(state, x, cotangent))


# ------------------------------------------------------------------------------------------
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
        a = h @ self.weight_hh.T + self.bias_hh + _affine(x, self.weight_ih, self.bias_ih)
        i = expit(a[..., :n])
        f = expit(a[..., n : 2 * n])
        g = np.tanh(a[..., 2 * n : 3 * n])
        o = expit(a[..., 3 * n :])
        c_new = f * c + i * g
        tanh_c = np.tanh(c_new)
        h_new = o * tanh_c
        parts = dict(c=c, i=i, f=f, g=g, o=o, tanh_c=tanh_c)
        return np.concatenate([h_new, c_new], axis=-1), parts

    def _blocks(self, p):
        """The four N x N Jacobian blocks (dh/dh, dh/dc, dc/dh, dc/dc as a vector f)."""
        n = self.n_hidden
        w = self.weight_hh
        w_i, w_f, w_g, w_o = w[:n], w[n : 2 * n], w[2 * n : 3 * n], w[3 * n :]
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
        grad_h = grad_a @ self.weight_hh
        if path == "hidden":
            return grad_h
        return np.concatenate([grad_h, u_c * p["f"]], axis=-1)

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
        return _affine_grads(grad_a, x, grad_a, h, _batch_shape(state, x, cotangent))


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


def _diag(v):
    """Batched diagonal matrix: (..., n) -> (..., n, n)."""
    out = np.zeros(v.shape + (v.shape[-1],))
    idx = np.arange(v.shape[-1])
    out[..., idx, idx] = v
    return out


# ------------------------------------------------------------------------------------------
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
        hr = h @ w[:2 * n].T + b[: 2 * n]
        r = expit(ax[..., :n] + hr[..., :n])
        z = expit(ax[..., n : 2 * n] + hr[..., n:])
        if self.variant == "torch":
            hn = h @ w[2 * n :].T + b[2 * n :]
            cand = np.tanh(ax[..., 2 * n :] + r * hn)
        else:
            hn = None
            cand = np.tanh(ax[..., 2 * n :] + (r * h) @ w[2 * n :].T + b[2 * n :])
        keep = z if self.variant != "chung" else 1.0 - z
        h_new = keep * h + (1.0 - keep) * cand
        return h_new, dict(h=h, r=r, z=z, n=cand, hn=hn, keep=keep)

    def _candidate_grad(self, p, v):
        """v -> v^T dn/dh for the candidate n (both reset placements)."""
        n = self.n_hidden
        w = self.weight_hh
        w_r, w_n = w[:n], w[2 * n :]
        g_an = v * (1.0 - p["n"] ** 2)
        if self.variant == "torch":
            return (g_an * p["r"]) @ w_n + (g_an * p["hn"] * _sigmoid_slope(p["r"])) @ w_r
        g_rh = g_an @ w_n  # gradient wrt (r * h)
        return g_rh * p["r"] + (g_rh * p["h"] * _sigmoid_slope(p["r"])) @ w_r

    def _jacobian(self, state, x, path):
        new, p = self._forward(state, x)
        if path == "direct":
            return new, _diag(p["keep"])
        n = self.n_hidden
        w = self.weight_hh
        w_r, w_z, w_n = w[:n], w[n : 2 * n], w[2 * n :]
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
        w_z = self.weight_hh[n : 2 * n]
        sign = 1.0 if self.variant != "chung" else -1.0
        grad = cotangent * p["keep"]
        grad = grad + (cotangent * sign * (p["h"] - p["n"]) * _sigmoid_slope(p["z"])) @ w_z
        return grad + self._candidate_grad(p, cotangent * (1.0 - p["keep"]))

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
            return _affine_grads(g_input, x, g_hidden, state, shape)
        # a_n = (W_in x + b_in) + W_hn (r * h) + b_hn
        rh = p["r"] * p["h"]
        g_ar = (g_an @ self.weight_hh[2 * n :]) * p["h"] * _sigmoid_slope(p["r"])
        g_gates = np.concatenate([g_ar, g_az], axis=-1)
        g_input = np.concatenate([g_ar, g_az, g_an], axis=-1)
        grads = _affine_grads(g_input, x, g_gates, state, shape)
        grads["weight_hh"] = np.concatenate([grads["weight_hh"], _outer_sum(g_an, rh)])
        grads["bias_hh"] = np.concatenate([grads["bias_hh"], _batch_sum(g_an, shape)])
        return grads


# ------------------------------------------------------------------------------------------
CELL_KINDS = ("rnn", "irnn", "residual", "lstm", "gru")
_N_GATES = {"rnn": 1, "irnn": 1, "residual": 1, "lstm": 4, "gru": 3}


def make_cell(
    kind: str,
    n_hidden: int,
    n_input: int = 1,
    *,
    init: str = "gaussian",
    gain: float = 1.0,
    activation: str = "tanh",
    variant: str = "torch",
    alpha: float = 1.0,
    input_gain: float = 1.0,
    bias_std: float = 0.0,
    forget_bias: float | None = None,
    chrono_t_max: float | None = None,
    rng=None,
) -> Cell:
    """Build a cell with freshly initialised weights.

    Parameters
    ----------
    kind : {"rnn", "irnn", "residual", "lstm", "gru"}
        ``"irnn"`` is an RNN with ReLU, recurrent weights ``gain * I`` and zero bias
        (Le, Jaitly & Hinton 2015), whatever ``init`` says.
    n_hidden, n_input : int
        N and I; ``n_input=0`` gives a cell without input weights.
    init : str
        Initialiser of each N x N recurrent block (see :data:`gradsim.init.INITIALISERS`);
        ``"pytorch"`` fills every weight and bias with PyTorch's default U(-1/sqrt N, 1/sqrt N).
    gain : float
        Gain (or identity scale) of the recurrent blocks.
    activation : str
        RNN and residual cells only.
    variant : str
        GRU only.
    alpha : float
        Residual cells only: weight of the residual branch.
    input_gain : float
        Input weights are N(0, input_gain^2 / I) (unless ``init="pytorch"``).
    bias_std : float
        Biases (``bias_hh``) are N(0, bias_std^2); ``bias_ih`` is zero.
    forget_bias : float, optional
        LSTM only: added to the forget-gate bias.
    chrono_t_max : float, optional
        LSTM only: chrono initialisation of the i and f biases with this longest memory.
    rng : seed or Generator

    Returns
    -------
    Cell
    """
    choice(kind, "kind", CELL_KINDS)
    n = positive_int(n_hidden, "n_hidden")
    n_in = positive_int(n_input, "n_input", minimum=0)
    choice(init, "init", tuple(_init.INITIALISERS))
    # Checked for every kind, so that a misspelt option never passes silently.
    choice(activation, "activation", tuple(ACTIVATIONS))
    choice(variant, "variant", GRU_VARIANTS)
    if forget_bias is not None:
        forget_bias = finite_number(forget_bias, "forget_bias")
    if chrono_t_max is not None:
        chrono_t_max = positive_number(chrono_t_max, "chrono_t_max")
        if chrono_t_max <= 2.0:
            raise ValueError(
                f"`chrono_t_max` must be a number > 2 (the longest memory in steps); got {chrono_t_max!r}."
            )
    gain = positive_number(gain, "gain", allow_zero=True)
    input_gain = positive_number(input_gain, "input_gain", allow_zero=True)
    bias_std = positive_number(bias_std, "bias_std", allow_zero=True)
    if kind != "lstm" and (forget_bias is not None or chrono_t_max is not None):
        raise ValueError(
            f"`forget_bias` and `chrono_t_max` apply to kind='lstm' only; got kind={kind!r}."
        )
    rng = as_rng(rng)
    gates = _N_GATES[kind]
    if kind == "irnn":
        init = "identity"
    if init == "pytorch":
        w_hh = _init.pytorch_uniform((gates * n, n), n, rng)
        w_ih = _init.pytorch_uniform((gates * n, n_in), n, rng)
        b_hh = _init.pytorch_uniform((gates * n,), n, rng)
        b_ih = _init.pytorch_uniform((gates * n,), n, rng)
    else:
        w_hh = np.concatenate([_init.initialise(init, n, gain, rng) for _ in range(gates)])
        w_ih = _init.gaussian((gates * n, n_in), input_gain, rng)
        b_hh = rng.standard_normal(gates * n) * bias_std if bias_std > 0 else np.zeros(gates * n)
        b_ih = np.zeros(gates * n)
    if kind == "irnn":
        b_hh = np.zeros(n)
        b_ih = np.zeros(n)
    if kind in ("rnn", "irnn"):
        act = "relu" if kind == "irnn" else activation
        return RNN(w_hh, w_ih, b_hh, b_ih, activation=act)
    if kind == "residual":
        return ResidualRNN(w_hh, w_ih, b_hh, b_ih, activation=activation, alpha=alpha)
    if kind == "gru":
        return GRU(w_ih, w_hh, b_ih, b_hh, variant=variant)
    if chrono_t_max is not None:
        b_hh = b_hh + _init.chrono_bias(n, chrono_t_max, rng)
    if forget_bias is not None:
        b_hh = b_hh + _init.forget_gate_bias(n, forget_bias)
    return LSTM(w_ih, w_hh, b_ih, b_hh)
