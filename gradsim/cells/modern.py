r"""Modern recurrences with diagonal Jacobians: LRU, minGRU, minLSTM and IndRNN.

Each of these cells is built so that its state-to-state Jacobian is diagonal (block diagonal
with 2 x 2 rotation-scalings for the LRU), which makes its Lyapunov exponents exact functions of
the parameters and the inputs:

* :class:`LRU` (Orvieto et al. 2023, "Resurrecting recurrent neural networks for long
  sequences"): a complex diagonal linear recurrence :math:`h' = \lambda \odot h + \gamma \odot
  (B x)`; every exponent is :math:`\log|\lambda_i|`, each twice (the real and imaginary parts).
* :class:`MinGRU` and :class:`MinLSTM` (Feng et al. 2024, "Were RNNs all we needed?"): gates
  that depend on the input only, so that :math:`h_t = a_t \odot h_{t-1} + b_t` is a linear
  recurrence in h, solvable by a parallel scan (:func:`mingru_scan`); the exponents are the time
  means of :math:`\log a_{t,i}`.
* :class:`IndRNN` (Li et al. 2018, "Independently recurrent neural network"): :math:`h' =
  \phi(W x + u \odot h + b)` with a vector u; the exponents are the time means of
  :math:`\log|u_i \phi'_i|`.

None of them has PyTorch's ``weight_hh`` matrix, so their parameters carry the papers' names
(the IndRNN's ``weight_hh`` is the vector u). All accept ensembles through leading batch
dimensions of every parameter, as the other cells.

Two discretised ODEs with dense Jacobians follow them, built so that gradients neither vanish
nor explode by the structure of the continuous-time system:

* :class:`AntisymmetricRNN` (Chang, Chen, Haber & Chi 2019): :math:`h' = h + \epsilon
  \tanh((W - W^\top - \gamma I) h + V x + b)`; the linear cell's exponents are exactly
  :math:`\tfrac12 \log((1 - \epsilon\gamma)^2 + \epsilon^2\omega_k^2)`, :math:`i\omega_k` the
  eigenvalues of :math:`W - W^\top`.
* :class:`CoRNN` (Rusch & Mishra 2021): coupled oscillators, state (y, z) of length 2 N,
  :math:`z' = z + \Delta t(\sigma(W y + \mathcal W z + V x + b) - \gamma y - \epsilon z)`,
  :math:`y' = y + \Delta t\, z'`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from .._validate import as_rng, choice, describe, finite_array, frozen
from .base import (
    ACTIVATIONS,
    Cell,
    _affine,
    _batch_sum,
    _diag,
    _members,
    _mv,
    _outer_sum,
    _vm,
    _sigmoid,
    _sigmoid_slope,
)

__all__ = ["LRU", "MinGRU", "MinLSTM", "IndRNN", "mingru_scan", "AntisymmetricRNN", "CoRNN", "CORNN_DAMPING"]


# ------------------------------------------------------------------------------------------
# shared helpers
def _check_parameters(cls_name: str, arrays: dict, cores: dict, primary: str) -> dict:
    """Validate parameter arrays of named core shapes; return read-only float64 copies.

    ``cores`` maps each name to its core shape, a tuple of size names ("N", "I", "O"); the sizes
    are read from the arrays, the first to carry a size fixing it. The leading dimensions of
    ``primary`` beyond its core are the ensemble's batch shape; every other array carries the
    same leading dimensions or none (then it is shared, broadcast to every member).
    """
    checked = {name: finite_array(value, name) for name, value in arrays.items()}
    first = checked[primary]
    core = cores[primary]
    if first.ndim < len(core):
        raise ValueError(
            f"`{primary}` must be an array of shape {_fmt(core)} (or {_fmt(('...',) + core)} for an "
            f"ensemble) for {cls_name}; got shape {first.shape}."
        )
    batch = first.shape[: first.ndim - len(core)]
    sizes: dict = {}
    for name, array in checked.items():
        core = cores[name]
        lead = array.shape[: max(0, array.ndim - len(core))]
        tail = array.shape[len(lead) :]
        if array.ndim < len(core) or lead not in ((), batch):
            want = _fmt(core) + (f" or {batch} + {_fmt(core)}" if batch else "")
            raise ValueError(
                f"`{name}` must have shape {want} for {cls_name} (the ensemble's batch shape is that of "
                f"`{primary}`); got shape {array.shape}."
            )
        for symbol, size in zip(core, tail):
            sizes.setdefault(symbol, size)
        expected = tuple(sizes[s] for s in core)
        if tail != expected:
            shown = ", ".join(f"{s}={sizes[s]}" for s in core)
            raise ValueError(
                f"`{name}` must have shape {_fmt(core)} = {expected} ({shown}) for {cls_name}; got "
                f"shape {array.shape}."
            )
    if sizes.get("N", 1) == 0:
        raise ValueError(f"`{primary}` must have at least one hidden unit; got shape {first.shape}.")
    return {
        name: frozen(np.broadcast_to(array, batch + array.shape[array.ndim - len(cores[name]) :]))
        for name, array in checked.items()
    }


def _fmt(core) -> str:
    """A symbolic shape as Python prints a tuple: ("N",) -> "(N,)", ("N", "I") -> "(N, I)"."""
    return "(" + ", ".join(core) + ("," if len(core) == 1 else "") + ")"


def _affine_map(x, weight, bias):
    """weight @ x + bias per member (an input of size 0 gives the bias)."""
    return _affine(x, weight, bias)


def _weight_gradient(grad, x, batch):
    """d/dW of W x: sum over the step's batch of grad outer x, per member; (N, 0) for I = 0."""
    if x.shape[-1] == 0:
        return np.zeros(tuple(batch) + (grad.shape[-1], 0))
    return _outer_sum(grad, x, batch)


def _step_shape(*arrays):
    """The batch shape of one step's arguments (their leading dimensions broadcast)."""
    return np.broadcast_shapes(*(a.shape[:-1] for a in arrays))


class _DiagonalJacobian:
    """The Jacobian diag(d) as an operator: ``J @ M`` is a row scaling of M."""

    __slots__ = ("d",)

    def __init__(self, d):
        self.d = d

    def __matmul__(self, m):
        return self.d[..., :, None] * m

    def member(self, index):
        """The operator of batch member ``index`` (a tuple into the leading dimensions)."""
        return _DiagonalJacobian(*_members((self.d,), (1,), index))


class _RotationJacobian:
    """The LRU's Jacobian [[diag(lr), -diag(li)], [diag(li), diag(lr)]] as an operator: ``J @ M``
    is four row scalings of M's halves, never the 2N x 2N matrix."""

    __slots__ = ("lr", "li")

    def __init__(self, lr, li):
        self.lr, self.li = lr, li

    def __matmul__(self, m):
        n = self.lr.shape[-1]
        m_re, m_im = m[..., :n, :], m[..., n:, :]
        lr, li = self.lr[..., :, None], self.li[..., :, None]
        return np.concatenate([lr * m_re - li * m_im, li * m_re + lr * m_im], axis=-2)

    def member(self, index):
        return _RotationJacobian(*_members((self.lr, self.li), (1, 1), index))


