"""Tests of gradsim.theory.rate: the exact and mean-field results for random rate networks.

Each result is compared with something computed independently of it: mpmath at 30 digits,
Monte Carlo sampling written here, eigenvalues of drawn matrices, the numeric layer
(gradsim.lyapunov_spectrum) on cells built for the purpose, or the values tabulated in the
research notes of issue 14 (D. G. Clark's rnn-lyapunov, data/max_exponent_operator.json, and
that note's own computations). Every tolerance says where it comes from; statistical checks
use fixed seeds, so they are deterministic.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import gradsim as gs
from gradsim import theory as th

Z = 5.0  # standard errors allowed in statistical comparisons (a false alarm ~1e-6 per check)


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # Small matrices: BLAS threads only add contention, and results must not depend on them.
    with threadpool_limits(1):
        yield


# ------------------------------------------------------------------------------------------
# the mean log-determinant of a Ginibre matrix
@pytest.mark.parametrize("n", [1, 2, 3, 10, 100, 1000])
@pytest.mark.parametrize("g", [1.0, 0.7, 3.0])
def test_ginibre_log_det_mean_equals_mpmath_digamma_sum(n, g):
    with mpmath.workdps(30):
        total = mpmath.fsum(mpmath.digamma(mpmath.mpf(k) / 2) + mpmath.log(2) for k in range(1, n + 1))
        expected = mpmath.log(g) - mpmath.log(n) / 2 + total / (2 * n)
    # The float64 sum of n digammas carries rounding ~n eps relative to its magnitude.
    assert th.ginibre_log_det_mean(n, g) == pytest.approx(float(expected), rel=0, abs=1e-12)


def test_ginibre_log_det_mean_for_one_by_one_is_the_log_of_a_gaussian():
    # N = 1: E log|g z| = log g + (psi(1/2) + log 2) / 2 = log g - (euler_gamma + log 2) / 2.
    assert th.ginibre_log_det_mean(1, 2.0) == pytest.approx(math.log(2.0) - (np.euler_gamma + math.log(2)) / 2, abs=1e-15)


def test_ginibre_log_det_mean_tends_to_log_g_minus_half():
    # The offsets quoted in the docstring (research notes: -0.0648, -0.0122, -0.00179).
    for n, offset in [(10, -0.0648), (100, -0.0122), (1000, -0.00179)]:
        assert th.ginibre_log_det_mean(n, 1.5) - (math.log(1.5) - 0.5) == pytest.approx(offset, rel=0.01)
    assert th.ginibre_log_det_mean(10**6, 1.5) == pytest.approx(math.log(1.5) - 0.5, abs=1e-5)


@pytest.mark.parametrize("n", [5, 50])
def test_ginibre_log_det_mean_against_monte_carlo(n):
    g, draws = 1.7, 4000
    rng = np.random.default_rng(n)
    samples = np.array(
        [np.linalg.slogdet(g * rng.standard_normal((n, n)) / math.sqrt(n))[1] / n for _ in range(draws)]
    )
    stderr = samples.std(ddof=1) / math.sqrt(draws)
    predicted = th.ginibre_log_det_mean(n, g)
    # Monte Carlo: the sample mean is within Z standard errors of the exact mean.
    assert abs(samples.mean() - predicted) < Z * stderr
    # The comparison can tell the finite-N value from the limit log g - 1/2.
    assert abs(samples.mean() - (math.log(g) - 0.5)) > 2 * Z * stderr


# ------------------------------------------------------------------------------------------
# the mean exponent of the map
def _mp_mean_log_slope(g):
    """<log sech^2(x)>, x ~ N(0, q), q = g^2 E tanh^2(sqrt(q) z), all in mpmath (independent of
    the library's quadrature and root finder)."""
    with mpmath.workdps(25):
        g = mpmath.mpf(g)

        def gauss(func, q):
            s = mpmath.sqrt(q)
            points = [0, 1 / s, 4 / s, 1, 4, 12, mpmath.inf]
            return 2 * mpmath.quad(lambda z: func(s * z) * mpmath.npdf(z), sorted(points))

        q = mpmath.findroot(lambda q: g**2 * gauss(lambda x: mpmath.tanh(x) ** 2, q) - q, g**2)
        return float(gauss(lambda x: 2 * mpmath.log(mpmath.sech(x)), q))


@pytest.mark.parametrize("g", [2.0, 3.0])
def test_map_mean_exponent_against_mpmath(g):
    # Both quadratures resolve to ~1e-12; 1e-9 leaves room for the root q (found to ~1e-15).
    expected = math.log(g) - 0.5 + _mp_mean_log_slope(g)
    assert th.map_mean_exponent(g) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("g, expected", [(2.0, -1.14902), (3.0, -2.27281), (4.0, -3.55102), (5.0, -4.90677)])
def test_map_mean_exponent_against_research_table(g, expected):
    # The research notes' table (5 decimals: rounding 5e-6).
    assert th.map_mean_exponent(g) == pytest.approx(expected, abs=6e-6)


def test_map_mean_exponent_forms():
    # linear: log phi' = 0; finite n: the Ginibre term replaces its limit.
    assert th.map_mean_exponent(0.5, "linear") == pytest.approx(math.log(0.5) - 0.5, abs=1e-15)
    finite = th.map_mean_exponent(3.0, n=100) - th.map_mean_exponent(3.0)
    assert finite == pytest.approx(th.ginibre_log_det_mean(100, 3.0) - (math.log(3.0) - 0.5), abs=1e-14)
    # tanh below the edge: q = 0, the trivial fixed point's mean log|mu|.
    assert th.map_mean_exponent(0.8) == pytest.approx(math.log(0.8) - 0.5, abs=1e-15)


def test_map_mean_exponent_against_simulated_slopes():
    # <log phi'> along a simulated N = 1000 tanh network, h' = tanh(W h) (phi'(a) = 1 - h'^2),
    # against the mean-field Gaussian average. Network-to-network (quenched) fluctuations at
    # N = 1000 were measured at ~0.015 rms over seeds; 0.05 is over 3 of them, and far below
    # the 1.5 that separates g = 2 from g = 3.
    g = 3.0
    cell = gs.make_cell("rnn", 1000, 0, init="gaussian", gain=g, rng=0)
    states = gs.unroll(cell, 300, np.random.default_rng(10).standard_normal(1000) * 0.5)[101:]
    simulated = float(np.mean(np.log1p(-states * states)))
    assert simulated == pytest.approx(th.map_mean_exponent(g) - (math.log(g) - 0.5), abs=0.05)


# ------------------------------------------------------------------------------------------
# the trivial fixed point
def test_circular_law_cdf_exact_values():
    g = 0.8
    s = np.array([-np.inf, math.log(g) - 1.0, math.log(g) - 0.25, math.log(g), 0.0, 5.0, 1e308])
    expected = [0.0, math.exp(-2.0), math.exp(-0.5), 1.0, 1.0, 1.0, 1.0]
    np.testing.assert_allclose(th.circular_law_exponent_cdf(s, g), expected, rtol=1e-15, atol=0)
    assert isinstance(th.circular_law_exponent_cdf(-1.0, 2.0), float)
    assert th.circular_law_exponent_cdf(-1.0, 2.0) == pytest.approx(math.exp(-2.0) / 4.0, rel=1e-15)


def test_circular_law_cdf_against_ginibre_eigenvalues():
    # N = 1000, g = 0.8: the empirical distribution of log|mu_i| against F. The Kolmogorov
    # distance has two finite-N parts: the edge of the eigenvalue density is an erfc of width
    # g / sqrt(2N), which moves 1 / sqrt(2 pi N) = 0.0126 of the eigenvalues outside |mu| = g;
    # and the number in a disc fluctuates by ~(N / pi)^(1/4) eigenvalues (Ginibre's number
    # variance grows as the perimeter), 0.0042 of them. 0.0126 + 4 x 0.0042 ~ 0.03 (measured
    # 0.017-0.019 over four seeds). The wrong law e^s / g differs by up to 0.25.
    n, g = 1000, 0.8
    weight = g * np.random.default_rng(0).standard_normal((n, n)) / math.sqrt(n)
    s = np.sort(np.log(np.abs(np.linalg.eigvals(weight))))
    cdf = th.circular_law_exponent_cdf(s, g)
    above, below = np.arange(1, n + 1) / n, np.arange(n) / n
    distance = max(np.max(np.abs(above - cdf)), np.max(np.abs(below - cdf)))
    assert distance < 0.03
    wrong = np.minimum(1.0, np.exp(s) / g)
    assert max(np.max(np.abs(above - wrong)), np.max(np.abs(below - wrong))) > 0.1


def test_trivial_fixed_point_exponents_against_lyapunov_spectrum_of_a_tanh_rnn():
    # h' = tanh(W h) at g = 0.6 < 1 with no input: the state falls to 0, where the Jacobian
    # diag(sech^2(W h)) W becomes W exactly, whose exponents are log|mu_i|. After the warm-up
    # the QR estimate differs from them by O(log cond(V) / T) (V the eigenvectors; a complex
    # pair's two exponents share their sum exactly, each half only on average): 5e-3 at T = 3000.
    n, g = 8, 0.6
    cell = gs.make_cell("rnn", n, 0, init="gaussian", gain=g, rng=4)
    state0 = np.random.default_rng(1).standard_normal(n)
    spectrum = gs.lyapunov_spectrum(cell, 4000, state0, warmup=1000)
    expected = th.trivial_fixed_point_exponents(cell.weight_hh)
    np.testing.assert_allclose(spectrum.exponents, expected, atol=5e-3, rtol=0)
    assert float(np.sum(spectrum.exponents)) == pytest.approx(float(np.sum(expected)), abs=1e-3)


@pytest.mark.parametrize("delta", [0.1, 0.5, 1.0, 1.5])
def test_trivial_fixed_point_exponents_of_the_leaky_map(delta):
    # The linear leaky map x' = (1 - delta) x + delta J x is gs.ResidualRNN with W = J - I and
    # alpha = delta; its spectrum per step, over delta, against the eigenvalue formula; and
    # against the eigenvalues of M = (1 - delta) I + delta J computed directly. The tolerance
    # is the QR estimate's O(1 / T) transient, as above.
    n = 6
    j = 0.7 * np.random.default_rng(2).standard_normal((n, n)) / math.sqrt(n)
    expected = th.trivial_fixed_point_exponents(j, delta)
    direct = np.sort(np.log(np.abs(np.linalg.eigvals((1 - delta) * np.eye(n) + delta * j))))[::-1] / delta
    np.testing.assert_allclose(expected, direct, rtol=0, atol=1e-12)
    cell = gs.ResidualRNN(j - np.eye(n), alpha=delta)
    spectrum = gs.lyapunov_spectrum(cell, 3000)  # from x = 0, which it keeps (M may expand)
    np.testing.assert_allclose(spectrum.exponents / delta, expected, atol=5e-3 / delta, rtol=0)


def test_trivial_fixed_point_exponents_batch_and_zero_eigenvalue():
    weights = np.stack([np.diag([0.5, -0.25, 0.0]), np.array([[0.0, -0.5, 0], [0.5, 0, 0], [0, 0, 0.1]])])
    out = th.trivial_fixed_point_exponents(weights)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out[0], [math.log(0.5), math.log(0.25), -np.inf])
    # A rotation by 90 degrees scaled by 0.5: a complex pair of modulus 0.5, counted twice.
    np.testing.assert_allclose(out[1], [math.log(0.5), math.log(0.5), math.log(0.1)], rtol=1e-14)


