"""Tests of the rate-network cells (issue 14): LeakyRNN and RateRNN (Euler and RK4).

References, each independent of the code under test:

* central finite differences for the state Jacobians, the VJPs and the parameter VJPs;
* an RK4 step written out by hand here, scipy's DOP853 solution of the ODE (for the order of
  convergence) and the matrix polynomial T4(dt (W - I)) for a linear network;
* the sympy derivation of gradsim.symbolic (the RK4 step differentiated symbolically);
* exact identities: the Elman RNN (LeakyRNN with alpha = 1), the map x' = W phi(x) + W_in u + b
  (RateRNN, Euler, dt = 1) and its conjugacy with the tanh RNN h = phi(x), the sum of the
  exponents against the mean log|det J|, and the flow's trace -N per unit time without
  self-coupling.

Finite-difference tolerance: as in tests/test_cells.py. A central difference with step
h = 1e-5 has truncation error h^2 |f'''| / 6 and rounding error about eps |f| / h; every
quantity here is O(1) (states, weights, dt <= 1.5), so both are ~1e-10 relative to ||J||, and
we demand 1e-7 ||J|| plus an absolute floor of 100 eps max|f| / h per entry. A missing stage, a
wrong weight in the RK4 combination, a transposed diag(phi') or a missing identity term is an
O(dt) relative error, 1e-2 or more for the dt drawn here.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.integrate import solve_ivp
from scipy.special import expit

import gradsim as gs
from gradsim import symbolic as S
from gradsim.cells import LeakyRNN, RateRNN
from gradsim.training.backprop import Adam, bptt, init_model, train_model
from gradsim.training.tasks import adding_problem

FD_STEP = 1e-5
FD_RTOL = 1e-7
# The VJP and v @ J are the same sums of products in another order: a few ulps of ||v|| ||J||.
VJP_RTOL = 1e-13
# A re-implementation evaluates the same floating-point expressions in another order (BLAS
# sums vs numpy's @ on other shapes): a few ulps of O(1) numbers.
REF_TOL = 1e-13
# Ensembles: a member does the same operations as the lone network, stacked (see
# tests/test_ensembles.py); only the order of BLAS sums may differ.
ENS_RTOL = 1e-12
# Symbolic (lambdified) vs numeric Jacobians: see tests/test_symbolic.py (SYM_TOL).
SYM_TOL = 1e-12

SETTINGS = settings(max_examples=25, deadline=None, database=None)
seeds = st.integers(0, 2**32 - 1)

PHI = {"tanh": np.tanh, "relu": lambda a: np.maximum(a, 0.0), "linear": lambda a: a, "sigmoid": expit}
KINDS = ("leaky", "leaky-per-unit", "euler", "rk4")


# ------------------------------------------------------------------------------------------
# helpers
def build(kind, seed, n, n_in, activation="tanh", gain=1.5, rate=0.5, batch=()):
    """A cell with O(1) random weights and biases; ``rate`` is alpha (leaky) or dt (rate)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(batch + (n, n)) * gain / math.sqrt(n)
    w_in = rng.standard_normal(batch + (n, n_in))
    b_hh, b_ih = 0.5 * rng.standard_normal((2,) + batch + (n,))
    if kind == "leaky":
        return LeakyRNN(w, w_in, b_hh, b_ih, alpha=rate, activation=activation)
    if kind == "leaky-per-unit":
        alpha = rng.uniform(0.05, 1.0, n)
        return LeakyRNN(w, w_in, b_hh, b_ih, alpha=alpha, activation=activation)
    return RateRNN(w, w_in, b_hh, b_ih, dt=rate, integrator=kind, activation=activation)


def reference_rk4(cell, state, u):
    """One classical RK4 step of dx/dt = -x + W phi(x) + W_in u + b, written out here; also
    returns the four stage points."""
    phi = PHI[cell.activation]
    w, c = cell.weight_hh, cell.weight_ih @ u + cell.bias_hh + cell.bias_ih
    dt = cell.dt

    def f(y):
        return -y + w @ phi(y) + c

    y1 = state
    k1 = f(y1)
    y2 = state + dt / 2 * k1
    k2 = f(y2)
    y3 = state + dt / 2 * k2
    k3 = f(y3)
    y4 = state + dt * k3
    k4 = f(y4)
    return state + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4), (y1, y2, y3, y4)


def kinks(cell, state, u):
    """The points where phi is evaluated in one step (for ReLU: keep them off the kink at 0)."""
    if isinstance(cell, LeakyRNN):
        return [cell.weight_hh @ state + cell.weight_ih @ u + cell.bias_hh + cell.bias_ih]
    if cell.integrator == "euler":
        return [state]
    return list(reference_rk4(cell, state, u)[1])


def fd_jacobian(f, s, h=FD_STEP):
    """Central-difference Jacobian of f at s and the Frobenius bound on its rounding error."""
    cols, f_max = [], 0.0
    for j in range(s.size):
        e = np.zeros_like(s)
        e[j] = h
        plus, minus = f(s + e), f(s - e)
        f_max = max(f_max, np.max(np.abs(plus)), np.max(np.abs(minus)))
        cols.append((plus - minus) / (2 * h))
    jac = np.stack(cols, axis=-1)
    return jac, 100 * np.finfo(float).eps * f_max / h * math.sqrt(jac.size)