class _DiagonalCell(Cell):
    """Shared plumbing of the cells below, whose parameters are not PyTorch's four arrays:
    sizes and batch shape from the arrays named by ``_cores`` (name -> core shape)."""

    _cores: dict = {}
    _primary: str = ""

    def _freeze_parameters(self, arrays: dict):
        checked = _check_parameters(type(self).__name__, arrays, self._cores, self._primary)
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @property
    def batch_shape(self) -> tuple:
        array = getattr(self, self._primary)
        return array.shape[: array.ndim - len(self._cores[self._primary])]

    @property
    def n_hidden(self) -> int:
        for name, core in self._cores.items():
            if "N" in core:
                return getattr(self, name).shape[len(self.batch_shape) + core.index("N")]
        raise AssertionError("no parameter carries N")

    @property
    def n_input(self) -> int:
        for name, core in self._cores.items():
            if "I" in core:
                return getattr(self, name).shape[len(self.batch_shape) + core.index("I")]
        return 0

    def _zero_grads(self, *names):
        return {name: np.zeros(getattr(self, name).shape) for name in names}


def _zeros_if_none(value, shape):
    return np.zeros(shape) if value is None else value


# ------------------------------------------------------------------------------------------
# LRU
@dataclass(frozen=True, eq=False)
class LRU(_DiagonalCell):
    r"""Linear recurrent unit (Orvieto et al. 2023): a complex diagonal linear recurrence.

    .. math::

        \lambda = \exp(-\exp(\nu^{\log}) + i \exp(\theta^{\log})), \qquad
        \gamma = \exp(\gamma^{\log}) \ (\text{or } 1 \text{ when } \texttt{normalize=False})

        h_t = \lambda \odot h_{t-1} + \gamma \odot (B x_t), \qquad B = B_{re} + i B_{im}

        y_t = \operatorname{Re}(C h_t) + D x_t, \qquad C = C_{re} + i C_{im}

    The state is real, :math:`s = (\operatorname{Re} h, \operatorname{Im} h)` of length 2 N, and
    the Jacobian is exactly

    .. math::

        \frac{\partial s_t}{\partial s_{t-1}} = \begin{pmatrix} \operatorname{diag}(\operatorname{Re}\lambda)
            & -\operatorname{diag}(\operatorname{Im}\lambda) \\ \operatorname{diag}(\operatorname{Im}\lambda)
            & \operatorname{diag}(\operatorname{Re}\lambda) \end{pmatrix}

    independent of the state and the input: N scaled rotations, so the Lyapunov exponents are
    :math:`\log|\lambda_i| = -\exp(\nu^{\log}_i)`, each twice. The readout (C, D) does not enter
    the recurrence; :meth:`output` applies it, and its parameter gradients through a step are 0.

    Parameters
    ----------
    nu_log, theta_log : array, shape (N,), or (*B, N) for an ensemble
        The log-log modulus and the log phase of lambda (the paper's exponential
        parametrisation, which keeps |lambda| < 1 for every real nu_log).
    gamma_log : array, shape (N,)
        The log of the input normalisation gamma; the paper initialises it to
        log sqrt(1 - |lambda|^2) (:meth:`ring_init`). Unused when ``normalize=False``.
    B_re, B_im : array, shape (N, I)
        The input matrix B = B_re + i B_im. None (both) means no input (I = 0).
    C_re, C_im : array, shape (O, N), optional
        The readout C = C_re + i C_im; None means no output (O = 0).
    D : array, shape (O, I), optional
        The skip connection of the readout (the paper's D is diagonal, a vector; here a full
        O x I matrix); zero when None.
    normalize : bool
        True (the paper): the input is scaled by gamma = exp(gamma_log); False: gamma = 1 and
        gamma_log is ignored (its gradient is 0).

    See Also
    --------
    LRU.ring_init : the paper's initialisation.
    """

    nu_log: np.ndarray
    theta_log: np.ndarray
    gamma_log: np.ndarray | None = None
    B_re: np.ndarray | None = None
    B_im: np.ndarray | None = None
    C_re: np.ndarray | None = None
    C_im: np.ndarray | None = None
    D: np.ndarray | None = None
    normalize: bool = True

    parameter_names = ("nu_log", "theta_log", "gamma_log", "B_re", "B_im", "C_re", "C_im", "D")
    _cores = {
        "nu_log": ("N",), "theta_log": ("N",), "gamma_log": ("N",),
        "B_re": ("N", "I"), "B_im": ("N", "I"),
        "C_re": ("O", "N"), "C_im": ("O", "N"), "D": ("O", "I"),
    }
    _primary = "nu_log"

    def __post_init__(self):
        if not isinstance(self.normalize, (bool, np.bool_)):
            raise TypeError(f"`normalize` must be True or False; got {describe(self.normalize)}.")
        object.__setattr__(self, "normalize", bool(self.normalize))
        nu = finite_array(self.nu_log, "nu_log")
        if nu.ndim < 1:
            raise ValueError(f"`nu_log` must be an array of shape (N,) (or (..., N) for an ensemble); got shape {nu.shape}.")
        n = nu.shape[-1]
        if (self.B_re is None) != (self.B_im is None):
            raise ValueError(
                "`B_re` and `B_im` must be given together (or both None for no input); got "
                f"B_re={describe(self.B_re)}, B_im={describe(self.B_im)}."
            )
        if (self.C_re is None) != (self.C_im is None):
            raise ValueError(
                "`C_re` and `C_im` must be given together (or both None for no output); got "
                f"C_re={describe(self.C_re)}, C_im={describe(self.C_im)}."
            )
        n_in = np.shape(self.B_re)[-1] if self.B_re is not None and np.ndim(self.B_re) >= 2 else 0
        n_out = np.shape(self.C_re)[-2] if self.C_re is not None and np.ndim(self.C_re) >= 2 else 0
        if self.D is not None and np.ndim(self.D) >= 2:
            if self.B_re is None:
                n_in = np.shape(self.D)[-1]
            if self.C_re is None:
                n_out = np.shape(self.D)[-2]
        arrays = {
            "nu_log": nu,
            "theta_log": self.theta_log,
            "gamma_log": _zeros_if_none(self.gamma_log, (n,)),
            "B_re": _zeros_if_none(self.B_re, (n, n_in)),
            "B_im": _zeros_if_none(self.B_im, (n, n_in)),
            "C_re": _zeros_if_none(self.C_re, (n_out, n)),
            "C_im": _zeros_if_none(self.C_im, (n_out, n)),
            "D": _zeros_if_none(self.D, (n_out, n_in)),
        }
        self._freeze_parameters(arrays)

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def ring_init(
        cls,
        n_hidden: int,
        n_input: int,
        n_output: int | None = None,
        r_min: float = 0.0,
        r_max: float = 1.0,
        max_phase: float = 2.0 * math.pi,
        rng=None,
        normalize: bool = True,
    ) -> "LRU":
        r"""The paper's initialisation: eigenvalues uniform on a ring of the complex plane.

        :math:`|\lambda|^2 \sim U[r_{min}^2, r_{max}^2]` (so lambda is uniform in area on the
        ring r_min <= |lambda| <= r_max), :math:`\arg\lambda \sim U[0, \text{max\_phase}]`,
        :math:`\nu^{\log} = \log(-\tfrac12 \log|\lambda|^2)`, :math:`\theta^{\log} = \log\arg\lambda`,
        :math:`\gamma^{\log} = \log\sqrt{1 - |\lambda|^2}`; B_re, B_im ~ N(0, 1/(2 I)) entrywise,
        C_re, C_im ~ N(0, 1/N), D ~ N(0, 1) (the paper's Appendix A code).

        Parameters
        ----------
        n_hidden, n_input : int
            N >= 1 and I >= 0.
        n_output : int, optional
            O, the readout's size; ``n_input`` by default (the paper's layer maps H -> H).
        r_min, r_max : float
            0 <= r_min < r_max <= 1.
        max_phase : float > 0
        rng : seed or Generator
        normalize : bool
            Passed to the cell (gamma_log is drawn either way).

        Returns
        -------
        LRU
        """
        from .._validate import positive_int

        n = positive_int(n_hidden, "n_hidden")
        n_in = positive_int(n_input, "n_input", minimum=0)
        n_out = n_in if n_output is None else positive_int(n_output, "n_output", minimum=0)
        r_min, r_max, max_phase = _check_ring(r_min, r_max, max_phase)
        rng = as_rng(rng)
        u1 = rng.uniform(size=n)
        u2 = rng.uniform(size=n)
        modulus_sq = u1 * (r_max**2 - r_min**2) + r_min**2
        # nu_log = log(-1/2 log|lambda|^2) needs 0 < |lambda| < 1: u1 < 1 always, but u1 = 0 with
        # r_min = 0 (probability 2^-53 per draw) would give log(0); such a draw is clipped to the
        # smallest positive double (|lambda| ~ 1e-154, a unit that forgets in one step).
        modulus_sq = np.clip(modulus_sq, np.finfo(float).tiny, np.nextafter(1.0, 0.0))
        nu_log = np.log(-0.5 * np.log(modulus_sq))
        theta_log = np.log(max_phase * np.maximum(u2, np.finfo(float).tiny))
        gamma_log = np.log(np.sqrt(1.0 - modulus_sq))
        scale_b = 1.0 / math.sqrt(2 * n_in) if n_in else 0.0
        b_re = rng.standard_normal((n, n_in)) * scale_b
        b_im = rng.standard_normal((n, n_in)) * scale_b
        c_re = rng.standard_normal((n_out, n)) / math.sqrt(n)
        c_im = rng.standard_normal((n_out, n)) / math.sqrt(n)
        d = rng.standard_normal((n_out, n_in))
        return cls(nu_log, theta_log, gamma_log, b_re, b_im, c_re, c_im, d, normalize=normalize)

    # -- derived quantities ----------------------------------------------------------------
    @property
    def state_size(self) -> int:
        return 2 * self.n_hidden

    @property
    def n_output(self) -> int:
        return self.C_re.shape[-2]

    @property
    def eigenvalues(self) -> np.ndarray:
        """lambda = exp(-exp(nu_log) + i exp(theta_log)), complex, shape (*B, N)."""
        return np.exp(-np.exp(self.nu_log) + 1j * np.exp(self.theta_log))

    @property
    def gamma(self) -> np.ndarray:
        """The input scale: exp(gamma_log) when normalising, else ones; shape (*B, N)."""
        if self.normalize:
            return np.exp(self.gamma_log)
        return np.ones(self.gamma_log.shape)

    def _lambda_parts(self):
        modulus = np.exp(-np.exp(self.nu_log))
        phase = np.exp(self.theta_log)
        return modulus * np.cos(phase), modulus * np.sin(phase)

    def _drive(self, x):
        """(Re, Im) of B x (before gamma)."""
        zero = np.zeros(self.n_hidden)
        return _affine_map(x, self.B_re, zero), _affine_map(x, self.B_im, zero)

    def output(self, state, x=None):
        """The readout y = Re(C h) + D x = C_re Re h - C_im Im h + D x, shape (..., O).

        Parameters
        ----------
        state : array, shape (..., 2 N)
            concat(Re h, Im h), e.g. a state of :func:`gradsim.unroll`.
        x : array, shape (..., I), or None for zero input
        """
        state, x = self._check_args(state, x)
        n = self.n_hidden
        zero = np.zeros(self.n_output)
        out = _mv(self.C_re, state[..., :n]) - _mv(self.C_im, state[..., n:])
        return out + _affine_map(x, self.D, zero)

    # -- the step --------------------------------------------------------------------------
    def _forward(self, state, x):
        n = self.n_hidden
        lr, li = self._lambda_parts()
        g = self.gamma
        u_re, u_im = self._drive(x)
        h_re, h_im = state[..., :n], state[..., n:]
        new = np.concatenate([lr * h_re - li * h_im + g * u_re, li * h_re + lr * h_im + g * u_im], axis=-1)
        return new, (lr, li, g, u_re, u_im)

    def _jacobian(self, state, x, path):
        new, (lr, li, *_) = self._forward(state, x)
        batch = new.shape[:-1]
        lr, li = np.broadcast_to(lr, batch + lr.shape[-1:]), np.broadcast_to(li, batch + li.shape[-1:])
        top = np.concatenate([_diag(lr), _diag(-li)], axis=-1)
        bottom = np.concatenate([_diag(li), _diag(lr)], axis=-1)
        return new, np.concatenate([top, bottom], axis=-2)

    def _jacobian_operator(self, state, x, path):
        new, (lr, li, *_) = self._forward(state, x)
        batch = new.shape[:-1]
        return new, _RotationJacobian(
            np.broadcast_to(lr, batch + lr.shape[-1:]), np.broadcast_to(li, batch + li.shape[-1:])
        )

    def _vjp(self, state, x, cotangent, path):
        n = self.n_hidden
        lr, li = self._lambda_parts()
        v_re, v_im = cotangent[..., :n], cotangent[..., n:]
        out = np.concatenate([v_re * lr + v_im * li, -v_re * li + v_im * lr], axis=-1)
        return np.broadcast_to(out, _step_shape(state, x, cotangent, out) + out.shape[-1:]).copy()

    def _param_vjp(self, state, x, cotangent):
        # L = v_re . h'_re + v_im . h'_im, with h' = lambda h + gamma u:
        #   dL/d Re(lambda) = v_re h_re + v_im h_im, dL/d Im(lambda) = v_im h_re - v_re h_im;
        #   Re(lambda) = r cos(th), Im(lambda) = r sin(th), r = exp(-exp(nu)), th = exp(theta):
        #   d/d nu = -exp(nu) (Re, Im)(lambda), d/d theta = th (-Im, Re)(lambda).
        n = self.n_hidden
        lr, li, g, u_re, u_im = self._forward(state, x)[1]
        h_re, h_im = state[..., :n], state[..., n:]
        v_re, v_im = cotangent[..., :n], cotangent[..., n:]
        g_re = v_re * h_re + v_im * h_im
        g_im = v_im * h_re - v_re * h_im
        shape = _step_shape(state, x, cotangent)
        batch = self.batch_shape
        grad_nu = -np.exp(self.nu_log) * (g_re * lr + g_im * li)
        grad_theta = np.exp(self.theta_log) * (g_im * lr - g_re * li)
        out = {
            "nu_log": _batch_sum(grad_nu, shape, batch),
            "theta_log": _batch_sum(grad_theta, shape, batch),
            "B_re": _weight_gradient(g * v_re, x, batch),
            "B_im": _weight_gradient(g * v_im, x, batch),
        }
        if self.normalize:
            out["gamma_log"] = _batch_sum(g * (v_re * u_re + v_im * u_im), shape, batch)
        else:
            out.update(self._zero_grads("gamma_log"))
        out.update(self._zero_grads("C_re", "C_im", "D"))
        return {name: out[name] for name in self.parameter_names}

    def _param_jvp(self, state, x, tangent):
        r"""d s' along (d nu_log, d theta_log, d gamma_log, d B_re, d B_im); C and D do not enter.

        .. math::

            \delta\lambda = \lambda\, (-e^{\nu^{\log}} \delta\nu^{\log} + i\, e^{\theta^{\log}}
                \delta\theta^{\log}), \qquad
            \delta h' = \delta\lambda\, h + \gamma\, \delta\gamma^{\log} (B x) + \gamma\, (\delta B) x
        """
        n = self.n_hidden
        lr, li, g, u_re, u_im = self._forward(state, x)[1]
        a = -np.exp(self.nu_log) * tangent["nu_log"]
        b = np.exp(self.theta_log) * tangent["theta_log"]
        dl_re = a * lr - b * li
        dl_im = a * li + b * lr
        h_re, h_im = state[..., :n], state[..., n:]
        zero = np.zeros(n)
        du_re = _affine_map(x, tangent["B_re"], zero)
        du_im = _affine_map(x, tangent["B_im"], zero)
        d_re = dl_re * h_re - dl_im * h_im + g * du_re
        d_im = dl_im * h_re + dl_re * h_im + g * du_im
        if self.normalize:
            d_re = d_re + g * tangent["gamma_log"] * u_re
            d_im = d_im + g * tangent["gamma_log"] * u_im
        return np.concatenate([d_re, d_im], axis=-1)


