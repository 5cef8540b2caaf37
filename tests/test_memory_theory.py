"""Tests of the curse-of-memory closed forms (gradsim/theory/memory.py, THEORY.md section 13).

Model: h_t = lambda h_(t-1) + gamma x_t, gamma = 1 (plain) or sqrt(1 - lambda^2) (normalised, a
function of lambda), inputs of unit variance and autocorrelation rho^|Delta| (Gaussian AR(1)).

References, each independent of the closed forms:

* The exact double series. The stationary sensitivity is a moving average of the inputs,
  dh_t/dtheta = sum_k c_k x_(t-k) with c_k = d(gamma lambda^k)/dtheta, so its second moment is
  sum_(k,l>=0) c_k c_l rho^|k-l| = sum over lags m of rho^|m| R(m), R(m) = sum_k c_k c_(k+m)
  (the stationary covariance at lag m). It is summed here in float64 for k < K and |m| <= M,
  with a proven bound on what the truncation leaves out (``_truncation_bound``) and a bound on
  the rounding (``_rounding_bound``).
* Monte Carlo with ``gs.parameter_jvp`` on gradsim cells: the linear ``gs.RNN``
  (weight_hh = [[lambda]], weight_ih = [[gamma]], tangent along weight_hh and, normalised, along
  weight_ih by gamma'(lambda) = -lambda / gamma), and ``gs.LRU`` for the exponential
  parametrisation lambda = exp(-exp(nu_log)) (phase exp(theta_log) = e^-40, i.e. real to 4e-18;
  normalised: gamma_log = log gamma moved along with nu_log by d log(gamma) / d nu =
  e^nu lambda^2 / (1 - lambda^2), so that gamma stays tied to lambda).

Monte Carlo tolerance. Each of N_SEQ independent input sequences gives one draw
Y_i = (d h_T / d theta)_i^2; the estimate is their mean, and its standard error is the sample
standard deviation (ddof = 1) over sqrt(N_SEQ). The draws are iid with finite variance: d h_T is
linear in the Gaussian inputs, so it is Gaussian and Y_i = sigma^2 chi^2_1 (relative s.e.
sqrt(2 / N_SEQ) = 1.4 %; the sample s.e. estimates it to about 2 %, and the skewness of the mean,
sqrt(8 / N_SEQ) = 0.03, is small enough for the normal approximation). We allow Z = 4 standard
errors, as the issue asks: a false alarm about once in 16 000 per check; with fixed seeds the
tests are deterministic. The simulations start from h_0 = 0 and run T = ceil(12 / (1 - lambda))
steps; the expectation of Y at finite T is the double series truncated at k, l < T, and the
tests check that it is within 0.01 s.e. of the stationary value, so the transient does not bias
the comparison.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import gradsim as gs
from gradsim import theory as th

EPS = np.finfo(float).eps
Z = 4.0
N_SEQ = 10_000
LAMS = (0.5, 0.9, 0.99)
RHOS = (0.0, 0.5)
VARIANTS = ("plain", "normalized", "exp", "exp_normalized")
SEEDS = {(lam, rho): 1000 + 10 * i + j for i, lam in enumerate(LAMS) for j, rho in enumerate(RHOS)}


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(1):
        yield


# ------------------------------------------------------------------------------------------
# the exact double series
def _gamma(lam, normalized):
    """gamma(lambda) and gamma'(lambda)."""
    if not normalized:
        return 1.0, 0.0
    g = math.sqrt(1.0 - lam * lam)
    return g, -lam / g


def _coefficients(lam, normalized, k_max):
    """c_k = d(gamma lambda^k)/d lambda for k < k_max (the sensitivity's impulse response)."""
    k = np.arange(k_max, dtype=float)
    power = lam**k
    d_power = np.zeros(k_max)
    d_power[1:] = k[1:] * lam ** (k[1:] - 1.0)
    g, dg = _gamma(lam, normalized)
    return g * d_power + dg * power