# ------------------------------------------------------------------------------------------
# the largest exponent (mean field)
@pytest.mark.parametrize(
    "g, expected",
    [(1.5, 0.065217), (2.0, 0.154724), (3.0, 0.310249), (4.0, 0.432878), (5.0, 0.532428), (10.0, 0.856435)],
)
def test_map_max_exponent_dmft_against_clark_table(g, expected):
    # Clark's stored s_* at delta = 1 and the research notes' recomputation (6 decimals).
    assert th.map_max_exponent_dmft(g) == pytest.approx(expected, abs=1e-6)


def test_map_max_exponent_dmft_below_the_edge_is_log_g():
    assert th.map_max_exponent_dmft(0.7) == pytest.approx(math.log(0.7), abs=1e-15)


@pytest.mark.parametrize("g, expected", [(2.0, 0.112458), (3.0, 0.235461)])
def test_continuous_time_max_exponent_dmft_against_clark_table(g, expected):
    # Clark's stored s_* for delta -> 0 (6 decimals: rounding 5e-7). The zero mode Delta'(tau)
    # of H is an independent check of the correlation function and of the eigensolver: its
    # energy E1 must be 0 (the finite-difference and interpolation errors are ~1e-11 here).
    value, details = th.continuous_time_max_exponent_dmft(g, return_details=True)
    assert value == pytest.approx(expected, abs=1e-6)
    assert abs(details["E1"]) < 1e-8
    assert details["E0"] < 0  # chaos