def _check_ring(r_min, r_max, max_phase):
    """Validate the ring initialisation's arguments; return them as floats."""
    values = []
    for name, value in (("r_min", r_min), ("r_max", r_max), ("max_phase", max_phase)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"`{name}` must be a real number; got {describe(value)}.")
        value = float(value)
        if not np.isfinite(value):
            raise ValueError(f"`{name}` must be a finite number; got {value!r}.")
        values.append(value)
    r_min, r_max, max_phase = values
    for name, value in (("r_min", r_min), ("r_max", r_max)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"`{name}` must be in [0, 1] (an eigenvalue modulus); got {value!r}.")
    if r_min >= r_max:
        raise ValueError(
            f"`r_min` must be less than `r_max` (the ring r_min <= |lambda| <= r_max); got r_min={r_min!r}, "
            f"r_max={r_max!r}."
        )
    if max_phase <= 0.0:
        raise ValueError(f"`max_phase` must be a positive number (the largest eigenvalue phase); got {max_phase!r}.")
    return r_min, r_max, max_phase


# ------------------------------------------------------------------------------------------
# minGRU and minLSTM
def _log_sigmoid(a):
    """log sigmoid(a) = -softplus(-a), accurate for large |a|."""
    return -np.logaddexp(0.0, -a)


@dataclass(frozen=True, eq=False)
class MinGRU(_DiagonalCell):
    r"""minGRU (Feng et al. 2024), sequential form: gates that see the input only.

    .. math::

        z_t = \sigma(W_z x_t + b_z), \qquad \tilde h_t = W_h x_t + b_h

        h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t, \qquad
        \frac{\partial h_t}{\partial h_{t-1}} = \operatorname{diag}(1 - z_t)

    A linear recurrence :math:`h_t = a_t h_{t-1} + b_t` with :math:`a_t = 1 - z_t`, :math:`b_t =
    z_t \tilde h_t`, so the Lyapunov exponents are the time means of :math:`\log(1 - z_{t,i})`,
    sorted, and :func:`mingru_scan` computes the states by a parallel (log-space) scan. The
    candidate is linear, as in the paper's sequential algorithm (its log-space version uses a
    positive g(.) instead; the scan here handles either sign).

    Parameters
    ----------
    weight_z, weight_h : array, shape (N, I), or (*B, N, I) for an ensemble
        The update gate's and the candidate's input weights (I may be 0).
    bias_z, bias_h : array, shape (N,), optional
        Zero when None.

    Notes
    -----
    The parameters keep the paper's two linear maps apart (``weight_z``, ``bias_z``,
    ``weight_h``, ``bias_h``) rather than a stacked PyTorch ``weight_ih``: the cell has no
    recurrent weights at all, so no name of the PyTorch layout would fit, and one array per
    linear map is what the parameter tangents of :meth:`param_jvp` address.
    """

    weight_z: np.ndarray
    weight_h: np.ndarray
    bias_z: np.ndarray | None = None
    bias_h: np.ndarray | None = None

    parameter_names = ("weight_z", "weight_h", "bias_z", "bias_h")
    _cores = {"weight_z": ("N", "I"), "weight_h": ("N", "I"), "bias_z": ("N",), "bias_h": ("N",)}
    _primary = "weight_z"

    def __post_init__(self):
        w = finite_array(self.weight_z, "weight_z")
        if w.ndim < 2:
            raise ValueError(
                f"`weight_z` must be an array of shape (N, I) (or (..., N, I) for an ensemble) for MinGRU; got "
                f"shape {w.shape}."
            )
        n = w.shape[-2]
        self._freeze_parameters(
            {
                "weight_z": w,
                "weight_h": self.weight_h,
                "bias_z": _zeros_if_none(self.bias_z, (n,)),
                "bias_h": _zeros_if_none(self.bias_h, (n,)),
            }
        )

    def _gates(self, x):
        """(pre-activation of z, z, candidate h~), each (..., N)."""
        a_z = _affine_map(x, self.weight_z, self.bias_z)
        return a_z, _sigmoid(a_z), _affine_map(x, self.weight_h, self.bias_h)

    def _log_coefficients(self, x):
        """(log a, log|b|, sign b) of h' = a h + b: log(1 - z) = -softplus(a_z), log z + log|h~|."""
        a_z, _, cand = self._gates(x)
        with np.errstate(divide="ignore"):
            log_b = _log_sigmoid(a_z) + np.log(np.abs(cand))
        return _log_sigmoid(-a_z), log_b, np.sign(cand)

    def _forward(self, state, x):
        a_z, z, cand = self._gates(x)
        return (1.0 - z) * state + z * cand, (z, cand)

    def _keep(self, state, x):
        """The diagonal of the Jacobian, 1 - z, broadcast to the step's batch shape."""
        new, (z, _) = self._forward(state, x)
        return new, np.broadcast_to(1.0 - z, new.shape)

    def _jacobian(self, state, x, path):
        new, keep = self._keep(state, x)
        return new, _diag(keep)

    def _jacobian_operator(self, state, x, path):
        new, keep = self._keep(state, x)
        return new, _DiagonalJacobian(keep)

    def _vjp(self, state, x, cotangent, path):
        _, keep = self._keep(state, x)
        return cotangent * keep

    def _param_vjp(self, state, x, cotangent):
        # L = v . ((1 - z) h + z h~): dL/da_z = v (h~ - h) z (1 - z), dL/dh~ = v z.
        z, cand = self._forward(state, x)[1]
        grad_a = cotangent * (cand - state) * _sigmoid_slope(z)
        grad_c = cotangent * z
        shape, batch = _step_shape(state, x, cotangent), self.batch_shape
        return {
            "weight_z": _weight_gradient(grad_a, x, batch),
            "weight_h": _weight_gradient(grad_c, x, batch),
            "bias_z": _batch_sum(grad_a, shape, batch),
            "bias_h": _batch_sum(grad_c, shape, batch),
        }

    def _param_jvp(self, state, x, tangent):
        r""":math:`\delta h' = z (1 - z) \delta a_z \odot (\tilde h - h) + z \odot \delta\tilde h`, with
        :math:`\delta a_z = \delta W_z x + \delta b_z`, :math:`\delta\tilde h = \delta W_h x + \delta b_h`."""
        z, cand = self._forward(state, x)[1]
        d_a = _affine_map(x, tangent["weight_z"], tangent["bias_z"])
        d_c = _affine_map(x, tangent["weight_h"], tangent["bias_h"])
        return _sigmoid_slope(z) * d_a * (cand - state) + z * d_c