def _lag_sum(c, rho, lags):
    """sum_(|m| <= lags) rho^|m| R(m), and the same sum of |terms| (for the rounding bound)."""
    total = float(c @ c)
    absolute = float(np.abs(c) @ np.abs(c))
    for m in range(1, lags + 1):
        weight = rho**m
        total += 2.0 * weight * float(c[:-m] @ c[m:])
        absolute += 2.0 * abs(weight) * float(np.abs(c[:-m]) @ np.abs(c[m:]))
    return total, absolute


def _truncation_bound(lam, rho, normalized, k_max, lags, r0):
    """What the truncation to k, l < k_max and |m| <= lags can leave out, at most.

    Terms with max(k, l) >= K: at most 2 (sum_(k>=K) |c_k|)(sum_l |c_l|), with
    |c_k| <= gamma k r^(k-1) + |gamma'| r^k (r = |lambda|) and
    sum_(k>=K) k r^(k-1) = K r^(K-1)/(1-r) + r^K/(1-r)^2, sum_(k>=K) r^k = r^K/(1-r).
    Lags |m| > M: by Cauchy-Schwarz |R(m)| <= R(0), so at most 2 |rho|^(M+1)/(1-|rho|) R(0).
    """
    r = abs(lam)
    g, dg = _gamma(lam, normalized)
    big_k = float(k_max)
    tail = g * (big_k * r ** (big_k - 1.0) / (1 - r) + r**big_k / (1 - r) ** 2) + abs(dg) * r**big_k / (1 - r)
    whole = g / (1 - r) ** 2 + abs(dg) / (1 - r)
    lag_tail = 2.0 * abs(rho) ** (lags + 1) / (1.0 - abs(rho)) * r0 if rho else 0.0
    return 2.0 * tail * whole + lag_tail


def _rounding_bound(n_terms, absolute):
    """Float64 sums of n terms err by at most about n eps of the sum of |terms|.

    n = K (each dot product) + M (the lags accumulated); the factor 4 covers the rounding of
    the coefficients themselves (a power and a product or two, a few ulps each).
    """
    return 4.0 * n_terms * EPS * absolute


def _lags_for(rho):
    """Lags M with 2 |rho|^(M+1) / (1 - |rho|) < 1e-17 (0 for iid inputs)."""
    if rho == 0.0:
        return 0
    return int(math.ceil(math.log(1e-17 * (1 - abs(rho)) / 2) / math.log(abs(rho))))


def series_sensitivity(lam, rho, normalized, k_max=None):
    """(value, bound on |value - exact stationary moment|) of E[(dh/dlambda)^2] by the series."""
    if k_max is None:
        k_max = int(math.ceil(60.0 / (1.0 - abs(lam)))) + 10
    lags = _lags_for(rho)
    c = _coefficients(lam, normalized, k_max)
    value, absolute = _lag_sum(c, rho, lags)
    bound = _truncation_bound(lam, rho, normalized, k_max, lags, float(c @ c))
    return value, bound + _rounding_bound(k_max + lags, absolute)


def finite_horizon_sensitivity(lam, rho, normalized, horizon):
    """E[(dh_T/dlambda)^2] from h_0 = 0 after T steps: the series over k, l < T exactly."""
    c = _coefficients(lam, normalized, horizon)
    return _lag_sum(c, rho, min(horizon - 1, max(_lags_for(rho), 0)))[0]


# ------------------------------------------------------------------------------------------
# the closed forms against the series
LAM_GRID = (-0.95, -0.3, 0.0, 0.5, 0.9, 0.99, 0.999)
RHO_GRID = (-0.7, 0.0, 0.5, 0.9)


@pytest.mark.parametrize("normalized", [False, True])
@pytest.mark.parametrize("rho", RHO_GRID)
@pytest.mark.parametrize("lam", LAM_GRID)
def test_sensitivity_equals_double_series(lam, rho, normalized):
    value, bound = series_sensitivity(lam, rho, normalized)
    closed = th.linear_sensitivity_second_moment(lam, rho, normalized=normalized)
    # closed form: a dozen float64 operations on exact 1 - lambda, so ~20 ulps.
    assert abs(closed - value) <= bound + 20 * EPS * abs(closed), (closed, value, bound)
    # the reference is sharp enough to catch any wrong formula (the bound is worst-case rounding)
    assert bound < 1e-8 * abs(closed)


