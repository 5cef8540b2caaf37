r"""Exact and mean-field results for the Lyapunov spectra of random rate networks.

The networks are those of Sompolinsky, Crisanti & Sommers 1988, Engelken, Wolf & Abbott 2023
and Clark's rnn-lyapunov (davidclark1/rnn-lyapunov): couplings :math:`J = gG/\sqrt N` with G
real Ginibre (iid N(0, 1) entries), no input, and the map with step :math:`\delta`

.. math::

    x_{n+1} = (1-\delta)\, x_n + \delta\, J \phi(x_n), \qquad
    M_n = \frac{\partial x_{n+1}}{\partial x_n} = (1-\delta) I + \delta\, J\, \mathrm{diag}\,\phi'(x_n),

which is the map :math:`x' = J\phi(x)` at :math:`\delta = 1` (``gs.RNN`` in the conjugate
variable h = phi(x), or the Euler rate network at dt = 1) and the flow
:math:`\dot x = -x + J\phi(x)` as :math:`\delta \to 0`. Exponents are per step of the map and
per unit time (tau = 1) for the flow, natural log.

Every function is pure (numbers in, float64 out) and imports nothing from the numeric layer, so
that tests comparing the two compare independent code. Gaussian integrals reuse the quadrature
of :mod:`gradsim.theory.predictions` (adaptive Gauss-Kronrod, ~1e-13 relative).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.integrate import solve_ivp
from scipy.linalg import eig_banded
from scipy.optimize import brentq
from scipy.special import digamma

from .._validate import choice, describe, positive_int, positive_number
from .predictions import _gauss_even, mean_field_lyapunov, mean_field_q_star

__all__ = [
    "ginibre_log_det_mean",
    "map_mean_exponent",
    "circular_law_exponent_cdf",
    "trivial_fixed_point_exponents",
    "map_max_exponent_dmft",
    "continuous_time_exponent_sum",
    "continuous_time_max_exponent_dmft",
]


# ------------------------------------------------------------------------------------------
# the mean exponent of the map
def ginibre_log_det_mean(n, g=1.0) -> float:
    r"""Exact :math:`E[\tfrac1N \log|\det J|]` for :math:`J = gG/\sqrt N`, G an N x N real
    Ginibre matrix (iid N(0, 1) entries), at every finite N.

    .. math::

        E\Big[\frac1N \log|\det J|\Big] = \log g - \tfrac12 \log N
            + \frac{1}{2N} \sum_{k=1}^{N} \big[\psi(k/2) + \log 2\big]
        \;\xrightarrow{N\to\infty}\; \log g - \tfrac12

    Source: Bartlett's decomposition, :math:`|\det G|^2 = \prod_{k=1}^N \chi^2_k` with
    independent factors, and :math:`E\log\chi^2_k = \psi(k/2) + \log 2` (e.g. the
    characteristic function of :math:`\log\det GG^T` in https://mathoverflow.net/questions/250923).
    It is the mean of Newman's exponents of iid Gaussian products
    (:func:`gradsim.theory.gaussian_log_det_mean` divided by N). The offset from the limit is
    -0.0648 at N = 10, -0.0122 at N = 100, -0.00179 at N = 1000.

    For the network map at :math:`\delta = 1`, :math:`M_n = J D_n` with
    :math:`D_n = \mathrm{diag}\,\phi'(x_n)`, so the exponents' mean is exactly
    :math:`\tfrac1N\log|\det J| + \langle \tfrac1N \sum_i \log\phi'(x_i)\rangle_n` for every
    network; this is the first term's average over networks (with the diagonal of J kept).

    Parameters
    ----------
    n : int
        N >= 1.
    g : float
        Gain, > 0.

    Returns
    -------
    float
    """
    n = positive_int(n, "n")
    g = positive_number(g, "g")
    k = np.arange(1, n + 1, dtype=np.float64)
    return math.log(g) - 0.5 * math.log(n) + float(np.sum(digamma(k / 2.0) + math.log(2.0))) / (2.0 * n)


def _log_sech2(x: float) -> float:
    """log sech^2 x = 2 (log 2 - |x| - log(1 + e^-2|x|)), without underflow at large |x|."""
    a = abs(x)
    return 2.0 * (math.log(2.0) - a - math.log1p(math.exp(-2.0 * a)))


def _log_dsigmoid(x: float) -> float:
    """log sigmoid'(x) = log(sigmoid(x) sigmoid(-x)) = -|x| - 2 log(1 + e^-|x|)."""
    a = abs(x)
    return -a - 2.0 * math.log1p(math.exp(-a))


_LOG_SLOPES = {"tanh": _log_sech2, "sigmoid": _log_dsigmoid}


def map_mean_exponent(g, activation: str = "tanh", n=None) -> float:
    r"""Mean-field mean exponent :math:`\tfrac1N\sum_i\lambda_i` of the map
    :math:`x' = J\phi(x)` (:math:`\delta = 1`) for Gaussian couplings :math:`J_{ij} \sim N(0, g^2/N)`.

    .. math::

        \frac1N \sum_i \lambda_i = E\Big[\frac1N \log|\det J|\Big]
            + \int Dz\, \log\phi'(\sqrt{q}\, z)
        \;\to\; \log g - \tfrac12 + \langle \log\phi'(x) \rangle_{x \sim N(0, q)},
        \qquad q = g^2 \int Dz\, \phi(\sqrt q z)^2

    The first equality is exact for a given network and trajectory (:math:`\log|\det M_n| =
    \log|\det J| + \sum_i \log\phi'(x_{n,i})`, averaged over n; Clark's rnn-lyapunov tests it to
    1e-9); the mean-field step takes the units' pre-activations to be N(0, q) with q the
    attracting fixed point of the variance map (:func:`gradsim.theory.mean_field_q_star`;
    Molgedey, Schuchhardt & Schuster 1992). For tanh it gives -1.14902 (g = 2), -2.27281
    (g = 3), -3.55102 (g = 4) against Clark's simulations at N = 4096: -1.15055, -2.27390,
    -3.55364. For g <= 1 (tanh) q = 0, phi'(0) = 1: the trivial fixed point's mean log|mu_i|.

    Parameters
    ----------
    g : float
        Gain, > 0.
    activation : {"tanh", "sigmoid", "linear"}
        ("linear": log phi' = 0, the mean log|mu_i| of J, whatever the state does.)
    n : int, optional
        Use the exact finite-N mean of :func:`ginibre_log_det_mean` for the first term instead
        of its limit log g - 1/2.

    Returns
    -------
    float
        Per step, natural log.
    """
    g = positive_number(g, "g")
    activation = choice(activation, "activation", ("tanh", "sigmoid", "linear"))
    det = math.log(g) - 0.5 if n is None else ginibre_log_det_mean(n, g)
    if activation == "linear":
        return det
    q = mean_field_q_star(g, activation)
    return det + _gauss_even(_LOG_SLOPES[activation], q)


# ------------------------------------------------------------------------------------------
# the trivial fixed point
def circular_law_exponent_cdf(s, g):
    r"""Fraction of exponents :math:`\le s` at the trivial fixed point of the map (g < 1,
    :math:`\delta = 1`), at large N.

    At x = 0 the tangent map is the constant J, so the exponents are
    :math:`\lambda_i = \log|\mu_i|`, the log moduli of J's eigenvalues
    (:func:`trivial_fixed_point_exponents`). By the circular law (Girko 1984; Bai 1997; Tao &
    Vu 2010) the eigenvalues fill the disc of radius g uniformly, so

    .. math::

        F(s) = \Pr(|\mu| \le e^{s}) = \min\!\big(1,\; e^{2s} / g^2\big)

    (Clark's rnn-lyapunov, ``trivial_fixed_point.py``, which checks it against the
    overlap-area formula to 1e-14). As a statement about the eigenvalues it holds at every g;
    only for g < 1 (tanh) is x = 0 the attractor whose exponents they are.

    Parameters
    ----------
    s : float or array_like
        Exponents, per step; -inf gives 0.
    g : float
        Gain (the disc's radius), > 0.

    Returns
    -------
    float or ndarray
        Same shape as ``s``, in [0, 1].
    """
    g = positive_number(g, "g")
    if np.iscomplexobj(s):
        raise TypeError("`s` must be real numbers; got complex values.")
    try:
        values = np.asarray(s, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"`s` must be a number or an array of real numbers; got {describe(s)}.") from None
    if np.isnan(values).any():
        raise ValueError(f"`s` must not contain NaN; got {describe(s)} with NaN.")
    log_g = math.log(g)
    with np.errstate(over="ignore"):
        out = np.where(values >= log_g, 1.0, np.exp(2.0 * np.minimum(values - log_g, 0.0)))
    return out[()] if out.ndim == 0 else out


def trivial_fixed_point_exponents(weight_hh, delta=1.0) -> np.ndarray:
    r"""Lyapunov exponents of the rate map at the fixed point x = 0, exactly, for a given J.

    With :math:`\phi(0) = 0` and :math:`\phi'(0) = 1` (tanh) and no input, x = 0 is a fixed
    point, attracting when every :math:`|1-\delta+\delta\mu_i| < 1`, and the tangent map there
    is the constant :math:`M = (1-\delta)I + \delta J`. Its exponents are the log eigenvalue
    moduli of M per unit time:

    .. math::

        \lambda_i = \frac{\log|1 - \delta + \delta\mu_i|}{\delta}

    with :math:`\mu_i` the eigenvalues of J, a complex pair counted twice (Clark's
    rnn-lyapunov, ``trivial_fixed_point.exponents_from_eigenvalues``). At :math:`\delta = 1`
    they are :math:`\log|\mu_i|` per step (the map x' = J tanh(x), or h' = tanh(J h), the
    RNN); as :math:`\delta \to 0`, :math:`\mathrm{Re}\,\mu_i - 1` per unit time.

    Parameters
    ----------
    weight_hh : array_like, shape (..., N, N)
        J, with any leading batch dimensions.
    delta : float
        Step, > 0 (per unit time: divide log growth per step by delta).

    Returns
    -------
    ndarray, shape (..., N)
        Descending; a zero factor gives -inf.
    """
    if np.iscomplexobj(weight_hh):
        raise TypeError("`weight_hh` must be an array of real numbers; got complex values.")
    try:
        w = np.asarray(weight_hh, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"`weight_hh` must be an array of real numbers; got {describe(weight_hh)}.") from None
    if w.ndim < 2 or w.shape[-1] != w.shape[-2] or w.shape[-1] == 0:
        raise ValueError(f"`weight_hh` must be a non-empty square matrix (..., N, N); got shape {w.shape}.")
    if not np.all(np.isfinite(w)):
        raise ValueError("`weight_hh` must contain only finite values; got NaN or inf.")
    delta = positive_number(delta, "delta")
    mu = np.linalg.eigvals(w)
    with np.errstate(divide="ignore"):
        exponents = np.log(np.abs((1.0 - delta) + delta * mu)) / delta
    return -np.sort(-exponents, axis=-1)


# ------------------------------------------------------------------------------------------
# the largest exponent (mean field)
def map_max_exponent_dmft(g) -> float:
    r"""Mean-field largest exponent of the map :math:`x' = J\tanh(x)` (:math:`\delta = 1`),
    :math:`J_{ij} \sim N(0, g^2/N)`, at large N (Molgedey, Schuchhardt & Schuster, PRL 69, 3717
    (1992); the same value is the edge :math:`s_*` of Clark's rnn-lyapunov at :math:`\delta = 1`).

    .. math::

        \lambda_{\max} = \tfrac12 \log\Big(g^2 \int Dz\, \mathrm{sech}^4(\sqrt q z)\Big),
        \qquad q = g^2 \int Dz\, \tanh^2(\sqrt q z)

    i.e. :math:`\tfrac12\log\chi_1` of :func:`gradsim.theory.mean_field_lyapunov`. Values:
    0.065217 (g = 1.5), 0.154724 (g = 2), 0.310249 (g = 3), 0.432878 (g = 4), 0.532428 (g = 5);
    for g <= 1, q = 0 and the value is log g, the log spectral radius of J.

    Parameters
    ----------
    g : float
        Gain, > 0.

    Returns
    -------
    float
        Per step.
    """
    g = positive_number(g, "g")
    return mean_field_lyapunov(g, "tanh")


def continuous_time_exponent_sum(n, tau=1.0) -> float:
    r"""Sum of all n exponents of the flow :math:`\tau\dot x = -x + J\phi(x) + u(t)` with zero
    self-coupling (:math:`J_{ii} = 0`): exactly :math:`-n/\tau` per unit time.

    The sum of the exponents is the time average of the trace of the vector field's Jacobian
    (Liouville's formula), :math:`\mathrm{tr}\,(-I + J\,\mathrm{diag}\,\phi'(x))/\tau =
    (-n + \sum_i J_{ii}\phi'(x_i))/\tau = -n/\tau` at every instant, for every network,
    activation and input (Engelken, Wolf & Abbott 2023 remove autapses in their code). With the
    diagonal kept the correction :math:`\sum_i J_{ii}\langle\phi'(x_i)\rangle` is O(1) for one
    network (O(1/N) on the mean exponent), zero on average over networks.

    A discretisation does not keep it: the exponents of the iterated tangent map sum to
    :math:`\lim \frac{1}{m h}\sum_{n=1}^{m} \log|\det M_n|` (exact for any step h). Forward
    Euler at step :math:`\delta` gives a mean exponent :math:`-1 - \delta/2 + O(\delta^2)`
    (:math:`\log\det((1-\delta)I + \delta JD)/\delta`; -1.024 at :math:`\delta` = 0.05, -1.050
    at 0.1 for N = 60, g = 3); classical RK4 at step dt, whose tangent map is
    :math:`T_4(dt\,A) = e^{dt A} + O(dt^5)`, gives :math:`-1 + O(dt^4)` (about 1e-6 at dt = 0.1).

    Parameters
    ----------
    n : int
        Number of units, >= 1.
    tau : float
        Time constant, > 0.

    Returns
    -------
    float
        -n / tau.
    """
    n = positive_int(n, "n")
    tau = positive_number(tau, "tau")
    return -n / tau


# ------------------------------------------------------------------------------------------
# continuous-time DMFT (Sompolinsky, Crisanti & Sommers 1988)
def _log_cosh(x: float) -> float:
    a = abs(x)
    return a + math.log1p(math.exp(-2.0 * a)) - math.log(2.0)


def _log_cosh2(x: float) -> float:
    return _log_cosh(x) ** 2


def _dmft_variance(g: float) -> float:
    r"""Delta(0) = q of the chaotic state: :math:`q^2/2 = g^2[E\Phi^2 - (E\Phi)^2]`,
    :math:`\Phi = \log\cosh`, x ~ N(0, q) (energy conservation of the particle in SCS 1988)."""

    def gap(q):
        mean = _gauss_even(_log_cosh, q)
        return g * g * (_gauss_even(_log_cosh2, q) - mean * mean) - 0.5 * q * q

    # Var Phi <= E Phi^2 <= E x^2 = q, so gap < 0 beyond 2 g^2; near 0, gap ~ (g^2 - 1) q^2 / 2 > 0.
    upper = 2.0 * g * g
    lower = min(1.0, upper / 4.0)
    for _ in range(200):
        if gap(lower) > 0.0:
            break
        lower /= 2.0
    else:  # pragma: no cover - g > 1 always has a positive gap near 0
        raise FloatingPointError(f"no chaotic variance found for g={g!r}")
    return float(brentq(gap, lower, upper, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500))


def _pair_moments(q: float, deltas: np.ndarray):
    r"""For x, y jointly Gaussian with variance q and covariance Delta (each of ``deltas``):
    (E[tanh x tanh y], E[sech^2 x sech^2 y]).

    Trapezoid rule over both Gaussians, x = sqrt(Delta) z0 + sqrt(q - Delta) z1: the
    integrands are analytic in a strip of half-width pi / (2 sqrt q) around the real axis,
    where the trapezoid rule converges as exp(-2 pi width / h), so h = width / 4 makes that
    e^-8pi ~ 1e-11; |z| <= 9 leaves out Gaussian weight e^-40. sech^2 comes from e^-2|x|
    (1 - tanh^2 underflows to 0 beyond |x| ~ 19).
    """
    width = math.pi / (2.0 * math.sqrt(q))
    h = min(0.1, width / 4.0)
    z = np.arange(-9.0, 9.0 + h / 2, h)
    w = h * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    c_phi, c_slope = np.empty(len(deltas)), np.empty(len(deltas))
    for i, delta in enumerate(deltas):  # one (z0, z1) grid at a time bounds the memory
        arg = math.sqrt(delta) * z[:, None] + math.sqrt(max(q - delta, 0.0)) * z[None, :]
        e = np.exp(-2.0 * np.abs(arg))
        tanh = np.sign(arg) * (1.0 - e) / (1.0 + e)
        slope = 4.0 * e / (1.0 + e) ** 2
        c_phi[i] = ((tanh @ w) ** 2) @ w
        c_slope[i] = ((slope @ w) ** 2) @ w
    return c_phi, c_slope


def continuous_time_max_exponent_dmft(g, *, return_details: bool = False):
    r"""Mean-field largest exponent of the flow :math:`\dot x = -x + J\tanh(x)`,
    :math:`J_{ij} \sim N(0, g^2/N)`, at large N (Sompolinsky, Crisanti & Sommers, PRL 61, 259
    (1988); as implemented in Clark's rnn-lyapunov, ``dmft.py`` and ``max_exponent.py``).

    The autocovariance :math:`\Delta(\tau) = \langle x(t) x(t+\tau)\rangle` moves as a particle
    in a potential,

    .. math::

        \ddot\Delta = \Delta - g^2 C_\phi(\Delta;\, \Delta_0), \qquad
        \tfrac12 \Delta_0^2 = g^2\big[E\Phi(x)^2 - (E\Phi(x))^2\big],\ \Phi = \log\cosh,\
        x \sim N(0, \Delta_0)

    with :math:`C_\phi(\Delta; \Delta_0) = E[\phi(x)\phi(y)]` for a Gaussian pair of variance
    :math:`\Delta_0` and covariance :math:`\Delta`, from :math:`\Delta(0) = \Delta_0`,
    :math:`\dot\Delta(0) = 0` to :math:`\Delta(\pm\infty) = 0` (energy conservation fixes
    :math:`\Delta_0`). A perturbation's growth is set by the ground state :math:`E_0` of

    .. math::

        H = -\frac{d^2}{d\tau^2} + 1 - g^2 C^d(\tau), \qquad
        C^d(\tau) = E[\phi'(x)\phi'(y)]\ \text{at covariance}\ \Delta(\tau),

    :math:`\lambda_{\max} = -1 + \sqrt{1 - E_0}` (per unit time). :math:`\dot\Delta(\tau)` is a
    zero-energy eigenfunction (the first excited state, :math:`E_1 = 0`): chaos for g > 1 is
    :math:`E_0 < 0`. For g <= 1 the result is g - 1, the trivial fixed point's
    :math:`\max \mathrm{Re}\,\mu - 1`. Values (Clark's stored :math:`s_*`, delta -> 0): 0.046746
    (g = 1.5), 0.112458 (g = 2), 0.235461 (g = 3), 0.341469 (g = 4), 0.433697 (g = 5).

    Clark's values at g = 10 and 20, 0.773435 and 1.190718, differ from this function's
    0.773430 and 1.190495, whose zero mode is within 1e-9 of 0 there.

    Numerics: :math:`\Delta_0` by Brent's method on the energy equation (1-d Gauss-Kronrod);
    the pair moments on max(33, 7 sqrt(Delta_0) + 1) Chebyshev nodes in
    :math:`[0, \Delta_0]` by a two-dimensional trapezoid rule (converging exponentially, the
    integrands being analytic) and interpolated; :math:`\Delta(\tau)` by DOP853 (rtol 1e-12)
    down to :math:`10^{-9}\Delta_0`, continued by its linearised exponential decay; H by a
    fourth-order finite-difference stencil, step 0.01 on [-60, 60] (halving the step changes
    :math:`E_0` by less than 1e-10). The detail ``E1`` reports how close the zero mode comes
    out to 0 (~1e-11 at g = 2, 3; 2e-9 at g = 1.5, where the correlations decay slowly).

    Parameters
    ----------
    g : float
        Gain, > 0.
    return_details : bool
        Also return a dict with ``q`` (Delta_0), ``E0`` and ``E1``.

    Returns
    -------
    float, or (float, dict)
        Per unit time (tau = 1).
    """
    g = positive_number(g, "g")
    if g <= 1.0:
        result = g - 1.0
        return (result, {"q": 0.0, "E0": 1.0 - g * g, "E1": math.nan}) if return_details else result
    q = _dmft_variance(g)
    # Chebyshev interpolation of the pair moments in Delta on [0, q].
    # The moments vary in Delta on the scale of the activation's, 1 / sqrt(q) relative: the
    # degree grows with sqrt(q) (32 at g <= 3; 64 reaches E1 ~ 1e-10 at g = 10).
    degree = max(32, int(math.ceil(7.0 * math.sqrt(q))))
    nodes = 0.5 * q * (1.0 - np.cos(np.pi * (np.arange(degree + 1) + 0.5) / (degree + 1)))
    c_phi, c_slope = _pair_moments(q, nodes)
    cheb = np.polynomial.chebyshev.Chebyshev
    fit_phi = cheb.fit(nodes, c_phi, degree, domain=[0.0, q])
    fit_slope = cheb.fit(nodes, c_slope, degree, domain=[0.0, q])
    g2 = g * g

    def field(_, y):
        return [y[1], y[0] - g2 * fit_phi(min(max(y[0], 0.0), q))]

    def floor(_, y):
        return y[0] - 1e-9 * q

    floor.terminal, floor.direction = True, -1
    t_max = 200.0
    solution = solve_ivp(field, (0.0, t_max), [q, 0.0], method="DOP853", rtol=1e-12, atol=1e-15 * q,
                         events=floor, dense_output=True)
    t_end = float(solution.t[-1])
    # Linearised decay beyond: Delta'' = (1 - g^2 C_phi'(0)) Delta, C_phi'(0) = (E phi')^2.
    rate = math.sqrt(max(1.0 - g2 * float(fit_phi.deriv()(0.0)), 1e-12))
    step, half = 0.01, 60.0
    tau = np.arange(0.0, half + step / 2, step)
    delta = np.empty_like(tau)
    inside = tau <= t_end
    delta[inside] = solution.sol(tau[inside])[0]
    delta[~inside] = float(solution.y[0, -1]) * np.exp(-rate * (tau[~inside] - t_end))
    potential_half = 1.0 - g2 * fit_slope(np.clip(delta, 0.0, q))
    potential = np.concatenate([potential_half[:0:-1], potential_half])  # tau in [-60, 60]
    m = potential.size
    # -psi'' by (-psi[i-2] + 16 psi[i-1] - 30 psi[i] + 16 psi[i+1] - psi[i+2]) / (12 h^2), negated.
    bands = np.zeros((3, m))  # upper form for eig_banded: row 2 is the diagonal
    bands[2] = 30.0 / (12.0 * step * step) + potential
    bands[1, 1:] = -16.0 / (12.0 * step * step)
    bands[0, 2:] = 1.0 / (12.0 * step * step)
    energies = eig_banded(bands, eigvals_only=True, select="i", select_range=(0, 1))
    e0, e1 = float(energies[0]), float(energies[1])
    result = -1.0 + math.sqrt(1.0 - e0)
    if return_details:
        return result, {"q": q, "E0": e0, "E1": e1}
    return result