def assert_rel_close(approx, exact, rtol, floor=0.0):
    err = np.linalg.norm(np.asarray(approx) - np.asarray(exact))
    scale = np.linalg.norm(exact)
    assert err <= rtol * scale + floor, f"error {err:.3e} > {rtol} * {scale:.3e} + {floor:.3e}"


def assert_same(actual, expected, rtol=ENS_RTOL):
    """Equal to rounding relative to the largest |value| of the reference."""
    expected = np.asarray(expected)
    scale = max(np.max(np.abs(expected)), 1e-300)
    assert np.max(np.abs(np.asarray(actual) - expected)) <= rtol * scale


cases = st.tuples(
    st.sampled_from(KINDS),
    st.sampled_from(tuple(PHI)),
    seeds,
    st.integers(1, 5),  # N
    st.integers(0, 3),  # I
    st.floats(0.05, 1.0),  # alpha, or dt (RK4 and Euler)
)


def random_point(cell, seed):
    rng = np.random.default_rng(seed ^ 0x5EED)
    # Rates (leaky) lie in the range of phi; currents (rate) are O(1) numbers of either sign.
    state = rng.standard_normal(cell.n_hidden)
    if isinstance(cell, LeakyRNN):
        state = np.tanh(state)
    return state, rng.standard_normal(cell.n_input)


# ------------------------------------------------------------------------------------------
# 1. Jacobians, VJPs and parameter VJPs against finite differences
@SETTINGS
@given(case=cases)
def test_jacobian_matches_finite_differences(case):
    kind, act, seed, n, n_in, rate = case
    cell = build(kind, seed, n, n_in, act, rate=rate)
    state, u = random_point(cell, seed)
    if act == "relu":
        assume(min(np.min(np.abs(p)) for p in kinks(cell, state, u)) > 1e-3)
    jac = cell.jacobian(state, u)
    fd, floor = fd_jacobian(lambda s: cell.step(s, u), state)
    assert jac.shape == (n, n)
    assert_rel_close(jac, fd, FD_RTOL, floor)


@SETTINGS
@given(case=cases)
def test_vjp_is_cotangent_times_jacobian_and_operator_is_linear(case):
    kind, act, seed, n, n_in, rate = case
    cell = build(kind, seed, n, n_in, act, rate=rate)
    state, u = random_point(cell, seed)
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(n)
    jac = cell.jacobian(state, u)
    assert_rel_close(cell.vjp(state, u, v), v @ jac, VJP_RTOL, 1e-300)
    # The operator the numeric layer multiplies frames by: linear, equal to the dense J, and
    # it leaves its argument alone.
    m = rng.standard_normal((n, 3))
    kept = m.copy()
    new, op = cell._jacobian_operator(state, u, "full")
    assert_rel_close(op @ m, jac @ m, VJP_RTOL, 1e-300)
    np.testing.assert_array_equal(m, kept)
    np.testing.assert_array_equal(new, cell.step(state, u))


@settings(max_examples=15, deadline=None, database=None)
@given(case=cases)
def test_param_vjp_matches_finite_differences(case):
    kind, act, seed, n, n_in, rate = case
    n, n_in = min(n, 3), min(n_in, 2)
    cell = build(kind, seed, n, n_in, act, rate=rate)
    state, u = random_point(cell, seed)
    if act == "relu":
        assume(min(np.min(np.abs(p)) for p in kinks(cell, state, u)) > 1e-3)
    v = np.random.default_rng(seed).standard_normal(n)
    grads = cell.param_vjp(state, u, v)
    assert set(grads) == set(cell.parameter_names)
    for name in cell.parameter_names:
        theta = np.array(getattr(cell, name))
        assert grads[name].shape == theta.shape

        def loss(flat, name=name, shape=theta.shape):
            other = dataclasses.replace(cell, **{name: flat.reshape(shape)})
            return np.array([v @ other.step(state, u)])

        if theta.size == 0:
            continue
        fd, floor = fd_jacobian(loss, theta.ravel())
        assert_rel_close(grads[name].ravel(), fd[0], FD_RTOL, floor)


# ------------------------------------------------------------------------------------------
# 2. the RK4 step: by hand, its order, its exact Jacobian (symbolic and polynomial)
@SETTINGS
@given(case=cases)
def test_rk4_step_equals_hand_written_rk4(case):
    _, act, seed, n, n_in, dt = case
    cell = build("rk4", seed, n, n_in, act, rate=dt)
    state, u = random_point(cell, seed)
    want, _ = reference_rk4(cell, state, u)
    assert_rel_close(cell.step(state, u), want, REF_TOL, 1e-300)
    # batched states and inputs: row by row the same step
    rng = np.random.default_rng(seed)
    states, us = rng.standard_normal((4, n)), rng.standard_normal((4, n_in))
    got = cell.step(states, us)
    for i in range(4):
        assert_rel_close(got[i], reference_rk4(cell, states[i], us[i])[0], REF_TOL, 1e-300)