@pytest.mark.parametrize("rho", RHO_GRID)
@pytest.mark.parametrize("lam", LAM_GRID)
def test_state_second_moment_equals_series(lam, rho):
    k_max = int(math.ceil(60.0 / (1.0 - abs(lam)))) + 10
    power = lam ** np.arange(k_max, dtype=float)
    value, absolute = _lag_sum(power, rho, _lags_for(rho))
    # |power_k| = r^k: the tail k >= K is 2 r^K/(1-r)^2 at most (same argument as above).
    r = abs(lam)
    lag_tail = 2 * abs(rho) ** (_lags_for(rho) + 1) / (1 - abs(rho)) * float(power @ power)
    bound = 2 * r**k_max / (1 - r) ** 2 + lag_tail
    bound += _rounding_bound(k_max + _lags_for(rho), absolute)
    plain = th.linear_state_second_moment(lam, rho)
    assert abs(plain - value) <= bound + 20 * EPS * plain
    normalised = th.linear_state_second_moment(lam, rho, normalized=True)
    assert normalised == pytest.approx((1 - lam * lam) * value, rel=1e-12 + bound / value)
    assert normalised == pytest.approx((1 + rho * lam) / (1 - rho * lam), rel=1e-15)


@pytest.mark.parametrize("rho", RHO_GRID)
@pytest.mark.parametrize("a,b", [(0.5, -0.3), (0.9, 0.99), (-0.95, 0.2), (0.0, 0.7)])
def test_cross_moment_equals_series(a, b, rho):
    k_max = int(math.ceil(60.0 / (1.0 - max(abs(a), abs(b))))) + 10
    k = np.arange(k_max, dtype=float)
    pa, pb = a**k, b**k
    lags = _lags_for(rho)
    value = float(pa @ pb)
    absolute = float(np.abs(pa) @ np.abs(pb))
    for m in range(1, lags + 1):
        value += rho**m * (float(pa[:-m] @ pb[m:]) + float(pb[:-m] @ pa[m:]))
        qa, qb = np.abs(pa), np.abs(pb)
        absolute += abs(rho) ** m * (float(qa[:-m] @ qb[m:]) + float(qb[:-m] @ qa[m:]))
    # truncation: |a^k b^l| <= r^(k+l), r = max(|a|, |b|), as in the state test; rounding as above
    r = max(abs(a), abs(b))
    r0 = math.sqrt(float(pa @ pa) * float(pb @ pb))  # Cauchy-Schwarz bound on every lag's sum
    bound = 2 * r**k_max / (1 - r) ** 2 + 2 * abs(rho) ** (lags + 1) / (1 - abs(rho)) * r0
    bound += _rounding_bound(k_max + lags, absolute)
    closed = th.linear_state_cross_moment(a, b, rho)
    assert abs(closed - value) <= bound + 20 * EPS * abs(closed)
    assert bound < 1e-8 * abs(closed)
    assert closed == pytest.approx(th.linear_state_cross_moment(b, a, rho), rel=4 * EPS)
    assert th.linear_state_cross_moment(a, a, rho) == pytest.approx(
        th.linear_state_second_moment(a, rho), rel=1e-14
    )


@pytest.mark.parametrize("rho", RHO_GRID)
@pytest.mark.parametrize("lam", (0.3, 0.9, 0.999))
def test_sensitivity_is_mixed_derivative_of_cross_moment(lam, rho):
    # d_a d_b [gamma(a) gamma(b) C(a, b)] at a = b = lambda by a 4-point central difference:
    # truncation h^2 (d^4 / 6) relative ~ (h / (1 - lambda))^2, rounding eps C / h^2.
    h = 1e-4 * (1 - lam)
    for normalized in (False, True):
        def f(a, b):
            ga = _gamma(a, normalized)[0]
            gb = _gamma(b, normalized)[0]
            return ga * gb * th.linear_state_cross_moment(a, b, rho)

        up, down = lam + h, lam - h
        mixed = (f(up, up) - f(up, down) - f(down, up) + f(down, down)) / (4 * h * h)
        closed = th.linear_sensitivity_second_moment(lam, rho, normalized=normalized)
        assert mixed == pytest.approx(closed, rel=1e-5)


