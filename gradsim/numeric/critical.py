r"""Critical initialisation: the initialisation parameter that puts the largest exponent at a target.

:func:`critical_init` finds the value of one initialisation parameter (the gain of the recurrent
weights; the LSTM's forget-gate bias; the GRU's update-gate bias) at which the largest Lyapunov
exponent :math:`\lambda_1` of the networks :func:`~gradsim.make_cell` draws, driven by i.i.d.
Gaussian inputs, equals a target (0: the edge of chaos, Poole et al. 2016, Chen, Pennington &
Schoenholz 2018; :math:`-1/H`: gradients that survive H steps). The start comes from theory
(THEORY.md sections 5, 7, 8) where it exists; the value is refined by root finding on the
measured exponent of an ensemble, with its standard error.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import logit

from .._validate import as_rng, choice, describe, finite_number, positive_int, positive_number
from ..cells import make_cell
from ..cells.factory import CELL_KINDS
from ..theory import predictions as _theory
from .spectrum import lyapunov_spectrum

__all__ = ["CriticalInit", "critical_init", "PARAMETERS"]

#: The initialisation parameters critical_init can tune, by cell kind.
PARAMETERS = {
    "rnn": ("gain",), "irnn": ("gain",), "residual": ("gain",), "leaky": ("gain",),
    "rate": ("gain",), "indrnn": ("gain",), "antisymmetric": ("gain",), "cornn": ("gain",),
    "lstm": ("gain", "forget_bias"), "gru": ("gain", "update_bias"),
    "lru": (), "mingru": (), "minlstm": (),
}
# Default search ranges. The gain is searched in log g (it is a scale), the biases linearly.
_BOUNDS = {"gain": (0.01, 20.0), "forget_bias": (-30.0, 30.0), "update_bias": (-30.0, 30.0)}
_FIRST_STEP = {"gain": 0.1, "forget_bias": 0.5, "update_bias": 0.5}  # in the search coordinate
# The bracketing steps double up to this size (a factor 1.5 in the gain), so that a window where
# the exponent crosses the target is not stepped over where it is not monotone (e.g. a leaky
# RNN, whose exponent falls again at large gains as its units saturate).
_MAX_STEP = {"gain": math.log(1.5), "forget_bias": 2.0, "update_bias": 2.0}
_WEIGHTS = ("tied", "untied")
# A bracket's ends must differ by this many combined standard errors for the slope to be read
# over it (relative error of the slope <= 1/10).
_SLOPE_RESOLUTION = 10.0
# make_cell options critical_init sets itself.
_RESERVED = ("n_input", "input_gain", "ensemble", "rng")


@dataclass(frozen=True)
class CriticalInit:
    r"""Result of :func:`critical_init`.

    Attributes
    ----------
    kind, parameter : str
        The cell kind and the parameter tuned.
    value : float
        The parameter value at which the ensemble-mean largest exponent equals :attr:`target`
        (the root of a straight line fitted to the measured exponents in the last bracket).
    stderr : float
        Its standard error by the delta method: :math:`\sqrt{s_\lambda^2 + r^2} / |m|` with
        :math:`s_\lambda` the standard error of the exponent measured at :attr:`value`, r its
        remaining distance from the target and m the fitted slope
        :math:`d\lambda_1/d\,\text{parameter}`.
    exponent, exponent_stderr : float
        The ensemble-mean largest exponent measured at :attr:`value` (per step, natural log) and
        its standard error (the spread over the ensemble's members over sqrt(B); for B = 1 the
        block standard error of :func:`lyapunov_spectrum`).
    slope : float
        m, the fitted :math:`d\lambda_1 / d\,\text{parameter}` near the root.
    target : float
        The exponent aimed at (``-1/horizon`` when a horizon was given).
    mean_field : float or None
        The theory's value (None where no theory applies): for ``"rnn"`` and the rate map
        (``"rate"`` with dt = 1, Euler, no zero diagonal) with Gaussian weights, the mean-field gain with :math:`\tfrac12\log\chi_1 = \text{target}`
        at large N (THEORY.md section 5, :func:`gradsim.theory.mean_field_chi1` with
        ``sigma_in = input_std``, ``sigma_b = bias_std``); for the LSTM forget bias and the GRU
        update bias with zero weights (``gain=0``), the zero-weight value with
        :math:`E\log\sigma(b + \text{input}) = \text{target}` (THEORY.md sections 7 and 8;
        :math:`\log\sigma(b) = \text{target}` without input).
    mean_field_finite_n : float or None
        ``"rnn"`` and the rate map only: the root of the finite-N mean-field exponent
        :math:`\tfrac12\log\chi_1 - (3\mu_2/\chi_1^2 - 1)/(4N)` (the Jensen gap of
        :math:`\log\|J v\|`, the library claim ``theory.mean-field-lyapunov``), the start of the
        search; its distance from :attr:`mean_field` is the finite-N shift of the edge.
    theory : str
        Which theory gave :attr:`mean_field` and the start ("none" if neither applies).
    bounds : (float, float)
        The range the search was allowed to cover.
    bracket : (float, float)
        The last bracket [a, b] (the exponent minus the target changes sign over it).
    evaluations : tuple of (float, float, float)
        Every evaluation made, in order: (parameter value, ensemble-mean exponent, its standard
        error).
    ensemble, steps, warmup : int
        Networks per evaluation, steps per run, warm-up steps of each run.
    """

    kind: str
    parameter: str
    value: float
    stderr: float
    exponent: float
    exponent_stderr: float
    slope: float
    target: float
    mean_field: float | None
    mean_field_finite_n: float | None
    theory: str
    bounds: tuple
    bracket: tuple
    evaluations: tuple
    ensemble: int
    steps: int
    warmup: int

    @property
    def n_evaluations(self) -> int:
        """Ensemble runs made (each of ``ensemble`` networks over ``steps`` steps)."""
        return len(self.evaluations)


# ------------------------------------------------------------------------------------------
# theory
def _softplus(x):
    return np.logaddexp(0.0, x)


_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite_e.hermegauss(80)
_GH_WEIGHTS = _GH_WEIGHTS / _GH_WEIGHTS.sum()


def _gated_zero_weight_exponent(bias, input_std, sign):
    r""":math:`E_z \log\sigma(\pm(b + s z))`, z standard normal (Gauss-Hermite, 80 nodes:
    the integrand is smooth and grows linearly, exact to ~1e-14 for s <= 10)."""
    return float(-np.sum(_GH_WEIGHTS * _softplus(-sign * (bias + input_std * _GH_NODES))))


def _gated_zero_weight_root(target, input_std, sign):
    """The bias b with E log sigma(sign (b + s z)) = target (< 0), exactly without input."""
    if input_std == 0.0:
        return sign * float(logit(math.exp(target)))
    # E log sigma(b + s z) increases from -inf to 0 as b goes from -inf to inf.
    f = lambda b: _gated_zero_weight_exponent(sign * b, input_std, sign) - target  # noqa: E731
    lo, hi = -1.0, 1.0
    while f(lo) > 0:
        lo *= 2.0
    while f(hi) < 0:
        hi *= 2.0
        if hi > 1e6:
            return None
    return sign * float(brentq(f, lo, hi, xtol=1e-13))


def _mean_field_exponent(g, activation, sigma_b, sigma_in, n=None):
    """(1/2) log chi_1 at gain g, minus the finite-N Jensen gap (3 mu_2/chi_1^2 - 1)/(4N) if n."""
    chi1 = _theory.mean_field_chi1(g, activation, sigma_b, sigma_in)
    lam = 0.5 * math.log(chi1)
    if n is not None:
        q = _theory.mean_field_q_star(g, activation, sigma_b, sigma_in)
        lam -= (3.0 * _theory.mu2(g, activation, q) / chi1**2 - 1.0) / (4.0 * n)
    return lam


def _mean_field_gain(target, activation, sigma_b, sigma_in, n, bounds):
    """The gain with mean-field exponent `target` (at N = inf if n is None); None if outside."""
    if n is None and activation in ("tanh", "linear") and sigma_b == sigma_in == 0.0 and target <= 0.0:
        return math.exp(target)  # q* = 0: lambda = log g exactly (tanh: for g <= 1)
    lo, hi = bounds
    try:
        f = lambda g: _mean_field_exponent(g, activation, sigma_b, sigma_in, n) - target  # noqa: E731
        if f(lo) * f(hi) > 0:
            return None
        return float(brentq(f, lo, hi, xtol=1e-13, rtol=1e-13))
    except (ValueError, OverflowError, FloatingPointError):
        return None


def _theory_start(kind, parameter, target, input_std, n, options, bounds):
    """(mean_field, mean_field_finite_n, theory description) for this setting."""
    # The tanh RNN h' = phi(W h + x) and the rate map x' = W phi(x) + u (dt = 1, Euler) are the
    # mean-field form a' = W phi(a) + input (the RNN's pre-activations a = W h + x obey it).
    rate_map = kind == "rate" and options.get("dt") in (None, 1.0) and options.get("integrator") in (
        None, "euler") and not options.get("zero_diagonal", False)
    if (parameter == "gain" and (kind == "rnn" or rate_map)
            and options.get("init", "gaussian") == "gaussian"):
        activation = options.get("activation", "tanh")
        if activation not in _theory.ACTIVATION_NAMES:
            return None, None, "none"
        sigma_b = float(options.get("bias_std", 0.0))
        inf = _mean_field_gain(target, activation, sigma_b, input_std, None, bounds)
        finite = _mean_field_gain(target, activation, sigma_b, input_std, n, bounds)
        return inf, finite, (
            "mean field (THEORY.md section 5): (1/2) log chi_1(g; sigma_b, sigma_in) = target; "
            "start: minus the finite-N Jensen gap (3 mu_2/chi_1^2 - 1)/(4N)"
        )
    if parameter in ("forget_bias", "update_bias") and target < 0.0:
        # The cell path c -> c (LSTM) is diag(f); the GRU's direct path diag(z) (PyTorch) or
        # diag(1 - z) (Chung et al.): at zero weights f = sigma(b_f + x), z = sigma(b_z + x).
        sign = -1.0 if parameter == "update_bias" and options.get("variant", "torch") == "chung" else 1.0
        value = _gated_zero_weight_root(target, input_std, sign)
        if value is None:
            return None, None, "none"
        where = "7 (LSTM cell path)" if parameter == "forget_bias" else "8 (GRU direct path)"
        formula = "log sigma(b)" if sign > 0 else "log sigma(-b)"
        if input_std > 0:
            formula = f"E_z {formula.replace('b)', 'b + input_std z)')}"
        return value, None, f"zero-weight theory (THEORY.md section {where}): {formula} = target"
    return None, None, "none"


# ------------------------------------------------------------------------------------------
# the measurement
class _Measure:
    """The ensemble-mean largest exponent as a function of the parameter, with common random
    numbers: every evaluation uses the same weight draws, inputs, initial states and frame."""

    def __init__(self, kind, parameter, n, input_std, options, ensemble, steps, warmup, path,
                 weights, rng):
        self.kind, self.parameter, self.n = kind, parameter, n
        self.options, self.ensemble, self.path, self.weights = options, ensemble, path, weights
        self.steps, self.warmup = steps, warmup
        seeds = rng.integers(2**63, size=4)
        self.cell_seed, self.frame_seed = int(seeds[0]), int(seeds[3])
        probe = make_cell(kind, n, n if input_std > 0 else 0, rng=0, **self._cell_options(1.0))
        self.state_size = probe.state_size
        self.rows = probe.weight_ih.shape[-2]
        inputs_rng, state_rng = np.random.default_rng(int(seeds[1])), np.random.default_rng(int(seeds[2]))
        self.inputs = (input_std * inputs_rng.standard_normal((ensemble, steps, n))
                       if input_std > 0 else steps)
        self.state0 = state_rng.uniform(-1.0, 1.0, (ensemble, self.state_size))
        self.input_std = input_std
        self.evaluations = []

    def _cell_options(self, value):
        opts = dict(self.options)
        if self.parameter in ("gain", "forget_bias"):
            opts[self.parameter] = value
        return opts

    def _cells(self, value, seed):
        n_in = self.n if self.input_std > 0 else 0
        cell = make_cell(self.kind, self.n, n_in, ensemble=self.ensemble, rng=seed,
                         **self._cell_options(value))
        updates = {}
        if self.input_std > 0:
            # Each unit of each gate is driven by its own input coordinate: W_ih = [I; I; ...].
            eye = np.tile(np.eye(self.n), (self.rows // self.n, 1))
            updates["weight_ih"] = np.broadcast_to(eye, (self.ensemble,) + eye.shape).copy()
        if self.parameter == "update_bias":
            bias = np.array(cell.bias_hh)
            bias[..., self.n:2 * self.n] += value  # gates r, z, n: the z block
            updates["bias_hh"] = bias
        return cell.with_parameters(updates)

    def __call__(self, value):
        if self.weights == "tied":
            cell = self._cells(value, self.cell_seed)
        else:
            cache = {}

            def cell(t):
                if t not in cache:
                    cache.clear()
                    cache[t] = self._cells(value, np.random.default_rng([self.cell_seed, int(t)]))
                return cache[t]

        with np.errstate(divide="ignore"):
            spec = lyapunov_spectrum(cell, self.inputs, state0=self.state0, k=1, warmup=self.warmup,
                                     path=self.path, rng=self.frame_seed)
        tops = spec.exponents[:, 0]
        if not np.all(np.isfinite(tops)):
            raise ValueError(
                f"`bounds` must keep the largest exponent finite; at {self.parameter}={value!r} it is "
                f"{float(np.min(tops))!r} (the Jacobian product collapsed to zero, e.g. ReLU units all "
                f"inactive)."
            )
        mean = float(np.mean(tops))
        if self.ensemble > 1:
            se = float(np.std(tops, ddof=1)) / math.sqrt(self.ensemble)
        else:
            se = float(spec.stderr[0, 0])
        self.evaluations.append((float(value), mean, se))
        return mean, se


# ------------------------------------------------------------------------------------------
# validation
def _check_kind_parameter(kind, parameter):
    choice(kind, "kind", CELL_KINDS)
    valid = PARAMETERS[kind]
    if not valid:
        tunable = ", ".join(repr(k) for k, v in PARAMETERS.items() if v)
        raise ValueError(
            f"`kind` must be a kind with a tunable initialisation parameter ({tunable}); "
            f"kind={kind!r} has none."
        )
    if not isinstance(parameter, str) or parameter not in valid:
        listed = ", ".join(repr(p) for p in valid)
        raise ValueError(
            f"`parameter` must be one of {listed} for kind={kind!r}; got {describe(parameter)}."
        )


def _check_bounds(bounds, parameter):
    if bounds is None:
        return _BOUNDS[parameter]
    try:
        lo, hi = bounds
        lo, hi = float(lo), float(hi)
    except (TypeError, ValueError):
        raise ValueError(f"`bounds` must be a pair (low, high) of finite numbers with low < high; "
                         f"got {describe(bounds)}.") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi) or (parameter == "gain" and lo <= 0):
        need = "0 < low < high" if parameter == "gain" else "low < high"
        raise ValueError(f"`bounds` must be a pair (low, high) of finite numbers with {need}; "
                         f"got {describe(bounds)}.")
    return lo, hi


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {describe(value)}.")
    return int(value)


# ------------------------------------------------------------------------------------------
def critical_init(
    kind: str,
    n_hidden: int,
    *,
    parameter: str = "gain",
    input_std: float = 0.0,
    target: float = 0.0,
    horizon: float | None = None,
    rng=None,
    ensemble: int = 16,
    steps: int = 1000,
    warmup: int = 200,
    path: str = "full",
    weights: str = "tied",
    bounds=None,
    max_evaluations: int = 16,
    xtol: float = 1e-6,
    **cell_options,
) -> CriticalInit:
    r"""The initialisation that puts the largest Lyapunov exponent at ``target``.

    Finds the value v of ``parameter`` for which the ensemble-mean largest exponent of the
    networks ``make_cell(kind, n_hidden, parameter=v, **cell_options)`` equals the target,

    .. math::

        \bar\lambda_1(v) = \frac1B \sum_{b=1}^{B} \lambda_1^{(b)}(v) = \text{target},

    with :math:`\lambda_1^{(b)}` measured by :func:`~gradsim.lyapunov_spectrum` (k = 1, along
    ``path``) over ``steps`` steps after ``warmup`` steps, for inputs
    :math:`x_{t,i} \sim N(0, \text{input\_std}^2)` i.i.d. over units and steps.

    The inputs enter every unit of every gate directly: n_input = N and W_ih = [I; ...; I] (one
    identity block per gate), so the drive of each unit has variance exactly input_std^2, the
    setting of the mean-field theory (THEORY.md section 5; studies/edge_of_chaos.py). Without
    input (input_std = 0) the cells have no input weights.

    Method. (1) Start: the theory's value where one exists (see :attr:`CriticalInit.mean_field`;
    for the tanh RNN the finite-N mean-field root :attr:`CriticalInit.mean_field_finite_n`),
    else 1 (gain) or 0 (biases). (2) Bracket: steps away from the start in the direction that
    moves the exponent towards the target, doubling up to a factor 1.5 in g (the gain is searched
    in log g) or 2 in a bias, the exponent being taken to increase with the gain, the forget bias
    and the PyTorch update bias (to decrease with the update bias of ``variant="chung"``), until
    the sign of :math:`\bar\lambda_1 - \text{target}` changes; if it has not changed at the end
    of ``bounds``, a ValueError names the range tried and the exponents found. (3) Refine: false
    position with the Illinois modification, until a point's exponent is within a quarter of its
    standard error of the target (1e-12 if that is 0), the bracket's ends differ by less than
    twice their combined standard error (noise only), the bracket is narrower than ``xtol`` (in
    the search coordinate) or ``max_evaluations`` runs were made. (4) Estimate: the value is that
    point, or else the false-position point of the last bracket, where the exponent is measured
    once more; the slope m is that of a straight line fitted (weights 1/s.e.^2) to the
    evaluations inside the last bracket whose ends differed by more than 10 combined standard
    errors (the first bracket if none did; a secant over a bracket barely wider than the noise
    would be the noise's slope); the value's standard error is the delta method
    :math:`\sqrt{s_\lambda^2 + (\bar\lambda_1 - \text{target})^2}/|m|`.

    Every evaluation uses common random numbers (the same weight draws, scaled or shifted by the
    parameter, the same inputs, initial states ~ U(-1, 1) and QR frame), so
    :math:`\bar\lambda_1(v)` is one fixed function of v and the root finder works on it as on a
    deterministic function; the standard error is that of the ensemble mean over members
    (network-to-network spread plus each member's finite-time noise): how far another draw of
    B networks would move the value.

    Tied tanh RNNs without input are the exception to mean field at moderate N: above g = 1
    they settle on fixed points, periodic or quasi-periodic orbits with lambda_1 <= 0
    (studies/edge_of_chaos.py), so their edge lies well above the finite-N mean-field root
    (measured: 1.35 +- 0.15 at N = 64 and 1.250 +- 0.016 at N = 256, B = 16, T = 1000, against
    1.137 and 1.060). With input noise, or with ``weights="untied"``, the measured edge agrees
    with it (tests/test_critical_init.py, studies/critical_init.py).

    Parameters
    ----------
    kind : str
        A kind of :func:`~gradsim.make_cell` with a tunable parameter (see :data:`PARAMETERS`).
    n_hidden : int
        N >= 1.
    parameter : {"gain", "forget_bias", "update_bias"}
        ``"gain"``: make_cell's ``gain`` of the recurrent weights (every kind with recurrent
        weights). ``"forget_bias"`` (LSTM): make_cell's ``forget_bias``, added to the forget
        gate's b_hh. ``"update_bias"`` (GRU): added to the update gate's b_hh (gates r, z, n).
    input_std : float
        Standard deviation of the i.i.d. Gaussian inputs, >= 0.
    target : float
        The exponent aimed at (per step, natural log), finite. 0 is the edge of chaos.
    horizon : float, optional
        H >= 1: aim at target = -1/H instead, the exponent of a gradient that decays by a factor
        e over H steps (the memory time scale -1/lambda of
        :func:`gradsim.theory.memory_time_scale` equal to H; for the LSTM cell path at zero
        weights log sigma(b_f) = -1/H). Give either ``target`` or ``horizon``.
    rng : seed or Generator
        Root of the weight, input, initial-state and frame draws.
    ensemble : int
        B networks per evaluation (>= 1; >= 2 for a standard error from their spread).
    steps, warmup : int
        Steps T of each run (>= 2) and warm-up steps before averaging (0 <= warmup < T).
    path : str
        Jacobian path of the exponent (``"full"``; ``"cell"`` for the LSTM's c -> c block,
        ``"direct"`` for the GRU's diag(z), ``"hidden"``), as in :func:`lyapunov_spectrum`.
    weights : {"tied", "untied"}
        ``"tied"``: one network per member (the initialisation a network is trained from).
        ``"untied"``: fresh weights every step (drawn with the same options), the setting in
        which mean-field theory is exact at large N; costlier (one make_cell per step).
    bounds : (float, float), optional
        Range of the search. Defaults: gain (0.01, 20), biases (-30, 30).
    max_evaluations : int
        Most ensemble runs in the search (>= 3), besides the final one at the value.
    xtol : float
        Bracket width at which the refinement stops (in log g for the gain), > 0.
    **cell_options
        Further :func:`~gradsim.make_cell` options (``init``, ``activation``, ``bias_std``,
        ``variant``, ``alpha``, ...). ``n_input``, ``input_gain``, ``ensemble``, ``rng`` and
        the tuned parameter itself are set here and may not be given.

    Returns
    -------
    CriticalInit

    Raises
    ------
    ValueError
        For an unknown kind or a parameter the kind does not have (the valid ones are listed),
        a non-finite target, both a target and a horizon, a target no value in ``bounds``
        reaches (the range tried and the exponents at its ends are named), and bad sizes.
    """
    _check_kind_parameter(kind, parameter)
    n = positive_int(n_hidden, "n_hidden")
    input_std = positive_number(input_std, "input_std", allow_zero=True)
    target = finite_number(target, "target")
    if horizon is not None:
        if target != 0.0:
            raise ValueError(
                f"`target` and `horizon` are two ways to give one exponent (target = -1/horizon): "
                f"give one of them; got target={target!r} and horizon={describe(horizon)}."
            )
        horizon = positive_number(horizon, "horizon")
        if horizon < 1.0:
            raise ValueError(f"`horizon` must be a number >= 1 (steps); got {horizon!r}.")
        target = -1.0 / horizon
    ensemble = _check_int(ensemble, "ensemble", 1)
    steps = _check_int(steps, "steps", 2)
    if isinstance(warmup, bool) or not isinstance(warmup, numbers.Integral) or not 0 <= warmup < steps:
        raise ValueError(f"`warmup` must be an integer in [0, steps) = [0, {steps}); got {describe(warmup)}.")
    weights = choice(weights, "weights", _WEIGHTS)
    max_evaluations = _check_int(max_evaluations, "max_evaluations", 3)
    xtol = positive_number(xtol, "xtol")
    lo, hi = _check_bounds(bounds, parameter)
    for name in _RESERVED + (parameter,):
        if name in cell_options:
            raise ValueError(
                f"`{name}` is set by critical_init (n_input = n_hidden with identity input weights, "
                f"the tuned parameter by the search); got {name}={describe(cell_options[name])}."
            )
    rng = as_rng(rng)

    mean_field, finite_n, theory = _theory_start(kind, parameter, target, input_std, n, cell_options,
                                                 (lo, hi))
    start = finite_n if finite_n is not None else mean_field
    if start is None:
        start = 1.0 if parameter == "gain" else 0.0
    start = min(max(start, lo), hi)
    measure = _Measure(kind, parameter, n, input_std, cell_options, ensemble, steps, warmup, path,
                       weights, rng)
    # The search coordinate u: log g for the gain, the bias itself otherwise; direction +1 when
    # the exponent increases with u.
    if parameter == "gain":
        to_u, from_u = math.log, math.exp
    else:
        to_u = from_u = float
    increasing = not (parameter == "update_bias" and cell_options.get("variant", "torch") == "chung")
    u_lo, u_hi = to_u(lo), to_u(hi)

    points = []  # (u, exponent - target, s.e.) of every search evaluation, u exact

    def f(u):
        mean, se = measure(from_u(u))
        points.append((u, mean - target, se))
        return mean - target, se

    # (2) bracket
    u0 = to_u(start)
    f0, s0 = f(u0)
    a = b = None
    if f0 == 0.0:
        # At the target already (e.g. the exact zero-weight start): one step more, for the slope.
        u1 = u0 + _FIRST_STEP[parameter] if u0 < u_hi else u0 - _FIRST_STEP[parameter]
        u1 = min(max(u1, u_lo), u_hi)
        f1, s1 = f(u1)
        a = b = (u0, f0, s0)
        slope_points = sorted([(u0, f0, s0), (u1, f1, s1)])
    else:
        slope_points = None
        up = (f0 < 0) == increasing
        step = _FIRST_STEP[parameter]
        prev = (u0, f0, s0)
        while True:
            edge = u_hi if up else u_lo
            if prev[0] == edge:
                first = measure.evaluations[0]
                raise ValueError(
                    f"`target` {target:.6g} is not reached by {parameter} of kind={kind!r} in the range "
                    f"tried, [{lo:.6g}, {hi:.6g}] (`bounds`): the exponent is {first[1]:.6g} +- "
                    f"{first[2]:.2g} at {parameter}={first[0]:.6g} and {prev[1] + target:.6g} +- "
                    f"{prev[2]:.2g} at the end of the range, {parameter}={from_u(edge):.6g}, both on "
                    f"the same side of the target (the search steps from the start towards the target, "
                    f"taking the exponent to move monotonically with {parameter})."
                )
            u1 = min(prev[0] + step, u_hi) if up else max(prev[0] - step, u_lo)
            if len(measure.evaluations) >= max_evaluations - 1:
                u1 = edge  # the budget is nearly spent: try the end of the range itself
            f1, s1 = f(u1)
            if f1 == 0.0 or (f1 > 0) != (prev[1] > 0):
                a, b = (prev, (u1, f1, s1)) if u1 > prev[0] else ((u1, f1, s1), prev)
                break
            prev = (u1, f1, s1)
            step = min(2.0 * step, _MAX_STEP[parameter])

    # (3) refine (Illinois false position)
    def resolved(a, b, factor=2.0):
        return abs(b[1] - a[1]) > factor * math.hypot(a[2], b[2])

    # The last bracket whose ends differ by more than ten times their combined standard error
    # (the slope read over it is then good to ~10%): the slope of the delta method is read over
    # it (the first bracket if none is).
    slope_bracket = (a[0], b[0]) if slope_points is None else (slope_points[0][0], slope_points[1][0])
    side, found = 0, None
    while a[0] != b[0]:
        (ua, fa, _), (ub, fb, _) = a, b
        if resolved(a, b, _SLOPE_RESOLUTION):
            slope_bracket = (ua, ub)
        if not resolved(a, b) and len(points) > 2:
            break  # the bracket's ends differ by noise only
        if b[0] - a[0] <= xtol or len(measure.evaluations) >= max_evaluations:
            break  # narrow enough, or out of budget
        wa, wb = (0.5 if side == 1 else 1.0), (0.5 if side == -1 else 1.0)
        u = _secant(ua, fa * wa, ub, fb * wb)
        fu, su = f(u)
        if abs(fu) <= max(0.25 * su, 1e-12):
            found = (u, fu, su)  # at the target within a quarter of its standard error
            break
        if (fu > 0) == (fa > 0):
            a = (u, fu, su)
            side = -1 if side != -1 else 0
        else:
            b = (u, fu, su)
            side = 1 if side != 1 else 0

    # (4) estimate
    if a[0] == b[0]:
        found = a
    if found is None:
        u_star = _secant(a[0], a[1], b[0], b[1])
        value = from_u(u_star)
        mean, se = measure(value)
    else:
        u_star, value = found[0], from_u(found[0])
        mean, se = found[1] + target, found[2]
    # The slope for the delta method: a weighted line through every search point inside the
    # last resolved bracket (a secant over a bracket narrower than the noise would be the
    # noise's slope where the exponent is not smooth in the parameter).
    slope_u = _line_slope([p for p in points if slope_bracket[0] <= p[0] <= slope_bracket[1]])
    # d lambda / d v = (d lambda / d u) (d u / d v); for the gain u = log g, d u / d v = 1 / g.
    slope = slope_u / value if parameter == "gain" else slope_u
    resid = mean - target
    stderr = math.hypot(se, resid) / abs(slope) if slope != 0 and math.isfinite(slope) else math.inf
    return CriticalInit(
        kind=kind, parameter=parameter, value=float(value), stderr=float(stderr),
        exponent=mean, exponent_stderr=se, slope=float(slope), target=target,
        mean_field=mean_field, mean_field_finite_n=finite_n, theory=theory, bounds=(lo, hi),
        bracket=(from_u(a[0]), from_u(b[0])), evaluations=tuple(measure.evaluations),
        ensemble=ensemble, steps=steps, warmup=warmup,
    )


def _secant(ua, fa, ub, fb):
    """The zero of the line through (ua, fa), (ub, fb), kept strictly inside (ua, ub)."""
    u = ua - fa * (ub - ua) / (fb - fa) if fb != fa else 0.5 * (ua + ub)
    return u if ua < u < ub else 0.5 * (ua + ub)


def _line_slope(points):
    """Slope of the least-squares line through (u, f, s) points, weighted by 1/s^2 (NaN for < 2
    distinct u)."""
    u = np.array([p[0] for p in points])
    y = np.array([p[1] for p in points])
    s = np.array([p[2] for p in points])
    if len(points) < 2 or np.ptp(u) == 0:
        return math.nan
    # Deterministic exponents (s = 0, e.g. zero weights without input) weigh alike.
    top = float(np.max(s))
    w = 1.0 / np.maximum(s, 1e-3 * top) ** 2 if top > 0 else np.ones_like(s)
    ub, yb = np.average(u, weights=w), np.average(y, weights=w)
    return float(np.sum(w * (u - ub) * (y - yb)) / np.sum(w * (u - ub) ** 2))


def _fmt(evaluations):
    return "; ".join(f"({v:.6g}, {m:.6g}, {s:.2g})" for v, m, s in evaluations)
