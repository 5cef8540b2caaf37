r"""Exact and asymptotic predictions that simulations are checked against (THEORY.md 1-11).

Every function here is pure: it takes numbers (or a weight matrix, or an activity record) and
returns float64 numbers or arrays, never touches random state, files or the console. Nothing
here imports the numeric layer, so that a test comparing the two compares independent code.

Conventions (as in :mod:`gradsim.numeric`): state s_t, one-step Jacobian
J_t = d s_t / d s_{t-1}, product P_T = J_T ... J_1; growth rates are per step in natural log;
"log" results are returned where raw values could overflow or underflow float64.

Gaussian integrals (section 5) use adaptive Gauss-Kronrod quadrature
(:func:`scipy.integrate.quad`) over subintervals cut at both natural scales of the integrand,
the Gaussian's (z ~ 1) and the activation's (z ~ 1 / sqrt(q)), to a relative accuracy of about
1e-13. A fixed Gauss-Hermite rule is not used: tanh has poles at distance pi / (2 sqrt(q)) from
the real axis, and a 200-node rule is already wrong in the second digit at q = 100.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.integrate import quad
from scipy.optimize import brentq
from scipy.special import digamma, polygamma
from scipy.stats import poisson

from .._validate import choice, describe, finite_array, finite_number, positive_int, positive_number

__all__ = [
    "ACTIVATION_NAMES",
    "DERIVATIVE_BOUNDS",
    "S1",
    "VANISHING_GUARANTEED",
    "EXPLODING_POSSIBLE",
    "EXPLODING_GUARANTEED",
    "MARGINAL",
    "ChainRuleProduct",
    "chain_rule_product",
    "derivative_bound",
    "pascanu_bound",
    "pascanu_regime",
    "clip_by_norm",
    "gaussian_product_exponents",
    "gaussian_product_stderr",
    "gaussian_log_det_mean",
    "circular_law_radius",
    "quarter_circle_norm",
    "linear_tied_exponents",
    "mean_field_length_map",
    "mean_field_q_star",
    "mean_field_chi1",
    "mean_field_lyapunov",
    "gradient_time_scale",
    "mu2",
    "dynamical_isometry_variance_slope",
    "orthogonal_linear_log_singular_values",
    "irnn_singular_values",
    "lstm_zero_weight_cell_product_log",
    "memory_time_scale",
    "chrono_forget_bias",
    "gru_zero_weight_direct_product_log",
    "residual_tied_growth_rate",
    "residual_tied_growth_from_weight",
    "residual_untied_growth_rate",
    "residual_untied_top_exponent",
    "latch_fixed_point",
    "latch_gradient_log",
    "adding_problem_baseline_mse",
    "copy_task_baseline",
]

ACTIVATION_NAMES = ("tanh", "relu", "linear", "sigmoid")

#: sup_a |phi'(a)| for each activation (THEORY.md section 1; Pascanu et al. 2013's gamma).
DERIVATIVE_BOUNDS = {"tanh": 1.0, "sigmoid": 0.25, "relu": 1.0, "linear": 1.0}

#: First moment s_1 of the S-transform of W W^T (Pennington, Schoenholz & Ganguli 2017).
S1 = {"gaussian": -1.0, "orthogonal": 0.0}

# Verdicts of :func:`pascanu_regime`.
VANISHING_GUARANTEED = "vanishing guaranteed"
EXPLODING_POSSIBLE = "exploding possible"
EXPLODING_GUARANTEED = "exploding guaranteed"
MARGINAL = "marginal"

_GRU_VARIANTS = ("torch", "reset_before", "chung")


# ------------------------------------------------------------------------------------------
# argument helpers
def _steps(value, name: str = "T") -> int:
    return positive_int(value, name, minimum=0)


def _square(weight, name: str = "weight") -> np.ndarray:
    array = finite_array(weight, name, ndim=2)
    if array.shape[0] != array.shape[1] or array.shape[0] == 0:
        raise ValueError(f"`{name}` must be a non-empty square (N, N) matrix; got shape {array.shape}.")
    return array


def _activation(activation) -> str:
    return choice(activation, "activation", ACTIVATION_NAMES)


def _softplus(x: float) -> float:
    """log(1 + e^x) without overflow; log sigmoid(b) = -softplus(-b)."""
    return float(np.logaddexp(0.0, x))


# ------------------------------------------------------------------------------------------
# 1. the chain-rule product
class ChainRuleProduct(NamedTuple):
    """Result of :func:`chain_rule_product`.

    Attributes
    ----------
    value : float
        The product itself (``inf`` or ``0.0`` when it leaves float64's range).
    log_abs : float
        ``log |product|`` (``-inf`` if a factor is zero), finite whatever the length.
    sign : float
        ``+1.0``, ``-1.0`` or ``0.0``.
    """

    value: float
    log_abs: float
    sign: float


def chain_rule_product(slopes) -> ChainRuleProduct:
    r"""The scalar chain-rule product :math:`\prod_t c_t` and its log (THEORY.md section 1).

    For the scalar RNN :math:`h_t = \phi(w h_{t-1} + u x_t + b)`,
    :math:`\partial h_T / \partial h_0 = \prod_{t=1}^T w\,\phi'(a_t)`; pass the factors
    :math:`c_t = w \phi'(a_t)`. Nine factors of 0.1 give 1e-9.

    Parameters
    ----------
    slopes : array_like, shape (T,)
        The per-step factors; an empty sequence gives the empty product 1.

    Returns
    -------
    ChainRuleProduct
        ``(value, log_abs, sign)``; ``log_abs = sum_t log|c_t|`` is exact to rounding even
        where ``value`` over- or underflows.
    """
    factors = finite_array(slopes, "slopes", ndim=1)
    if np.any(factors == 0):
        return ChainRuleProduct(0.0, -math.inf, 0.0)
    log_abs = float(np.sum(np.log(np.abs(factors))))
    sign = -1.0 if np.count_nonzero(factors < 0) % 2 else 1.0
    with np.errstate(over="ignore", under="ignore"):
        value = sign * float(np.exp(log_abs))
    return ChainRuleProduct(value, log_abs, sign)


def derivative_bound(activation: str) -> float:
    r"""gamma = sup_a |phi'(a)| of an activation (THEORY.md section 1).

    tanh: :math:`1 - \tanh^2 a \le 1`; sigmoid: :math:`s(1 - s) \le 1/4`; relu and linear: 1.
    All bounds are attained at a = 0 (relu: for a > 0).

    Parameters
    ----------
    activation : {"tanh", "relu", "linear", "sigmoid"}

    Returns
    -------
    float
    """
    return DERIVATIVE_BOUNDS[_activation(activation)]


# ------------------------------------------------------------------------------------------
# 2. Pascanu, Mikolov & Bengio 2013
def pascanu_bound(norm_w, gamma, T) -> float:
    r"""Log of Pascanu et al.'s bound :math:`\|P_T\|_2 \le (\gamma \|W\|_2)^T`.

    Reference: Pascanu, Mikolov & Bengio 2013, "On the difficulty of training recurrent neural
    networks", section 2.1 (THEORY.md section 2). Holds on every trajectory of
    :math:`h_t = W \phi(h_{t-1}) + \ldots` (or :math:`h_t = \phi(W h_{t-1} + \ldots)`) with
    :math:`|\phi'| \le \gamma`.

    Parameters
    ----------
    norm_w : float
        :math:`\|W\|_2 \ge 0`, the largest singular value of the recurrent matrix.
    gamma : float
        Bound on :math:`|\phi'|` (> 0), e.g. :func:`derivative_bound`.
    T : int
        Number of steps, >= 0.

    Returns
    -------
    float
        :math:`T \log(\gamma \|W\|_2)` (log space so that long horizons stay finite); 0 for
        T = 0 and -inf for ``norm_w = 0``, T >= 1.
    """
    norm_w = positive_number(norm_w, "norm_w", allow_zero=True)
    gamma = positive_number(gamma, "gamma")
    T = _steps(T)
    if T == 0:
        return 0.0
    if norm_w == 0.0:
        return -math.inf
    return T * (math.log(gamma) + math.log(norm_w))


def pascanu_regime(weight, activation: str, *, rtol: float = 1e-9) -> str:
    r"""Which of Pascanu et al.'s conditions a recurrent matrix satisfies (THEORY.md section 2).

    Nonlinear activations with :math:`|\phi'| \le \gamma`:
    :math:`\|W\|_2 < 1/\gamma` is sufficient for the long-term components to vanish
    (:data:`VANISHING_GUARANTEED`); :math:`\|W\|_2 > 1/\gamma` is necessary, not sufficient,
    for them to explode (:data:`EXPLODING_POSSIBLE`).

    Linear RNN (P_T = W^T): the spectral radius decides. :math:`\rho(W) < 1` gives
    :math:`\|W^T\| \to 0` (:data:`VANISHING_GUARANTEED`, possibly after transient growth when
    W is non-normal); :math:`\rho(W) > 1` gives :math:`\|W^T\| \ge \rho^T \to \infty`
    (:data:`EXPLODING_GUARANTEED`: Pascanu et al. state it as necessary; for the norm of the
    product of a linear RNN it is also sufficient).

    A norm or radius within relative ``rtol`` of the threshold gives :data:`MARGINAL`: then
    the bound only says :math:`\|P_T\|` stays bounded (nonlinear) or grows at most
    polynomially (linear, Jordan blocks on the unit circle).

    Parameters
    ----------
    weight : array, shape (N, N)
        The recurrent matrix.
    activation : {"tanh", "relu", "linear", "sigmoid"}
    rtol : float
        Relative tolerance of the threshold comparison (>= 0); eigenvalues of a non-normal
        matrix may carry errors far above rounding, so do not set it to 0 lightly.

    Returns
    -------
    str
        One of :data:`VANISHING_GUARANTEED`, :data:`EXPLODING_POSSIBLE`,
        :data:`EXPLODING_GUARANTEED`, :data:`MARGINAL`.
    """
    w = _square(weight)
    activation = _activation(activation)
    rtol = positive_number(rtol, "rtol", allow_zero=True)
    if activation == "linear":
        value = float(np.max(np.abs(np.linalg.eigvals(w))))
        threshold, above = 1.0, EXPLODING_GUARANTEED
    else:
        value = float(np.linalg.norm(w, 2))
        threshold, above = 1.0 / DERIVATIVE_BOUNDS[activation], EXPLODING_POSSIBLE
    if value < threshold * (1.0 - rtol):
        return VANISHING_GUARANTEED
    if value > threshold * (1.0 + rtol):
        return above
    return MARGINAL


def clip_by_norm(g, threshold) -> np.ndarray:
    r"""Gradient-norm clipping, exactly Algorithm 1 of Pascanu et al. 2013.

    .. math::

        \text{if } \|g\| \ge \text{threshold}: \quad g \leftarrow \frac{\text{threshold}}{\|g\|}\, g

    Parameters
    ----------
    g : array_like
        The gradient, any shape; ``||g||`` is the Euclidean norm of all entries together.
    threshold : float
        > 0.

    Returns
    -------
    ndarray
        A new float64 array of g's shape. The norm is computed with scaling, so gradients near
        float64's limits (1e200) are clipped without overflow.
    """
    grad = finite_array(g, "g")
    threshold = positive_number(threshold, "threshold")
    out = np.array(grad, dtype=np.float64, copy=True)
    if out.size == 0:
        return out
    scale = float(np.max(np.abs(out)))
    if scale == 0.0:
        return out
    norm = scale * float(np.sqrt(np.sum((out / scale) ** 2)))
    if norm >= threshold:
        out *= threshold / norm
    return out


# ------------------------------------------------------------------------------------------
# 3. products of iid Gaussian matrices
def gaussian_product_exponents(n, sigma=1.0) -> np.ndarray:
    r"""Lyapunov spectrum of products of iid Gaussian matrices (Newman 1986; Forrester 2015).

    For :math:`A_t` with iid :math:`N(0, \sigma^2/N)` entries,

    .. math::

        \lambda_i = \log\sigma + \tfrac12\left[\log(2/N) + \psi\!\left(\tfrac{N-i+1}{2}\right)\right],
        \qquad i = 1, \ldots, N

    (THEORY.md section 3). Derivation: for an orthonormal frame Q, :math:`A Q` is again iid
    Gaussian, so :math:`R_{ii}^2 \sim (\sigma^2/N)\chi^2_{N-i+1}` independently at every step
    and :math:`E \log\chi^2_k = \log 2 + \psi(k/2)`. At sigma = 1 the top exponent is
    -0.051660 (N=10), -0.0050167 (N=100), -0.00050017 (N=1000), although
    :math:`E\|P_T v\|^2 = \sigma^{2T}\|v\|^2` exactly: typical growth is slower than mean-square
    growth by about 1/(2N) per step.

    Parameters
    ----------
    n : int
        Matrix size N >= 1.
    sigma : float
        > 0; the entries' standard deviation is sigma / sqrt(N).

    Returns
    -------
    ndarray, shape (n,)
        Descending.
    """
    n = positive_int(n, "n")
    sigma = positive_number(sigma, "sigma")
    k = np.arange(n, 0, -1, dtype=np.float64)  # N - i + 1 for i = 1 .. N
    return math.log(sigma) + 0.5 * (math.log(2.0 / n) + digamma(k / 2.0))


def gaussian_product_stderr(n, T) -> np.ndarray:
    r"""Standard error of the QR (Benettin) estimate of :func:`gaussian_product_exponents`.

    The per-step :math:`\log|R_{ii}|` are iid with variance :math:`\psi'((N-i+1)/2)/4`
    (the variance of :math:`\tfrac12\log\chi^2_k` is :math:`\psi'(k/2)/4`), so a T-step
    average has standard error

    .. math::

        \sqrt{\psi'\!\left(\tfrac{N-i+1}{2}\right) / (4T)}

    independently of sigma (THEORY.md section 3). Exact for an estimator started from an
    orthonormal frame, which needs no warm-up here.

    Parameters
    ----------
    n : int
        N >= 1.
    T : int
        Number of steps averaged, >= 1.

    Returns
    -------
    ndarray, shape (n,)
        In the order of :func:`gaussian_product_exponents`.
    """
    n = positive_int(n, "n")
    T = positive_int(T, "T")
    k = np.arange(n, 0, -1, dtype=np.float64)
    return np.sqrt(polygamma(1, k / 2.0) / (4.0 * T))


def gaussian_log_det_mean(n, sigma=1.0) -> float:
    r""":math:`E \log|\det A|` for A with iid :math:`N(0, \sigma^2/N)` entries.

    .. math::

        E\log|\det A| = N\log\sigma + \tfrac N2 \log(2/N) + \tfrac12 \sum_{k=1}^N \psi(k/2)
        = \sum_i \lambda_i

    (the sum of :func:`gaussian_product_exponents`; Bartlett decomposition
    :math:`|\det A|^2 = \prod_k (\sigma^2/N) \chi^2_k`).

    Parameters
    ----------
    n : int
        N >= 1.
    sigma : float
        > 0.

    Returns
    -------
    float
    """
    return float(np.sum(gaussian_product_exponents(n, sigma)))


# ------------------------------------------------------------------------------------------
# 4. random matrices
def circular_law_radius(gain) -> float:
    r"""Limit of the spectral radius of an N x N matrix with iid entries of variance g^2/N.

    Circular law (Girko 1984; Bai 1997; Tao & Vu 2010): the eigenvalues fill the disc of radius
    g uniformly, and :math:`\rho(W) \to g` as N -> infinity (THEORY.md section 4). At finite
    N the largest modulus exceeds g by about :math:`g\sqrt{\gamma_N / (4N)}`,
    :math:`\gamma_N = \log(N/2\pi) - 2\log\log N` (Rider 2003, Gaussian entries).

    Parameters
    ----------
    gain : float
        g >= 0.

    Returns
    -------
    float
        g.
    """
    return positive_number(gain, "gain", allow_zero=True)


def quarter_circle_norm(gain) -> float:
    r"""Limit of :math:`\|W\|_2` for an N x N matrix with iid entries of variance g^2/N.

    The singular values follow the quarter-circle law on [0, 2g] (Marchenko-Pastur with ratio
    1; the top one converges to the edge: Geman 1980), so :math:`\|W\|_2 \to 2g`. Hence
    Pascanu's sufficient condition for tanh, :math:`\|W\|_2 < 1`, certifies Gaussian
    initialisation only for g < 1/2 at large N (THEORY.md section 4).

    Parameters
    ----------
    gain : float
        g >= 0.

    Returns
    -------
    float
        2 g.
    """
    return 2.0 * positive_number(gain, "gain", allow_zero=True)


def linear_tied_exponents(weight) -> np.ndarray:
    r"""Lyapunov exponents of the tied linear RNN :math:`s_t = W s_{t-1}`.

    :math:`P_T = W^T`, whose growth rates are the log eigenvalue moduli
    :math:`\log|\mu_i|`, not the log singular values of W (THEORY.md section 4; the finite-T
    singular values of :math:`W^T` approach :math:`|\mu_i|^T` only up to factors set by the
    conditioning of the eigenvectors, so the estimates converge at rate O(1/T)).

    Parameters
    ----------
    weight : array, shape (N, N)

    Returns
    -------
    ndarray, shape (N,)
        :math:`\log|\mu_i|`, descending (a complex pair appears twice; a zero eigenvalue
        gives -inf).
    """
    w = _square(weight)
    moduli = np.abs(np.linalg.eigvals(w))
    with np.errstate(divide="ignore"):
        return np.sort(np.log(moduli))[::-1].copy()


# ------------------------------------------------------------------------------------------
# 5. mean field
_SQRT_2PI = math.sqrt(2.0 * math.pi)
# Breakpoints (in units of the activation's scale, x = sqrt(q) z, and of the Gaussian's, z):
# every subinterval then holds at most one scale's worth of variation. Beyond z = 40 the
# Gaussian weight is below e^-800 (zero in float64); beyond x = 40 every integrand used here
# is constant to 1e-34 relative.
_X_BREAKS = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 40.0)
_Z_BREAKS = (0.5, 1.0, 2.0, 4.0, 8.0, 40.0)
_Z_MAX = 40.0


def _sech(x: float) -> float:
    """sech(x) = 2 e^-|x| / (1 + e^-2|x|), without overflow (math.cosh overflows at 710)."""
    e = math.exp(-abs(x))
    return 2.0 * e / (1.0 + e * e)


def _tanh2(x: float) -> float:
    return math.tanh(x) ** 2


def _sech4(x: float) -> float:
    return _sech(x) ** 4


def _sech8(x: float) -> float:
    return _sech(x) ** 8


def _gauss_even(func, q: float) -> float:
    r""":math:`\int Dz\, f(\sqrt q z)` for an even f, to ~1e-13 relative (see module notes)."""
    if q == 0.0:
        return func(0.0)
    s = math.sqrt(q)
    cuts = set(_Z_BREAKS) | {x / s for x in _X_BREAKS if x / s < _Z_MAX}
    total, lower = 0.0, 0.0
    for upper in sorted(cuts):
        # Relative accuracy per piece, and absolute accuracy relative to the pieces already
        # summed: a far piece 1e-70 of the total need not (and cannot) be resolved to 1e-13.
        # full_output: quad reports a shortfall from its 1e-13 target in the return value
        # instead of a warning; what matters is the error estimate, checked against 1e-10.
        result = quad(
            lambda z: func(s * z) * math.exp(-0.5 * z * z), lower, upper,
            epsabs=1e-16 * abs(total), epsrel=1e-13, limit=200, full_output=1,
        )
        part, error = result[0], result[1]
        if len(result) > 3 and error > 1e-10 * abs(total + part) + 1e-300:
            raise FloatingPointError(
                f"Gaussian integral at q={q!r} did not converge: error estimate {error:.3g} on "
                f"[{lower:.3g}, {upper:.3g}]"
            )
        total += part
        lower = upper
    return 2.0 * total / _SQRT_2PI


def _phi2(activation: str, q: float) -> float:
    r""":math:`\int Dz\, \phi(\sqrt q z)^2`."""
    if activation == "linear":
        return q
    if activation == "relu":
        return 0.5 * q
    if activation == "tanh":
        return _gauss_even(_tanh2, q)
    # sigmoid(x) = (1 + tanh(x/2)) / 2 and E tanh(odd) = 0.
    return 0.25 + 0.25 * _gauss_even(_tanh2, q / 4.0)


def _dphi_moment(activation: str, q: float, power: int) -> float:
    r""":math:`\int Dz\, \phi'(\sqrt q z)^{power}` for power 2 or 4 (relu: the q -> 0+ limit at q = 0)."""
    if activation == "linear":
        return 1.0
    if activation == "relu":
        return 0.5
    func = _sech4 if power == 2 else _sech8
    if activation == "tanh":
        return _gauss_even(func, q)
    # sigmoid'(x) = sech^2(x/2) / 4
    return _gauss_even(func, q / 4.0) / 4.0**power


def _mean_field_args(sigma_w, activation, sigma_b, sigma_in):
    sigma_w = positive_number(sigma_w, "sigma_w")
    activation = _activation(activation)
    sigma_b = positive_number(sigma_b, "sigma_b", allow_zero=True)
    sigma_in = positive_number(sigma_in, "sigma_in", allow_zero=True)
    return sigma_w, activation, sigma_b * sigma_b + sigma_in * sigma_in


def mean_field_length_map(q, sigma_w, activation: str, sigma_b=0.0, sigma_in=0.0) -> float:
    r"""One step of the mean-field variance ("length") map (Poole et al. 2016).

    For :math:`h' = W\phi(h) + b + \text{input}` with :math:`W_{ij} \sim N(0, \sigma_w^2/N)`,
    :math:`b_i \sim N(0, \sigma_b^2)` and input variance :math:`\sigma_{in}^2`, the
    pre-activation variance evolves at large N as

    .. math::

        q' = \sigma_w^2 \int Dz\, \phi(\sqrt q z)^2 + \sigma_b^2 + \sigma_{in}^2 .

    Parameters
    ----------
    q : float
        Current variance, >= 0.
    sigma_w : float
        > 0.
    activation : {"tanh", "relu", "linear", "sigmoid"}
    sigma_b, sigma_in : float
        >= 0.

    Returns
    -------
    float
    """
    q = positive_number(q, "q", allow_zero=True)
    sigma_w, activation, drive = _mean_field_args(sigma_w, activation, sigma_b, sigma_in)
    return sigma_w * sigma_w * _phi2(activation, q) + drive


def mean_field_q_star(sigma_w, activation: str, sigma_b=0.0, sigma_in=0.0) -> float:
    r"""Fixed point q* of the mean-field length map (THEORY.md section 5).

    .. math::

        q^* = \sigma_w^2 \int Dz\, \phi(\sqrt{q^*} z)^2 + \sigma_b^2 + \sigma_{in}^2

    References: Poole et al. 2016, "Exponential expressivity in deep neural networks through
    transient chaos"; Schoenholz et al. 2017, "Deep information propagation"; Chen, Pennington
    & Schoenholz 2018 (recurrent networks). The form is :math:`h' = W\phi(h) + b + \text{input}`
    with :math:`W_{ij} \sim N(0, \sigma_w^2/N)`; :math:`h' = \phi(Wh + b)` has the same
    pre-activation dynamics.

    q* is the limit of iterating the map from any q > 0 (the attracting fixed point):

    - tanh: without bias and input (:math:`\sigma_b = \sigma_{in} = 0`), q* = 0 for
      :math:`\sigma_w \le 1` and the unique positive root for :math:`\sigma_w > 1`; with either,
      the unique (positive) root. Found by Brent's method on a certified bracket.
    - sigmoid: always a unique positive root (the map is concave and starts above zero).
    - relu (:math:`\int Dz\,\mathrm{relu}(\sqrt q z)^2 = q/2`) and linear (= q): the map is
      affine, :math:`q' = c q + d` with :math:`c = \sigma_w^2/2` (relu) or :math:`\sigma_w^2`
      (linear) and :math:`d = \sigma_b^2 + \sigma_{in}^2`; q* = d / (1 - c) for c < 1 and
      ``inf`` (the variance diverges) for c > 1, or for c = 1 with d > 0.

    Parameters
    ----------
    sigma_w : float
        > 0.
    activation : {"tanh", "relu", "linear", "sigmoid"}
    sigma_b, sigma_in : float
        Bias and input standard deviations, >= 0.

    Returns
    -------
    float
        q* >= 0, or ``inf`` (relu and linear only).

    Raises
    ------
    ValueError
        For relu or linear at c = 1 without bias or input: every q is then a fixed point.
    """
    sigma_w, activation, drive = _mean_field_args(sigma_w, activation, sigma_b, sigma_in)
    w2 = sigma_w * sigma_w
    if activation in ("relu", "linear"):
        slope = w2 / 2.0 if activation == "relu" else w2
        # sigma_w = sqrt(2) (He) squares to 2 (1 + eps): within 4 eps counts as critical.
        if abs(slope - 1.0) <= 4 * np.finfo(float).eps:
            slope = 1.0
        if slope < 1.0:
            return drive / (1.0 - slope)
        if slope > 1.0 or drive > 0.0:
            return math.inf
        critical = "sqrt(2)" if activation == "relu" else "1"
        raise ValueError(
            f"`sigma_w` must not be {critical} for activation {activation!r} without bias or input "
            f"(the length map is then the identity and every q is a fixed point); got {sigma_w!r}."
        )

    def gap(q):
        return w2 * _phi2(activation, q) + drive - q

    if activation == "tanh" and drive == 0.0:
        if sigma_w <= 1.0:
            return 0.0
        # tanh^2 x >= x^2 - 2 x^4 / 3 gives gap(q) >= (w2 - 1) q - 2 w2 q^2 > 0 here.
        lower = (w2 - 1.0) / (4.0 * w2)
        for _ in range(60):  # guard only; the bound above already makes gap(lower) > 0
            if gap(lower) > 0.0:
                break
            lower /= 2.0
    else:
        lower = 0.0  # gap(0) = drive > 0 (tanh) or w2 / 4 + drive > 0 (sigmoid)
    upper = w2 + drive  # phi^2 <= 1, so gap(upper) <= 0
    if gap(upper) >= 0.0:
        return upper
    return float(brentq(gap, lower, upper, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500))


def mean_field_chi1(sigma_w, activation: str, sigma_b=0.0, sigma_in=0.0, *, q=None) -> float:
    r"""Mean-field gradient multiplier :math:`\chi_1` (THEORY.md section 5).

    .. math::

        \chi_1 = \sigma_w^2 \int Dz\, \phi'(\sqrt{q^*} z)^2

    :math:`E\|g\|^2` is multiplied by :math:`\chi_1` per step: ordered phase
    :math:`\chi_1 < 1`, chaotic :math:`\chi_1 > 1` (Poole et al. 2016; Schoenholz et al.
    2017). relu: :math:`\sigma_w^2 / 2` and linear: :math:`\sigma_w^2`, for every q (so also
    where q* diverges; for relu at q = 0 exactly this is the q -> 0+ limit, whereas PyTorch's
    relu'(0) = 0 would give 0).

    Parameters
    ----------
    sigma_w, activation, sigma_b, sigma_in
        As in :func:`mean_field_q_star`.
    q : float, optional
        Evaluate at this variance instead of q*.

    Returns
    -------
    float
    """
    sigma_w, activation, _ = _mean_field_args(sigma_w, activation, sigma_b, sigma_in)
    if activation in ("relu", "linear"):
        if q is not None:
            positive_number(q, "q", allow_zero=True)
        return sigma_w * sigma_w * _dphi_moment(activation, 0.0, 2)
    if q is None:
        q = mean_field_q_star(sigma_w, activation, sigma_b, sigma_in)
    else:
        q = positive_number(q, "q", allow_zero=True)
    return sigma_w * sigma_w * _dphi_moment(activation, q, 2)


def mean_field_lyapunov(sigma_w, activation: str, sigma_b=0.0, sigma_in=0.0) -> float:
    r"""Mean-field top Lyapunov exponent :math:`\lambda_1 = \tfrac12 \log\chi_1`.

    Exact at large N for untied (fresh-weight) networks; for the tied discrete-time tanh
    RNN :math:`h' = W\tanh(h)` it is the large-N result of Molgedey, Schuchhardt & Schuster
    1992 (THEORY.md section 5). Example: :math:`\sigma_w = 1.5`, tanh, no input:
    :math:`q^* = 0.7934`, :math:`\chi_1 = 1.1393`, :math:`\lambda_1 = +0.0652`. Finite tied
    networks approach it slowly (QR estimates, 2500 steps, 3-6 seeds: about 0.02 at N = 100,
    where several seeds settle on non-chaotic orbits, 0.054 at N = 400, 0.059 at N = 800);
    untied ones within about -1/N.

    Parameters
    ----------
    sigma_w, activation, sigma_b, sigma_in
        As in :func:`mean_field_q_star`.

    Returns
    -------
    float
        Per step, natural log.
    """
    return 0.5 * math.log(mean_field_chi1(sigma_w, activation, sigma_b, sigma_in))


def gradient_time_scale(chi1) -> float:
    r"""Gradient depth/time scale :math:`\xi = -1/\log\chi_1` (Schoenholz et al. 2017).

    In the ordered phase :math:`E\|g_{T-t}\|^2 \propto \chi_1^t = e^{-t/\xi}`: xi is the
    e-folding time of the *squared* gradient norm; the norm itself decays as
    :math:`e^{-t/(2\xi)}`, i.e. :math:`\lambda_1 = -1/(2\xi)`.

    Defined for :math:`0 \le \chi_1 \le 1` only: ``inf`` at the edge of chaos
    :math:`\chi_1 = 1` and 0 at :math:`\chi_1 = 0`. For :math:`\chi_1 > 1` gradients grow
    (rate :math:`\log\chi_1` per step for the squared norm) and a ValueError is raised rather
    than returning a negative "time scale".

    Parameters
    ----------
    chi1 : float
        In [0, 1].

    Returns
    -------
    float
    """
    chi1 = positive_number(chi1, "chi1", allow_zero=True)
    if chi1 > 1.0:
        raise ValueError(
            f"`chi1` must be a number in [0, 1] (the ordered phase; for chi1 > 1 gradients grow "
            f"and no decay time scale exists); got {chi1!r}."
        )
    if chi1 == 1.0:
        return math.inf
    if chi1 == 0.0:
        return 0.0
    return -1.0 / math.log(chi1)


# ------------------------------------------------------------------------------------------
# 6. orthogonal and identity initialisation; dynamical isometry
def orthogonal_linear_log_singular_values(gain, T, n) -> np.ndarray:
    r"""Log singular values of :math:`P_T = (gW)^T` for a linear RNN with W orthogonal.

    :math:`(gW)^T = g^T W^T` and :math:`W^T` is orthogonal, so every singular value is exactly
    :math:`g^T` (THEORY.md section 6).

    Parameters
    ----------
    gain : float
        g > 0.
    T : int
        >= 0.
    n : int
        N >= 1.

    Returns
    -------
    ndarray, shape (n,)
        Every entry :math:`T \log g`.
    """
    gain = positive_number(gain, "gain")
    T = _steps(T)
    n = positive_int(n, "n")
    return np.full(n, T * math.log(gain))


def mu2(sigma_w, activation: str, q) -> float:
    r""":math:`\mu_2 = \sigma_w^4 \int Dz\, \phi'(\sqrt q z)^4` (Pennington, Schoenholz & Ganguli 2017).

    Used in :func:`dynamical_isometry_variance_slope`; q is normally
    :func:`mean_field_q_star`. By Jensen :math:`\mu_2 \ge \chi_1^2`, with equality for linear
    and (at :math:`\chi_1 = 1`) only there. relu: :math:`\sigma_w^4/2`; linear:
    :math:`\sigma_w^4`.

    Parameters
    ----------
    sigma_w : float
        > 0.
    activation : {"tanh", "relu", "linear", "sigmoid"}
    q : float
        Pre-activation variance, >= 0.

    Returns
    -------
    float
    """
    sigma_w = positive_number(sigma_w, "sigma_w")
    activation = _activation(activation)
    q = positive_number(q, "q", allow_zero=True)
    return sigma_w**4 * _dphi_moment(activation, q, 4)


def dynamical_isometry_variance_slope(mu2, s1) -> float:
    r"""Growth per layer of the variance of the spectrum of :math:`P P^T` at criticality.

    At :math:`\chi_1 = 1` (Pennington, Schoenholz & Ganguli 2017, "Resurrecting the sigmoid";
    THEORY.md section 6), for L layers (untied steps) at large N,

    .. math::

        \operatorname{Var}[\text{spectrum of } P_L P_L^T] = L(\mu_2 - 1 - s_1),

    with :math:`s_1 = -1` for Gaussian W and 0 for orthogonal W (:data:`S1`). Linear Gaussian:
    1 per layer (the Fuss-Catalan second moment L + 1); linear orthogonal: 0 (exact, the
    product is orthogonal). Only meaningful at :math:`\chi_1 = 1`, where
    :math:`\mu_2 \ge 1`.

    Parameters
    ----------
    mu2 : float
        :func:`mu2` at the critical point.
    s1 : float or {"gaussian", "orthogonal"}

    Returns
    -------
    float
        :math:`\mu_2 - 1 - s_1`.
    """
    mu2 = finite_number(mu2, "mu2")
    if isinstance(s1, str):
        s1 = S1[choice(s1, "s1", tuple(S1))]
    s1 = finite_number(s1, "s1")
    return mu2 - 1.0 - s1


def irnn_singular_values(active_mask) -> np.ndarray:
    r"""Singular values of the IRNN product (Le, Jaitly & Hinton 2015; THEORY.md section 6).

    With W = I, ReLU and zero bias, :math:`J_t = \operatorname{diag}(1[a_t > 0])`, so
    :math:`P_T` is diagonal with entry 1 for a unit whose pre-activation was positive at every
    step 1..T and 0 otherwise (ReLU'(0) = 0, as in PyTorch).

    Parameters
    ----------
    active_mask : array of bool (or 0/1), shape (T, N)
        ``active_mask[t - 1, i] = a_t[i] > 0`` for t = 1 .. T. T = 0 gives P_0 = I.

    Returns
    -------
    ndarray, shape (N,)
        Descending: ones (as many as always-active units), then zeros.
    """
    mask = np.asarray(active_mask)
    if mask.ndim != 2 or mask.shape[1] == 0:
        raise ValueError(
            f"`active_mask` must be a (T, N) array with N >= 1; got {describe(active_mask)}."
        )
    if mask.dtype != np.bool_:
        if not (np.issubdtype(mask.dtype, np.number) and np.all((mask == 0) | (mask == 1))):
            raise ValueError(
                f"`active_mask` must hold booleans (or 0/1); got values of dtype {mask.dtype}."
            )
        mask = mask.astype(bool)
    always = np.all(mask, axis=0)
    return np.sort(always.astype(np.float64))[::-1].copy()


# ------------------------------------------------------------------------------------------
# 7. LSTM
def lstm_zero_weight_cell_product_log(forget_bias, T) -> float:
    r"""Log of the cell-path product of a zero-weight LSTM: :math:`T \log\sigma(b_f)`.

    With all weights zero, :math:`f = \sigma(b_f)` at every step and the cell path
    :math:`\partial c_T/\partial c_0 = \operatorname{diag}(f)^T` (Hochreiter & Schmidhuber
    1997's constant error carousel, with the forget gate of Gers et al. 2000; THEORY.md
    section 7). Computed as :math:`-T\,\mathrm{softplus}(-b_f)`, accurate for any bias
    (b_f = 40 gives -T e^-40, b_f = -800 gives -800 T).

    Parameters
    ----------
    forget_bias : float
        Effective forget-gate bias b_f (b_ih + b_hh).
    T : int
        >= 0.

    Returns
    -------
    float
        The natural log of every diagonal entry (every singular value) of the product.
    """
    b = finite_number(forget_bias, "forget_bias")
    T = _steps(T)
    return -T * _softplus(-b) if T else 0.0


def memory_time_scale(forget_bias) -> float:
    r"""Memory time scale of a zero-weight LSTM: :math:`\tau = -1/\log\sigma(b_f)` steps.

    The cell path decays as :math:`\sigma(b_f)^t = e^{-t/\tau}`. b_f = 0 gives 1.44 steps;
    b_f = 1 (Jozefowicz et al. 2015) gives 3.19; the chrono bias log(T_max - 1) gives
    :math:`1/\log(T_{max}/(T_{max}-1)) \approx T_{max} - 1/2`.

    Parameters
    ----------
    forget_bias : float

    Returns
    -------
    float
        :math:`1/\mathrm{softplus}(-b_f)`; ``inf`` once :math:`\sigma(b_f)` rounds to 1 beyond
        float64's range (b_f > 745).
    """
    b = finite_number(forget_bias, "forget_bias")
    rate = _softplus(-b)
    return math.inf if rate == 0.0 else 1.0 / rate


def chrono_forget_bias(t_max) -> float:
    r"""Forget bias :math:`\log(T_{max} - 1)` whose memory time scale is about T_max.

    Chrono initialisation (Tallec & Ollivier 2018) draws :math:`b_f = \log u`,
    :math:`u \sim U[1, T_{max} - 1]` (and :math:`b_i = -b_f`); this is the upper end of that
    range, i.e. the longest memory it initialises. Then
    :math:`\sigma(b_f) = 1 - 1/T_{max}`.

    Parameters
    ----------
    t_max : float
        > 1.

    Returns
    -------
    float
    """
    t_max = positive_number(t_max, "t_max")
    if t_max <= 1.0:
        raise ValueError(f"`t_max` must be a number > 1 (the longest memory in steps); got {t_max!r}.")
    return math.log(t_max - 1.0)


# ------------------------------------------------------------------------------------------
# 8. GRU
def gru_zero_weight_direct_product_log(update_bias, T, variant: str = "torch") -> float:
    r"""Log of the direct-path product of a zero-weight GRU (THEORY.md section 8).

    With all weights zero, :math:`z = \sigma(b_z)` every step. PyTorch
    (:math:`h' = (1-z)n + zh`, variants ``"torch"`` and ``"reset_before"``): direct path
    diag(z), product :math:`\sigma(b_z)^T`. Chung et al. 2014 (:math:`h' = (1-z)h + z\tilde h`,
    ``"chung"``): diag(1 - z), product :math:`(1-\sigma(b_z))^T = \sigma(-b_z)^T`.

    Parameters
    ----------
    update_bias : float
        Effective update-gate bias b_z.
    T : int
        >= 0.
    variant : {"torch", "reset_before", "chung"}

    Returns
    -------
    float
        :math:`-T\,\mathrm{softplus}(\mp b_z)`.
    """
    b = finite_number(update_bias, "update_bias")
    T = _steps(T)
    variant = choice(variant, "variant", _GRU_VARIANTS)
    if T == 0:
        return 0.0
    return -T * _softplus(b if variant == "chung" else -b)


# ------------------------------------------------------------------------------------------
# 9. residual recurrence
def residual_tied_growth_rate(alpha, gain) -> float:
    r"""Large-N growth rate of the tied linear residual RNN :math:`s' = (I + \alpha W) s`.

    The eigenvalues of W (iid entries of variance g^2/N) fill the disc of radius g, those of
    :math:`I + \alpha W` the disc of centre 1 and radius :math:`|\alpha| g`, so the rate
    :math:`\log\rho(I + \alpha W) \to \log(1 + |\alpha| g)` (THEORY.md section 9). For a given
    W use :func:`residual_tied_growth_from_weight`.

    Parameters
    ----------
    alpha : float
        Residual branch weight (finite; only |alpha| matters here).
    gain : float
        g >= 0.

    Returns
    -------
    float
    """
    alpha = finite_number(alpha, "alpha")
    gain = positive_number(gain, "gain", allow_zero=True)
    return math.log1p(abs(alpha) * gain)


def residual_tied_growth_from_weight(weight, alpha) -> float:
    r"""Exact top Lyapunov exponent of :math:`s' = (I + \alpha W) s` for a given W.

    .. math::

        \lambda_1 = \log\rho(I + \alpha W) = \max_i \log|1 + \alpha\mu_i|,

    :math:`\mu_i` the eigenvalues of W (see :func:`linear_tied_exponents`).

    Parameters
    ----------
    weight : array, shape (N, N)
    alpha : float

    Returns
    -------
    float
    """
    w = _square(weight)
    alpha = finite_number(alpha, "alpha")
    moduli = np.abs(1.0 + alpha * np.linalg.eigvals(w))
    top = float(np.max(moduli))
    return math.log(top) if top > 0 else -math.inf


def residual_untied_growth_rate(alpha, gain) -> float:
    r"""Mean-square growth rate of the untied residual RNN :math:`s' = (I + \alpha W_t) s`.

    With fresh :math:`W_t` iid :math:`N(0, g^2/N)` each step,
    :math:`E\|s'\|^2 = (1 + \alpha^2 g^2)\|s\|^2` exactly at every N, so the mean-square rate is

    .. math::

        \tfrac12 \log(1 + \alpha^2 g^2),

    which is also the N -> infinity limit of the top Lyapunov exponent (THEORY.md section 9;
    mean-field theory). At finite N the top exponent is smaller by
    :math:`s(2+s) / (2N(1+s)^2) + O(N^{-2})`, :math:`s = \alpha^2 g^2`; the exact finite-N value is
    :func:`residual_untied_top_exponent`. It is below the tied rate :math:`\log(1 + |\alpha| g)`
    for every :math:`\alpha g \ne 0`.

    Parameters
    ----------
    alpha : float
    gain : float
        g >= 0.

    Returns
    -------
    float
    """
    alpha = finite_number(alpha, "alpha")
    gain = positive_number(gain, "gain", allow_zero=True)
    return 0.5 * math.log1p((alpha * gain) ** 2)


def residual_untied_top_exponent(alpha, gain, n) -> float:
    r"""Exact finite-N top Lyapunov exponent of :math:`s' = (I + \alpha W_t) s`, W_t iid Gaussian.

    For a fixed unit vector u, :math:`(I + \alpha W_t)u \sim N(u, c^2 I)` with
    :math:`c^2 = s/N`, :math:`s = \alpha^2 g^2`, whatever u is; since :math:`W_t` is
    independent of the direction reached so far, :math:`\lambda_1 = E\log\|u + c z\|` exactly.
    :math:`\|u + cz\|^2/c^2` is noncentral :math:`\chi^2_N(1/c^2)`, a Poisson(K; N/(2s)) mixture
    of :math:`\chi^2_{N+2K}`, whence

    .. math::

        \lambda_1 = \tfrac12\log(1 + s)
            + \tfrac12\, E_K\!\left[\psi\!\left(\tfrac N2 + K\right)
            - \log\!\left(\tfrac N2 + \tfrac{N}{2s}\right)\right],
        \quad K \sim \mathrm{Poisson}\!\left(\tfrac{N}{2s}\right).

    The second term is the (negative) Jensen gap, :math:`-s(2+s)/(2N(1+s)^2) + O(N^{-2})`;
    as :math:`\alpha g \to \infty` the exponent tends to Newman's
    :math:`\log(\alpha g) + \tfrac12[\log(2/N) + \psi(N/2)]`. Derived here (not in THEORY.md)
    and checked against Monte Carlo in the tests.

    Parameters
    ----------
    alpha : float
    gain : float
        g >= 0.
    n : int
        N >= 1.

    Returns
    -------
    float
    """
    alpha = finite_number(alpha, "alpha")
    gain = positive_number(gain, "gain", allow_zero=True)
    n = positive_int(n, "n")
    s = (alpha * gain) ** 2
    if s == 0.0:
        return 0.0
    return 0.5 * math.log1p(s) + 0.5 * _poisson_digamma_gap(n / 2.0, n / (2.0 * s))


# Central moments mu_j of Poisson(m), j = 2 .. 8, as polynomials in m (lowest power first).
_POISSON_CENTRAL = {
    2: (0, 1), 3: (0, 1), 4: (0, 1, 3), 5: (0, 1, 10), 6: (0, 1, 25, 15), 7: (0, 1, 56, 105),
    8: (0, 1, 119, 490, 105),
}


def _poisson_digamma_gap(half: float, mean: float) -> float:
    r""":math:`E[\psi(h + K)] - \log(h + m)`, K ~ Poisson(m), to ~1e-15 absolute.

    Up to m = 1e5 by :math:`E\psi(h + K) = \psi(h + l) + \sum_{j \ge l} P(K > j) / (h + j)`
    (from :math:`\psi(h + k) = \psi(h) + \sum_{j<k} 1/(h + j)`), with l = m - 40 sd - 60 and
    the sum stopped at m + 40 sd + 60: the neglected tails are below 1e-300. The survival
    function (a regularised incomplete gamma function) is accurate to ~1e-15 relative, unlike
    Poisson weights exp(k log m - m - log k!) at large m. Beyond m = 1e5, the Taylor series in
    the Poisson central moments to order 8: the j-th term is O((m / (h + m)^2)^{j/2}), so the
    first omitted one is below 1e-25. (Both checked against 30-digit mpmath sums.)
    """
    a = half + mean
    if mean > 1e5:
        gap = float(digamma(a)) - math.log(a)
        for j, coeffs in _POISSON_CENTRAL.items():
            moment = sum(c * mean**p for p, c in enumerate(coeffs))
            gap += float(polygamma(j, a)) * moment / math.factorial(j)
        return gap
    spread = 40.0 * math.sqrt(mean) + 60.0
    lower = max(0, math.floor(mean - spread))
    j = np.arange(lower, math.ceil(mean + spread) + 1, dtype=np.float64)
    tail = float(np.sum(poisson.sf(j, mean) / (half + j)))
    return float(digamma(half + lower)) - math.log(a) + tail


# ------------------------------------------------------------------------------------------
# 10. latching (Bengio, Simard & Frasconi 1994)
def latch_fixed_point(w) -> float:
    r"""The positive stable fixed point :math:`a^* = w\tanh a^*` of :math:`a' = w\tanh a`, w > 1.

    For w > 1 the origin is unstable and :math:`\pm a^*` are stable: a latch (Bengio, Simard &
    Frasconi 1994; THEORY.md section 10). Found by Brent's method on
    :math:`[\tfrac12\sqrt{3(w-1)/w},\ w]`, where :math:`w\tanh a - a` changes sign
    (:math:`\tanh a \ge a - a^3/3`).

    Parameters
    ----------
    w : float
        > 1.

    Returns
    -------
    float
        a* in (0, w); the negative fixed point is -a*.
    """
    w = positive_number(w, "w")
    if w <= 1.0:
        raise ValueError(f"`w` must be a number > 1 (a latch needs an unstable origin); got {w!r}.")
    lower = 0.5 * math.sqrt(3.0 * (w - 1.0) / w)
    return float(
        brentq(lambda a: w * math.tanh(a) - a, lower, w, xtol=1e-300, rtol=4 * np.finfo(float).eps)
    )


def latch_gradient_log(w, T) -> float:
    r"""Log of the gradient through T latched steps: :math:`T\log(w(1 - \tanh^2 a^*))`.

    At the latch :math:`a^* = w\tanh a^*` (:func:`latch_fixed_point`), the slope
    :math:`w\,\mathrm{sech}^2 a^* = w - (a^*)^2/w` is below 1 (stability), so the gradient
    over T steps vanishes exponentially: robust latching implies vanishing gradients (Bengio,
    Simard & Frasconi 1994; THEORY.md section 10). :math:`\log\mathrm{sech}^2 a` is computed as
    :math:`2(\log 2 - a - \log(1 + e^{-2a}))`, finite for any w.

    Parameters
    ----------
    w : float
        > 1.
    T : int
        >= 0.

    Returns
    -------
    float
        <= 0.
    """
    a = latch_fixed_point(w)
    T = _steps(T)
    if T == 0:
        return 0.0
    log_sech2 = 2.0 * (math.log(2.0) - a - math.log1p(math.exp(-2.0 * a)))
    return T * (math.log(float(w)) + log_sech2)


# ------------------------------------------------------------------------------------------
# 11. trivial baselines of the long-range tasks
def adding_problem_baseline_mse() -> float:
    r"""MSE of always predicting the mean on the adding problem: 1/6.

    Adding problem (Hochreiter & Schmidhuber 1997, in the form of Le, Jaitly & Hinton 2015 and
    Arjovsky et al. 2016): values :math:`X_t \sim U[0, 1]`, two marked positions, target
    :math:`Y = X_a + X_b`. The best constant prediction is :math:`E Y = 1` and its MSE is

    .. math::

        \operatorname{Var} Y = \operatorname{Var} X_a + \operatorname{Var} X_b
            = 2 \cdot \tfrac{1}{12} = \tfrac16 \approx 0.1667.

    Returns
    -------
    float
    """
    return 1.0 / 6.0


def copy_task_baseline(T, n_symbols=8, n_copy=10) -> float:
    r"""Per-step cross-entropy of the memoryless copy-task baseline (nats).

    Copy task (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016): the input is n_copy
    symbols drawn uniformly from n_symbols, then T - 1 blanks, a delimiter and n_copy blanks
    (length T + 2 n_copy); the target is blank for the first T + n_copy steps and then the
    n_copy symbols. A predictor that knows the step but remembers no symbol does best by
    predicting blank with certainty and then the uniform distribution over the symbols:

    .. math::

        \frac{n_{copy}\log n_{symbols}}{T + 2 n_{copy}} \quad
        \left(= \frac{10\log 8}{T + 20}\ \text{for the standard task}\right).

    Parameters
    ----------
    T : int
        Number of blanks plus delimiter between the symbols and the recall, >= 1.
    n_symbols : int
        >= 1.
    n_copy : int
        >= 1.

    Returns
    -------
    float
    """
    T = positive_int(T, "T")
    n_symbols = positive_int(n_symbols, "n_symbols")
    n_copy = positive_int(n_copy, "n_copy")
    return n_copy * math.log(n_symbols) / (T + 2 * n_copy)
