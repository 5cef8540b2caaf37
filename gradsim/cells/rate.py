r"""Rate networks: the leaky integrator RNN and the continuous-time rate network.

Two cells of the leaky family, which differ in what the state is:

* :class:`LeakyRNN` keeps the *rates* (post-activation): the leaky integrator, or exponential
  trace memory (Jordan 1987, Mozer 1989), and reservoirpy's ``Reservoir`` (0.4),
  :math:`h' = (1 - \alpha) h + \alpha \phi(W_{hh} h + W_{ih} x + b)`.
* :class:`RateRNN` keeps the *currents* (pre-activation), the convention of the published
  Lyapunov codes (Engelken, Wolf & Abbott 2023; D. G. Clark's rnn-lyapunov): the ODE
  :math:`\dot x = -x + W_{hh} \phi(x) + W_{ih} u + b`, stepped by Euler (step ``dt`` = the map
  :math:`x' = (1 - \delta) x + \delta (W_{hh} \phi(x) + W_{ih} u + b)` with
  :math:`\delta = dt`) or by classical RK4, with the exact Jacobian of the step taken.

For ``dt = 1`` (Euler) and ``alpha = 1`` both are conjugate to the Elman RNN: with
:math:`h = \phi(x)` and :math:`x = W_{hh} h + W_{ih} u + b`, the two maps have the same Lyapunov
exponents when :math:`W_{hh}` is invertible.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .._validate import choice, describe, frozen, positive_number
from .base import (
    ACTIVATIONS,
    Cell,
    _affine,
    _affine_tangent,
    _batch_shape,
    _batch_sum,
    _members,
    _mv,
    _outer_sum,
    _sum_to_members,
    _vm,
)
from .classic import _CURVATURE_RATIOS, RNN, _ScaledRows

__all__ = ["LeakyRNN", "RateRNN", "RATE_INTEGRATORS"]

#: The integrators of :class:`RateRNN`.
RATE_INTEGRATORS = ("euler", "rk4")


def _check_alpha(alpha, n: int):
    """A leak rate in (0, 1]: a float, or a read-only array of shape (n,) (one per unit)."""
    expected = f"a number in (0, 1] or an array of shape ({n},) of such numbers (one leak rate per unit)"
    if isinstance(alpha, (bool, np.bool_)) or isinstance(alpha, (str, bytes)):
        raise TypeError(f"`alpha` must be {expected}; got {describe(alpha)}.")
    if isinstance(alpha, numbers.Real):
        value = float(alpha)
        if not 0.0 < value <= 1.0:  # NaN fails too
            raise ValueError(f"`alpha` must be {expected}; got {value!r}.")
        return value
    try:
        array = np.asarray(alpha, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"`alpha` must be {expected}; got {describe(alpha)}.") from None
    if np.iscomplexobj(alpha):
        raise TypeError(f"`alpha` must be {expected}; got complex values.")
    if array.ndim == 0:
        return _check_alpha(float(array), n)
    if array.shape != (n,):
        raise ValueError(f"`alpha` must be {expected}; got shape {array.shape}.")
    bad = ~((array > 0.0) & (array <= 1.0))
    if np.any(bad):
        raise ValueError(f"`alpha` must be {expected}; got an entry {float(array[bad][0])!r}.")
    return frozen(array)


class _LeakyRows(_ScaledRows):
    """The Jacobian diag(keep) + diag(d) W as an operator: ``J @ M`` is one product W @ M, a row
    scaling and a scaled identity (``keep`` a number or an (N,) array), never the P x P matrix."""

    __slots__ = ("keep",)

    def __init__(self, scale, weight, keep):
        super().__init__(scale, weight, identity=False)
        self.keep = keep

    def __matmul__(self, m):
        out = super().__matmul__(m)
        keep = self.keep if np.ndim(self.keep) == 0 else self.keep[:, None]
        out += keep * m
        return out

    def member(self, index):
        scale, weight = _members((self.scale, self.weight), (1, 2), index)
        return _LeakyRows(scale, weight, self.keep)


@dataclass(frozen=True, eq=False)
class LeakyRNN(Cell):
    r"""Leaky integrator RNN (exponential trace memory; reservoirpy's leaky reservoir).

    .. math::

        a_t = W_{hh} h_{t-1} + b_{hh} + W_{ih} x_t + b_{ih}, \qquad
        h_t = (1 - \alpha)\, h_{t-1} + \alpha\, \phi(a_t)

        \frac{\partial h_t}{\partial h_{t-1}} = (1 - \alpha) I + \alpha
            \operatorname{diag}(\phi'(a_t))\, W_{hh}

    Each unit keeps a fraction 1 - alpha of its past rate: with zero recurrent weights, a unit's
    memory decays as (1 - alpha)^t, a time constant of -1 / log(1 - alpha) ~ 1 / alpha steps
    (Jordan 1987, Mozer 1989). ``alpha = 1`` is the Elman :class:`RNN`.

    Parameters
    ----------
    weight_hh : array, shape (N, N), or (*B, N, N) for an ensemble
    weight_ih : array, shape (N, I), optional
        None means no input (I = 0).
    bias_hh, bias_ih : array, shape (N,), optional
        Zero when None; only their sum matters.
    alpha : float in (0, 1], or array of shape (N,)
        The leak rate; an array gives one rate per unit (reservoirpy's ``lr`` may be one), then
        the first term is diag(1 - alpha) and the second diag(alpha phi'(a)) W_hh. Shared by
        every member of an ensemble (``options()`` reports an array as a tuple, so that
        :func:`stack_cells` can compare it).
    activation : {"tanh", "relu", "linear", "sigmoid"}
        As :class:`RNN`.
    """

    weight_hh: np.ndarray
    weight_ih: np.ndarray | None = None
    bias_hh: np.ndarray | None = None
    bias_ih: np.ndarray | None = None
    alpha: float | np.ndarray = 0.1
    activation: str = "tanh"

    def __post_init__(self):
        choice(self.activation, "activation", tuple(ACTIVATIONS))
        self._freeze_weights()
        object.__setattr__(self, "alpha", _check_alpha(self.alpha, self.n_hidden))

    @property
    def bias(self) -> np.ndarray:
        """The effective bias b_hh + b_ih."""
        return self.bias_hh + self.bias_ih

    def options(self) -> dict:
        """The non-array fields; a per-unit ``alpha`` as a tuple of floats (comparable with ``==``)."""
        out = super().options()
        if isinstance(self.alpha, np.ndarray):
            out["alpha"] = tuple(self.alpha.tolist())
        return out

    # RNN's pre-activation a and its (phi(a), phi'(a)): the same helpers, on the same fields.
    _preactivation = RNN._preactivation
    _rates = RNN._forward

    def _forward(self, state, x):
        y, slope = self._rates(state, x)
        return (1.0 - self.alpha) * state + self.alpha * y, slope

    def _jacobian(self, state, x, path):
        new, slope = self._forward(state, x)
        jac = (self.alpha * slope)[..., :, None] * self.weight_hh
        idx = np.arange(self.n_hidden)
        jac[..., idx, idx] += 1.0 - self.alpha
        return new, jac

    def _jacobian_operator(self, state, x, path):
        new, slope = self._forward(state, x)
        return new, _LeakyRows(self.alpha * slope, self.weight_hh, 1.0 - self.alpha)

    def _vjp(self, state, x, cotangent, path):
        _, slope = self._forward(state, x)
        return (1.0 - self.alpha) * cotangent + _vm(cotangent * (self.alpha * slope), self.weight_hh)

    def _param_vjp(self, state, x, cotangent):
        # h' = (1 - alpha) h + alpha phi(a): dL/da = alpha v * phi'(a).
        _, slope = self._forward(state, x)
        grad_a = cotangent * (self.alpha * slope)
        return _affine_gradients(grad_a, x, grad_a, state, _batch_shape(state, x, cotangent), self.batch_shape)

    def _param_jvp(self, state, x, tangent):
        # d h' = alpha phi'(a) * (dW_hh h + db_hh + dW_ih x + db_ih).
        _, slope = self._forward(state, x)
        return (self.alpha * slope) * _affine_tangent(x, state, tangent)


def _input_gradient(grad, x, batch):
    """d/dW_ih of an affine input map; an input size of zero gives an (N, 0) zero gradient."""
    if x.shape[-1] == 0:
        return np.zeros(tuple(batch) + (grad.shape[-1], 0))
    return _outer_sum(grad, x, batch)


def _affine_gradients(grad_x, x, grad_h, h, shape, batch):
    """:func:`gradsim.cells.base._affine_grads`, also for cells without input (I = 0)."""
    return {
        "weight_hh": _outer_sum(grad_h, h, batch),
        "weight_ih": _input_gradient(grad_x, x, batch),
        "bias_hh": _batch_sum(grad_h, shape, batch),
        "bias_ih": _batch_sum(grad_x, shape, batch),
    }


class _RateTangent:
    r"""The Jacobian of one Euler or RK4 step of the rate ODE as an operator.

    With :math:`f'(y) = -I + W \operatorname{diag}(\phi'(y))` and the slopes of the stage
    points, ``J @ M`` applies the chain rule through the stages: one product ``W @ (.)`` per
    stage (four for RK4) and elementwise work, never the P x P matrix.
    """

    __slots__ = ("weight", "slopes", "dt", "integrator")

    def __init__(self, weight, slopes, dt, integrator):
        self.weight, self.slopes, self.dt, self.integrator = weight, tuple(slopes), dt, integrator

    def _field(self, slope, m):
        """f'(y) @ m = W (phi'(y) * m) - m."""
        return self.weight @ (slope[..., :, None] * m) - m

    def __matmul__(self, m):
        h = self.dt
        if self.integrator == "euler":
            (slope,) = self.slopes
            out = self.weight @ (slope[..., :, None] * m)
            out *= h
            out += (1.0 - h) * m
            return out
        s1, s2, s3, s4 = self.slopes
        t1 = self._field(s1, m)
        t2 = self._field(s2, m + (0.5 * h) * t1)
        t3 = self._field(s3, m + (0.5 * h) * t2)
        t4 = self._field(s4, m + h * t3)
        return m + (h / 6.0) * (t1 + 2.0 * t2 + 2.0 * t3 + t4)

    def member(self, index):
        """The operator of batch member ``index`` (a tuple into the leading dimensions)."""
        weight, *slopes = _members((self.weight,) + self.slopes, (2,) + (1,) * len(self.slopes), index)
        return _RateTangent(weight, slopes, self.dt, self.integrator)


@dataclass(frozen=True, eq=False)
class RateRNN(Cell):
    r"""Continuous-time rate network, stepped by Euler or classical RK4.

    The state is the current (pre-activation) x, as in Engelken, Wolf & Abbott (2023) and
    D. G. Clark's rnn-lyapunov; the rates are :math:`\phi(x)`. Time is in units of the
    membrane time constant :math:`\tau = 1`, and the input :math:`u` is held constant over a
    step:

    .. math::

        \dot x = f(x, u) = -x + W_{hh}\, \phi(x) + W_{ih} u + b_{hh} + b_{ih}

    ``integrator="euler"`` (the leaky map, :math:`\delta = dt`):

    .. math::

        x_t = (1 - dt)\, x_{t-1} + dt\, \bigl(W_{hh} \phi(x_{t-1}) + W_{ih} u_t + b\bigr), \qquad
        \frac{\partial x_t}{\partial x_{t-1}} = (1 - dt) I + dt\, W_{hh}
            \operatorname{diag}(\phi'(x_{t-1}))

    so that ``dt = 1`` is the map :math:`x_t = W_{hh} \phi(x_{t-1}) + W_{ih} u_t + b`.
    ``integrator="rk4"``, with :math:`y_1 = x_{t-1}`, :math:`k_i = f(y_i, u_t)`,
    :math:`y_2 = y_1 + \tfrac{dt}{2} k_1`, :math:`y_3 = y_1 + \tfrac{dt}{2} k_2`,
    :math:`y_4 = y_1 + dt\, k_3`:

    .. math::

        x_t = x_{t-1} + \tfrac{dt}{6} (k_1 + 2 k_2 + 2 k_3 + k_4), \qquad
        \frac{\partial x_t}{\partial x_{t-1}} = I + \tfrac{dt}{6}
            (K_1 + 2 K_2 + 2 K_3 + K_4)

    the exact derivative of the RK4 step (not of the vector field), with :math:`A_i = -I + W_{hh}
    \operatorname{diag}(\phi'(y_i))`, :math:`K_1 = A_1`, :math:`K_2 = A_2 (I + \tfrac{dt}{2}
    K_1)`, :math:`K_3 = A_3 (I + \tfrac{dt}{2} K_2)`, :math:`K_4 = A_4 (I + dt\, K_3)`.

    Parameters
    ----------
    weight_hh : array, shape (N, N), or (*B, N, N) for an ensemble
        The coupling J (Engelken's and Clark's J_ij ~ N(0, g^2 / N): ``make_cell("rate", N,
        gain=g)``, with ``zero_diagonal=True`` for no self-coupling).
    weight_ih : array, shape (N, I), optional
        None means no input (I = 0).
    bias_hh, bias_ih : array, shape (N,), optional
        Zero when None; only their sum b matters.
    dt : float > 0
        The step, in units of tau. Shared by an ensemble's members.
    integrator : {"euler", "rk4"}
    activation : {"tanh", "relu", "linear", "sigmoid"}
        phi, as for :class:`RNN`.

    Notes
    -----
    Everything in :mod:`gradsim.numeric` counts steps: Lyapunov exponents, growth rates and log
    singular values per step of this cell are per time ``dt``. Divide by ``cell.dt`` for rates
    per unit time (per tau), which is what the continuous-time literature reports; e.g. with no
    self-coupling the exponents of the flow sum to -N per tau. In a :class:`gradsim.Model` the
    readout reads the state x (the currents), not the rates phi(x).
    """

    weight_hh: np.ndarray
    weight_ih: np.ndarray | None = None
    bias_hh: np.ndarray | None = None
    bias_ih: np.ndarray | None = None
    dt: float = 1.0
    integrator: str = "euler"
    activation: str = "tanh"

    def __post_init__(self):
        object.__setattr__(self, "dt", positive_number(self.dt, "dt"))
        choice(self.integrator, "integrator", RATE_INTEGRATORS)
        choice(self.activation, "activation", tuple(ACTIVATIONS))
        self._freeze_weights()

    @property
    def bias(self) -> np.ndarray:
        """The effective bias b_hh + b_ih."""
        return self.bias_hh + self.bias_ih

    def _drive(self, x):
        """The constant part of the vector field over a step: W_ih u + b_ih + b_hh."""
        return _affine(x, self.weight_ih, self.bias_ih) + self.bias_hh

    def _stages(self, state, x):
        """(next state, stage rates phi(y_i), stage slopes phi'(y_i)): one stage for Euler,
        four for RK4."""
        phi, dphi = ACTIVATIONS[self.activation]
        drive = self._drive(x)
        h = self.dt
        if self.integrator == "euler":
            rate = phi(state)
            new = (1.0 - h) * state + h * (_mv(self.weight_hh, rate) + drive)
            return new, (rate,), (dphi(state, rate),)
        rates, slopes, ks = [], [], []
        y = state
        for fraction in (0.5, 0.5, 1.0, None):
            rate = phi(y)
            rates.append(rate)
            slopes.append(dphi(y, rate))
            k = _mv(self.weight_hh, rate) + drive - y
            ks.append(k)
            if fraction is not None:
                y = state + (fraction * h) * k
        k1, k2, k3, k4 = ks
        new = state + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        return new, tuple(rates), tuple(slopes)

    def _forward(self, state, x):
        new, _, slopes = self._stages(state, x)
        return new, slopes

    def _jacobian(self, state, x, path):
        new, _, slopes = self._stages(state, x)
        if self.integrator == "euler":
            (slope,) = slopes
            jac = self.dt * (self.weight_hh * slope[..., None, :])
            idx = np.arange(self.n_hidden)
            jac[..., idx, idx] += 1.0 - self.dt
            return new, jac
        operator = _RateTangent(self.weight_hh, slopes, self.dt, self.integrator)
        batch = np.broadcast_shapes(new.shape[:-1], self.batch_shape)
        return new, operator @ np.broadcast_to(np.eye(self.n_hidden), batch + (self.n_hidden,) * 2)

    def _jacobian_operator(self, state, x, path):
        new, _, slopes = self._stages(state, x)
        return new, _RateTangent(self.weight_hh, slopes, self.dt, self.integrator)

    def _field_vjp(self, slope, u):
        """u @ f'(y) = (u W) * phi'(y) - u."""
        return _vm(u, self.weight_hh) * slope - u

    def _stage_cotangents(self, slopes, cotangent):
        """The cotangents of the stage derivatives k_i and of the stage points y_i, given the
        cotangent v of the next state (reverse mode through the step)."""
        h = self.dt
        if self.integrator == "euler":
            (slope,) = slopes
            bar_k = h * cotangent  # x' = (1 - h) x + h k, k = W phi(x) + drive
            return (bar_k,), (_vm(bar_k, self.weight_hh) * slope,)
        s1, s2, s3, s4 = slopes
        bar_k4 = (h / 6.0) * cotangent
        bar_y4 = self._field_vjp(s4, bar_k4)
        bar_k3 = (h / 3.0) * cotangent + h * bar_y4
        bar_y3 = self._field_vjp(s3, bar_k3)
        bar_k2 = (h / 3.0) * cotangent + (0.5 * h) * bar_y3
        bar_y2 = self._field_vjp(s2, bar_k2)
        bar_k1 = (h / 6.0) * cotangent + (0.5 * h) * bar_y2
        bar_y1 = self._field_vjp(s1, bar_k1)
        return (bar_k1, bar_k2, bar_k3, bar_k4), (bar_y1, bar_y2, bar_y3, bar_y4)

    def _vjp(self, state, x, cotangent, path):
        _, _, slopes = self._stages(state, x)
        if self.integrator == "euler":
            (bar_k,), (through,) = self._stage_cotangents(slopes, cotangent)
            return (1.0 - self.dt) * cotangent + through
        _, (u1, u2, u3, u4) = self._stage_cotangents(slopes, cotangent)
        return cotangent + u1 + u2 + u3 + u4

    def _param_vjp(self, state, x, cotangent):
        # Every stage derivative is k_i = W_hh phi(y_i) + W_ih u + b_ih + b_hh - y_i, so
        # dL/dW_hh = sum_i bar_k_i phi(y_i)^T and the drive's gradient is sum_i bar_k_i.
        _, rates, slopes = self._stages(state, x)
        bar_ks, _ = self._stage_cotangents(slopes, cotangent)
        shape = _batch_shape(state, x, cotangent)
        full = np.broadcast_shapes(shape, self.batch_shape) + (self.n_hidden,)
        grads = np.stack([np.broadcast_to(g, full) for g in bar_ks])
        rates = np.stack([np.broadcast_to(r, full) for r in rates])
        drive = bar_ks[0]
        for g in bar_ks[1:]:
            drive = drive + g
        return {
            "weight_hh": _outer_sum(grads, rates, self.batch_shape),
            "weight_ih": _input_gradient(drive, x, self.batch_shape),
            "bias_hh": _batch_sum(drive, shape, self.batch_shape),
            "bias_ih": _batch_sum(drive, shape, self.batch_shape),
        }

    def _lyapunov_backward(self, state, x, frame, pushed, frame_cotangent, state_cotangent, path, inputs):
        r"""The fused backward step of :meth:`Cell._lyapunov_backward` for Euler (RK4 takes the
        generic one).

        :math:`J = (1 - dt) I + dt\, W \operatorname{diag}(\phi'(x))` does not depend on the
        input or the bias: with :math:`V = W^\top \bar A`, :math:`J^\top \bar A = (1 - dt)
        \bar A + dt\, \phi' \odot V`, and :math:`\operatorname{tr}(\bar A^\top J Q)` has
        gradient :math:`dt\, \phi''(x_l) \sum_j V_{lj} Q_{lj}` in the state and
        :math:`dt\, \bar A (\phi' \odot Q)^\top` in W. Two N x N x k products per step.
        """
        if self.integrator != "euler":
            return super()._lyapunov_backward(state, x, frame, pushed, frame_cotangent, state_cotangent, path, inputs)
        phi, dphi = ACTIVATIONS[self.activation]
        h = self.dt
        w = self.weight_hh
        rate = phi(state)
        slope = dphi(state, rate)
        v = np.swapaxes(w, -1, -2) @ frame_cotangent
        frame_back = (1.0 - h) * frame_cotangent + h * slope[..., :, None] * v
        second = h * _CURVATURE_RATIOS[self.activation](rate) * slope * np.sum(v * frame, axis=-1)
        params = self._param_vjp(state, x, state_cotangent)
        scaled = slope[..., :, None] * frame
        params["weight_hh"] = params["weight_hh"] + h * _sum_to_members(
            frame_cotangent @ np.swapaxes(scaled, -1, -2), self.batch_shape
        )
        state_back = self._vjp(state, x, state_cotangent, "full") + second
        x_back = _vm(h * state_cotangent, self.weight_ih) if inputs else None
        return frame_back, state_back, params, x_back

    def _param_jvp(self, state, x, tangent):
        r"""The step's derivative along a parameter tangent (dW, dW_in, db), the state held fixed.

        Every stage derivative is :math:`k_i = W \phi(y_i) + W_{in} u + b - y_i`, so

        .. math::

            \delta k_i = \delta W\, \phi(y_i) + W (\phi'(y_i) \odot \delta y_i) + \delta W_{in} u
                + \delta b - \delta y_i

        with :math:`\delta y_1 = 0`, :math:`\delta y_2 = \tfrac{dt}{2} \delta k_1`,
        :math:`\delta y_3 = \tfrac{dt}{2} \delta k_2`, :math:`\delta y_4 = dt\, \delta k_3`, and
        :math:`\delta x_t = \tfrac{dt}{6} (\delta k_1 + 2 \delta k_2 + 2 \delta k_3 + \delta k_4)`;
        Euler is :math:`\delta x_t = dt\, \delta k_1`.
        """
        _, rates, slopes = self._stages(state, x)
        h = self.dt
        d_w = tangent["weight_hh"]
        d_drive = _affine(x, tangent["weight_ih"], tangent["bias_ih"]) + tangent["bias_hh"]
        if self.integrator == "euler":
            (rate,) = rates
            return h * (_mv(d_w, rate) + d_drive)
        dks = []
        d_y = None
        for rate, slope, fraction in zip(rates, slopes, (0.5, 0.5, 1.0, None)):
            d_k = _mv(d_w, rate) + d_drive
            if d_y is not None:
                d_k = d_k + _mv(self.weight_hh, slope * d_y) - d_y
            dks.append(d_k)
            if fraction is not None:
                d_y = (fraction * h) * d_k
        dk1, dk2, dk3, dk4 = dks
        return (h / 6.0) * (dk1 + 2.0 * dk2 + 2.0 * dk3 + dk4)
