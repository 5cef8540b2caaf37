"""Tests of the exact predictions (gradsim/theory.py, THEORY.md sections 1-11).

Each prediction is compared with something computed independently of it: mpmath at 30
digits, Monte Carlo sampling written here, the numeric layer (gradsim.numeric) on a cell
built for the purpose, or the numbers printed in THEORY.md. Every tolerance says where it
comes from. Statistical checks use fixed seeds, so they are deterministic; their tolerances
are 5 standard errors (a false alarm about once in 10^6 per check for Gaussian errors).
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import gradsim as gs
from gradsim import theory as th

# Numeric layer accumulates rounding of ~eps per step and per matmul; over the few hundred
# steps used here the log singular values stay within 1e-12 of exact for diagonal and
# orthogonal products, so 1e-10 leaves a wide margin without hiding a real error.
EXACT = 1e-10
Z = 5.0  # standard errors allowed in statistical comparisons


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # Small matrices: BLAS threads only add contention, and results must not depend on them.
    with threadpool_limits(1):
        yield


@pytest.fixture(autouse=True)
def _mp_precision():
    with mpmath.workdps(30):
        yield


# ------------------------------------------------------------------------------------------
# independent references
def _mp_gauss_even(func, q):
    """mpmath: int Dz func(sqrt(q) z) for an even func, cut at both scales of the integrand."""
    q = mpmath.mpf(q)
    if q == 0:
        return func(mpmath.mpf(0))
    s = mpmath.sqrt(q)
    points = sorted({mpmath.mpf(0), 1 / s, 4 / s, mpmath.mpf(1), mpmath.mpf(4)}) + [mpmath.inf]
    return 2 * mpmath.quad(lambda z: func(s * z) * mpmath.npdf(z), points)


def _mp_tanh2(x):
    return mpmath.tanh(x) ** 2


def _mp_sigmoid(x):
    return 1 / (1 + mpmath.exp(-x))


def _mp_phi2(activation, q):
    if activation == "tanh":
        return _mp_gauss_even(_mp_tanh2, q)
    # sigmoid^2 is not even: integrate over the whole line.
    s = mpmath.sqrt(mpmath.mpf(q))
    points = [-mpmath.inf, -4 / s, -1 / s, 0, 1 / s, 4 / s, mpmath.inf]
    return mpmath.quad(lambda z: _mp_sigmoid(s * z) ** 2 * mpmath.npdf(z), points)


def _mp_dphi(activation, x):
    if activation == "tanh":
        return 1 - mpmath.tanh(x) ** 2
    y = _mp_sigmoid(x)
    return y * (1 - y)


# ------------------------------------------------------------------------------------------
# 1. chain rule
def test_chain_rule_product_against_mpmath_and_the_scalar_rnn():
    rng = np.random.default_rng(1)
    slopes = rng.uniform(-1.5, 1.5, 40)
    result = th.chain_rule_product(slopes)
    exact = mpmath.fprod([mpmath.mpf(float(s)) for s in slopes])
    # 40 float64 logs summed: relative error ~ 40 eps.
    assert result.value == pytest.approx(float(exact), rel=1e-12)
    assert result.log_abs == pytest.approx(float(mpmath.log(abs(exact))), abs=1e-12)
    assert result.sign == (1.0 if exact > 0 else -1.0)

    # THEORY.md's example: nine factors of 0.1 give 1e-9.
    assert th.chain_rule_product([0.1] * 9).value == pytest.approx(1e-9, rel=1e-14)

    # The scalar RNN h_t = tanh(w h_{t-1} + u x_t): dh_T/dh_0 = prod w (1 - tanh^2 a_t),
    # the factors computed here by a plain loop, the product by the numeric layer.
    w, u = 1.3, 0.8
    x = rng.standard_normal((25, 1))
    cell = gs.RNN(np.array([[w]]), np.array([[u]]), activation="tanh")
    h, factors = 0.2, []
    for t in range(25):
        a = w * h + u * x[t, 0]
        h = math.tanh(a)
        factors.append(w * (1 - h * h))
    log_scale, matrix = gs.jacobian_product(cell, x, state0=np.array([0.2]))
    direct = float(np.exp(log_scale) * matrix[0, 0])
    # 25 steps of float64 products: ~25 eps relative.
    assert th.chain_rule_product(factors).value == pytest.approx(direct, rel=1e-12)


def test_chain_rule_product_stays_finite_and_handles_zero_and_empty():
    big = th.chain_rule_product([10.0] * 1000)
    assert big.value == math.inf and big.log_abs == pytest.approx(1000 * math.log(10.0), rel=1e-14)
    small = th.chain_rule_product([-1e-3] * 1001)
    assert small.value == 0.0 and small.sign == -1.0
    assert small.log_abs == pytest.approx(1001 * math.log(1e-3), rel=1e-14)
    assert th.chain_rule_product([2.0, 0.0, 3.0]) == (0.0, -math.inf, 0.0)
    assert th.chain_rule_product([]) == (1.0, 0.0, 1.0)


@pytest.mark.parametrize(
    "activation, phi",
    [
        ("tanh", np.tanh),
        ("sigmoid", lambda a: 1 / (1 + np.exp(-a))),
        ("relu", lambda a: np.maximum(a, 0.0)),
        ("linear", lambda a: a),
    ],
)
def test_derivative_bound_is_the_supremum_of_the_slope(activation, phi):
    # Central differences on a fine grid (independent of the cells' derivative code); their
    # truncation error h^2 |phi'''| / 6 ~ 1e-11 and rounding eps / h ~ 1e-11 stay below 1e-8.
    step = 1e-5
    a = np.linspace(-8, 8, 16001)
    a = a[np.abs(a) > 2 * step] if activation == "relu" else a  # relu has a kink at 0
    slope = np.abs((phi(a + step) - phi(a - step)) / (2 * step))
    bound = th.derivative_bound(activation)
    assert np.max(slope) <= bound + 1e-8
    assert np.max(slope) == pytest.approx(bound, abs=1e-8)


# ------------------------------------------------------------------------------------------
# 2. Pascanu et al. 2013
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_pascanu_bound_holds_on_every_trajectory(activation):
    rng = np.random.default_rng(2)
    n, steps = 6, 60
    cell = gs.make_cell("rnn", n, 2, activation=activation, gain=1.4, bias_std=0.5, rng=3)
    inputs = rng.standard_normal((steps, 2))
    times = np.arange(0, steps + 1, 5)
    top = gs.log_singular_values(cell, inputs, state0=rng.standard_normal(n), times=times)[:, 0]
    norm_w = np.linalg.norm(cell.weight_hh, 2)
    bound = np.array(
        [th.pascanu_bound(norm_w, th.derivative_bound(activation), int(t)) for t in times]
    )
    # An inequality; 1e-9 absorbs the rounding of the numeric layer's logs (~1e-13).
    assert np.all(top <= bound + 1e-9)
    assert th.pascanu_bound(2.0, 0.25, 10) == pytest.approx(10 * math.log(0.5), rel=1e-15)
    assert th.pascanu_bound(0.0, 1.0, 3) == -math.inf
    assert th.pascanu_bound(0.0, 1.0, 0) == 0.0


def test_pascanu_regime_nonlinear_and_linear():
    rng = np.random.default_rng(4)
    q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    assert th.pascanu_regime(0.9 * q, "tanh") == th.VANISHING_GUARANTEED
    assert th.pascanu_regime(1.1 * q, "tanh") == th.EXPLODING_POSSIBLE
    assert th.pascanu_regime(q, "relu") == th.MARGINAL  # ||Q||_2 = 1 to rounding
    # sigmoid: gamma = 1/4, threshold ||W||_2 = 4.
    assert th.pascanu_regime(3.9 * q, "sigmoid") == th.VANISHING_GUARANTEED
    assert th.pascanu_regime(4.1 * q, "sigmoid") == th.EXPLODING_POSSIBLE

    # Linear: the spectral radius decides, not the norm. A non-normal W with ||W||_2 ~ 10
    # and rho = 0.5 vanishes (after transient growth); checked on W^T by plain numpy.
    w = np.array([[0.5, 10.0], [0.0, 0.5]])
    assert th.pascanu_regime(w, "linear") == th.VANISHING_GUARANTEED
    assert th.pascanu_regime(w, "tanh") == th.EXPLODING_POSSIBLE
    assert np.linalg.norm(np.linalg.matrix_power(w, 200), 2) < 1e-50
    w2 = np.array([[1.01, 0.0], [0.0, 0.2]])
    assert th.pascanu_regime(w2, "linear") == th.EXPLODING_GUARANTEED
    assert th.pascanu_regime(q, "linear") == th.MARGINAL


def test_clip_by_norm_is_algorithm_1():
    rng = np.random.default_rng(5)
    g = rng.standard_normal((3, 4))
    norm = math.sqrt(sum(float(v) ** 2 for v in g.ravel()))
    clipped = th.clip_by_norm(g, norm / 2)
    # One scaling of float64 values: a few eps.
    np.testing.assert_allclose(clipped, g * (norm / 2) / norm, rtol=1e-14)
    assert np.linalg.norm(clipped) == pytest.approx(norm / 2, rel=1e-14)
    untouched = th.clip_by_norm(g, 2 * norm)
    assert np.array_equal(untouched, g) and untouched is not g
    # ||g|| >= threshold triggers the rescaling (which leaves g unchanged at equality).
    np.testing.assert_allclose(th.clip_by_norm(g, norm), g, rtol=1e-14)
    # Near float64's limit: a naive sum of squares would overflow to inf.
    huge = np.array([3e200, 4e200])
    np.testing.assert_allclose(th.clip_by_norm(huge, 5.0), [3.0, 4.0], rtol=1e-14)
    assert np.array_equal(th.clip_by_norm(np.zeros(3), 1.0), np.zeros(3))


# ------------------------------------------------------------------------------------------
# 3. Newman / Forrester
def test_newman_reproduces_theory_md_numbers():
    # Printed digits: -0.051660, -0.0050167, -0.00050017; half a unit in the last digit.
    assert th.gaussian_product_exponents(10)[0] == pytest.approx(-0.051660, abs=5e-7)
    assert th.gaussian_product_exponents(100)[0] == pytest.approx(-0.0050167, abs=5e-8)
    assert th.gaussian_product_exponents(1000)[0] == pytest.approx(-0.00050017, abs=5e-9)


@pytest.mark.parametrize("n, sigma", [(1, 1.0), (2, 0.5), (7, 3.0), (40, 1.0)])
def test_newman_against_mpmath(n, sigma):
    exps = th.gaussian_product_exponents(n, sigma)
    ref = [
        mpmath.log(sigma) + (mpmath.log(mpmath.mpf(2) / n) + mpmath.psi(0, mpmath.mpf(n - i + 1) / 2)) / 2
        for i in range(1, n + 1)
    ]
    # scipy's digamma is accurate to ~1e-15; the sum of a few terms to ~1e-14.
    np.testing.assert_allclose(exps, [float(r) for r in ref], rtol=0, atol=1e-13)
    assert np.all(np.diff(exps) < 0)
    err = th.gaussian_product_stderr(n, 50)
    ref_err = [mpmath.sqrt(mpmath.psi(1, mpmath.mpf(n - i + 1) / 2) / 200) for i in range(1, n + 1)]
    np.testing.assert_allclose(err, [float(r) for r in ref_err], rtol=1e-13)
    assert th.gaussian_log_det_mean(n, sigma) == pytest.approx(float(mpmath.fsum(ref)), abs=1e-12)


def test_newman_against_a_qr_simulation():
    # Fresh N(0, sigma^2/N) matrices every step: the untied linear RNN. With a full
    # orthonormal frame every step's log|R_ii| is iid, so the exact standard error applies.
    n, steps, sigma = 10, 1500, 1.3
    cell = gs.untied(
        lambda r: gs.make_cell("rnn", n, 0, activation="linear", init="gaussian", gain=sigma, rng=r),
        rng=11,
    )
    sim = gs.lyapunov_spectrum(cell, steps, state0=np.zeros(n))
    predicted = th.gaussian_product_exponents(n, sigma)
    stderr = th.gaussian_product_stderr(n, steps)
    assert np.all(np.abs(sim.exponents - predicted) < Z * stderr)
    # The sum of the per-step logs is log|det A_t|: variance sum_i psi'/4 (independent R_ii).
    sum_err = math.sqrt(float(np.sum(stderr**2)))
    assert abs(sim.exponents.sum() - th.gaussian_log_det_mean(n, sigma)) < Z * sum_err


def test_newman_stderr_is_the_spread_of_one_qr_step():
    # Sample variance of log|R_ii| over single-step QRs vs psi'/4 (= stderr at T = 1).
    rng = np.random.default_rng(12)
    n, samples = 4, 40000
    a = rng.standard_normal((samples, n, n)) / math.sqrt(n)
    r = np.linalg.qr(a, mode="r")
    logs = np.log(np.abs(np.diagonal(r, axis1=-2, axis2=-1)))
    var = logs.var(axis=0, ddof=1)
    centred = logs - logs.mean(axis=0)
    # Standard error of a sample variance: sqrt((m4 - var^2) / samples).
    var_err = np.sqrt(((centred**4).mean(axis=0) - var**2) / samples)
    assert np.all(np.abs(var - th.gaussian_product_stderr(n, 1) ** 2) < Z * var_err)
    assert np.all(np.abs(logs.mean(axis=0) - th.gaussian_product_exponents(n)) < Z * np.sqrt(var / samples))


def test_log_det_mean_by_sampling():
    rng = np.random.default_rng(13)
    n, sigma, samples = 6, 0.7, 20000
    a = rng.standard_normal((samples, n, n)) * sigma / math.sqrt(n)
    _, logdet = np.linalg.slogdet(a)
    err = logdet.std(ddof=1) / math.sqrt(samples)
    assert abs(logdet.mean() - th.gaussian_log_det_mean(n, sigma)) < Z * err


# ------------------------------------------------------------------------------------------
# 4. random matrices
def test_circular_and_quarter_circle_laws_at_large_n():
    n, gain = 400, 0.7
    w = gs.gaussian(n, gain, rng=14)
    rho = np.max(np.abs(np.linalg.eigvals(w)))
    norm = np.linalg.norm(w, 2)
    # Spectral radius: Rider (2003) puts the largest modulus at g (1 + sqrt(gamma_N / 4N)),
    # gamma_N = log(N / 2 pi) - 2 log log N ~ 0.57 here (+1.9%), with Gumbel fluctuations of
    # the same order: 6% relative.
    assert rho == pytest.approx(th.circular_law_radius(gain), rel=0.06)
    # Largest singular value: Tracy-Widom edge fluctuations ~ N^(-2/3) = 1.8% relative.
    assert norm == pytest.approx(th.quarter_circle_norm(gain), rel=0.03)


def test_linear_tied_exponents_against_the_qr_spectrum():
    n, steps = 6, 3000
    w = gs.gaussian(n, 1.0, rng=15)
    cell = gs.RNN(w, activation="linear")
    sim = gs.lyapunov_spectrum(cell, steps, state0=np.zeros(n), warmup=500)
    predicted = th.linear_tied_exponents(w)
    # Not the log singular values of W:
    assert not np.allclose(predicted, np.log(np.linalg.svd(w, compute_uv=False)), atol=0.05)
    # QR exponents of W^T converge as O(1/T) (the frame aligns with the eigenvectors at
    # rates set by the gaps between |mu_i|; complex pairs rotate within their plane, leaving
    # a bounded O(1)-per-window wobble). 10 / 2500 steps bounds both here.
    np.testing.assert_allclose(sim.exponents, predicted, atol=10 / (steps - 500))
    singular = np.array([[1.0, 2.0], [2.0, 4.0]])
    assert th.linear_tied_exponents(singular)[1] == -math.inf


# ------------------------------------------------------------------------------------------
# 5. mean field
def test_mean_field_reproduces_theory_md_example():
    # Gaussian g = 1.5, tanh, no input: q* = 0.7934, chi_1 = 1.1393, lambda_1 = +0.0652.
    assert round(th.mean_field_q_star(1.5, "tanh"), 4) == 0.7934
    assert round(th.mean_field_chi1(1.5, "tanh"), 4) == 1.1393
    assert round(th.mean_field_lyapunov(1.5, "tanh"), 4) == 0.0652


def test_q_star_is_the_root_found_by_mpmath():
    # An independent root finder (secant, mpmath) on 30-digit quadrature, started elsewhere.
    q_mp = mpmath.findroot(lambda q: mpmath.mpf(1.5) ** 2 * _mp_gauss_even(_mp_tanh2, q) - q, 2.0)
    assert th.mean_field_q_star(1.5, "tanh") == pytest.approx(float(q_mp), rel=1e-10)


@pytest.mark.parametrize(
    "sigma_w, activation, sigma_b, sigma_in",
    [
        (3.0, "tanh", 0.2, 0.5),
        (20.0, "tanh", 0.0, 0.0),  # q* ~ 380: beyond a fixed Gauss-Hermite rule's reach
        (1e4, "tanh", 0.0, 0.0),  # q* ~ 1e8: phi' lives on |z| < 1e-3, the Gaussian on |z| ~ 1
        (1.02, "tanh", 0.0, 0.0),  # just above the transition, q* ~ 0.02
        (2.0, "sigmoid", 0.1, 0.0),
        (6.0, "sigmoid", 0.0, 1.0),
    ],
)
def test_mean_field_integrals_against_mpmath(sigma_w, activation, sigma_b, sigma_in):
    q = th.mean_field_q_star(sigma_w, activation, sigma_b, sigma_in)
    drive = sigma_b**2 + sigma_in**2
    mapped = sigma_w**2 * _mp_phi2(activation, q) + drive
    # The fixed-point residual at 30 digits; the library's quadrature targets 1e-13 relative
    # and Brent's method 4 eps, so 1e-11 relative leaves a 100x margin. The root itself is then
    # accurate to residual / (1 - slope of the map) (checked: the map's slope is < 0.99 here).
    assert float(mapped) == pytest.approx(q, rel=1e-11)
    slope = (sigma_w**2 * (_mp_phi2(activation, q * 1.001) - _mp_phi2(activation, q))) / (q * 0.001)
    assert slope < 0.99

    chi = sigma_w**2 * _mp_gauss_even(lambda x: _mp_dphi(activation, x) ** 2, q)
    assert th.mean_field_chi1(sigma_w, activation, sigma_b, sigma_in) == pytest.approx(float(chi), rel=1e-10)
    m2 = sigma_w**4 * _mp_gauss_even(lambda x: _mp_dphi(activation, x) ** 4, q)
    assert th.mu2(sigma_w, activation, q) == pytest.approx(float(m2), rel=1e-10)
    assert th.mean_field_lyapunov(sigma_w, activation, sigma_b, sigma_in) == pytest.approx(
        float(mpmath.log(chi) / 2), abs=1e-10
    )


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_mean_field_integrals_are_smooth_and_quiet_over_28_decades_of_q(activation):
    # Warnings are errors under pytest: no IntegrationWarning anywhere. E phi^2 increases and
    # E phi'^2, E phi'^4 decrease with q (phi' is largest at 0), as they must.
    qs = np.logspace(-14, 14, 57)
    phi2 = [th.mean_field_length_map(q, 1.0, activation) for q in qs]
    dphi2 = [th.mean_field_chi1(1.0, activation, q=q) for q in qs]
    dphi4 = [th.mu2(1.0, activation, q) for q in qs]
    assert np.all(np.diff(phi2) > 0)
    assert np.all(np.diff(dphi2) < 0) and np.all(np.diff(dphi4) < 0)
    # Large q: E phi'^2 -> c / sqrt(q) with c = 2 sqrt(2 / pi) / 3 (tanh; int sech^4 = 4/3);
    # the next term is O(q^-3/2), i.e. 1e-14 relative at q = 1e14.
    c = 2 * math.sqrt(2 / math.pi) / 3 * (2 / 16 if activation == "sigmoid" else 1)
    assert dphi2[-1] * math.sqrt(qs[-1]) == pytest.approx(c, rel=1e-9)


def test_mean_field_tanh_below_the_transition_and_with_input():
    # Without bias or input, q* = 0 for sigma_w <= 1, and chi_1 = sigma_w^2 (tanh'(0) = 1).
    for sigma_w in (0.5, 1.0):
        assert th.mean_field_q_star(sigma_w, "tanh") == 0.0
        assert th.mean_field_chi1(sigma_w, "tanh") == pytest.approx(sigma_w**2, rel=1e-15)
        assert th.mean_field_lyapunov(sigma_w, "tanh") == pytest.approx(math.log(sigma_w), abs=1e-15)
    # THEORY.md: input noise moves the edge of chaos above g = 1.
    assert th.mean_field_chi1(1.0, "tanh", sigma_in=0.5) < 1.0
    # With sigma_in = 0.5 the edge (chi_1 = 1) lies between g = 1.5 and 1.6 (at 1.5497).
    assert th.mean_field_chi1(1.6, "tanh", sigma_in=0.5) > 1.0 > th.mean_field_chi1(1.5, "tanh", sigma_in=0.5)
    # Iterating the length map from far away reaches q* (the attracting fixed point).
    q = 10.0
    for _ in range(200):
        q = th.mean_field_length_map(q, 1.5, "tanh")
    assert q == pytest.approx(th.mean_field_q_star(1.5, "tanh"), rel=1e-12)


def test_mean_field_relu_and_linear_closed_forms():
    # int Dz relu(sqrt(q) z)^2 = q / 2, checked at 30 digits.
    q = mpmath.mpf(2.5)
    relu2 = mpmath.quad(lambda z: mpmath.npdf(z) * (mpmath.sqrt(q) * z) ** 2, [0, mpmath.inf])
    assert th.mean_field_length_map(2.5, 1.0, "relu") == pytest.approx(float(relu2), rel=1e-14)
    assert th.mean_field_q_star(1.2, "relu", sigma_b=0.3, sigma_in=0.4) == pytest.approx(
        0.25 / (1 - 0.72), rel=1e-14
    )
    assert th.mean_field_q_star(0.9, "linear", sigma_in=1.0) == pytest.approx(1 / (1 - 0.81), rel=1e-14)
    assert th.mean_field_q_star(1.0, "relu") == 0.0
    assert th.mean_field_q_star(1.5, "relu") == math.inf  # sigma_w^2 / 2 > 1: diverges
    assert th.mean_field_q_star(1.0, "linear", sigma_b=0.1) == math.inf
    assert th.mean_field_chi1(math.sqrt(2.0), "relu") == pytest.approx(1.0, rel=1e-15)  # He init
    assert th.mean_field_chi1(0.8, "linear") == pytest.approx(0.64, rel=1e-15)
    assert th.mu2(1.0, "relu", 3.0) == 0.5
    with pytest.raises(ValueError, match=r"`sigma_w` must not be sqrt\(2\) for activation 'relu'"):
        th.mean_field_q_star(math.sqrt(2.0), "relu")


@pytest.mark.parametrize("sigma_in", [0.0, 0.8])
def test_mean_field_lyapunov_against_an_untied_simulation(sigma_in):
    # Fresh N(0, g^2/N) recurrent and N(0, sigma_in^2) input weights every step: the setting in
    # which mean-field theory is exact as N -> infinity. Pre-activations follow
    # a' = W tanh(a) + W_ih x, the form of the theory. Inputs are +-1, so that the input term
    # has variance exactly sigma_in^2 at every step (Gaussian x_t would make it sigma_in^2 x_t^2,
    # a fluctuating q that the theory does not describe).
    n, steps, gain = 200, 1000, 1.5
    cell = gs.untied(
        lambda r: gs.make_cell("rnn", n, 1, activation="tanh", gain=gain, input_gain=sigma_in, rng=r),
        rng=21,
    )
    inputs = np.random.default_rng(22).choice([-1.0, 1.0], (steps, 1))
    sim = gs.lyapunov_spectrum(cell, inputs, state0=np.full(n, 0.5), k=1, warmup=100)
    predicted = th.mean_field_lyapunov(gain, "tanh", sigma_in=sigma_in)
    # Finite-N bias is O(1/N) and negative: exactly -1/(2N) for linear (Newman); treating D_t
    # and W_t u as independent gives -(3 mu_2 / chi_1^2 - 1) / (4N) = -0.85/N (sigma_in = 0)
    # and -1.2/N (0.8); measured at N = 100 and 300 it is about -1.7/N for 0.8 (the
    # fluctuations of q_t add to it). We allow 3/N below the prediction, 0 above, plus Z block
    # standard errors either side.
    error = sim.exponents[0] - predicted
    assert -3 / n - Z * sim.stderr[0] < error < Z * sim.stderr[0]


def test_gradient_time_scale():
    assert th.gradient_time_scale(math.exp(-1 / 5)) == pytest.approx(5.0, rel=1e-14)
    assert th.gradient_time_scale(1.0) == math.inf
    assert th.gradient_time_scale(0.0) == 0.0
    # lambda_1 = (1/2) log chi_1 = -1 / (2 xi) in the ordered phase.
    chi = th.mean_field_chi1(0.9, "tanh", sigma_b=0.2)
    assert th.mean_field_lyapunov(0.9, "tanh", sigma_b=0.2) == pytest.approx(
        -1 / (2 * th.gradient_time_scale(chi)), rel=1e-14
    )
    with pytest.raises(ValueError, match=r"`chi1` must be a number in \[0, 1\].*; got 1.2\."):
        th.gradient_time_scale(1.2)


# ------------------------------------------------------------------------------------------
# 6. orthogonal and identity initialisation
def test_orthogonal_linear_singular_values_are_exactly_g_to_the_t():
    n, gain = 8, 0.9
    w = gs.orthogonal(n, gain, rng=31)
    times = [0, 10, 400]
    sim = gs.log_singular_values(gs.RNN(w, activation="linear"), 400, times=times)
    for row, t in zip(sim, times):
        np.testing.assert_allclose(row, th.orthogonal_linear_log_singular_values(gain, t, n), atol=EXACT)


def _spectral_variance(p):
    ev = np.linalg.eigvalsh(p @ p.T)
    return ev.var()


def test_dynamical_isometry_variance_linear_gaussian_and_orthogonal():
    rng = np.random.default_rng(32)
    n, depth, samples = 200, 4, 12
    slope = th.dynamical_isometry_variance_slope(th.mu2(1.0, "linear", 1.0), "gaussian")
    assert slope == 1.0
    vals = []
    for _ in range(samples):
        p = np.eye(n)
        for _ in range(depth):
            p = rng.standard_normal((n, n)) / math.sqrt(n) @ p
        vals.append(_spectral_variance(p))
    vals = np.array(vals)
    # Finite-N bias, from the exact recursion of (E (tr A)^2, E tr A^2) under A -> W A W^T:
    # x' = x + 2 y / N, y' = x / N + (1 + 1/N) y, starting from (N^2, N); the expected
    # spectral variance is y / N - x / N^2 (-> L as N -> infinity).
    x, y = float(n * n), float(n)
    for _ in range(depth):
        x, y = x + 2 * y / n, x / n + (1 + 1 / n) * y
    bias = abs(y / n - x / n**2 - depth * slope)
    assert abs(vals.mean() - depth * slope) < bias + Z * vals.std(ddof=1) / math.sqrt(samples)

    # Orthogonal: the product is orthogonal, spectrum {1}, variance 0 exactly.
    assert th.dynamical_isometry_variance_slope(1.0, "orthogonal") == 0.0
    p = np.eye(n)
    for _ in range(depth):
        p = gs.orthogonal(n, 1.0, rng=rng) @ p
    assert _spectral_variance(p) < 1e-24  # (eps)^2-level rounding of eigenvalues at 1


def test_mu2_is_at_least_chi1_squared():
    # Jensen: sigma_w^4 E phi'^4 >= (sigma_w^2 E phi'^2)^2, equality only for linear.
    for sigma_w, act in [(1.5, "tanh"), (4.0, "sigmoid"), (1.0, "relu")]:
        q = 0.7
        assert th.mu2(sigma_w, act, q) > th.mean_field_chi1(sigma_w, act, q=q) ** 2
    # Closed forms sigma^4 and (sigma^2)^2: equal to rounding.
    assert th.mu2(1.3, "linear", 0.7) == pytest.approx(th.mean_field_chi1(1.3, "linear") ** 2, rel=1e-14)


def test_irnn_singular_values_against_the_numeric_layer():
    n, steps = 8, 30
    cell = gs.make_cell("irnn", n, 2, rng=33)
    rng = np.random.default_rng(34)
    # Mostly positive drive, so that units die at different times.
    inputs = rng.standard_normal((steps, 2)) * 0.5 + np.array([0.8, 0.0])
    state0 = rng.uniform(0.5, 1.5, n)
    states = gs.unroll(cell, inputs, state0)
    # Pre-activations a_t = W h_{t-1} + W_ih x_t + b from the public weights (W = I, b = 0).
    pre = states[:-1] @ cell.weight_hh.T + inputs @ cell.weight_ih.T + cell.bias
    mask = pre > 0
    expected = th.irnn_singular_values(mask)
    assert 0 < expected.sum() < n  # both kinds of unit occur
    sim = gs.log_singular_values(cell, inputs, state0)[0]
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(sim, np.log(expected), atol=EXACT)
    assert np.array_equal(th.irnn_singular_values(np.zeros((0, 3), dtype=bool)), np.ones(3))
    assert np.array_equal(th.irnn_singular_values([[1, 0], [1, 1]]), [1.0, 0.0])


# ------------------------------------------------------------------------------------------
# 7. LSTM
@pytest.mark.parametrize("forget_bias", [-3.0, 0.0, 1.0, 5.0])
def test_lstm_zero_weight_cell_path(forget_bias):
    n, steps = 3, 50
    bias = gs.forget_gate_bias(n, forget_bias)
    cell = gs.LSTM(None, np.zeros((4 * n, n)), bias_hh=bias)
    sim = gs.log_singular_values(cell, steps, state0=np.full(2 * n, 0.3), path="cell")[0]
    expected = th.lstm_zero_weight_cell_product_log(forget_bias, steps)
    exact = steps * mpmath.log(1 / (1 + mpmath.exp(-forget_bias)))
    # softplus via logaddexp: ~eps relative per step.
    assert expected == pytest.approx(float(exact), rel=1e-13)
    np.testing.assert_allclose(sim, expected, rtol=EXACT)


@pytest.mark.parametrize("b", [-800.0, -40.0, 0.0, 1.0, 40.0, 700.0])
def test_lstm_formulas_are_stable_against_mpmath(b):
    log_sig = -mpmath.log1p(mpmath.exp(-mpmath.mpf(b)))
    assert th.lstm_zero_weight_cell_product_log(b, 7) == pytest.approx(float(7 * log_sig), rel=1e-13)
    assert th.memory_time_scale(b) == pytest.approx(float(-1 / log_sig), rel=1e-13)


def test_memory_time_scale_of_the_forget_bias_and_chrono():
    # b_f = 1 (Jozefowicz et al.): 1 / log(1 + e^-1) = 3.1922; checked to the 3 digits quoted.
    assert th.memory_time_scale(1.0) == pytest.approx(3.19, abs=0.005)
    assert th.memory_time_scale(800.0) == math.inf
    for t_max in (3.0, 100.0, 1e4):
        b = th.chrono_forget_bias(t_max)
        # sigmoid(log(T - 1)) = 1 - 1/T, so tau = 1 / log(T / (T - 1)) ~ T - 1/2.
        assert th.memory_time_scale(b) == pytest.approx(1 / math.log(t_max / (t_max - 1)), rel=1e-12)
        # The chrono initialiser draws forget biases up to this value.
        f = gs.chrono_bias(50, t_max, rng=41)[50:100]
        assert np.all(f <= b)
    with pytest.raises(ValueError, match=r"`t_max` must be a number > 1.*; got 1\.0\."):
        th.chrono_forget_bias(1.0)


# ------------------------------------------------------------------------------------------
# 8. GRU
@pytest.mark.parametrize("variant", ["torch", "reset_before", "chung"])
@pytest.mark.parametrize("update_bias", [-2.0, 0.5, 3.0])
def test_gru_zero_weight_direct_path(variant, update_bias):
    n, steps = 3, 40
    bias = np.zeros(3 * n)
    bias[n : 2 * n] = update_bias  # gates r, z, n
    cell = gs.GRU(None, np.zeros((3 * n, n)), bias_hh=bias, variant=variant)
    sim = gs.log_singular_values(cell, steps, state0=np.full(n, 0.2), path="direct")[0]
    expected = th.gru_zero_weight_direct_product_log(update_bias, steps, variant)
    np.testing.assert_allclose(sim, expected, rtol=EXACT)
    z = 1 / (1 + math.exp(-update_bias))
    # math.log of the rounded gate: ~eps / (1 - z) relative.
    assert expected == pytest.approx(steps * math.log(1 - z if variant == "chung" else z), rel=1e-12)


# ------------------------------------------------------------------------------------------
# 9. residual recurrence
def test_residual_tied_growth_against_the_qr_spectrum():
    n, alpha, steps = 8, 0.5, 2000
    w = gs.gaussian(n, 1.0, rng=51)
    cell = gs.ResidualRNN(w, activation="linear", alpha=alpha)
    sim = gs.lyapunov_spectrum(cell, steps, state0=np.zeros(n), k=1, warmup=200)
    # O(1/T) convergence of a tied exponent, as in test_linear_tied_exponents: 10 / T.
    assert sim.exponents[0] == pytest.approx(th.residual_tied_growth_from_weight(w, alpha), abs=10 / 1800)
    np.testing.assert_allclose(
        th.residual_tied_growth_from_weight(w, alpha),
        th.linear_tied_exponents(np.eye(n) + alpha * w)[0],
        atol=1e-12,  # the same eigenvalues, computed from W and from I + alpha W
    )


def test_residual_tied_rate_is_the_large_n_limit():
    n, alpha, gain = 400, 0.8, 1.2
    w = gs.gaussian(n, gain, rng=52)
    # Eigenvalues of I + alpha W fill the disc of centre 1, radius alpha g; its edge point
    # 1 + alpha g is reached to within the circular law's finite-N excess (~2% of alpha g at
    # N = 400, see test_circular_and_quarter_circle_laws_at_large_n): allow 6% of alpha g.
    expected = th.residual_tied_growth_rate(alpha, gain)
    assert th.residual_tied_growth_from_weight(w, alpha) == pytest.approx(
        expected, abs=0.06 * alpha * gain / (1 + alpha * gain)
    )
    # Tied grows faster than untied, for every alpha g != 0.
    for ag in (0.01, 0.5, 3.0):
        assert th.residual_tied_growth_rate(ag, 1.0) > th.residual_untied_growth_rate(ag, 1.0)


def test_residual_untied_mean_square_growth_is_exact():
    # E ||(I + alpha W) u||^2 = 1 + alpha^2 g^2 for a unit u, at any N.
    rng = np.random.default_rng(53)
    n, alpha, gain, samples = 5, 0.7, 1.3, 40000
    u = np.zeros(n)
    u[0] = 1.0
    w = rng.standard_normal((samples, n, n)) * gain / math.sqrt(n)
    sq = np.sum((u + alpha * (w @ u)) ** 2, axis=-1)
    expected = math.exp(2 * th.residual_untied_growth_rate(alpha, gain))
    assert abs(sq.mean() - expected) < Z * sq.std(ddof=1) / math.sqrt(samples)


def test_residual_untied_top_exponent_against_a_qr_simulation():
    n, alpha, gain, steps = 10, 1.0, 1.0, 6000
    cell = gs.untied(
        lambda r: gs.make_cell("residual", n, 0, activation="linear", gain=gain, alpha=alpha, rng=r),
        rng=54,
    )
    sim = gs.lyapunov_spectrum(cell, steps, state0=np.zeros(n), k=1)
    exact = th.residual_untied_top_exponent(alpha, gain, n)
    # The increments log||A_t u_t|| are iid (see the docstring), so the block standard error
    # is an honest one; at N = 10 the finite-N correction (-0.040) is ~15 of them, so the
    # simulation also tells the exact value from the N -> infinity one.
    assert abs(sim.exponents[0] - exact) < Z * sim.stderr[0]
    assert abs(sim.exponents[0] - th.residual_untied_growth_rate(alpha, gain)) > Z * sim.stderr[0]


def _mp_noncentral_top_exponent(alpha, gain, n, n_sd):
    """(1/2) E log ||u + c z||^2 = (1/2) [log(2 c^2) + E psi(N/2 + K)], K ~ Poisson(N / (2 s)),
    summed at 30 digits over mean +- n_sd standard deviations."""
    s = mpmath.mpf(alpha * gain) ** 2
    c2, mean = s / n, n / (2 * s)
    sd = float(mpmath.sqrt(mean))
    lo, hi = max(0, int(float(mean) - n_sd * sd - 30)), int(float(mean) + n_sd * sd + 30)
    log_mean = mpmath.log(mean)
    total = weights = mpmath.mpf(0)
    for k in range(lo, hi + 1):
        w = mpmath.exp(k * log_mean - mean - mpmath.loggamma(k + 1))
        total += w * mpmath.digamma(mpmath.mpf(n) / 2 + k)
        weights += w
    return (mpmath.log(2 * c2) + total / weights) / 2


@pytest.mark.parametrize(
    "alpha, gain, n",
    [(1.0, 1.0, 10), (0.3, 2.0, 3), (0.3, 1.0, 50), (0.04, 1.0, 400)],  # Poisson mean 5 .. 1.25e5
)
def test_residual_untied_top_exponent_against_mpmath(alpha, gain, n):
    # 12 sd of Poisson tail weigh < 1e-30; the library claims ~1e-15 absolute (it is exact
    # up to the digamma and survival-function rounding, or a series whose tail is < 1e-25).
    ref = _mp_noncentral_top_exponent(alpha, gain, n, 12)
    assert th.residual_untied_top_exponent(alpha, gain, n) == pytest.approx(float(ref), abs=1e-14)


def test_residual_untied_top_exponent_limits():
    alpha, gain = 0.9, 1.1
    s = (alpha * gain) ** 2
    for n in (1000, 10000):
        # 1/N expansion: (1/2) log(1 + s) - s (2 + s) / (2 N (1 + s)^2) + O(N^-2); the O(N^-2)
        # term's coefficient is O(1) here, so 5 / N^2.
        asymptotic = th.residual_untied_growth_rate(alpha, gain) - s * (2 + s) / (2 * n * (1 + s) ** 2)
        assert th.residual_untied_top_exponent(alpha, gain, n) == pytest.approx(asymptotic, abs=5 / n**2)
    # alpha g -> infinity: Newman's top exponent for N(0, (alpha g)^2 / N) matrices, up to a
    # relative O(1 / (alpha g)^2) = 1e-8 from the identity.
    n, big = 7, 1e4
    assert th.residual_untied_top_exponent(big, 1.0, n) == pytest.approx(
        th.gaussian_product_exponents(n, big)[0], abs=1e-7
    )
    assert th.residual_untied_top_exponent(0.0, 1.0, 5) == 0.0


# ------------------------------------------------------------------------------------------
# 10. latching
@pytest.mark.parametrize("w", [1.05, 1.5, 3.0])
def test_latch_against_mpmath_and_the_scalar_rnn(w):
    a_star = th.latch_fixed_point(w)
    ref = mpmath.findroot(lambda a: w * mpmath.tanh(a) - a, w)
    assert a_star == pytest.approx(float(ref), rel=1e-13)  # Brent to 4 eps
    # The cell h' = tanh(w h) is the same map in h = a / w coordinates; it settles at the latch.
    cell = gs.RNN(np.array([[w]]), activation="tanh")
    steps = 40
    states = gs.unroll(cell, 3000 if w < 1.1 else 300, state0=np.array([1.0]))
    # Contraction per step w sech^2(a*) <= 0.98 at w = 1.05: 3000 steps reach rounding.
    assert states[-1, 0] == pytest.approx(a_star / w, rel=1e-12)
    sim = gs.log_singular_values(cell, steps, state0=np.array([a_star / w]))[0, 0]
    expected = th.latch_gradient_log(w, steps)
    assert expected < 0  # the contraction per step is below 1: gradients vanish
    # The slope at h* differs from the exact latch slope by ~eps relative per step.
    assert sim == pytest.approx(expected, rel=1e-10)
    slope = float(w * (1 - mpmath.tanh(ref) ** 2))
    assert expected == pytest.approx(steps * math.log(slope), rel=1e-12)


def test_latch_is_finite_for_large_w():
    # tanh(a*) rounds to 1 at w = 1000; the log-slope is still exact: log w + log sech^2 w.
    expected = 5 * (math.log(1000.0) + float(mpmath.log(mpmath.sech(1000) ** 2)))
    assert th.latch_gradient_log(1000.0, 5) == pytest.approx(expected, rel=1e-14)
    with pytest.raises(ValueError, match=r"`w` must be a number > 1.*; got 1\.0\."):
        th.latch_fixed_point(1.0)


# ------------------------------------------------------------------------------------------
# 11. task baselines
def test_adding_problem_baseline_by_sampling():
    rng = np.random.default_rng(61)
    pairs = rng.uniform(0.0, 1.0, (100000, 2))
    errors = (pairs.sum(axis=1) - 1.0) ** 2  # predicting the mean, E[X_a + X_b] = 1
    err = errors.std(ddof=1) / math.sqrt(len(errors))
    assert abs(errors.mean() - th.adding_problem_baseline_mse()) < Z * err
    assert th.adding_problem_baseline_mse() == pytest.approx(1 / 6, rel=1e-15)


@pytest.mark.parametrize("T, n_symbols, n_copy", [(100, 8, 10), (1, 8, 10), (30, 3, 4)])
def test_copy_task_baseline_by_direct_cross_entropy(T, n_symbols, n_copy):
    rng = np.random.default_rng(62)
    blank = n_symbols  # symbols 0 .. n_symbols - 1, then blank
    length = T + 2 * n_copy
    seq = rng.integers(0, n_symbols, n_copy)
    target = np.concatenate([np.full(T + n_copy, blank), seq])
    assert len(target) == length
    # Memoryless predictor: blank with certainty, then uniform over the symbols.
    probs = np.zeros((length, n_symbols + 1))
    probs[: T + n_copy, blank] = 1.0
    probs[T + n_copy :, :n_symbols] = 1.0 / n_symbols
    ce = -np.mean(np.log(probs[np.arange(length), target]))
    assert th.copy_task_baseline(T, n_symbols, n_copy) == pytest.approx(ce, rel=1e-14)
    assert th.copy_task_baseline(100) == pytest.approx(10 * math.log(8) / 120, rel=1e-15)


# ------------------------------------------------------------------------------------------
# argument validation: every message names the argument, the expectation and the value
@pytest.mark.parametrize(
    "call, error, pattern",
    [
        (lambda: th.derivative_bound("gelu"), ValueError, r"`activation` must be one of 'tanh'.*; got 'gelu'\."),
        (lambda: th.pascanu_bound(-1.0, 1.0, 3), ValueError, r"`norm_w` must be a non-negative finite number; got -1\.0\."),
        (lambda: th.pascanu_bound(1.0, 0.0, 3), ValueError, r"`gamma` must be a positive finite number; got 0\.0\."),
        (lambda: th.pascanu_bound(1.0, 1.0, 2.5), TypeError, r"`T` must be an integer >= 0; got 2\.5\."),
        (lambda: th.pascanu_bound(1.0, 1.0, -1), ValueError, r"`T` must be an integer >= 0; got -1\."),
        (lambda: th.pascanu_regime(np.ones((2, 3)), "tanh"), ValueError, r"`weight` must be a non-empty square \(N, N\) matrix; got shape \(2, 3\)\."),
        (lambda: th.pascanu_regime(np.eye(2), "softsign"), ValueError, r"`activation` must be one of"),
        (lambda: th.clip_by_norm([1.0, np.nan], 1.0), ValueError, r"`g` must contain only finite values"),
        (lambda: th.clip_by_norm([1.0], 0.0), ValueError, r"`threshold` must be a positive finite number; got 0\.0\."),
        (lambda: th.gaussian_product_exponents(0), ValueError, r"`n` must be an integer >= 1; got 0\."),
        (lambda: th.gaussian_product_exponents(3, sigma=-1), ValueError, r"`sigma` must be a positive finite number; got -1\.0\."),
        (lambda: th.gaussian_product_stderr(3, 0), ValueError, r"`T` must be an integer >= 1; got 0\."),
        (lambda: th.circular_law_radius(-0.5), ValueError, r"`gain` must be a non-negative finite number; got -0\.5\."),
        (lambda: th.quarter_circle_norm("1"), TypeError, r"`gain` must be a non-negative finite number; got '1'\."),
        (lambda: th.linear_tied_exponents(np.ones(3)), ValueError, r"`weight` must be a 2-d array; got shape \(3,\)\."),
        (lambda: th.mean_field_q_star(0.0, "tanh"), ValueError, r"`sigma_w` must be a positive finite number; got 0\.0\."),
        (lambda: th.mean_field_q_star(1.0, "tanh", sigma_b=-0.1), ValueError, r"`sigma_b` must be a non-negative"),
        (lambda: th.mean_field_chi1(1.0, "tanh", sigma_in=math.inf), ValueError, r"`sigma_in` must be a non-negative finite number; got inf\."),
        (lambda: th.mean_field_chi1(1.0, "tanh", q=-1.0), ValueError, r"`q` must be a non-negative finite number; got -1\.0\."),
        (lambda: th.mean_field_q_star(1.0, "linear"), ValueError, r"`sigma_w` must not be 1 for activation 'linear'"),
        (lambda: th.mean_field_length_map(-1.0, 1.0, "tanh"), ValueError, r"`q` must be a non-negative"),
        (lambda: th.mu2(1.0, "elu", 1.0), ValueError, r"`activation` must be one of"),
        (lambda: th.gradient_time_scale(-0.1), ValueError, r"`chi1` must be a non-negative finite number; got -0\.1\."),
        (lambda: th.dynamical_isometry_variance_slope(1.0, "haar"), ValueError, r"`s1` must be one of 'gaussian', 'orthogonal'; got 'haar'\."),
        (lambda: th.dynamical_isometry_variance_slope(None, 0.0), TypeError, r"`mu2` must be a finite number; got None\."),
        (lambda: th.orthogonal_linear_log_singular_values(0.0, 3, 2), ValueError, r"`gain` must be a positive finite number; got 0\.0\."),
        (lambda: th.irnn_singular_values(np.ones(4, dtype=bool)), ValueError, r"`active_mask` must be a \(T, N\) array with N >= 1"),
        (lambda: th.irnn_singular_values([[0.5, 1.0]]), ValueError, r"`active_mask` must hold booleans \(or 0/1\); got values of dtype float64\."),
        (lambda: th.lstm_zero_weight_cell_product_log(math.nan, 3), ValueError, r"`forget_bias` must be a finite number; got nan\."),
        (lambda: th.memory_time_scale(True), TypeError, r"`forget_bias` must be a finite number; got True\."),
        (lambda: th.gru_zero_weight_direct_product_log(0.0, 3, "keras"), ValueError, r"`variant` must be one of 'torch', 'reset_before', 'chung'; got 'keras'\."),
        (lambda: th.residual_tied_growth_rate(math.inf, 1.0), ValueError, r"`alpha` must be a finite number; got inf\."),
        (lambda: th.residual_tied_growth_from_weight(np.eye(2), "a"), TypeError, r"`alpha` must be a finite number; got 'a'\."),
        (lambda: th.residual_untied_top_exponent(1.0, 1.0, 0), ValueError, r"`n` must be an integer >= 1; got 0\."),
        (lambda: th.latch_gradient_log(0.5, 3), ValueError, r"`w` must be a number > 1 \(a latch needs an unstable origin\); got 0\.5\."),
        (lambda: th.latch_gradient_log(2.0, -3), ValueError, r"`T` must be an integer >= 0; got -3\."),
        (lambda: th.copy_task_baseline(0), ValueError, r"`T` must be an integer >= 1; got 0\."),
        (lambda: th.copy_task_baseline(10, n_symbols=0), ValueError, r"`n_symbols` must be an integer >= 1; got 0\."),
        (lambda: th.chain_rule_product([[1.0, 2.0]]), ValueError, r"`slopes` must be a 1-d array; got shape \(1, 2\)\."),
    ],
)
def test_argument_errors(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()