def test_rk4_is_fourth_order_against_an_accurate_ode_solution():
    # Global error of RK4 over a fixed time is C dt^4: halving dt divides it by 16. DOP853 at
    # rtol 1e-13 is accurate to ~1e-12, far below the RK4 errors compared (>= 1e-9 here).
    # A scheme of order 3 or 5 would give a ratio near 8 or 32; Euler, 2.
    cell0 = build("rk4", 3, 4, 2, "tanh", gain=2.0, rate=0.1)
    u = np.array([0.3, -0.7])
    x0 = np.array([0.5, -1.0, 0.2, 0.8])
    drive = cell0.weight_ih @ u + cell0.bias
    exact = solve_ivp(lambda t, x: -x + cell0.weight_hh @ np.tanh(x) + drive, (0.0, 2.0), x0,
                      method="DOP853", rtol=1e-13, atol=1e-13).y[:, -1]
    errors = []
    for steps in (10, 20, 40):
        cell = dataclasses.replace(cell0, dt=2.0 / steps)
        errors.append(np.linalg.norm(gs.unroll(cell, np.tile(u, (steps, 1)), x0)[-1] - exact))
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    assert all(12.0 < r < 20.0 for r in ratios), (errors, ratios)


@pytest.mark.parametrize("n, m", [(2, 1), (3, 0)])
def test_rk4_jacobian_equals_symbolic_derivation(n, m):
    # The sympy layer writes the four stages out and differentiates the whole step; its
    # lambdified Jacobian must equal the numeric chain rule (SYM_TOL: see top).
    for dt, act in ((0.3, "tanh"), (1.0, "sigmoid")):
        sym = S.symbolic_cell("rate", n, m, activation=act, integrator="rk4")
        jac_fn, step_fn = sym.lambdify_jacobian(), sym.lambdify_update()
        for seed in range(2):
            cell = build("rk4", seed, n, m, act, gain=2.0, rate=dt)
            state, u = random_point(cell, seed)
            np.testing.assert_allclose(jac_fn(state, u, cell), cell.jacobian(state, u),
                                       rtol=SYM_TOL, atol=SYM_TOL)
            np.testing.assert_allclose(step_fn(state, u, cell), cell.step(state, u),
                                       rtol=SYM_TOL, atol=SYM_TOL)


@pytest.mark.parametrize("kind", ["leaky", "euler"])
def test_leaky_and_euler_jacobians_equal_symbolic_derivation(kind):
    sym_kind = "leaky" if kind == "leaky" else "rate"
    for act in ("tanh", "relu", "sigmoid", "linear"):
        sym = S.symbolic_cell(sym_kind, 3, 2, activation=act)  # alpha / dt left as symbols
        for seed in range(2):
            cell = build(kind, seed, 3, 2, act, rate=0.35)
            state, u = random_point(cell, seed)
            np.testing.assert_allclose(sym.lambdify_jacobian()(state, u, cell), cell.jacobian(state, u),
                                       rtol=SYM_TOL, atol=SYM_TOL)
            np.testing.assert_allclose(sym.lambdify_update()(state, u, cell), cell.step(state, u),
                                       rtol=SYM_TOL, atol=SYM_TOL)


def test_symbolic_fixed_dt_and_matrix_forms():
    sym = S.symbolic_cell("rate", 2, 1, integrator="rk4", dt=0.25)
    assert sym.dt == sp_rational(1, 4) and sym.integrator == "rk4"
    cell = build("rk4", 0, 2, 1, rate=0.25)
    state, u = random_point(cell, 0)
    np.testing.assert_allclose(sym.lambdify_jacobian()(state, u, cell), cell.jacobian(state, u),
                               rtol=SYM_TOL, atol=SYM_TOL)
    with pytest.raises(ValueError, match=r"`params` must have dt = 1/4 \(the symbolic cell's\); got 0\.5\."):
        sym.lambdify_jacobian()(state, u, dataclasses.replace(cell, dt=0.5))
    euler = build("euler", 0, 2, 1, rate=0.25)
    with pytest.raises(ValueError, match=r"`params` must be a numeric RateRNN\(.*integrator='rk4'\).*; "
                                         r"got RateRNN\(.*integrator='euler'\)\."):
        sym.lambdify_jacobian()(state, u, euler)
    # The general-N forms read as the docstrings say, and equal the explicit derivation.
    leaky = "\n".join(S.matrix_form_jacobian("leaky").latex())
    assert r"\left(1 - \alpha\right) I + \alpha \operatorname{diag}\left(\phi'\left(a\right)\right) W_{hh}" in leaky
    rate = "\n".join(S.matrix_form_jacobian("rate").latex())
    assert r"dt W_{hh} \operatorname{diag}\left(\phi'\left(h\right)\right) + \left(1 - dt\right) I" in rate
    for kind in ("leaky", "rate"):
        form = S.matrix_form_jacobian(kind, "tanh", n_hidden=2, n_input=1)
        diff = form.as_explicit() - S.symbolic_cell(kind, 2, 1).jacobian()
        assert all(e.expand() == 0 for e in diff)


def sp_rational(p, q):
    import sympy

    return sympy.Rational(p, q)