@dataclass(frozen=True, eq=False)
class MinLSTM(_DiagonalCell):
    r"""minLSTM (Feng et al. 2024), sequential form with the normalised (time-independent) gates.

    .. math::

        f_t = \sigma(W_f x_t + b_f), \quad i_t = \sigma(W_i x_t + b_i), \quad
        f'_t = \frac{f_t}{f_t + i_t}, \quad i'_t = \frac{i_t}{f_t + i_t}, \quad
        \tilde h_t = W_h x_t + b_h

        h_t = f'_t \odot h_{t-1} + i'_t \odot \tilde h_t, \qquad
        \frac{\partial h_t}{\partial h_{t-1}} = \operatorname{diag}(f'_t)

    A linear recurrence with :math:`a_t = f'_t`, :math:`b_t = i'_t \tilde h_t`: the exponents
    are the time means of :math:`\log f'_{t,i}`, sorted; :func:`mingru_scan` solves it in
    parallel.

    Parameters
    ----------
    weight_f, weight_i, weight_h : array, shape (N, I), or (*B, N, I) for an ensemble
    bias_f, bias_i, bias_h : array, shape (N,), optional
        Zero when None.

    Notes
    -----
    Parameter names follow the paper's linear maps, as for :class:`MinGRU`.
    """

    weight_f: np.ndarray
    weight_i: np.ndarray
    weight_h: np.ndarray
    bias_f: np.ndarray | None = None
    bias_i: np.ndarray | None = None
    bias_h: np.ndarray | None = None

    parameter_names = ("weight_f", "weight_i", "weight_h", "bias_f", "bias_i", "bias_h")
    _cores = {
        "weight_f": ("N", "I"), "weight_i": ("N", "I"), "weight_h": ("N", "I"),
        "bias_f": ("N",), "bias_i": ("N",), "bias_h": ("N",),
    }
    _primary = "weight_f"

    def __post_init__(self):
        w = finite_array(self.weight_f, "weight_f")
        if w.ndim < 2:
            raise ValueError(
                f"`weight_f` must be an array of shape (N, I) (or (..., N, I) for an ensemble) for MinLSTM; got "
                f"shape {w.shape}."
            )
        n = w.shape[-2]
        self._freeze_parameters(
            {
                "weight_f": w,
                "weight_i": self.weight_i,
                "weight_h": self.weight_h,
                "bias_f": _zeros_if_none(self.bias_f, (n,)),
                "bias_i": _zeros_if_none(self.bias_i, (n,)),
                "bias_h": _zeros_if_none(self.bias_h, (n,)),
            }
        )

    def _gates(self, x):
        """(f, i, f', i', h~), each (..., N)."""
        f = _sigmoid(_affine_map(x, self.weight_f, self.bias_f))
        i = _sigmoid(_affine_map(x, self.weight_i, self.bias_i))
        total = f + i
        return f, i, f / total, i / total, _affine_map(x, self.weight_h, self.bias_h)

    def _log_coefficients(self, x):
        """(log f', log|i' h~|, sign h~), in log space: log f' = log f - log(f + i)."""
        log_f = _log_sigmoid(_affine_map(x, self.weight_f, self.bias_f))
        log_i = _log_sigmoid(_affine_map(x, self.weight_i, self.bias_i))
        log_total = np.logaddexp(log_f, log_i)
        cand = _affine_map(x, self.weight_h, self.bias_h)
        with np.errstate(divide="ignore"):
            log_b = log_i - log_total + np.log(np.abs(cand))
        return log_f - log_total, log_b, np.sign(cand)

    def _forward(self, state, x):
        f, i, fn, inn, cand = self._gates(x)
        return fn * state + inn * cand, (f, i, fn, inn, cand)

    def _keep(self, state, x):
        new, parts = self._forward(state, x)
        return new, np.broadcast_to(parts[2], new.shape)

    _jacobian = MinGRU._jacobian
    _jacobian_operator = MinGRU._jacobian_operator
    _vjp = MinGRU._vjp

    def _param_vjp(self, state, x, cotangent):
        # h' = f' h + i' h~, f' = f / (f + i), i' = 1 - f':
        #   df'/da_f = f' i' (1 - f), df'/da_i = -f' i' (1 - i); dL/df' = v (h - h~).
        f, i, fn, inn, cand = self._forward(state, x)[1]
        grad_fn = cotangent * (state - cand) * fn * inn
        grad_f = grad_fn * (1.0 - f)
        grad_i = -grad_fn * (1.0 - i)
        grad_c = cotangent * inn
        shape, batch = _step_shape(state, x, cotangent), self.batch_shape
        return {
            "weight_f": _weight_gradient(grad_f, x, batch),
            "weight_i": _weight_gradient(grad_i, x, batch),
            "weight_h": _weight_gradient(grad_c, x, batch),
            "bias_f": _batch_sum(grad_f, shape, batch),
            "bias_i": _batch_sum(grad_i, shape, batch),
            "bias_h": _batch_sum(grad_c, shape, batch),
        }

    def _param_jvp(self, state, x, tangent):
        r""":math:`\delta f' = f' i' ((1 - f) \delta a_f - (1 - i) \delta a_i)`,
        :math:`\delta h' = \delta f' \odot (h - \tilde h) + i' \odot \delta\tilde h`."""
        f, i, fn, inn, cand = self._forward(state, x)[1]
        d_af = _affine_map(x, tangent["weight_f"], tangent["bias_f"])
        d_ai = _affine_map(x, tangent["weight_i"], tangent["bias_i"])
        d_c = _affine_map(x, tangent["weight_h"], tangent["bias_h"])
        d_fn = fn * inn * ((1.0 - f) * d_af - (1.0 - i) * d_ai)
        return d_fn * (state - cand) + inn * d_c