def test_iid_special_cases():
    # 1 - lam**2 here rounds lam**2 first: eps / (1 - lam^2) relative, ~6e-15 at 0.99, cubed.
    for lam in (-0.7, 0.0, 0.5, 0.99):
        plain = th.linear_sensitivity_second_moment(lam)
        assert plain == pytest.approx((1 + lam**2) / (1 - lam**2) ** 3, rel=1e-13)
        normalised = th.linear_sensitivity_second_moment(lam, normalized=True)
        assert normalised == pytest.approx(1 / (1 - lam**2) ** 2, rel=1e-13)
        assert th.linear_state_second_moment(lam) == pytest.approx(1 / (1 - lam**2), rel=1e-13)
        assert th.linear_state_second_moment(lam, normalized=True) == 1.0


# ------------------------------------------------------------------------------------------
# the exponential parametrisation
@pytest.mark.parametrize("normalized", [False, True])
@pytest.mark.parametrize("rho", RHO_GRID)
@pytest.mark.parametrize("nu", (-7.0, -2.3, 0.0, 1.5))
def test_exp_sensitivity_equals_series_in_nu(nu, rho, normalized):
    # Independent of the chain-rule formula: the impulse response d(gamma lambda^k)/dnu is taken
    # here by central differences in nu of gamma(lambda(nu)) lambda(nu)^k, elementwise,
    # h = 1e-5 (truncation ~h^2, rounding ~eps/h: relative 1e-9 or so per coefficient).
    h = 1e-5
    lam = math.exp(-math.exp(nu))
    k_max = int(math.ceil(60.0 / (1.0 - lam))) + 10
    k = np.arange(k_max, dtype=float)

    def response(v):
        lv = math.exp(-math.exp(v))
        return _gamma(lv, normalized)[0] * lv**k

    c = (response(nu + h) - response(nu - h)) / (2 * h)
    value, _ = _lag_sum(c, rho, _lags_for(rho))
    closed = th.exp_sensitivity_second_moment(nu, rho, normalized=normalized)
    assert closed == pytest.approx(value, rel=1e-7)
    # The chain rule on the lambda form: that one computes 1 - lambda by subtraction, which
    # loses eps / (1 - lambda) relative (~1e-13 at nu = -7), cubed: 1e-11 covers it.
    chain = (math.exp(nu) * lam) ** 2 * th.linear_sensitivity_second_moment(lam, rho, normalized=normalized)
    assert closed == pytest.approx(chain, rel=1e-11)


def test_exp_sensitivity_far_in_memory():
    # lambda rounds to 1 in float64 below nu ~ -37; the function must still be right there.
    for rho in (0.0, 0.5):
        c = (1 + rho) / (4 * (1 - rho))
        for nu in (-40.0, -300.0, -700.0):
            assert th.exp_sensitivity_second_moment(nu, rho, normalized=True) == pytest.approx(c, rel=1e-12)
            assert th.exp_sensitivity_second_moment(nu, rho) == pytest.approx(c * math.exp(-nu), rel=1e-12)
    for nu in (-3.0, 0.0, 2.0):  # normalised iid: (u / (2 sinh u))^2, u = e^nu
        u = math.exp(nu)
        expected = (u / (2 * math.sinh(u))) ** 2
        assert th.exp_sensitivity_second_moment(nu, normalized=True) == pytest.approx(expected, rel=1e-13)
    assert th.exp_sensitivity_second_moment(-720.0) == math.inf


# ------------------------------------------------------------------------------------------
# divergence rates as lambda -> 1
# First-order terms of the local slope s(delta) = d log E / d log delta, delta = 1 - lambda, from
# sympy's series of the closed forms (s = slope + a1 delta + a2 delta^2 + ...; |a2| <= 53/12 for
# rho in {0, 1/2}, so |s - slope - a1 delta| <= 5 delta^2):
A1 = {
    ("lambda", False): lambda rho: 0.5,
    ("lambda", True): lambda rho: (rho * rho + 2 * rho - 1) / (rho * rho - 1),
    ("exp", False): lambda rho: -0.5,
    ("exp", True): lambda rho: 2 * rho / (rho * rho - 1),
}


