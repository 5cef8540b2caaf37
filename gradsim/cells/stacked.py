r"""A multi-layer network as one cell: layers run in order within a step, as ``torch.nn``'s.

Layer 0 reads the input :math:`x_t`; layer k > 0 reads the NEW output of layer k - 1 at the
same step, :math:`y^{(k-1)}_t` (its hidden state h: the whole state of an RNN or GRU, the h
half of an LSTM's concat(h, c)). The state is the concatenation of the layers' states,
:math:`s = (s^{(0)}, \dots, s^{(L-1)})`:

.. math::

    s^{(0)}_t = f_0(s^{(0)}_{t-1}, x_t), \qquad
    s^{(k)}_t = f_k(s^{(k)}_{t-1}, y^{(k-1)}_t), \qquad y^{(k)}_t = s^{(k)}_t[:N_k]

The one-step Jacobian is block lower-triangular,

.. math::

    \frac{\partial s^{(k)}_t}{\partial s^{(j)}_{t-1}} =
    \begin{cases}
        J_k = \partial f_k / \partial s^{(k)} & j = k \\
        E_k\, P_{k-1}\, \partial s^{(k-1)}_t / \partial s^{(j)}_{t-1} & j < k \\
        0 & j > k
    \end{cases}

with :math:`E_k = \partial f_k / \partial x` (the layer's input Jacobian) and
:math:`P_{k-1}` the projection of layer k - 1's state onto its output (the first
:math:`N_{k-1}` entries). Hence :math:`\log|\det J| = \sum_k \log|\det J_k|`, and the sum
of the stack's Lyapunov exponents is the sum of the layers' diagonal-block log-determinants
along the trajectory.

Input Jacobians. Every supported layer reads its input only through the affine map
:math:`a^x = W_{ih} x + b_{ih}` (G N rows), so :math:`E_k = D_k W_{ih}` with
:math:`D_k = \partial f_k / \partial a^x` (S x G N), computed here from the layer's forward
intermediates (no other cell module is changed):

- :class:`RNN`: :math:`D = \operatorname{diag}(\phi'(a))`; :class:`ResidualRNN`:
  :math:`\alpha \operatorname{diag}(\phi'(a))`;
- :class:`LSTM`: :math:`\delta c = \sigma'(a_f) c\, \delta a_f + \sigma'(a_i) g\, \delta a_i
  + i (1 - g^2) \delta a_g`, :math:`\delta h = \sigma'(a_o) \tanh c_t\, \delta a_o
  + o (1 - \tanh^2 c_t) \delta c`;
- :class:`GRU`: :math:`\delta r = \sigma'(a_r) \delta a_r`, :math:`\delta z = \sigma'(a_z)
  \delta a_z`, :math:`\delta a_n = \delta a^x_n + \delta r \odot (W_{hn} h + b_{hn})` (torch)
  or :math:`\delta a^x_n + W_{hn} (\delta r \odot h)` (reset before, chung),
  :math:`\delta h' = \pm\delta z\, (h - n) + (1 - \kappa)(1 - n^2) \delta a_n`.

Other cells (the rate and modern families) are refused: their input enters differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._validate import describe
from .base import Cell, _sigmoid_slope, _vm
from .classic import RNN, ResidualRNN
from .gru import GRU
from .lstm import LSTM

__all__ = ["StackedCell"]

_SUPPORTED = (RNN, ResidualRNN, LSTM, GRU)


def _col(a):
    return a[..., :, None]


def _gate_jvp(layer, state, p, d):
    """D_k @ d: the change of the layer's next state for a change d (..., G N, q) of a^x."""
    n = layer.n_hidden
    if isinstance(layer, RNN):  # RNN and ResidualRNN: p is phi'(a)
        scale = p if not isinstance(layer, ResidualRNN) else layer.alpha * p
        return _col(scale) * d
    if isinstance(layer, LSTM):
        d_i = _col(_sigmoid_slope(p["i"])) * d[..., :n, :]
        d_f = _col(_sigmoid_slope(p["f"])) * d[..., n : 2 * n, :]
        d_g = _col(1.0 - p["g"] ** 2) * d[..., 2 * n : 3 * n, :]
        d_o = _col(_sigmoid_slope(p["o"])) * d[..., 3 * n :, :]
        d_c = d_f * _col(p["c"]) + d_i * _col(p["g"]) + _col(p["i"]) * d_g
        d_h = d_o * _col(p["tanh_c"]) + _col(p["o"] * (1.0 - p["tanh_c"] ** 2)) * d_c
        return np.concatenate(np.broadcast_arrays(d_h, d_c), axis=-2)
    # GRU
    d_r = _col(_sigmoid_slope(p["r"])) * d[..., :n, :]
    d_z = _col(_sigmoid_slope(p["z"])) * d[..., n : 2 * n, :]
    if layer.variant == "torch":
        d_an = d[..., 2 * n :, :] + d_r * _col(p["hn"])
    else:
        d_an = d[..., 2 * n :, :] + np.matmul(layer.weight_hh[..., 2 * n :, :], d_r * _col(p["h"]))
    sign = 1.0 if layer.variant != "chung" else -1.0
    return sign * d_z * _col(p["h"] - p["n"]) + _col((1.0 - p["keep"]) * (1.0 - p["n"] ** 2)) * d_an