def mingru_scan(cell, inputs, state0=None) -> np.ndarray:
    r"""The states of a :class:`MinGRU` or :class:`MinLSTM` by the parallel log-space scan.

    Both cells are linear recurrences :math:`h_t = a_t \odot h_{t-1} + b_t` whose coefficients
    depend on the inputs only, so (Feng et al. 2024, Appendix; Heinsen 2023)

    .. math::

        h_t = e^{A_t} \Bigl(h_0 + \sum_{k=1}^{t} b_k e^{-A_k}\Bigr), \qquad
        A_t = \sum_{k \le t} \log a_k

    with every sum a cumulative one over t: :math:`A_t` a cumulative sum of the log gates
    (:math:`\log(1 - z) = -\mathrm{softplus}(a_z)`, or :math:`\log f'`), and the bracket a
    cumulative log-sum-exp of :math:`\log|b_k| - A_k`. The paper keeps :math:`\tilde h > 0` (its
    g(.)); here the candidate and :math:`h_0` may have either sign, so the positive and the
    negative terms are accumulated separately (two log-cumsum-exps, P and Q) and
    :math:`h_t = e^{A_t + \log P_t} - e^{A_t + \log Q_t}`.

    Parameters
    ----------
    cell : MinGRU or MinLSTM (or an ensemble of either)
    inputs : int or array, shape (..., T, n_input)
        As :func:`gradsim.unroll` (an int T means T steps of zero input).
    state0 : array, shape (..., N), optional
        Zeros by default.

    Returns
    -------
    ndarray, shape (..., T + 1, N)
        The states of :func:`gradsim.unroll`, to rounding: the exponents :math:`A_t + \log P_t`
        are differences of cumulative sums of size :math:`|A_t|`, so the error relative to the
        states' scale grows as about eps :math:`|A_t|`. Measured (N = 8, random gates with mean
        log a between -4 and -0.02): <= 3e-14 at T = 100, <= 4e-13 at T = 1000, <= 3e-12 at
        T = 5000.

    Notes
    -----
    The accumulations run along the time axis in numpy (``cumsum`` and
    ``logaddexp.accumulate``): vectorised over units and batch, O(T) work, no step loop.
    """
    from ..numeric._problem import _problem

    if not isinstance(cell, (MinGRU, MinLSTM)):
        got = f"a {type(cell).__name__}" if isinstance(cell, Cell) else describe(cell)
        raise TypeError(f"`cell` must be a MinGRU or a MinLSTM (a gated linear recurrence); got {got}.")
    problem = _problem(cell, inputs, state0)
    batch, steps = problem.batch_shape, problem.n_steps
    if problem.inputs is None:
        x = np.zeros((steps,) + batch + (cell.n_input,))
    else:  # (T, *batch, I): the time axis first, every member's (or the shared) sequence
        x = np.moveaxis(np.broadcast_to(problem.inputs, batch + (steps, cell.n_input)), -2, 0)
    log_a, log_b, sign_b = cell._log_coefficients(x)  # (T, ..., N)
    h0 = problem.state0  # (batch, N)
    shape = np.broadcast_shapes(log_a.shape[1:], h0.shape)
    log_a, log_b, sign_b = (np.broadcast_to(a, (steps,) + shape) for a in (log_a, log_b, sign_b))
    h0 = np.broadcast_to(h0, shape)
    cum = np.concatenate([np.zeros((1,) + shape), np.cumsum(log_a, axis=0)])  # A_0 = 0, A_1..A_T
    with np.errstate(divide="ignore"):
        log_terms = np.concatenate([np.log(np.abs(h0))[None], log_b - cum[1:]])
    signs = np.concatenate([np.sign(h0)[None], sign_b])
    neg_inf = -np.inf
    log_p = np.logaddexp.accumulate(np.where(signs > 0, log_terms, neg_inf), axis=0)
    log_q = np.logaddexp.accumulate(np.where(signs < 0, log_terms, neg_inf), axis=0)
    states = np.exp(cum + log_p) - np.exp(cum + log_q)  # (T + 1, ..., N)
    return np.moveaxis(states, 0, -2)


