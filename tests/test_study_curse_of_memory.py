"""The curse_of_memory study's findings hold on its quick grid.

Checked from the CSV's raw columns (mc_mean, mc_se, n_draws, steps, lam, top_exponent,
log_jac_measured), with the closed forms recomputed here from gradsim.theory (not from the study's
``theory`` column or helpers).

Monte Carlo tolerance. A diagonal row's estimate is the mean of n = n_seq iid draws
Y_i = (d h_T / d theta)_i^2; d h_T is linear in the Gaussian inputs, so Y = sigma^2 chi^2_1 and the
mean's relative s.e. is sqrt(2 / n) (3.2 % at n = 2000). Its standard error is estimated from the
sample (std with ddof = 1 over sqrt(n)): chi^2_1 has kurtosis 15, so the sample s.e. is itself off
by about sqrt(14 / (4 n)) = 4 % relative, and the mean's skewness sqrt(8 / n) = 0.06 leaves the
normal approximation good at 4 s.e. We allow Z = 4 s.e.: a false alarm about once in 16 000 per
check (24 checks: 0.15 % per run), and with fixed seeds the test is deterministic. The horizon
T = ceil(12 / (1 - lambda)) leaves a transient below 1e-8 relative in E[Y] (k^2 lambda^(2k) summed
from k = T), far below the s.e.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
from study_helpers import STUDIES, run_quick
from threadpoolctl import threadpool_limits

from gradsim import theory as th

Z = 4.0
EPS = np.finfo(float).eps
DIAGONAL = ("plain", "normalized", "exp", "exp_normalized")


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    with threadpool_limits(1):
        frame, summary = run_quick("curse_of_memory", tmp_path_factory.mktemp("curse_of_memory"))
    spec = importlib.util.spec_from_file_location("curse_of_memory_grid",
                                                  STUDIES / "curse_of_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return frame, summary, module.QUICK_GRID


def closed_form(kind, delta, rho):
    lam = 1.0 - delta
    normalized = kind.endswith("normalized")
    if kind.startswith("exp"):
        return th.exp_sensitivity_second_moment(math.log(-math.log(lam)), rho, normalized=normalized)
    return th.linear_sensitivity_second_moment(lam, rho, normalized=normalized)


def test_grid_is_complete(quick):
    frame, _, grid = quick
    n = len(grid["parametrization"]) * len(grid["one_minus_lambda"]) * len(grid["rho"])
    assert len(frame) == n
    diag = frame[frame.parametrization.isin(DIAGONAL)]
    assert (diag.n_draws == grid["n_seq"][0]).all()
    assert (diag.steps == np.ceil(12.0 / diag.one_minus_lambda)).all()


def test_monte_carlo_matches_closed_form(quick):
    frame, summary, _ = quick
    diag = frame[frame.parametrization.isin(DIAGONAL)]
    assert len(diag) == 24
    for _, row in diag.iterrows():
        want = closed_form(row.parametrization, row.one_minus_lambda, row.rho)
        assert abs(row.mc_mean - want) <= Z * row.mc_se, (row.parametrization,
                                                          row.one_minus_lambda, row.rho,
                                                          (row.mc_mean - want) / row.mc_se)
        # The s.e. is the chi^2_1 one, sqrt(2 / n) relative, to its sampling error (~4 %
        # relative, see the module docstring; 20 % is 5 of those): the draws are what we think.
        assert row.mc_se / row.mc_mean == pytest.approx(math.sqrt(2.0 / row.n_draws), rel=0.2)
    assert summary["Monte Carlo within 4 s.e. of the closed form (diagonal rows)"] == 1.0


def test_ordering_at_the_longest_memory(quick):
    frame, _, _ = quick
    delta = frame.one_minus_lambda.min()
    for rho, part in frame[frame.one_minus_lambda == delta].groupby("rho"):
        rows = {r.parametrization: r for _, r in part.iterrows()}
        plain, norm, expn = (rows[k] for k in ("plain", "normalized", "exp_normalized"))
        # Exact theory: at 1 - lambda = 0.03 plain / normalized = 33 and normalized /
        # exp_normalized ~ 1100 (rho = 0), while each estimate is within 3 % (1 s.e.) of its
        # closed form; so the ordering with 4 s.e. on each side has a margin of a factor > 25,
        # hundreds of standard errors: it fails only if the sensitivities are wrong.
        exact = [closed_form(k, delta, rho) for k in ("plain", "normalized", "exp_normalized")]
        assert exact[0] > 10 * exact[1] > 100 * exact[2]
        assert plain.mc_mean - Z * plain.mc_se > norm.mc_mean + Z * norm.mc_se
        assert norm.mc_mean - Z * norm.mc_se > expn.mc_mean + Z * expn.mc_se


def test_exp_normalized_stays_bounded(quick):
    frame, _, _ = quick
    rows = frame[frame.parametrization == "exp_normalized"]
    assert len(rows) == 6
    for _, row in rows.iterrows():
        # (u / (2 sinh u))^2 (1 + rho lambda)/(1 - rho lambda) < (1 + rho)/(4 (1 - rho)), which
        # is 1/4 for iid inputs: the exact value is below, at every memory (u = e^nu > 0).
        bound = (1 + row.rho) / (4 * (1 - row.rho))
        want = closed_form("exp_normalized", row.one_minus_lambda, row.rho)
        assert want < bound
        # The estimate cannot separate 0.2499 from 1/4 (3 % s.e.); it is below the bound up to
        # 4 s.e., and far below what a diverging moment would give (the plain exp row, 8 at
        # 0.03, is 30 times larger).
        assert row.mc_mean - Z * row.mc_se < bound
    iid = rows[rows.rho == 0]
    assert (iid.mc_mean - Z * iid.mc_se < 0.25).all()


def _slope(x, y, se):
    lx = np.log(x)
    a = (lx - lx.mean()) / np.sum((lx - lx.mean()) ** 2)
    return float(a @ np.log(y)), float(np.sqrt(np.sum(a**2 * (se / y) ** 2)))


def test_divergence_slopes(quick):
    frame, summary, _ = quick
    for (kind, rho), rows in frame[frame.parametrization.isin(DIAGONAL)].groupby(
            ["parametrization", "rho"]):
        rows = rows.sort_values("one_minus_lambda").iloc[:3]
        x = rows.one_minus_lambda.to_numpy()
        measured, se = _slope(x, rows.mc_mean.to_numpy(), rows.mc_se.to_numpy())
        exact, _ = _slope(x, np.array([closed_form(kind, d, rho) for d in x]), np.zeros(3))
        # Independent points: the delta-method s.e. (docstring) of an OLS slope.
        assert abs(measured - exact) <= Z * se, (kind, rho, measured, exact, se)
        limit = th.sensitivity_divergence(rho, normalized=kind.endswith("normalized"),
                                          parametrization="exp" if kind.startswith("exp")
                                          else "lambda").slope
        # At 1 - lambda in {0.03, 0.1, 0.3} the secant is within O(1 - lambda) of its limit
        # (0.16 at most here, exp_normalized at rho = 0.5)...
        assert abs(exact - limit) < 0.2
        # ...and the measurement separates neighbouring integer slopes.
        assert abs(measured - (limit - 1)) > Z * se and abs(measured - (limit + 1)) > Z * se
        key = (f"slope d log E / d log(1 - lambda), 1 - lambda in {{0.03, 0.1, 0.3}}, "
               f"{kind}, rho = {rho:g}")
        assert summary[key] == pytest.approx(measured, rel=1e-9)


def test_memory_gradient_never_explodes(quick):
    frame, summary, _ = quick
    diag = frame[frame.parametrization.isin(DIAGONAL)]
    exact = diag.steps * np.log(diag.lam)
    # d h_T / d h_0 = lambda^T: the log-SVD of the product of T scalars lambda errs by ~T eps in
    # the log; the CSV's 12 significant digits add 1e-12 relative of |T log lambda| (~12-14).
    tol = 1e-11 * np.abs(exact) + 10 * EPS * diag.steps
    assert np.all(np.abs(diag.log_jac_measured - exact) <= tol)
    assert (frame.log_jac_measured < 0).all()
    # ... while the sensitivity at the same T is large: E[(dh/dlambda)^2] > 1000 plain, 0.03.
    plain = diag[(diag.parametrization == "plain") & (diag.one_minus_lambda == 0.03)]
    assert (plain.mc_mean > 1000).all()


def test_dense_rnn_at_matched_memory(quick):
    frame, summary, grid = quick
    dense = frame[frame.parametrization == "dense"].sort_values("one_minus_lambda")
    assert len(dense) == 6
    sigma, n = 1e-3, grid["n_hidden"][0]
    for rho, rows in dense.groupby("rho"):
        g = 1 - rows.one_minus_lambda.to_numpy()
        eff = -np.expm1(rows.top_exponent.to_numpy())
        # tanh' < 1 only shortens the memory: 1 - lambda_eff >= 1 - g, by about E[h^2] <=
        # sigma^2 (1 + rho)/((1 - rho)(1 - g^2)) (<= 5e-5 here); 4x that allows the orthogonal
        # network's finite-T exponent (block s.e. ~3e-6).
        bound = sigma**2 * (1 + rho) / ((1 - rho) * (1 - g**2))
        assert np.all(eff - (1 - g) >= -4 * rows.top_exponent_se.to_numpy())
        assert np.all(eff - (1 - g) <= 4 * bound + 4 * rows.top_exponent_se.to_numpy())
        # iid inputs: the linear network's exact sensitivity per unit is the plain scalar's
        # (1 + g^2)/(1 - g^2)^3 (tr Q^0 = N, no lag terms), to the transient (< 1e-7).
        if rho == 0:
            want = (1 + g**2) / (1 - g**2) ** 3
            np.testing.assert_allclose(rows.theory, want, rtol=1e-7)
        # Monte Carlo against the linear theory: 4 s.e. plus the tanh's shift of the memory,
        # which moves a (1 - lambda)^-3 moment by ((1 - g)/(1 - lambda_eff))^3 - 1 (< 1 %).
        shift = np.abs(((1 - g) / eff) ** 3 - 1) * rows.theory.to_numpy()
        assert np.all(np.abs(rows.mc_mean - rows.theory) <= Z * rows.mc_se + shift)
        # Slope against log(1 - g): the linear network's exact slope, up to 4 s.e. and the tanh's
        # memory shift, whose factor ((1 - g)/(1 - lambda_eff))^3 has a slope of its own
        # (~7e-4 here, taken from the measured exponents).
        measured, se = _slope(1 - g, rows.mc_mean.to_numpy(), rows.mc_se.to_numpy())
        linear, _ = _slope(1 - g, rows.theory.to_numpy(), np.zeros(len(g)))
        tanh_shift, _ = _slope(1 - g, ((1 - g) / eff) ** 3, np.zeros(len(g)))
        assert abs(measured - linear) <= Z * se + abs(tanh_shift), (rho, measured, linear, se)
        assert abs(measured + 3) < 0.2
        # At matched memory (against log(1 - lambda_eff)) the dense gain sensitivity grows like
        # the plain diagonal's measured slope at the same rho, up to 4 combined s.e. and the exact
        # difference the rotation makes (it decorrelates the AR(1) lags: 0 at rho = 0, 0.05 at
        # rho = 0.5 from the two closed forms' slopes).
        plain = frame[(frame.parametrization == "plain") & (frame.rho == rho)].sort_values(
            "one_minus_lambda")
        p_slope, p_se = _slope(plain.one_minus_lambda.to_numpy(), plain.mc_mean.to_numpy(),
                               plain.mc_se.to_numpy())
        p_exact, _ = _slope(plain.one_minus_lambda.to_numpy(),
                            np.array([th.linear_sensitivity_second_moment(1 - d, rho)
                                      for d in plain.one_minus_lambda]), np.zeros(len(plain)))
        matched, m_se = _slope(eff, rows.mc_mean.to_numpy(), rows.mc_se.to_numpy())
        assert abs(matched - p_slope) <= Z * math.hypot(m_se, p_se) + abs(linear - p_exact) \
            + abs(tanh_shift), (rho, matched, p_slope)
        assert summary[f"dense slope - plain diagonal slope, rho = {rho:g}"] == pytest.approx(
            matched - p_slope, rel=1e-9)