def _gate_vjp(layer, state, p, v):
    """v @ D_k: the gradient reaching a^x (..., G N) from a cotangent v (..., S) of the next state."""
    n = layer.n_hidden
    if isinstance(layer, RNN):
        scale = p if not isinstance(layer, ResidualRNN) else layer.alpha * p
        return v * scale
    if isinstance(layer, LSTM):
        v_h, v_c = v[..., :n], v[..., n:]
        u_c = v_c + v_h * p["o"] * (1.0 - p["tanh_c"] ** 2)
        parts = [
            u_c * p["g"] * _sigmoid_slope(p["i"]),
            u_c * p["c"] * _sigmoid_slope(p["f"]),
            u_c * p["i"] * (1.0 - p["g"] ** 2),
            v_h * p["tanh_c"] * _sigmoid_slope(p["o"]),
        ]
        return np.concatenate(np.broadcast_arrays(*parts), axis=-1)
    sign = 1.0 if layer.variant != "chung" else -1.0
    g_az = v * sign * (p["h"] - p["n"]) * _sigmoid_slope(p["z"])
    g_an = v * (1.0 - p["keep"]) * (1.0 - p["n"] ** 2)
    if layer.variant == "torch":
        g_ar = g_an * p["hn"] * _sigmoid_slope(p["r"])
    else:
        g_ar = _vm(g_an, layer.weight_hh[..., 2 * n :, :]) * p["h"] * _sigmoid_slope(p["r"])
    return np.concatenate(np.broadcast_arrays(g_ar, g_az, g_an), axis=-1)


def _input_jvp(layer, state, p, m):
    """E_k @ m for columns m (..., n_input, q): D_k (W_ih m)."""
    return _gate_jvp(layer, state, p, np.matmul(layer.weight_ih, m))


def _pad(v, size):
    """v (..., n) followed by zeros to length ``size``."""
    return np.concatenate([v, np.zeros(v.shape[:-1] + (size - v.shape[-1],), dtype=v.dtype)], axis=-1)