# ------------------------------------------------------------------------------------------
# IndRNN
@dataclass(frozen=True, eq=False)
class IndRNN(_DiagonalCell):
    r"""Independently recurrent neural network (Li et al. 2018).

    .. math::

        a_t = W_{ih} x_t + u \odot h_{t-1} + b, \qquad h_t = \phi(a_t), \qquad
        \frac{\partial h_t}{\partial h_{t-1}} = \operatorname{diag}(u \odot \phi'(a_t))

    Each unit sees only its own past through the scalar u_i: the exponents are the time means of
    :math:`\log|u_i \phi'(a_{t,i})|` (for ReLU, :math:`\log|u_i|` while the unit is active,
    :math:`-\infty` once it has been silent for a step).

    Parameters
    ----------
    weight_hh : array, shape (N,), or (*B, N) for an ensemble
        The recurrent weights u, a *vector* (the diagonal of the recurrent matrix), under
        PyTorch's name as in the IndRNN implementations.
    weight_ih : array, shape (N, I), optional
        None means no input (I = 0).
    bias_ih : array, shape (N,), optional
        The bias b; zero when None.
    activation : {"relu", "tanh", "linear", "sigmoid"}
        phi: ReLU (the paper's, the default) or tanh, or the other activations of
        :data:`gradsim.cells.base.ACTIVATIONS`; ReLU's derivative at 0 is 0, as in PyTorch.
    """

    weight_hh: np.ndarray
    weight_ih: np.ndarray | None = None
    bias_ih: np.ndarray | None = None
    activation: str = "relu"

    parameter_names = ("weight_hh", "weight_ih", "bias_ih")
    _cores = {"weight_hh": ("N",), "weight_ih": ("N", "I"), "bias_ih": ("N",)}
    _primary = "weight_hh"

    def __post_init__(self):
        choice(self.activation, "activation", tuple(ACTIVATIONS))
        u = finite_array(self.weight_hh, "weight_hh")
        if u.ndim < 1:
            raise ValueError(
                f"`weight_hh` must be an array of shape (N,) (the vector u; or (..., N) for an ensemble) for "
                f"IndRNN; got shape {u.shape}."
            )
        n = u.shape[-1]
        self._freeze_parameters(
            {
                "weight_hh": u,
                "weight_ih": _zeros_if_none(self.weight_ih, (n, 0)),
                "bias_ih": _zeros_if_none(self.bias_ih, (n,)),
            }
        )

    @property
    def bias(self) -> np.ndarray:
        """The bias b (``bias_ih``)."""
        return self.bias_ih

    def _forward(self, state, x):
        phi, dphi = ACTIVATIONS[self.activation]
        a = self.weight_hh * state + _affine_map(x, self.weight_ih, self.bias_ih)
        y = phi(a)
        return y, dphi(a, y)

    def _keep(self, state, x):
        new, slope = self._forward(state, x)
        return new, np.broadcast_to(self.weight_hh * slope, new.shape)

    _jacobian = MinGRU._jacobian
    _jacobian_operator = MinGRU._jacobian_operator
    _vjp = MinGRU._vjp

    def _param_vjp(self, state, x, cotangent):
        # dL/da = v phi'(a); a = u h + W x + b.
        _, slope = self._forward(state, x)
        grad_a = cotangent * slope
        shape, batch = _step_shape(state, x, cotangent), self.batch_shape
        return {
            "weight_hh": _batch_sum(grad_a * state, _step_shape(state, x, cotangent, grad_a), batch),
            "weight_ih": _weight_gradient(grad_a, x, batch),
            "bias_ih": _batch_sum(grad_a, shape, batch),
        }

    def _param_jvp(self, state, x, tangent):
        r""":math:`\delta h' = \phi'(a) \odot (\delta u \odot h + \delta W_{ih} x + \delta b)`."""
        _, slope = self._forward(state, x)
        return slope * (tangent["weight_hh"] * state + _affine_map(x, tangent["weight_ih"], tangent["bias_ih"]))


# ------------------------------------------------------------------------------------------
# AntisymmetricRNN
def _check_option(value, name: str, *, allow_zero: bool = False) -> float:
    """A scalar option (eps, gamma, dt) as a float: finite and > 0 (or >= 0 with ``allow_zero``)."""
    from .._validate import positive_number

    return positive_number(value, name, allow_zero=allow_zero)


def _transpose(w):
    """W^T of every member: the last two axes swapped."""
    return np.swapaxes(w, -1, -2)