def test_linear_rk4_jacobian_is_the_taylor_polynomial_of_the_flow():
    # With phi linear, f(x) = (W - I) x + c and one RK4 step is x' = T4(dt A) x + ..., with
    # A = W - I and T4(z) = 1 + z + z^2/2 + z^3/6 + z^4/24 (RK4 is exact to order 4 for linear
    # ODEs). The polynomial is evaluated here by plain matrix products.
    cell = build("rk4", 5, 5, 2, "linear", gain=1.2, rate=0.4)
    a = cell.dt * (cell.weight_hh - np.eye(5))
    t4 = np.eye(5) + a + a @ a / 2 + a @ a @ a / 6 + a @ a @ a @ a / 24
    state, u = random_point(cell, 1)
    assert_rel_close(cell.jacobian(state, u), t4, REF_TOL)
    # and its exponents are log|T4(dt (mu - 1))| / step, mu the eigenvalues of W (the trivial
    # fixed point): a constant product's QR exponents converge as O(1/T) (the start frame's
    # overlap with the eigenvectors, |log| <= log cond(V) ~ 1 here), hence 0.05 at T = 400.
    mu = np.linalg.eigvals(cell.weight_hh)
    z = cell.dt * (mu - 1.0)
    want = np.sort(np.log(np.abs(1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24)))[::-1]
    got = gs.lyapunov_spectrum(cell, 400, state0=state).exponents
    np.testing.assert_allclose(got, want, atol=0.05)


# ------------------------------------------------------------------------------------------
# 3. exact special cases
@pytest.mark.parametrize("act", list(PHI))
def test_leaky_with_alpha_one_is_the_elman_rnn(act):
    # (1 - 1) h + 1 * phi(a) is phi(a) exactly (x * 1 = x, 0 * x = 0, y + 0 = y in IEEE), so
    # every result is bit for bit the RNN's.
    leaky = build("leaky", 7, 4, 2, act, rate=1.0)
    rnn = gs.RNN(leaky.weight_hh, leaky.weight_ih, leaky.bias_hh, leaky.bias_ih, activation=act)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 2))
    s0 = np.tanh(rng.standard_normal(4))
    v = rng.standard_normal(4)
    for method in ("step", "jacobian"):
        np.testing.assert_array_equal(getattr(leaky, method)(s0, x[0]), getattr(rnn, method)(s0, x[0]))
    np.testing.assert_array_equal(leaky.vjp(s0, x[0], v), rnn.vjp(s0, x[0], v))
    for name, g in rnn.param_vjp(s0, x[0], v).items():
        np.testing.assert_array_equal(leaky.param_vjp(s0, x[0], v)[name], g)
    np.testing.assert_array_equal(gs.unroll(leaky, x, s0), gs.unroll(rnn, x, s0))
    np.testing.assert_array_equal(gs.lyapunov_spectrum(leaky, x, s0).exponents,
                                  gs.lyapunov_spectrum(rnn, x, s0).exponents)


def test_leaky_and_rate_without_coupling_decay_at_the_exact_rates():
    # W = 0: the Jacobians are constant, (1 - alpha) I, (1 - dt) I and T4(-dt) I, so every
    # exponent is exactly log(1 - alpha), log|1 - dt| and log T4(-dt), up to rounding.
    zero = np.zeros((3, 3))
    alpha = np.array([0.1, 0.5, 0.9])
    leaky = LeakyRNN(zero, alpha=alpha)
    np.testing.assert_allclose(gs.lyapunov_spectrum(leaky, 50).exponents, np.log(1 - alpha), rtol=1e-13)
    euler = RateRNN(zero, dt=0.3)
    np.testing.assert_allclose(gs.lyapunov_spectrum(euler, 50).exponents, np.full(3, np.log(0.7)), rtol=1e-13)
    rk4 = RateRNN(zero, dt=0.3, integrator="rk4")
    z = -0.3
    t4 = 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24
    np.testing.assert_allclose(gs.lyapunov_spectrum(rk4, 50).exponents, np.full(3, np.log(t4)), rtol=1e-13)
    # per unit time, the flow's -1 to O(dt^4): log T4(-dt) / dt = -1 - dt^4 / 120 + O(dt^5)
    assert abs(math.log(t4) / 0.3 + 1) < 0.3**4 / 120 * 1.5


def test_euler_with_dt_one_is_the_rate_map():
    cell = build("euler", 11, 5, 2, "tanh", gain=2.0, rate=1.0)
    rng = np.random.default_rng(1)
    x, u = rng.standard_normal((8, 5)), rng.standard_normal((8, 2))
    want = np.tanh(x) @ cell.weight_hh.T + u @ cell.weight_ih.T + cell.bias_hh + cell.bias_ih
    assert_rel_close(cell.step(x, u), want, REF_TOL)
    np.testing.assert_allclose(cell.jacobian(x[0], u[0]), cell.weight_hh * (1 - np.tanh(x[0]) ** 2),
                               rtol=1e-15, atol=0)