@dataclass(frozen=True, eq=False)
class StackedCell(Cell):
    r"""Layers composed in depth: layer k reads layer k - 1's new output at the same step.

    See the module notes for the equations and the block lower-triangular Jacobian. This is
    the recurrence of ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` with ``num_layers > 1``
    (unidirectional, no dropout), the state ``concat(s^{(0)}, ..., s^{(L-1)})``.

    Parameters
    ----------
    layers : sequence of Cell
        :class:`RNN`, :class:`ResidualRNN`, :class:`LSTM` or :class:`GRU` cells (mixed kinds
        allowed), at least one; ``layers[k].n_input`` must equal ``layers[k - 1].n_hidden``.
        For an ensemble every layer has the same ``batch_shape``.

    Attributes
    ----------
    state_size : int
        Sum of the layers' state sizes.
    n_hidden : int
        Sum of the layers' hidden sizes N_k.
    n_input : int
        Layer 0's input size.

    Notes
    -----
    Parameters are named ``"layer{k}.{name}"`` (``"layer1.weight_hh"``) in :meth:`parameters`,
    :meth:`param_vjp` and :meth:`param_jvp`. Only the ``"full"`` path exists.
    """

    layers: tuple
    paths = ("full",)
    parameter_names = ()

    def __post_init__(self):
        layers = self.layers
        if isinstance(layers, Cell) or not isinstance(layers, Sequence) or isinstance(layers, str):
            raise TypeError(f"`layers` must be a sequence of cells; got {describe(layers)}.")
        layers = tuple(layers)
        if not layers:
            raise ValueError("`layers` must hold at least one cell; got an empty sequence.")
        names = ", ".join(c.__name__ for c in _SUPPORTED)
        for k, layer in enumerate(layers):
            if not isinstance(layer, Cell) or type(layer) not in _SUPPORTED:
                raise TypeError(
                    f"`layers[{k}]` must be one of {names} (cells whose input enters through "
                    f"W_ih x + b_ih); got {describe(layer) if not isinstance(layer, Cell) else type(layer).__name__}."
                )
        for k in range(1, len(layers)):
            want, got = layers[k - 1].n_hidden, layers[k].n_input
            if got != want:
                raise ValueError(
                    f"`layers[{k}]` must have n_input = {want}, the output size (n_hidden) of "
                    f"layers[{k - 1}]; got n_input={got}."
                )
        batch = layers[0].batch_shape
        for k, layer in enumerate(layers):
            if layer.batch_shape != batch:
                raise ValueError(
                    f"`layers[{k}]` must have the ensemble batch_shape {batch} of layers[0]; got "
                    f"batch_shape {layer.batch_shape}."
                )
        object.__setattr__(self, "layers", layers)
        sizes = [layer.state_size for layer in layers]
        object.__setattr__(self, "_offsets", tuple(np.cumsum([0] + sizes).tolist()))

    # -- sizes and parameters ----------------------------------------------------------------
    @property
    def n_hidden(self) -> int:
        return sum(layer.n_hidden for layer in self.layers)

    @property
    def n_input(self) -> int:
        return self.layers[0].n_input

    @property
    def state_size(self) -> int:
        return self._offsets[-1]

    @property
    def batch_shape(self) -> tuple:
        return self.layers[0].batch_shape

    def parameters(self) -> dict:
        """``"layer{k}.{name}"`` -> layer k's parameter array, layers in order."""
        return {
            f"layer{k}.{name}": value
            for k, layer in enumerate(self.layers)
            for name, value in layer.parameters().items()
        }

    def options(self) -> dict:
        """No options of its own: each layer carries its own (``layers[k].options()``)."""
        return {}

    def with_parameters(self, mapping) -> "StackedCell":
        """A new stack with the arrays of ``mapping`` (names ``"layer{k}.{name}"``, any subset of
        :meth:`parameters`' keys) in place of those parameters of the layers; each changed layer
        is rebuilt by its own ``with_parameters``, the others are kept as they are."""
        self._check_parameter_names(mapping)
        if not mapping:
            return self
        own = [{} for _ in self.layers]
        for key, value in mapping.items():
            head, name = key.split(".", 1)
            own[int(head[len("layer"):])][name] = value
        return StackedCell(tuple(layer.with_parameters(o) for layer, o in zip(self.layers, own)))

    @property
    def hidden_index(self) -> np.ndarray:
        """Positions of the layers' hidden outputs y^(k) = s^(k)[:N_k] in the state, layers in
        order (length :attr:`n_hidden`)."""
        o = self._offsets
        return np.concatenate([np.arange(o[k], o[k] + layer.n_hidden) for k, layer in enumerate(self.layers)])

    def __getitem__(self, index):
        if not self.batch_shape:
            raise TypeError(
                "a single StackedCell has no members; only an ensemble (batch_shape != ()) can be indexed."
            )
        return StackedCell(tuple(layer[index] for layer in self.layers))

    def _split(self, state):
        o = self._offsets
        return [state[..., o[k] : o[k + 1]] for k in range(len(self.layers))]

    # -- forward ------------------------------------------------------------------------------
    def _run(self, state, x):
        """Per layer: (its state, its input, its next state, its forward intermediates)."""
        out, inp = [], x
        for layer, s in zip(self.layers, self._split(state)):
            new, p = layer._forward(s, inp)
            out.append((s, inp, new, p))
            inp = new[..., : layer.n_hidden]
        return out

    def _forward(self, state, x):
        run = self._run(state, x)
        return _concat([r[2] for r in run]), run

    def _step(self, state, x):
        news, inp = [], x
        for layer, s in zip(self.layers, self._split(state)):
            new = layer._step(s, inp)
            news.append(new)
            inp = new[..., : layer.n_hidden]
        return _concat(news)

    # -- Jacobians ----------------------------------------------------------------------------
    def _jacobian(self, state, x, path):
        run = self._run(state, x)
        size, o = self.state_size, self._offsets
        rows = []
        for k, (layer, (s, inp, new, p)) in enumerate(zip(self.layers, run)):
            jac = layer._jacobian(s, inp, "full")[1]
            block = np.zeros(jac.shape[:-1] + (size,), dtype=jac.dtype)
            block[..., o[k] : o[k + 1]] = jac
            if k > 0:
                below = rows[-1][..., : self.layers[k - 1].n_hidden, :]
                block = block + _input_jvp(layer, s, p, below)
            rows.append(block)
        return _concat([r[2] for r in run]), _concat(rows, core=2)

    def _jacobian_operator(self, state, x, path):
        run = self._run(state, x)
        ops = [layer._jacobian_operator(s, inp, "full")[1] for layer, (s, inp, _, _) in zip(self.layers, run)]
        return _concat([r[2] for r in run]), _StackedJacobian(self, state, x, run, ops)

    def _vjp(self, state, x, cotangent, path):
        run = self._run(state, x)
        return _concat(self._back(run, cotangent)[0])

    def _back(self, run, cotangent):
        """Back-substitution: per layer, (v @ J_k, and u_k the cotangent reaching its next state)."""
        vs = self._split(cotangent)
        grads, us, carry = [None] * len(run), [None] * len(run), None
        for k in range(len(run) - 1, -1, -1):
            layer = self.layers[k]
            s, inp, new, p = run[k]
            u = vs[k] if carry is None else vs[k] + _pad(carry, layer.state_size)
            us[k] = u
            grads[k] = layer._vjp(s, inp, u, "full")
            if k > 0:
                carry = _vm(_gate_vjp(layer, s, p, u), layer.weight_ih)
        return grads, us

    def _param_vjp(self, state, x, cotangent):
        run = self._run(state, x)
        _, us = self._back(run, cotangent)
        out = {}
        for k, (layer, (s, inp, _, _), u) in enumerate(zip(self.layers, run, us)):
            for name, value in layer._param_vjp(s, inp, u).items():
                out[f"layer{k}.{name}"] = value
        return out

    def _param_jvp(self, state, x, tangent):
        run = self._run(state, x)
        outs = []
        for k, (layer, (s, inp, _, p)) in enumerate(zip(self.layers, run)):
            own = {name: tangent[f"layer{k}.{name}"] for name in layer.parameter_names}
            d = layer._param_jvp(s, inp, own)
            if k > 0:
                below = outs[-1][..., : self.layers[k - 1].n_hidden]
                d = d + _input_jvp(layer, s, p, below[..., :, None])[..., 0]
            outs.append(d)
        return _concat(outs)