@dataclass(frozen=True, eq=False)
class AntisymmetricRNN(_DiagonalCell):
    r"""AntisymmetricRNN (Chang, Chen, Haber & Chi 2019): a forward-Euler step of an ODE whose
    Jacobian has an antisymmetric recurrent part.

    .. math::

        A = W - W^\top - \gamma I, \qquad a_t = A h_{t-1} + V x_t + b, \qquad
        h_t = h_{t-1} + \epsilon\, \phi(a_t)

        \frac{\partial h_t}{\partial h_{t-1}} = I + \epsilon \operatorname{diag}(\phi'(a_t))\, A

    The eigenvalues of :math:`W - W^\top` are purely imaginary, :math:`\pm i\omega_k`, so
    the continuous-time system is (for :math:`\gamma = 0`) marginally stable; the diffusion
    :math:`\gamma` damps the forward-Euler step. With ``activation="linear"`` the Jacobian
    :math:`I + \epsilon A` is constant and normal, with eigenvalues
    :math:`1 - \epsilon\gamma \pm i \epsilon \omega_k`: the Lyapunov exponents are exactly
    :math:`\tfrac12 \log((1 - \epsilon\gamma)^2 + \epsilon^2 \omega_k^2)`, each pair twice
    (:meth:`linear_exponents`).

    Parameters
    ----------
    weight_hh : array, shape (N, N), or (*B, N, N) for an ensemble
        W; only its antisymmetric part :math:`W - W^\top` enters the step (the symmetric part
        has zero gradient).
    weight_ih : array, shape (N, I), optional
        V; None means no input (I = 0).
    bias : array, shape (N,), optional
        b; zero when None.
    eps : float > 0
        The step size epsilon (the paper's grid: 0.01 to 1).
    gamma : float >= 0
        The diffusion gamma (the paper's grid: 0.001 to 1).
    activation : str
        phi: "tanh" (the paper's, the default), "linear", or another of
        :data:`gradsim.cells.base.ACTIVATIONS`.

    Notes
    -----
    The paper's gated variant (its eq. 11, an input gate on the update) is not implemented.
    """

    weight_hh: np.ndarray
    weight_ih: np.ndarray | None = None
    bias: np.ndarray | None = None
    eps: float = 0.01
    gamma: float = 0.01
    activation: str = "tanh"

    parameter_names = ("weight_hh", "weight_ih", "bias")
    _cores = {"weight_hh": ("N", "N"), "weight_ih": ("N", "I"), "bias": ("N",)}
    _primary = "weight_hh"

    def __post_init__(self):
        choice(self.activation, "activation", tuple(ACTIVATIONS))
        object.__setattr__(self, "eps", _check_option(self.eps, "eps"))
        object.__setattr__(self, "gamma", _check_option(self.gamma, "gamma", allow_zero=True))
        w = finite_array(self.weight_hh, "weight_hh")
        if w.ndim < 2 or w.shape[-1] != w.shape[-2]:
            raise ValueError(
                f"`weight_hh` must be a square array of shape (N, N) (or (..., N, N) for an ensemble) for "
                f"AntisymmetricRNN; got shape {w.shape}."
            )
        n = w.shape[-1]
        self._freeze_parameters(
            {
                "weight_hh": w,
                "weight_ih": _zeros_if_none(self.weight_ih, (n, 0)),
                "bias": _zeros_if_none(self.bias, (n,)),
            }
        )
        object.__setattr__(self, "_recurrent", frozen(self.weight_hh - _transpose(self.weight_hh) - self.gamma * np.eye(n)))

    @property
    def recurrent_matrix(self) -> np.ndarray:
        r""":math:`A = W - W^\top - \gamma I`, shape (*B, N, N) (read-only)."""
        return self._recurrent

    def linear_exponents(self) -> np.ndarray:
        r"""The exact Lyapunov exponents of the linear cell, sorted descending, shape (*B, N).

        :math:`\tfrac12 \log((1 - \epsilon\gamma)^2 + \epsilon^2\omega_k^2)` for the eigenvalues
        :math:`i\omega_k` of :math:`W - W^\top` (computed by ``eigvalsh`` of the Hermitian
        :math:`-i (W - W^\top)`). They are the exponents of this cell whatever its activation
        only when ``activation="linear"``; for tanh they are those of its linearisation at a = 0.
        """
        k = self.weight_hh - _transpose(self.weight_hh)
        omega = np.linalg.eigvalsh(-1j * k)
        out = 0.5 * np.log((1.0 - self.eps * self.gamma) ** 2 + (self.eps * omega) ** 2)
        return -np.sort(-out, axis=-1)

    def _forward(self, state, x):
        phi, dphi = ACTIVATIONS[self.activation]
        a = _mv(self._recurrent, state) + _affine_map(x, self.weight_ih, self.bias)
        y = phi(a)
        return state + self.eps * y, dphi(a, y)

    def _jacobian(self, state, x, path):
        new, slope = self._forward(state, x)
        n = self.n_hidden
        jac = np.eye(n) + self.eps * slope[..., :, None] * self._recurrent
        return new, np.broadcast_to(jac, new.shape[:-1] + (n, n)).copy()

    def _vjp(self, state, x, cotangent, path):
        _, slope = self._forward(state, x)
        out = cotangent + _vm(self.eps * cotangent * slope, self._recurrent)
        return np.broadcast_to(out, _step_shape(state, x, cotangent, out) + out.shape[-1:]).copy()

    def _param_vjp(self, state, x, cotangent):
        # L = v . (h + eps phi(a)), a = (W - W^T - gamma I) h + V x + b: dL/da = eps v phi'(a) = g;
        # dL/dW = G - G^T with G = sum g h^T (W enters through W and through -W^T).
        _, slope = self._forward(state, x)
        grad_a = self.eps * cotangent * slope
        shape, batch = _step_shape(state, x, cotangent, grad_a), self.batch_shape
        outer = _outer_sum(grad_a, state, batch)
        return {
            "weight_hh": outer - _transpose(outer),
            "weight_ih": _weight_gradient(grad_a, x, batch),
            "bias": _batch_sum(grad_a, shape, batch),
        }

    def _param_jvp(self, state, x, tangent):
        r""":math:`\delta h' = \epsilon\, \phi'(a) \odot ((\delta W - \delta W^\top) h + \delta V x + \delta b)`."""
        _, slope = self._forward(state, x)
        d_w = tangent["weight_hh"]
        d_a = _mv(d_w - _transpose(d_w), state) + _affine_map(x, tangent["weight_ih"], tangent["bias"])
        return self.eps * slope * d_a


# ------------------------------------------------------------------------------------------
# coRNN
CORNN_DAMPING = ("explicit", "implicit")


class _CoRNNJacobian:
    """The coRNN's Jacobian [[I + dt Zy, dt Zz], [Zy, Zz]] as an operator, with
    Zy = c (dt diag(d) W_y - dt gamma I), Zz = c (k I + dt diag(d) W_z): ``J @ M`` costs two
    N x N products per column instead of one 2N x 2N product."""

    __slots__ = ("d", "w_y", "w_z", "dt", "gamma", "c", "k")

    def __init__(self, d, w_y, w_z, dt, gamma, c, k):
        self.d, self.w_y, self.w_z = d, w_y, w_z
        self.dt, self.gamma, self.c, self.k = dt, gamma, c, k

    def __matmul__(self, m):
        n = self.d.shape[-1]
        m_y, m_z = m[..., :n, :], m[..., n:, :]
        d = self.d[..., :, None]
        q = self.c * (
            self.dt * d * (np.matmul(self.w_y, m_y) + np.matmul(self.w_z, m_z))
            - self.dt * self.gamma * m_y + self.k * m_z
        )
        return np.concatenate([m_y + self.dt * q, q], axis=-2)

    def member(self, index):
        d, w_y, w_z = _members((self.d, self.w_y, self.w_z), (1, 2, 2), index)
        return _CoRNNJacobian(d, w_y, w_z, self.dt, self.gamma, self.c, self.k)