def test_euler_map_is_conjugate_to_the_tanh_rnn():
    # x_{t+1} = W tanh(x_t) + c_t and h_{t+1} = tanh(W h_t + c_t) with h_0 = tanh(x_0) give
    # h_t = tanh(x_t) (the change of variables x = W h + c, a conjugacy when W is invertible).
    # The tangent maps are J^x_t = W D_t and J^h_t = D_{t+1} W, with D_t = diag(tanh'(x_t)),
    # so the products satisfy P^h_T = D_T P^x_T D_0^{-1}. The QR exponents from the identity
    # frame are differences of log-volumes of the first k columns; D_0^{-1} scales those
    # columns and D_T changes a k-volume by a factor in [min d_T^k, max d_T^k], so each partial
    # sum of exponents moves by at most k (L_T + L_0) / T, L_t = max_i |log d_t,i|, and each
    # exponent by (2 N - 1) (L_T + L_0) / T (sorting does not increase a max-norm distance).
    # The sum of all exponents moves by exactly (sum log d_T - sum log d_0) / T.
    # The gain keeps the driven network non-chaotic, so that the two float64 trajectories stay
    # together (checked), and the bound applies to the computed runs; a small x_0 keeps L_0
    # near 0. Here the bound is ~0.012 (observed 0.0013) against gaps of >= 0.3 between
    # exponents.
    n, T = 5, 6000
    rng = np.random.default_rng(4)
    w = rng.standard_normal((n, n)) * 0.9 / math.sqrt(n)
    w_in, b = rng.standard_normal((n, 1)), 0.3 * rng.standard_normal(n)
    rate = RateRNN(w, w_in, b, dt=1.0)
    rnn = gs.RNN(w, w_in, b)
    u = rng.standard_normal((T, 1))
    x0 = 0.1 * rng.standard_normal(n)
    xs = gs.unroll(rate, u, x0)
    hs = gs.unroll(rnn, u, np.tanh(x0))
    np.testing.assert_allclose(hs, np.tanh(xs), rtol=0, atol=1e-13)
    lam_x = gs.lyapunov_spectrum(rate, u, x0).exponents
    lam_h = gs.lyapunov_spectrum(rnn, u, np.tanh(x0)).exponents
    log_d0, log_dT = np.log(1 - np.tanh(xs[0]) ** 2), np.log(1 - np.tanh(xs[-1]) ** 2)
    bound = (2 * n - 1) * (np.max(np.abs(log_dT)) + np.max(np.abs(log_d0))) / T
    assert bound < 0.02 < np.min(-np.diff(lam_x))  # the bound separates the exponents
    assert np.max(np.abs(lam_h - lam_x)) <= bound
    # the exact sum (to the 1e-8 of the QR's accuracy policy)
    assert abs(lam_h.sum() - lam_x.sum() - (log_dT.sum() - log_d0.sum()) / T) < 1e-8


@pytest.mark.parametrize("kind, dt", [("euler", 1.0), ("euler", 0.3), ("rk4", 0.2), ("rk4", 1.0)])
def test_sum_of_exponents_is_mean_log_det(kind, dt):
    # Sum of the full spectrum = (1/T) log|det P_T| = (1/T) sum_t log|det J_t| (no frame or QR
    # dependence); the QR keeps every R_ii to 1e-8 relative by design, and T = 400 logs of
    # O(1) determinants add rounding ~1e-13. With input, biases and a chaotic gain.
    cell = build(kind, 21, 6, 2, "tanh", gain=3.0, rate=dt)
    rng = np.random.default_rng(2)
    u = rng.standard_normal((400, 2))
    x0 = rng.standard_normal(6)
    states = gs.unroll(cell, u, x0)
    logdet = np.mean([np.linalg.slogdet(cell.jacobian(states[t], u[t]))[1] for t in range(400)])
    spectrum = gs.lyapunov_spectrum(cell, u, x0).exponents
    assert abs(spectrum.sum() - logdet) < 1e-8


def test_flow_without_self_coupling_has_mean_exponent_minus_one_per_unit_time():
    # tr(-I + J D) = -N when J_ii = 0, so the flow's exponents sum to -N per unit time. The RK4
    # tangent map is T4(dt A) to fourth order, log det T4(dt A) = dt tr A - dt^5 tr A^5 / 120
    # + ..., so the mean exponent per tau is -1 + O(dt^4): research notes (N = 60, g = 3):
    # 2.2e-5 at dt = 0.2, 1.3e-6 at 0.1, 9e-8 at 0.05. The bound 1e-6 at dt = 0.05 is 10x the
    # observed; the Euler tangent of the same trajectory would be off by dt / 2 = 0.025.
    # The dt^4 order itself: the deviation at dt = 0.1 over that at 0.05 near 16.
    deviations = {}
    for dt in (0.1, 0.05):
        cell = gs.make_cell("rate", 60, 0, gain=3.0, zero_diagonal=True, dt=dt, integrator="rk4", rng=0)
        assert np.all(np.diag(cell.weight_hh) == 0)
        steps = int(round(60 / dt))
        x0 = np.random.default_rng(1).standard_normal(60) * 2
        spec = gs.lyapunov_spectrum(cell, steps, x0, warmup=int(round(10 / dt)))
        per_tau = spec.exponents / cell.dt
        deviations[dt] = per_tau.mean() + 1.0
        assert per_tau[0] > 0  # g = 3 is chaotic: a positive exponent
    assert abs(deviations[0.05]) < 1e-6, deviations
    assert 8 < deviations[0.1] / deviations[0.05] < 32, deviations