def _moment(delta, rho, normalized, parametrization):
    lam = 1.0 - delta
    if parametrization == "lambda":
        return th.linear_sensitivity_second_moment(lam, rho, normalized=normalized)
    return th.exp_sensitivity_second_moment(math.log(-math.log1p(-delta)), rho, normalized=normalized)


@pytest.mark.parametrize("rho", RHOS)
@pytest.mark.parametrize("normalized", [False, True])
@pytest.mark.parametrize("parametrization", ["lambda", "exp"])
def test_closed_form_slopes_tend_to_the_limits(parametrization, normalized, rho):
    limit = th.sensitivity_divergence(rho, normalized=normalized, parametrization=parametrization)
    assert limit.slope == {("lambda", False): -3, ("lambda", True): -2, ("exp", False): -1, ("exp", True): 0}[
        (parametrization, normalized)
    ]
    a1 = A1[(parametrization, normalized)](rho)
    # Central difference in log delta: truncation step^2 / 6 |d^2 s / d(log delta)^2| ~ 2e-5 |a1| delta;
    # rounding: lambda = 1 - delta is stored to eps / delta relative in 1 - lambda, so the logs
    # err by ~3 eps / delta = 3e-12 at delta = 1e-4, divided by 2 step: 2e-10.
    step = 1e-2
    for delta in (1e-2, 1e-3, 1e-4):
        up = math.log(_moment(delta * math.exp(step), rho, normalized, parametrization))
        down = math.log(_moment(delta * math.exp(-step), rho, normalized, parametrization))
        local = (up - down) / (2 * step)
        assert abs(local - limit.slope - a1 * delta) <= 5 * delta**2 + 1e-9, (delta, local)
        # prefactor: E delta^-slope = c exp(a1 delta + ...), relative error <= 2 |a1| delta + 5 delta^2
        scaled = _moment(delta, rho, normalized, parametrization) * delta ** (-limit.slope)
        assert scaled == pytest.approx(limit.prefactor, rel=2 * abs(a1) * delta + 5 * delta**2 + 1e-10)


# ------------------------------------------------------------------------------------------
# Monte Carlo with gs.parameter_jvp
def horizon(lam):
    return int(math.ceil(12.0 / (1.0 - lam)))


def _ar1_inputs(rng, n, steps, rho):
    """Gaussian AR(1) inputs, stationary from the first step: unit variance, corr rho^|Delta|."""
    noise = rng.standard_normal((n, steps))
    x = np.empty((n, steps))
    x[:, 0] = noise[:, 0]
    scale = math.sqrt(1.0 - rho * rho)
    for t in range(1, steps):
        x[:, t] = rho * x[:, t - 1] + scale * noise[:, t]
    return x[..., None]


def _lru(lam, normalized):
    nu = math.log(-math.log(lam))
    gamma_log = 0.5 * math.log1p(-lam * lam) if normalized else 0.0
    cell = gs.LRU(
        nu_log=[nu], theta_log=[-40.0], gamma_log=[gamma_log], B_re=[[1.0]], B_im=[[0.0]],
        normalize=normalized,
    )
    tangent = {"nu_log": np.array([1.0])}
    if normalized:
        tangent["gamma_log"] = np.array([math.exp(nu) * lam * lam / (1.0 - lam * lam)])
    return cell, tangent


def _rnn(lam, normalized):
    g, dg = _gamma(lam, normalized)
    cell = gs.RNN(weight_hh=[[lam]], weight_ih=[[g]], activation="linear")
    return cell, {"weight_hh": np.array([[1.0]]), "weight_ih": np.array([[dg]])}