def test_continuous_time_max_exponent_dmft_below_the_edge():
    # The trivial fixed point: max Re(mu) - 1 = g - 1.
    assert th.continuous_time_max_exponent_dmft(0.5) == pytest.approx(-0.5, abs=1e-15)


def test_continuous_time_exponent_sum_and_what_euler_gives():
    assert th.continuous_time_exponent_sum(64) == -64.0
    assert th.continuous_time_exponent_sum(10, tau=2.0) == -5.0
    # Euler at step delta: the exponents of the iterated map sum to the time average of
    # log|det M_n| / delta, M_n = (1 - delta) I + delta J diag(sech^2 x_n), here in plain
    # numpy. The docstring's mean -1 - delta / 2 has an O(delta^2) remainder (-delta^2 / 3
    # from the cubic term, 3e-3) and O(1/N) terms from tr((J D)^2) / N: 0.01 allows both,
    # and is 5x smaller than the delta / 2 it checks.
    n, g, delta = 60, 3.0, 0.1
    rng = np.random.default_rng(0)
    j = g * rng.standard_normal((n, n)) / math.sqrt(n)
    np.fill_diagonal(j, 0.0)
    x = rng.standard_normal(n)
    logdets = []
    for step in range(3000):
        slope = 1.0 / np.cosh(x) ** 2
        if step >= 1000:
            logdets.append(np.linalg.slogdet((1 - delta) * np.eye(n) + delta * j * slope)[1])
        x = (1 - delta) * x + delta * j @ np.tanh(x)
    mean = float(np.mean(logdets)) / (delta * n)
    assert mean == pytest.approx(th.continuous_time_exponent_sum(n) / n - delta / 2, abs=0.01)