# ------------------------------------------------------------------------------------------
# 4. ensembles
@pytest.mark.parametrize("kind", KINDS)
def test_ensemble_members_equal_single_networks(kind):
    n, n_in, b, T = 4, 2, 3, 40
    if kind == "leaky-per-unit":
        alpha = np.linspace(0.2, 0.9, n)
        members = [dataclasses.replace(build("leaky", s, n, n_in), alpha=alpha) for s in range(b)]
    else:
        members = [build(kind, s, n, n_in, rate=0.3) for s in range(b)]
    ens = gs.stack_cells(members)
    assert ens.batch_shape == (b,) and type(ens) is type(members[0])
    rng = np.random.default_rng(9)
    x, s0 = rng.standard_normal((b, T, n_in)), rng.standard_normal((b, n))
    v = rng.standard_normal((b, n))
    states = gs.unroll(ens, x, s0)
    spectra = gs.lyapunov_spectrum(ens, x, s0).exponents
    grads = gs.gradient_norms(ens, x, s0)
    jac = ens.jacobian(s0, x[:, 0])
    vjp = ens.vjp(s0, x[:, 0], v)
    pv = ens.param_vjp(s0, x[:, 0], v)
    for i, cell in enumerate(members):
        assert_same(ens[i].weight_hh, cell.weight_hh, 0.0)
        assert ens[i].options() == cell.options()
        assert_same(states[i], gs.unroll(cell, x[i], s0[i]))
        assert_same(spectra[i], gs.lyapunov_spectrum(cell, x[i], s0[i]).exponents)
        assert_same(grads[i], gs.gradient_norms(cell, x[i], s0[i]))
        assert_same(jac[i], cell.jacobian(s0[i], x[i, 0]))
        assert_same(vjp[i], cell.vjp(s0[i], x[i, 0], v[i]))
        for name, g in cell.param_vjp(s0[i], x[i, 0], v[i]).items():
            assert_same(pv[name][i], g)


def test_make_cell_ensembles_are_spawned_members():
    for kind, opts in (("leaky", dict(alpha=0.2)), ("rate", dict(dt=0.1, integrator="rk4")),
                       ("rate", dict(zero_diagonal=True))):
        ens = gs.make_cell(kind, 4, 1, ensemble=3, bias_std=0.3, rng=5, **opts)
        children = np.random.default_rng(5).spawn(3)
        for i in range(3):
            one = gs.make_cell(kind, 4, 1, bias_std=0.3, rng=children[i], **opts)
            for name in one.parameter_names:
                np.testing.assert_array_equal(ens[i].parameters()[name], one.parameters()[name])
            assert ens[i].options() == one.options()
        assert not np.array_equal(ens[0].weight_hh, ens[1].weight_hh)


def test_stack_cells_compares_leaks_steps_and_integrators():
    a = build("leaky", 0, 3, 1, rate=0.2)
    with pytest.raises(ValueError, match=r"`cells` must all have the same alpha; item 0 has alpha=0\.2, item 1 has alpha=0\.3\."):
        gs.stack_cells([a, dataclasses.replace(a, alpha=0.3)])
    per_unit = dataclasses.replace(a, alpha=[0.1, 0.2, 0.3])
    assert per_unit.options()["alpha"] == (0.1, 0.2, 0.3)
    with pytest.raises(ValueError, match=r"item 0 has alpha=\(0\.1, 0\.2, 0\.3\), item 1 has alpha=0\.2\."):
        gs.stack_cells([per_unit, a])
    ens = gs.stack_cells([per_unit, per_unit])
    assert isinstance(ens.alpha, np.ndarray) and not ens.alpha.flags.writeable
    np.testing.assert_array_equal(ens[1].alpha, [0.1, 0.2, 0.3])
    r = build("rk4", 0, 3, 1, rate=0.2)
    with pytest.raises(ValueError, match=r"`cells` must all have the same dt; item 0 has dt=0\.2, item 1 has dt=0\.1\."):
        gs.stack_cells([r, dataclasses.replace(r, dt=0.1)])
    with pytest.raises(ValueError, match=r"the same integrator; item 0 has integrator='rk4', item 1 has integrator='euler'\."):
        gs.stack_cells([r, dataclasses.replace(r, integrator="euler")])


# ------------------------------------------------------------------------------------------
# 5. make_cell
def test_make_cell_kinds_options_and_reproducibility():
    leaky = gs.make_cell("leaky", 5, 2, rng=0)
    assert type(leaky) is LeakyRNN and leaky.alpha == 0.1 and leaky.activation == "tanh"
    rate = gs.make_cell("rate", 5, 2, rng=0)
    assert type(rate) is RateRNN and (rate.dt, rate.integrator) == (1.0, "euler")
    rk4 = gs.make_cell("rate", 5, 2, dt=0.05, integrator="rk4", activation="sigmoid", rng=0)
    assert (rk4.dt, rk4.integrator, rk4.activation) == (0.05, "rk4", "sigmoid")
    assert gs.make_cell("leaky", 5, 2, alpha=0.7, rng=0).alpha == 0.7
    unit = gs.make_cell("leaky", 3, 1, alpha=[0.1, 0.5, 1.0], rng=0)
    np.testing.assert_array_equal(unit.alpha, [0.1, 0.5, 1.0])
    assert gs.make_cell("residual", 2, rng=0).alpha == 1.0  # residual's default is unchanged
    for kind in ("leaky", "rate"):
        a = gs.make_cell(kind, 4, 2, bias_std=0.5, rng=123)
        b = gs.make_cell(kind, 4, 2, bias_std=0.5, rng=np.random.default_rng(123))
        c = gs.make_cell(kind, 4, 2, bias_std=0.5, rng=124)
        for name in a.parameter_names:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        for name in ("weight_hh", "weight_ih", "bias_hh"):
            assert not np.array_equal(getattr(a, name), getattr(c, name))
    # the same draws as the RNN of that seed: the kinds differ only in their equations
    rnn = gs.make_cell("rnn", 4, 2, bias_std=0.5, rng=123)
    np.testing.assert_array_equal(gs.make_cell("rate", 4, 2, bias_std=0.5, rng=123).weight_hh, rnn.weight_hh)