@functools.lru_cache(maxsize=None)
def monte_carlo(lam, rho):
    """variant -> (mean, standard error) of (d h_T / d theta)^2 over N_SEQ sequences; also "state"."""
    rng = np.random.default_rng(SEEDS[(lam, rho)])
    x = _ar1_inputs(rng, N_SEQ, horizon(lam), rho)
    out = {}
    with threadpool_limits(1):
        for variant in VARIANTS:
            normalized = variant.endswith("normalized")
            cell, tangent = (_lru if variant.startswith("exp") else _rnn)(lam, normalized)
            names = set(cell.parameters())
            assert set(tangent) <= names, (tangent.keys(), names)
            final = gs.parameter_jvp(cell, x, tangent)[:, -1, 0]  # Re h for the LRU
            y = final**2
            out[variant] = (float(y.mean()), float(y.std(ddof=1) / math.sqrt(N_SEQ)))
    # the state itself, h_T = sum_k lambda^k x_(T-k) (plain), by a dot product with the inputs
    h = x[:, ::-1, 0] @ lam ** np.arange(horizon(lam), dtype=float)
    y = h * h
    out["state"] = (float(y.mean()), float(y.std(ddof=1) / math.sqrt(N_SEQ)))
    return out


def closed_form(variant, lam, rho):
    normalized = variant.endswith("normalized")
    if variant.startswith("exp"):
        return th.exp_sensitivity_second_moment(math.log(-math.log(lam)), rho, normalized=normalized)
    return th.linear_sensitivity_second_moment(lam, rho, normalized=normalized)