def _concat(parts, core=1):
    """Concatenate along axis -core, broadcasting the leading (batch) dimensions only."""
    if len(parts) == 1:
        return parts[0]
    batch = np.broadcast_shapes(*(p.shape[: p.ndim - core] for p in parts))
    return np.concatenate([np.broadcast_to(p, batch + p.shape[p.ndim - core :]) for p in parts], axis=-core)


class _StackedJacobian:
    """The stack's block lower-triangular Jacobian as an operator (forward substitution).

    ``J @ M`` applies each layer's own operator to its rows of M and adds E_k applied to the
    block just computed for layer k - 1 (its output rows): the S x S matrix is never formed.
    """

    __slots__ = ("cell", "state", "x", "run", "ops")

    def __init__(self, cell, state, x, run, ops):
        self.cell, self.state, self.x, self.run, self.ops = cell, state, x, run, ops

    def __matmul__(self, m):
        cell = self.cell
        o = cell._offsets
        outs = []
        for k, (layer, op, (s, _, _, p)) in enumerate(zip(cell.layers, self.ops, self.run)):
            block = op @ m[..., o[k] : o[k + 1], :]
            if k > 0:
                block = block + _input_jvp(layer, s, p, outs[-1][..., : cell.layers[k - 1].n_hidden, :])
            outs.append(block)
        return _concat(outs, core=2)

    def member(self, index):
        """The operator of batch member ``index`` (a tuple into the leading dimensions)."""
        cell, state, x = self.cell, self.state, self.x
        batch = np.broadcast_shapes(state.shape[:-1], x.shape[:-1], cell.batch_shape)
        state = np.broadcast_to(state, batch + state.shape[-1:])[index]
        x = np.broadcast_to(x, batch + x.shape[-1:])[index]
        if cell.batch_shape:
            cell = cell[tuple(index)[len(batch) - len(cell.batch_shape):]]
        return cell._jacobian_operator(state, x, "full")[1]