@pytest.mark.parametrize("kind", ["rnn", "irnn", "residual", "leaky", "rate"])
@pytest.mark.parametrize("init", ["gaussian", "orthogonal", "pytorch"])
def test_zero_diagonal_removes_self_coupling_only(kind, init):
    full = gs.make_cell(kind, 6, 2, init=init, gain=1.3, bias_std=0.2, rng=8)
    cut = gs.make_cell(kind, 6, 2, init=init, gain=1.3, bias_std=0.2, zero_diagonal=True, rng=8)
    np.testing.assert_array_equal(np.diag(cut.weight_hh), np.zeros(6))
    off = ~np.eye(6, dtype=bool)
    np.testing.assert_array_equal(cut.weight_hh[off], full.weight_hh[off])
    for name in ("weight_ih", "bias_hh", "bias_ih"):
        np.testing.assert_array_equal(getattr(cut, name), getattr(full, name))


def test_gaussian_rate_network_has_the_published_coupling_statistics():
    # J_ij ~ N(0, g^2 / N): the variance of N(N - 1) = 249 500 off-diagonal entries has relative
    # standard error sqrt(2 / 249500) = 0.28%, so 2% is 7 standard errors.
    g, n = 3.0, 500
    cell = gs.make_cell("rate", n, 0, gain=g, zero_diagonal=True, rng=1)
    off = cell.weight_hh[~np.eye(n, dtype=bool)]
    assert abs(off.var() / (g**2 / n) - 1) < 0.02


# ------------------------------------------------------------------------------------------
# 6. training
@pytest.mark.parametrize("kind", ["leaky-per-unit", "rk4"])
def test_bptt_gradients_match_finite_differences_and_training_learns(kind):
    task = adding_problem(6)
    cell = build(kind, 2, 4, task.n_input, rate=0.5)
    model = init_model(cell, task.n_output, rng=1)
    x, y = task.sample(3, np.random.default_rng(0))
    result = bptt(model, x, y)
    for name in ("weight_hh", "bias_ih", "weight_out"):
        theta = np.array(model.params[name])

        def loss(flat, name=name, shape=theta.shape):
            return np.array([bptt(model.with_params({name: flat.reshape(shape)}), x, y).loss])

        fd, floor = fd_jacobian(loss, theta.ravel())
        assert_rel_close(result.grads[name].ravel(), fd[0], FD_RTOL, floor)
    record = train_model(model, task, n_updates=40, batch_size=16, optimizer=Adam(1e-2), rng=3)
    assert not record.diverged
    assert record.losses[-5:].mean() < 0.5 * record.losses[:5].mean()
    assert type(record.model.cell) is type(cell) and record.model.cell.options() == cell.options()


# ------------------------------------------------------------------------------------------
# 7. bad input
W2 = np.eye(2) * 0.5
ALPHA_MSG = r"`alpha` must be a number in \(0, 1\] or an array of shape \(2,\) of such numbers \(one leak rate per unit\); got "