@dataclass(frozen=True, eq=False)
class CoRNN(_DiagonalCell):
    r"""Coupled oscillatory RNN (Rusch & Mishra 2021): a second-order ODE
    :math:`y'' = \sigma(W y + \mathcal W y' + V u + b) - \gamma y - \epsilon y'` discretised with
    the implicit-explicit (symplectic-Euler-like) scheme of the paper's eq. (3).

    The state is :math:`s = (y, z)` of length 2 N (positions first, then velocities). With
    ``damping="explicit"`` (the default, the authors' code, github.com/tk-rusch/coRNN: z is
    updated first, from the old y and z, then y with the new z):

    .. math::

        a_t = W_y y_{t-1} + W_z z_{t-1} + V x_t + b

        z_t = z_{t-1} + \Delta t\, (\sigma(a_t) - \gamma y_{t-1} - \epsilon z_{t-1}), \qquad
        y_t = y_{t-1} + \Delta t\, z_t

    With ``damping="implicit"`` the damping term is :math:`-\Delta t\, \epsilon z_t` (eq. (3) as
    printed, :math:`\bar n = n`), solved exactly: :math:`z_t = (z_{t-1} + \Delta t(\sigma(a_t) -
    \gamma y_{t-1})) / (1 + \Delta t\,\epsilon)`. Both are :math:`z_t = c\,(k z_{t-1} + \Delta
    t(\sigma(a_t) - \gamma y_{t-1}))` with (c, k) = (1, 1 - dt eps) or (1 / (1 + dt eps), 1), and

    .. math::

        Z_y = \frac{\partial z_t}{\partial y_{t-1}} = c\,\Delta t\,(\operatorname{diag}(\sigma'(a_t)) W_y - \gamma I),
        \qquad Z_z = \frac{\partial z_t}{\partial z_{t-1}} = c\,(k I + \Delta t \operatorname{diag}(\sigma'(a_t)) W_z)

        \frac{\partial s_t}{\partial s_{t-1}} = \begin{pmatrix} I + \Delta t Z_y & \Delta t Z_z \\ Z_y & Z_z \end{pmatrix}

    Parameters
    ----------
    weight_y : array, shape (N, N), or (*B, N, N) for an ensemble
        W, the coupling of the positions y (the paper's W; in the authors' code the hy block
        of ``i2h.weight``, its last N columns).
    weight_z : array, shape (N, N)
        The paper's calligraphic W, the coupling of the velocities z (the hz block of
        ``i2h.weight``, the middle N columns).
    weight_ih : array, shape (N, I), optional
        V (the x block of ``i2h.weight``, its first I columns); None means no input (I = 0).
    bias : array, shape (N,), optional
        b (``i2h.bias``); zero when None.
    dt, gamma, eps : float > 0
        The step, the stiffness and the damping (the paper's sMNIST values 0.042, 2.7, 4.7 by
        default).
    activation : str
        sigma: "tanh" (the paper's, the default) or another of
        :data:`gradsim.cells.base.ACTIVATIONS`.
    damping : {"explicit", "implicit"}
        Whether the damping uses the old z (the authors' code) or the new z (eq. (3) with
        :math:`\bar n = n`).

    Notes
    -----
    The names are torch-like rather than PyTorch's (the authors use one ``nn.Linear`` over
    cat(x, z, y)); the split keeps one array per linear map, which is what parameter tangents
    address. :attr:`n_hidden` is N and :attr:`state_size` is 2 N.
    """

    weight_y: np.ndarray
    weight_z: np.ndarray
    weight_ih: np.ndarray | None = None
    bias: np.ndarray | None = None
    dt: float = 0.042
    gamma: float = 2.7
    eps: float = 4.7
    activation: str = "tanh"
    damping: str = "explicit"

    parameter_names = ("weight_y", "weight_z", "weight_ih", "bias")
    _cores = {"weight_y": ("N", "N"), "weight_z": ("N", "N"), "weight_ih": ("N", "I"), "bias": ("N",)}
    _primary = "weight_y"

    def __post_init__(self):
        choice(self.activation, "activation", tuple(ACTIVATIONS))
        choice(self.damping, "damping", CORNN_DAMPING)
        for name in ("dt", "gamma", "eps"):
            object.__setattr__(self, name, _check_option(getattr(self, name), name))
        w = finite_array(self.weight_y, "weight_y")
        if w.ndim < 2 or w.shape[-1] != w.shape[-2]:
            raise ValueError(
                f"`weight_y` must be a square array of shape (N, N) (or (..., N, N) for an ensemble) for CoRNN; "
                f"got shape {w.shape}."
            )
        n = w.shape[-1]
        self._freeze_parameters(
            {
                "weight_y": w,
                "weight_z": self.weight_z,
                "weight_ih": _zeros_if_none(self.weight_ih, (n, 0)),
                "bias": _zeros_if_none(self.bias, (n,)),
            }
        )

    @property
    def state_size(self) -> int:
        return 2 * self.n_hidden

    def _coefficients(self):
        """(c, k) of z' = c (k z + dt (sigma(a) - gamma y))."""
        if self.damping == "explicit":
            return 1.0, 1.0 - self.dt * self.eps
        return 1.0 / (1.0 + self.dt * self.eps), 1.0

    def _forward(self, state, x):
        phi, dphi = ACTIVATIONS[self.activation]
        n = self.n_hidden
        y, z = state[..., :n], state[..., n:]
        a = _mv(self.weight_y, y) + _mv(self.weight_z, z) + _affine_map(x, self.weight_ih, self.bias)
        act = phi(a)
        c, k = self._coefficients()
        z_new = c * (k * z + self.dt * (act - self.gamma * y))
        y_new = y + self.dt * z_new
        return np.concatenate([y_new, z_new], axis=-1), dphi(a, act)

    def _jacobian_operator(self, state, x, path):
        new, slope = self._forward(state, x)
        c, k = self._coefficients()
        slope = np.broadcast_to(slope, new.shape[:-1] + slope.shape[-1:])
        return new, _CoRNNJacobian(slope, self.weight_y, self.weight_z, self.dt, self.gamma, c, k)

    def _jacobian(self, state, x, path):
        new, slope = self._forward(state, x)
        n = self.n_hidden
        c, k = self._coefficients()
        eye = np.eye(n)
        d = slope[..., :, None]
        z_y = c * self.dt * (d * self.weight_y - self.gamma * eye)
        z_z = c * (k * eye + self.dt * d * self.weight_z)
        shape = new.shape[:-1] + (n, n)
        z_y, z_z = np.broadcast_to(z_y, shape), np.broadcast_to(z_z, shape)
        top = np.concatenate([eye + self.dt * z_y, self.dt * z_z], axis=-1)
        return new, np.concatenate([top, np.concatenate([z_y, z_z], axis=-1)], axis=-2)

    def _vjp(self, state, x, cotangent, path):
        # v J = (v_y + w Zy, w Zz) with w = v_y dt + v_z, the cotangent reaching z'.
        _, slope = self._forward(state, x)
        n = self.n_hidden
        c, k = self._coefficients()
        v_y, v_z = cotangent[..., :n], cotangent[..., n:]
        w = v_z + self.dt * v_y
        g = c * self.dt * w * slope
        out_y = v_y + _vm(g, self.weight_y) - c * self.dt * self.gamma * w
        out_z = _vm(g, self.weight_z) + c * k * w
        shape = _step_shape(state, x, cotangent, out_y, out_z)
        return np.concatenate([np.broadcast_to(out_y, shape + (n,)), np.broadcast_to(out_z, shape + (n,))], axis=-1)

    def _param_vjp(self, state, x, cotangent):
        # dL/da = c dt sigma'(a) w, w = v_z + dt v_y (y' = y + dt z' carries v_y into z').
        _, slope = self._forward(state, x)
        n = self.n_hidden
        c, _ = self._coefficients()
        w = cotangent[..., n:] + self.dt * cotangent[..., :n]
        grad_a = c * self.dt * w * slope
        shape, batch = _step_shape(state, x, cotangent, grad_a), self.batch_shape
        return {
            "weight_y": _outer_sum(grad_a, state[..., :n], batch),
            "weight_z": _outer_sum(grad_a, state[..., n:], batch),
            "weight_ih": _weight_gradient(grad_a, x, batch),
            "bias": _batch_sum(grad_a, shape, batch),
        }

    def _param_jvp(self, state, x, tangent):
        r""":math:`\delta z' = c\,\Delta t\,\sigma'(a) \odot (\delta W_y y + \delta W_z z + \delta V x + \delta b)`,
        :math:`\delta y' = \Delta t\,\delta z'`."""
        _, slope = self._forward(state, x)
        n = self.n_hidden
        c, _ = self._coefficients()
        y, z = state[..., :n], state[..., n:]
        d_a = (
            _mv(tangent["weight_y"], y) + _mv(tangent["weight_z"], z)
            + _affine_map(x, tangent["weight_ih"], tangent["bias"])
        )
        d_z = c * self.dt * slope * d_a
        return np.concatenate([self.dt * d_z, d_z], axis=-1)