# ------------------------------------------------------------------------------------------
# bad input
@pytest.mark.parametrize(
    "call, error, pattern",
    [
        (lambda: th.ginibre_log_det_mean(0), ValueError, r"`n` must be an integer >= 1; got 0\."),
        (lambda: th.ginibre_log_det_mean(3, -1.0), ValueError, r"`g` must be a positive finite number; got -1\.0\."),
        (lambda: th.map_mean_exponent(2.0, "relu"), ValueError, r"`activation` must be one of 'tanh', 'sigmoid', 'linear'; got 'relu'\."),
        (lambda: th.circular_law_exponent_cdf([0.0, np.nan], 0.5), ValueError, r"`s` must not contain NaN"),
        (lambda: th.circular_law_exponent_cdf(0.0, 0.0), ValueError, r"`g` must be a positive finite number; got 0\.0\."),
        (lambda: th.trivial_fixed_point_exponents(np.ones((2, 3))), ValueError,
         r"`weight_hh` must be a non-empty square matrix \(\.\.\., N, N\); got shape \(2, 3\)\."),
        (lambda: th.trivial_fixed_point_exponents(np.eye(2), 0.0), ValueError, r"`delta` must be a positive finite number; got 0\.0\."),
        (lambda: th.trivial_fixed_point_exponents([[np.nan]]), ValueError, r"`weight_hh` must contain only finite values"),
        (lambda: th.map_max_exponent_dmft(math.inf), ValueError, r"`g` must be a positive finite number; got inf\."),
        (lambda: th.continuous_time_exponent_sum(5, tau=0), ValueError, r"`tau` must be a positive finite number; got 0\.0\."),
        (lambda: th.continuous_time_max_exponent_dmft(-2.0), ValueError, r"`g` must be a positive finite number; got -2\.0\."),
    ],
)
def test_bad_input(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