@pytest.mark.parametrize("rho", RHOS)
@pytest.mark.parametrize("lam", LAMS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_monte_carlo_matches_closed_form(variant, lam, rho):
    mean, se = monte_carlo(lam, rho)[variant]
    expected = closed_form(variant, lam, rho)
    assert abs(mean - expected) <= Z * se, (mean, expected, se, (mean - expected) / se)
    # the relative s.e. is sqrt(2 / N_SEQ) up to its sampling error, as the docstring argues
    assert se / mean == pytest.approx(math.sqrt(2.0 / N_SEQ), rel=0.15)
    # the finite horizon's transient is negligible: E[Y] at T vs the stationary value
    normalized = variant.endswith("normalized")
    finite = finite_horizon_sensitivity(lam, rho, normalized, horizon(lam))
    factor = 1.0 if not variant.startswith("exp") else (lam * math.log(lam)) ** 2
    assert abs(factor * finite - expected) <= 0.01 * se


@pytest.mark.parametrize("lam", LAMS)
def test_lru_nu_tangent_is_the_chain_rule_on_the_rnn_lambda_tangent(lam):
    # Per sequence and per step, not in distribution: the LRU's d h / d nu_log equals
    # (d lambda / d nu) d h / d lambda of the RNN, lambda log lambda, plain and normalised (with
    # gamma_log tied to nu_log). Both are T-step recurrences whose rounding grows by ~eps per
    # step relative to the running scale, so 10 eps T of the largest |entry| bounds it
    # (observed: 2e-16 of it).
    steps = 300
    x = _ar1_inputs(np.random.default_rng(7), 16, steps, 0.5)
    for normalized in (False, True):
        lru, lru_tangent = _lru(lam, normalized)
        rnn, rnn_tangent = _rnn(lam, normalized)
        by_nu = gs.parameter_jvp(lru, x, lru_tangent)
        by_lam = gs.parameter_jvp(rnn, x, rnn_tangent)
        scale = np.abs(by_lam).max()
        np.testing.assert_allclose(
            by_nu[..., 0], lam * math.log(lam) * by_lam[..., 0], rtol=0, atol=10 * EPS * steps * scale
        )
        assert np.abs(by_nu[..., 1]).max() <= 1e-15 * scale  # the imaginary part: phase e^-40


@pytest.mark.parametrize("rho", RHOS)
@pytest.mark.parametrize("lam", LAMS)
def test_monte_carlo_detects_a_missing_gamma_prime(lam, rho):
    # Power: forgetting gamma' (i.e. gamma^2 times the plain moment; 25 % too large at
    # lambda = 0.5, rho = 0, 18 s.e.) is far outside the band.
    mean, se = monte_carlo(lam, rho)["normalized"]
    wrong = (1 - lam * lam) * th.linear_sensitivity_second_moment(lam, rho)
    assert abs(mean - wrong) > 2 * Z * se


@pytest.mark.parametrize("rho", RHOS)
@pytest.mark.parametrize("lam", LAMS)
def test_monte_carlo_state_second_moment(lam, rho):
    mean, se = monte_carlo(lam, rho)["state"]
    assert abs(mean - th.linear_state_second_moment(lam, rho)) <= Z * se


@pytest.mark.parametrize("rho", RHOS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_monte_carlo_divergence_slope(variant, rho):
    # Secant slope of log E against log(1 - lambda) between lambda = 0.9 and 0.99. Independent
    # samples, so by the delta method s.e.(log mean) = se / mean and the slope's s.e. is
    # sqrt(sum (se/mean)^2) / |log 0.01 - log 0.1|. The closed forms' secant over the same points
    # differs from the limiting slope by O(1 - lambda) (checked above), so that is the reference.
    lo, hi = 0.9, 0.99
    span = math.log(1 - hi) - math.log(1 - lo)
    (m_lo, s_lo), (m_hi, s_hi) = monte_carlo(lo, rho)[variant], monte_carlo(hi, rho)[variant]
    measured = (math.log(m_hi) - math.log(m_lo)) / span
    se = math.hypot(s_lo / m_lo, s_hi / m_hi) / abs(span)
    exact = (math.log(closed_form(variant, hi, rho)) - math.log(closed_form(variant, lo, rho))) / span
    assert abs(measured - exact) <= Z * se, (measured, exact, se)
    parametrization = "exp" if variant.startswith("exp") else "lambda"
    normalized = variant.endswith("normalized")
    limit = th.sensitivity_divergence(rho, normalized=normalized, parametrization=parametrization).slope
    assert abs(exact - limit) < 0.4  # the secant is already near its limit at these lambdas
    # the measurement separates neighbouring integer slopes
    assert abs(measured - (limit - 1)) > Z * se and abs(measured - (limit + 1)) > Z * se


# ------------------------------------------------------------------------------------------
# bad input
@pytest.mark.parametrize(
    "call, error, pattern",
    [
        (lambda: th.linear_sensitivity_second_moment(1.0), ValueError, r"`lam` must satisfy \|lam\| < 1.*got 1\.0"),
        (lambda: th.linear_sensitivity_second_moment(-1.5), ValueError, r"`lam`.*got -1\.5"),
        (lambda: th.linear_state_second_moment(float("nan")), ValueError, r"`lam` must be a finite number"),
        (lambda: th.linear_state_second_moment("0.5"), TypeError, r"`lam` must be a finite number; got '0\.5'"),
        (lambda: th.linear_state_second_moment(True), TypeError, r"`lam` must be a finite number"),
        (lambda: th.linear_sensitivity_second_moment(0.5, rho=1.0), ValueError, r"`rho` must satisfy \|rho\| < 1.*got 1\.0"),
        (lambda: th.linear_state_second_moment(0.5, rho=-2.0), ValueError, r"`rho`.*got -2\.0"),
        (
            lambda: th.linear_sensitivity_second_moment(0.5, normalized="yes"),
            TypeError,
            r"`normalized` must be True or False; got 'yes'",
        ),
        (lambda: th.linear_state_cross_moment(0.5, 1.0), ValueError, r"`b` must satisfy \|b\| < 1"),
        (lambda: th.linear_state_cross_moment(float("inf"), 0.5), ValueError, r"`a` must be a finite number"),
        (lambda: th.exp_sensitivity_second_moment(float("nan")), ValueError, r"`nu` must be a finite number"),
        (lambda: th.exp_sensitivity_second_moment(-800.0), ValueError, r"`nu` must be large enough.*got -800\.0"),
        (lambda: th.exp_sensitivity_second_moment(0.0, rho=0.99999999999999999), ValueError, r"`rho`"),
        (
            lambda: th.sensitivity_divergence(parametrization="log"),
            ValueError,
            r"`parametrization` must be one of 'lambda', 'exp'; got 'log'",
        ),
        (lambda: th.sensitivity_divergence(1.0), ValueError, r"`rho`"),
    ],
)
def test_bad_input(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_exports():
    for name in (
        "MemoryDivergence",
        "linear_state_cross_moment",
        "linear_state_second_moment",
        "linear_sensitivity_second_moment",
        "exp_sensitivity_second_moment",
        "sensitivity_divergence",
    ):
        assert name in th.__all__ and hasattr(th, name)