@pytest.mark.parametrize(
    "call, error, pattern",
    [
        (lambda: LeakyRNN(W2, alpha=0.0), ValueError, ALPHA_MSG + r"0\.0\."),
        (lambda: LeakyRNN(W2, alpha=1.5), ValueError, ALPHA_MSG + r"1\.5\."),
        (lambda: LeakyRNN(W2, alpha=-0.1), ValueError, ALPHA_MSG + r"-0\.1\."),
        (lambda: LeakyRNN(W2, alpha=math.nan), ValueError, ALPHA_MSG + r"nan\."),
        (lambda: LeakyRNN(W2, alpha="0.5"), TypeError, ALPHA_MSG + r"'0\.5'\."),
        (lambda: LeakyRNN(W2, alpha=True), TypeError, ALPHA_MSG + r"True\."),
        (lambda: LeakyRNN(W2, alpha=[0.5, 0.5, 0.5]), ValueError, ALPHA_MSG + r"shape \(3,\)\."),
        (lambda: LeakyRNN(W2, alpha=[0.5, 2.0]), ValueError, ALPHA_MSG + r"an entry 2\.0\."),
        (lambda: LeakyRNN(W2, activation="elu"), ValueError, r"`activation` must be one of 'tanh', .*; got 'elu'\."),
        (lambda: RateRNN(W2, dt=0.0), ValueError, r"`dt` must be a positive finite number; got 0\.0\."),
        (lambda: RateRNN(W2, dt=-1), ValueError, r"`dt` must be a positive finite number; got -1\.0\."),
        (lambda: RateRNN(W2, dt=math.inf), ValueError, r"`dt` must be a positive finite number; got inf\."),
        (lambda: RateRNN(W2, dt=math.nan), ValueError, r"`dt` must be a positive finite number; got nan\."),
        (lambda: RateRNN(W2, dt="0.1"), TypeError, r"`dt` must be a positive finite number; got '0\.1'\."),
        (lambda: RateRNN(W2, integrator="rk45"), ValueError, r"`integrator` must be one of 'euler', 'rk4'; got 'rk45'\."),
        (lambda: RateRNN(W2, integrator=4), ValueError, r"`integrator` must be one of 'euler', 'rk4'; got 4\."),
        (lambda: RateRNN(np.ones((2, 3))), ValueError, r"`weight_hh` must be square \(N, N\) for RateRNN; got shape \(2, 3\)\."),
        (lambda: gs.make_cell("leaky", 2, alpha=0.0, rng=0), ValueError, ALPHA_MSG + r"0\.0\."),
        (lambda: gs.make_cell("rate", 2, dt=0, rng=0), ValueError, r"`dt` must be a positive finite number; got 0\.0\."),
        (lambda: gs.make_cell("rate", 2, integrator="RK4", rng=0), ValueError,
         r"`integrator` must be one of 'euler', 'rk4'; got 'RK4'\."),
        (lambda: gs.make_cell("rate", 2, activation="tahn", rng=0), ValueError, r"`activation` must be one of .*; got 'tahn'\."),
        (lambda: gs.make_cell("rnn", 2, dt=0.1, rng=0), ValueError,
         r"`dt` applies to kind='rate' or kind='cornn' only; got kind='rnn'\."),
        (lambda: gs.make_cell("leaky", 2, integrator="rk4", rng=0), ValueError,
         r"`integrator` applies to kind='rate' only; got kind='leaky'\."),
        (lambda: gs.make_cell("rate", 2, alpha=0.1, rng=0), ValueError,
         r"`alpha` does not apply to kind='rate' \(its leak per step is `dt`\); got alpha=0\.1\."),
        (lambda: gs.make_cell("leaky", 2, forget_bias=1.0, rng=0), ValueError,
         r"`forget_bias` and `chrono_t_max` apply to kind='lstm' only; got kind='leaky'\."),
        (lambda: gs.make_cell("lstm", 2, zero_diagonal=True, rng=0), ValueError,
         r"`zero_diagonal` applies to the kinds with one square recurrent matrix \('rnn', 'irnn', 'residual', "
         r"'leaky', 'rate'\); got kind='lstm'\."),
        (lambda: gs.make_cell("rate", 2, zero_diagonal="yes", rng=0), TypeError,
         r"`zero_diagonal` must be True or False; got 'yes'\."),
        (lambda: gs.make_cell("leek", 2, rng=0), ValueError, r"`kind` must be one of .*'leaky', 'rate'.*; got 'leek'\."),
        (lambda: S.symbolic_cell("rate", dt=0), ValueError, r"`dt` must be a positive finite number; got 0\."),
        (lambda: S.symbolic_cell("rate", dt=math.inf), ValueError, r"`dt` must be a finite real number; got inf\."),
        (lambda: S.symbolic_cell("rnn", dt=0.1), ValueError, r"`dt` applies to kind='rate' only; got kind='rnn'\."),
        (lambda: S.symbolic_cell("rate", integrator="midpoint"), ValueError,
         r"`integrator` must be one of 'euler', 'rk4'; got 'midpoint'\."),
        (lambda: S.symbolic_cell("leaky", alpha=1.5), ValueError,
         r"`alpha` must be a leak rate in \(0, 1\] for kind='leaky'; got 3/2\."),
        (lambda: S.symbolic_cell("rate", alpha=0.5), ValueError,
         r"`alpha` applies to kind='residual' or kind='leaky' only; got kind='rate'\."),
    ],
)
def test_bad_input_errors(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_symbolic_cell_refuses_a_per_unit_leak():
    sym = S.symbolic_cell("leaky", 2, 1)
    cell = LeakyRNN(W2, np.ones((2, 1)), alpha=[0.2, 0.4])
    with pytest.raises(ValueError, match=r"`params` must have one alpha for every unit .*; got an array of shape \(2,\)\."):
        sym.lambdify_jacobian()(np.zeros(2), None, cell)


def test_cells_are_frozen_and_read_only():
    cell = LeakyRNN(W2, alpha=[0.2, 0.4])
    with pytest.raises(dataclasses.FrozenInstanceError):
        cell.alpha = 0.3
    with pytest.raises(ValueError):
        cell.alpha[0] = 0.9
    rate = RateRNN(W2, dt=0.1, integrator="rk4")
    with pytest.raises(dataclasses.FrozenInstanceError):
        rate.dt = 0.2
    with pytest.raises(ValueError):
        rate.weight_hh[0, 0] = 1.0
    with pytest.raises(TypeError, match=r"a single RateRNN has no members"):
        rate[0]
