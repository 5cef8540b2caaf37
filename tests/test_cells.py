"""Tests of the recurrent cells: Jacobians and VJPs against finite differences, independent
reimplementations of the forward equations (THEORY.md sections 7 and 8), exact special cases,
batch dimensions, immutability, and ``make_cell``.

Finite-difference tolerance (used throughout): a central difference with step h,
    (f(s + h e) - f(s - h e)) / (2 h),
has truncation error h^2 |f'''| / 6 and rounding error about eps |f| / h (eps = 2.2e-16). Every
quantity here (states, weights, derivatives) is O(1), so with h = 1e-5 both terms are about 1e-10
relative to ||J||, three orders of magnitude below the 1e-7 we demand. A wrong derivative (a
missing term, a transposed block, a swapped gate) gives an O(1) relative error.

The rounding term is really eps |f| / h, relative to |f| rather than |J|: where gates saturate
(e.g. an LSTM with o ~ 0, where ||dh'/dh|| can be 1e-5 while |h'| ~ 0.5) it dominates. So the
bound is 1e-7 ||J|| plus an absolute floor of 100 eps max|f| / h per entry (about 2e-9 for O(1)
states; 100 covers the few roundings in one evaluation of f). For ||J|| of order one the floor is
negligible and the check is the 1e-7 relative one.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.special import expit

import gradsim as gs
from gradsim.init import INITIALISERS

FD_STEP = 1e-5
FD_RTOL = 1e-7
# The VJP and v @ J are the same sums of products in a different order: only rounding differs,
# a few ulps times the size of the terms, so 1e-13 relative to ||v|| ||J||.
VJP_RTOL = 1e-13
# Reimplementations compute the same floating-point expressions in another order (python sums
# vs BLAS, math.exp vs scipy's expit): differences are a few ulps of O(1) numbers.
REF_TOL = 1e-14

SETTINGS = settings(max_examples=30, deadline=None, database=None)

seeds = st.integers(0, 2**32 - 1)
sizes = st.integers(1, 5)
input_sizes = st.integers(0, 3)
gains = st.floats(0.3, 2.0)


# ------------------------------------------------------------------------------------------
# helpers
def fd_jacobian(f, s, h=FD_STEP):
    """Central-difference Jacobian of f at the vector s (column j = d f / d s_j), and the bound on
    its rounding error in Frobenius norm (100 eps max|f| / h per entry, see the module docstring)."""
    s = np.asarray(s, dtype=np.float64)
    cols, f_max = [], 0.0
    for j in range(s.size):
        e = np.zeros_like(s)
        e[j] = h
        plus, minus = f(s + e), f(s - e)
        f_max = max(f_max, np.max(np.abs(plus)), np.max(np.abs(minus)))
        cols.append((plus - minus) / (2 * h))
    jac = np.stack(cols, axis=-1)
    rounding = 100 * np.finfo(float).eps * f_max / h * np.sqrt(jac.size)
    return jac, rounding


def assert_rel_close(approx, exact, rtol, floor=0.0):
    """||approx - exact||_F <= rtol ||exact||_F + floor."""
    err = np.linalg.norm(approx - exact)
    scale = np.linalg.norm(exact)
    assert err <= rtol * scale + floor, (
        f"error {err:.3e} > {rtol} * {scale:.3e} + {floor:.3e} (relative {err / max(scale, 1e-300):.3e})"
    )


def random_state(cell, rng, batch=()):
    """A generic state: h in (-1, 1) (reachable by tanh-bounded cells), c of order 1 for the LSTM."""
    n = cell.n_hidden
    h = np.tanh(rng.standard_normal(batch + (n,)) * 1.5)
    if isinstance(cell, gs.LSTM):
        c = 2.0 * rng.standard_normal(batch + (n,))
        return np.concatenate([h, c], axis=-1)
    return h


def random_input(cell, rng, batch=()):
    return rng.standard_normal(batch + (cell.n_input,))


def preactivation(cell, state, x):
    """a = W_hh s + b_hh + W_ih x + b_ih of an RNN cell, computed here independently."""
    return cell.weight_hh @ state + cell.bias_hh + cell.weight_ih @ x + cell.bias_ih


# The cells under test: id -> builder(seed, n, n_in, gain, alpha).
def _rnn(act):
    return lambda seed, n, n_in, gain, alpha: gs.make_cell(
        "rnn", n, n_in, gain=gain, activation=act, bias_std=0.5, rng=seed
    )


def _residual(act):
    return lambda seed, n, n_in, gain, alpha: gs.make_cell(
        "residual", n, n_in, gain=gain, activation=act, alpha=alpha, bias_std=0.5, rng=seed
    )


def _gru(variant):
    return lambda seed, n, n_in, gain, alpha: gs.make_cell(
        "gru", n, n_in, gain=gain, variant=variant, bias_std=0.5, rng=seed
    )


CELLS = {
    "rnn-tanh": _rnn("tanh"),
    "rnn-relu": _rnn("relu"),
    "rnn-linear": _rnn("linear"),
    "rnn-sigmoid": _rnn("sigmoid"),
    "residual-tanh": _residual("tanh"),
    "residual-relu": _residual("relu"),
    "residual-linear": _residual("linear"),
    "residual-sigmoid": _residual("sigmoid"),
    "lstm": lambda seed, n, n_in, gain, alpha: gs.make_cell(
        "lstm", n, n_in, gain=gain, bias_std=0.5, forget_bias=0.5, rng=seed
    ),
    "gru-torch": _gru("torch"),
    "gru-reset_before": _gru("reset_before"),
    "gru-chung": _gru("chung"),
}

# (cell id, path) pairs whose Jacobian is a true derivative (GRU "direct" is not: tested apart).
FD_CASES = [(k, "full") for k in CELLS] + [("lstm", "cell"), ("lstm", "hidden")]
ALL_CASES = FD_CASES + [(f"gru-{v}", "direct") for v in ("torch", "reset_before", "chung")]


def path_function(cell, path, state, x):
    """(f, s0): the map whose derivative the path's Jacobian is, and the point to take it at.

    "cell": the c-part of the step output as a function of the c-part of the state (h fixed);
    "hidden": the h-part of the output as a function of the h-part of the state (c fixed).
    """
    n = cell.n_hidden
    if path == "full":
        return (lambda s: cell.step(s, x)), state
    if path == "cell":
        h = state[:n]
        return (lambda c: cell.step(np.concatenate([h, c]), x)[n:]), state[n:]
    if path == "hidden":
        c = state[n:]
        return (lambda h: cell.step(np.concatenate([h, c]), x)[:n]), state[:n]
    raise AssertionError(path)


def relu_kink_margin_ok(cell, state, x):
    """True if every ReLU pre-activation is farther from 0 than the FD step can move it.

    A perturbation of size h in one state coordinate moves a_k by at most h max|W_hh|; if some a_k
    is within that distance of the kink, the central difference straddles it and returns a value
    between 0 and the slope (neither one-sided derivative). We require a 100x margin.
    """
    if getattr(cell, "activation", None) != "relu":
        return True
    a = preactivation(cell, state, x)
    return np.min(np.abs(a)) > 100 * FD_STEP * max(np.max(np.abs(cell.weight_hh)), 1.0)


def build(case, seed, n, n_in, gain, alpha=0.7):
    cell = CELLS[case](seed, n, n_in, gain, alpha)
    rng = np.random.default_rng([seed, 1])
    return cell, random_state(cell, rng), random_input(cell, rng), rng


# ------------------------------------------------------------------------------------------
# 1. Jacobians and VJPs against central finite differences
@pytest.mark.parametrize("case,path", FD_CASES)
@SETTINGS
@given(seed=seeds, n=sizes, n_in=input_sizes, gain=gains, alpha=st.floats(-1.5, 1.5))
def test_jacobian_matches_finite_differences(case, path, seed, n, n_in, gain, alpha):
    cell, state, x, _ = build(case, seed, n, n_in, gain, alpha)
    assume(relu_kink_margin_ok(cell, state, x))
    f, s0 = path_function(cell, path, state, x)
    jac = cell.jacobian(state, x, path)
    assert jac.shape == (cell.path_size(path),) * 2 == (s0.size, s0.size)
    fd, rounding = fd_jacobian(f, s0)
    assert_rel_close(fd, jac, FD_RTOL, floor=rounding)


@pytest.mark.parametrize("case,path", FD_CASES)
@SETTINGS
@given(seed=seeds, n=sizes, n_in=input_sizes, gain=gains, alpha=st.floats(-1.5, 1.5))
def test_vjp_matches_finite_differences(case, path, seed, n, n_in, gain, alpha):
    cell, state, x, rng = build(case, seed, n, n_in, gain, alpha)
    assume(relu_kink_margin_ok(cell, state, x))
    f, s0 = path_function(cell, path, state, x)
    v = rng.standard_normal(s0.size)
    vjp = cell.vjp(state, x, v, path)
    fd, rounding = fd_jacobian(f, s0)
    # ||v @ (J_fd - J)|| <= ||v|| ||J_fd - J||: the FD bound carries over, scaled by ||v||.
    err = np.linalg.norm(vjp - v @ fd)
    assert err <= np.linalg.norm(v) * (FD_RTOL * np.linalg.norm(fd) + rounding)


@pytest.mark.parametrize("case,path", ALL_CASES)
@SETTINGS
@given(seed=seeds, n=sizes, n_in=input_sizes, gain=gains, alpha=st.floats(-1.5, 1.5))
def test_vjp_equals_cotangent_times_jacobian(case, path, seed, n, n_in, gain, alpha):
    cell, state, x, rng = build(case, seed, n, n_in, gain, alpha)
    v = rng.standard_normal(cell.path_size(path))
    jac = cell.jacobian(state, x, path)
    vjp = cell.vjp(state, x, v, path)
    assert vjp.shape == v.shape
    err = np.linalg.norm(vjp - v @ jac)
    # Rounding is relative to the terms summed (gate values and slopes times weights, O(1) per
    # unit of v), not to ||J||, which cancellation can make small (GRU: keep + (h - n) z' W_z
    # ~ 1e-4 seen): hence the floor of a few eps per unit of v.
    assert err <= VJP_RTOL * np.linalg.norm(v) * np.linalg.norm(jac) + 1e-14 * np.linalg.norm(v)


@pytest.mark.parametrize("variant", ["torch", "reset_before", "chung"])
@SETTINGS
@given(seed=seeds, n=sizes, n_in=input_sizes, gain=gains)
def test_gru_direct_path_is_the_update_gate(variant, seed, n, n_in, gain):
    cell, h, x, _ = build(f"gru-{variant}", seed, n, n_in, gain)
    w, b = cell.weight_hh, cell.bias_hh
    wi, bi = cell.weight_ih, cell.bias_ih
    rows = slice(n, 2 * n)  # z is the second of r, z, n
    z = expit(wi[rows] @ x + bi[rows] + w[rows] @ h + b[rows])
    keep = z if variant != "chung" else 1.0 - z
    np.testing.assert_allclose(cell.jacobian(h, x, "direct"), np.diag(keep), rtol=REF_TOL, atol=REF_TOL)
    # Off-diagonal entries are exactly zero: the direct path is a pure skip connection.
    jd = cell.jacobian(h, x, "direct")
    assert np.all(jd[~np.eye(n, dtype=bool)] == 0.0)


# ------------------------------------------------------------------------------------------
# 2. Independent reimplementations (plain python loops and the math module, no shared code)
def _sig(a):
    return 1.0 / (1.0 + math.exp(-a))


def _affine_rows(w, b, v, rows):
    """[sum_j w[k, j] v[j] + b[k] for k in rows] with a plain python sum."""
    return [sum(w[k, j] * v[j] for j in range(len(v))) + b[k] for k in rows]


def ref_lstm(cell, state, x):
    """PyTorch LSTM step; returns the new state and the intermediates of THEORY.md section 7."""
    n = cell.n_hidden
    h, c = list(state[:n]), list(state[n:])

    def pre(gate):
        rows = range(gate * n, (gate + 1) * n)
        hh = _affine_rows(cell.weight_hh, cell.bias_hh, h, rows)
        ih = _affine_rows(cell.weight_ih, cell.bias_ih, x, rows)
        return [p + q for p, q in zip(hh, ih)]

    a_i, a_f, a_g, a_o = pre(0), pre(1), pre(2), pre(3)
    i = [_sig(a) for a in a_i]
    f = [_sig(a) for a in a_f]
    g = [math.tanh(a) for a in a_g]
    o = [_sig(a) for a in a_o]
    c_new = [f[k] * c[k] + i[k] * g[k] for k in range(n)]
    h_new = [o[k] * math.tanh(c_new[k]) for k in range(n)]
    parts = {k: np.array(v) for k, v in dict(i=i, f=f, g=g, o=o, c=c, c_new=c_new).items()}
    return np.array(h_new + c_new), parts


def ref_gru(cell, h, x, variant):
    """GRU step straight from the equations of THEORY.md section 8 / DESIGN.md."""
    n = cell.n_hidden
    w, b, wi, bi = cell.weight_hh, cell.bias_hh, cell.weight_ih, cell.bias_ih
    R, Z, N = range(0, n), range(n, 2 * n), range(2 * n, 3 * n)
    a_r = [p + q for p, q in zip(_affine_rows(wi, bi, x, R), _affine_rows(w, b, h, R))]
    a_z = [p + q for p, q in zip(_affine_rows(wi, bi, x, Z), _affine_rows(w, b, h, Z))]
    r = [_sig(a) for a in a_r]
    z = [_sig(a) for a in a_z]
    xn = _affine_rows(wi, bi, x, N)  # W_in x + b_in
    if variant == "torch":
        hn = _affine_rows(w, b, h, N)  # W_hn h + b_hn
        cand = [math.tanh(xn[k] + r[k] * hn[k]) for k in range(n)]
    else:
        rh = [r[k] * h[k] for k in range(n)]
        whn = _affine_rows(w, b, rh, N)  # W_hn (r h) + b_hn
        cand = [math.tanh(xn[k] + whn[k]) for k in range(n)]
        hn = None
    if variant == "chung":
        new = [(1 - z[k]) * h[k] + z[k] * cand[k] for k in range(n)]
    else:
        new = [(1 - z[k]) * cand[k] + z[k] * h[k] for k in range(n)]
    parts = dict(r=np.array(r), z=np.array(z), n=np.array(cand))
    if hn is not None:
        parts["hn"] = np.array(hn)
    return np.array(new), parts


@SETTINGS
@given(seed=seeds, n=sizes, n_in=input_sizes, gain=gains)
def test_lstm_step_matches_reference(seed, n, n_in, gain):
    cell, state, x, _ = build("lstm", seed, n, n_in, gain)
    expected, _ = ref_lstm(cell, state, x)
    np.testing.assert_allclose(cell.step(state, x), expected, rtol=REF_TOL, atol=REF_TOL)


@pytest.mark.parametrize("variant", ["torch", "reset_before", "chung"])
@SETTINGS
@given(seed=seeds, n=sizes, n_in=input_sizes, gain=gains)
def test_gru_step_matches_reference(variant, seed, n, n_in, gain):
    cell, h, x, _ = build(f"gru-{variant}", seed, n, n_in, gain)
    expected, _ = ref_gru(cell, h, x, variant)
    np.testing.assert_allclose(cell.step(h, x), expected, rtol=REF_TOL, atol=REF_TOL)


def test_gru_variants_differ():
    """The three variants are genuinely different maps (guards against a variant being ignored)."""
    steps = []
    for v in ("torch", "reset_before", "chung"):
        cell, h, x, _ = build(f"gru-{v}", 3, 4, 2, 1.0)
        steps.append(cell.step(h, x))
    assert not np.allclose(steps[0], steps[1])
    assert not np.allclose(steps[0], steps[2])
    assert not np.allclose(steps[1], steps[2])


def _sp(s):  # sigma' written through sigma
    return s * (1.0 - s)


@SETTINGS
@given(seed=seeds, n=sizes, n_in=input_sizes, gain=gains)
def test_lstm_jacobian_blocks_match_theory_formulas(seed, n, n_in, gain):
    cell, state, x, _ = build("lstm", seed, n, n_in, gain)
    _, p = ref_lstm(cell, state, x)
    w = cell.weight_hh
    W_hi, W_hf, W_hg, W_ho = w[:n], w[n : 2 * n], w[2 * n : 3 * n], w[3 * n :]
    D = np.diag
    t = np.tanh(p["c_new"])
    # THEORY.md section 7
    dc_dc = D(p["f"])
    dc_dh = (
        D(p["c"] * _sp(p["f"])) @ W_hf
        + D(p["g"] * _sp(p["i"])) @ W_hi
        + D(p["i"] * (1 - p["g"] ** 2)) @ W_hg
    )
    dh_dc = D(p["o"] * (1 - t**2) * p["f"])
    dh_dh = D(t * _sp(p["o"])) @ W_ho + D(p["o"] * (1 - t**2)) @ dc_dh
    full = np.block([[dh_dh, dh_dc], [dc_dh, dc_dc]])
    tol = dict(rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(cell.jacobian(state, x, "full"), full, **tol)
    np.testing.assert_allclose(cell.jacobian(state, x, "cell"), dc_dc, **tol)
    np.testing.assert_allclose(cell.jacobian(state, x, "hidden"), dh_dh, **tol)


@pytest.mark.parametrize("variant", ["torch", "reset_before", "chung"])
@SETTINGS
@given(seed=seeds, n=sizes, n_in=input_sizes, gain=gains)
def test_gru_jacobian_matches_theory_formula(variant, seed, n, n_in, gain):
    cell, h, x, _ = build(f"gru-{variant}", seed, n, n_in, gain)
    _, p = ref_gru(cell, h, x, variant)
    w = cell.weight_hh
    W_hr, W_hz, W_hn = w[:n], w[n : 2 * n], w[2 * n :]
    D = np.diag
    r, z, cand = p["r"], p["z"], p["n"]
    if variant == "torch":
        # THEORY.md section 8, verbatim.
        expected = (
            D(z)
            + D((h - cand) * _sp(z)) @ W_hz
            + D((1 - z) * (1 - cand**2)) @ (D(r) @ W_hn + D(p["hn"] * _sp(r)) @ W_hr)
        )
    else:
        # Reset before: n = tanh(... + W_hn (r h) + b_hn), so
        # dn/dh = diag(1 - n^2) W_hn [diag(r) + diag(h sigma'(a_r)) W_hr].
        dn = D(1 - cand**2) @ W_hn @ (D(r) + D(h * _sp(r)) @ W_hr)
        if variant == "reset_before":  # h' = (1 - z) n + z h
            expected = D(z) + D((h - cand) * _sp(z)) @ W_hz + D(1 - z) @ dn
        else:  # chung: h' = (1 - z) h + z n
            expected = D(1 - z) + D((cand - h) * _sp(z)) @ W_hz + D(z) @ dn
    np.testing.assert_allclose(cell.jacobian(h, x), expected, rtol=1e-13, atol=1e-14)


# ------------------------------------------------------------------------------------------
# 3. Exact special cases
@SETTINGS
@given(seed=seeds, n=sizes, n_in=input_sizes, gain=gains)
def test_linear_rnn_jacobian_is_exactly_weight_hh(seed, n, n_in, gain):
    cell, state, x, _ = build("rnn-linear", seed, n, n_in, gain)
    assert np.array_equal(cell.jacobian(state, x), cell.weight_hh)


@SETTINGS
@given(seed=seeds, n=sizes, n_in=st.integers(1, 3))
def test_irnn_jacobian_is_indicator_of_active_units(seed, n, n_in):
    cell = gs.make_cell("irnn", n, n_in, rng=seed)
    rng = np.random.default_rng([seed, 2])
    state = rng.standard_normal(n)
    x = rng.standard_normal(n_in)
    a = state + cell.weight_ih @ x  # W = I, b = 0
    assert np.array_equal(cell.jacobian(state, x), np.diag((a > 0).astype(float)))


def test_irnn_jacobian_has_both_active_and_inactive_units():
    """A concrete state with mixed signs, so the indicator test above is not vacuous."""
    cell = gs.make_cell("irnn", 4, 0, rng=0)
    state = np.array([1.0, -2.0, 0.5, -0.1])
    assert np.array_equal(cell.jacobian(state), np.diag([1.0, 0.0, 1.0, 0.0]))


@SETTINGS
@given(seed=seeds, n=sizes, n_in=input_sizes)
def test_lstm_with_zero_weights_cell_path_is_sigmoid_forget_bias(seed, n, n_in):
    rng = np.random.default_rng(seed)
    b_ih, b_hh = rng.standard_normal(4 * n), rng.standard_normal(4 * n)
    cell = gs.LSTM(np.zeros((4 * n, n_in)), np.zeros((4 * n, n)), b_ih, b_hh)
    state = rng.standard_normal(2 * n)
    x = rng.standard_normal(n_in)
    b_f = (b_hh + b_ih)[n : 2 * n]
    expected = np.diag(1.0 / (1.0 + np.exp(-b_f)))
    np.testing.assert_allclose(cell.jacobian(state, x, "cell"), expected, rtol=1e-15, atol=0)
    # and the cell path is the c -> c block of the full Jacobian
    np.testing.assert_array_equal(cell.jacobian(state, x)[n:, n:], cell.jacobian(state, x, "cell"))


@pytest.mark.parametrize("activation", ["tanh", "relu", "linear", "sigmoid"])
@SETTINGS
@given(seed=seeds, n=sizes, n_in=input_sizes, gain=gains, alpha=st.floats(-1.5, 1.5))
def test_residual_jacobian_is_identity_plus_alpha_slope_w(activation, seed, n, n_in, gain, alpha):
    cell, state, x, _ = build(f"residual-{activation}", seed, n, n_in, gain, alpha)
    assert cell.alpha == alpha
    a = preactivation(cell, state, x)
    slope = {
        "tanh": 1 - np.tanh(a) ** 2,
        "relu": (a > 0).astype(float),
        "linear": np.ones(n),
        "sigmoid": expit(a) * (1 - expit(a)),
    }[activation]
    expected = np.eye(n) + alpha * np.diag(slope) @ cell.weight_hh
    np.testing.assert_allclose(cell.jacobian(state, x), expected, rtol=1e-13, atol=1e-14)
    # and the step is s + alpha phi(a)
    phi = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0), "linear": lambda v: v, "sigmoid": expit}
    np.testing.assert_allclose(
        cell.step(state, x), state + alpha * phi[activation](a), rtol=1e-13, atol=1e-14
    )


@pytest.mark.parametrize("activation", ["tanh", "relu", "linear", "sigmoid"])
def test_rnn_step_is_activation_of_preactivation(activation):
    cell, state, x, _ = build(f"rnn-{activation}", 11, 4, 2, 1.3)
    a = preactivation(cell, state, x)
    phi = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0), "linear": lambda v: v, "sigmoid": expit}
    np.testing.assert_allclose(cell.step(state, x), phi[activation](a), rtol=1e-14, atol=1e-15)


# ------------------------------------------------------------------------------------------
# 4. Batch dimensions
BATCH_TOL = dict(rtol=1e-13, atol=1e-15)  # batched BLAS may sum in another order: ulps only


@pytest.mark.parametrize("case,path", ALL_CASES)
@pytest.mark.parametrize("batch", [(3,), (2, 3)], ids=["B", "B1xB2"])
def test_batched_calls_equal_per_row_calls(case, path, batch):
    cell = CELLS[case](5, 3, 2, 1.2, 0.6)
    rng = np.random.default_rng(9)
    state = random_state(cell, rng, batch)
    x = random_input(cell, rng, batch)
    v = rng.standard_normal(batch + (cell.path_size(path),))
    step = cell.step(state, x)
    jac = cell.jacobian(state, x, path)
    vjp = cell.vjp(state, x, v, path)
    p = cell.path_size(path)
    assert step.shape == batch + (cell.state_size,)
    assert jac.shape == batch + (p, p)
    assert vjp.shape == batch + (p,)
    for idx in np.ndindex(*batch):
        np.testing.assert_allclose(step[idx], cell.step(state[idx], x[idx]), **BATCH_TOL)
        np.testing.assert_allclose(jac[idx], cell.jacobian(state[idx], x[idx], path), **BATCH_TOL)
        np.testing.assert_allclose(vjp[idx], cell.vjp(state[idx], x[idx], v[idx], path), **BATCH_TOL)
    # the rows differ, so the comparison is not between copies of one result
    assert not np.allclose(step[(0,) * len(batch)], step[(1,) * len(batch)])


# ------------------------------------------------------------------------------------------
# 5. Immutability
def _all_cells():
    return [CELLS[k](0, 3, 2, 1.0, 0.5) for k in CELLS] + [gs.make_cell("irnn", 3, 2, rng=0)]


ARRAY_NAMES = ("weight_hh", "weight_ih", "bias_hh", "bias_ih")


@pytest.mark.parametrize("cell", _all_cells(), ids=lambda c: type(c).__name__)
def test_cells_are_frozen(cell):
    for name in ARRAY_NAMES:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(cell, name, np.zeros_like(getattr(cell, name)))
    extra = {gs.RNN: "activation", gs.ResidualRNN: "alpha", gs.GRU: "variant"}.get(type(cell))
    if extra is not None:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(cell, extra, getattr(cell, extra))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cell.some_new_attribute = 1


@pytest.mark.parametrize("cell", _all_cells(), ids=lambda c: type(c).__name__)
def test_cell_arrays_are_read_only(cell):
    for name in ARRAY_NAMES:
        arr = getattr(cell, name)
        assert arr.dtype == np.float64
        assert not arr.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            arr[...] = 1.0


@pytest.mark.parametrize("kind", ["rnn", "residual", "lstm", "gru"])
def test_constructor_copies_caller_arrays(kind):
    gates = {"rnn": 1, "residual": 1, "lstm": 4, "gru": 3}[kind]
    n, n_in = 3, 2
    rng = np.random.default_rng(4)
    w_hh = rng.standard_normal((gates * n, n))
    w_ih = rng.standard_normal((gates * n, n_in))
    b_hh = rng.standard_normal(gates * n)
    b_ih = rng.standard_normal(gates * n)
    originals = [a.copy() for a in (w_hh, w_ih, b_hh, b_ih)]
    if kind == "rnn":
        cell = gs.RNN(w_hh, w_ih, b_hh, b_ih)
    elif kind == "residual":
        cell = gs.ResidualRNN(w_hh, w_ih, b_hh, b_ih, activation="tanh", alpha=0.5)
    elif kind == "lstm":
        cell = gs.LSTM(w_ih, w_hh, b_ih, b_hh)
    else:
        cell = gs.GRU(w_ih, w_hh, b_ih, b_hh)
    state = random_state(cell, rng)
    x = rng.standard_normal(n_in)
    before = cell.step(state, x)
    for a in (w_hh, w_ih, b_hh, b_ih):
        assert a.flags.writeable  # the caller's array is left writeable
        a += 10.0
    for name, orig in zip(ARRAY_NAMES, originals):
        np.testing.assert_array_equal(getattr(cell, name), orig)
    np.testing.assert_array_equal(cell.step(state, x), before)


# ------------------------------------------------------------------------------------------
# 6. make_cell
# The kinds with PyTorch's four arrays; the modern diagonal kinds (gradsim.cells.factory.MODERN_KINDS)
# and the discretised ODEs (ODE_KINDS) have their own parameters and their make_cell tests in
# tests/test_modern_cells.py and tests/test_modern_cells_b.py.
TORCH_KINDS = [
    k for k in gs.CELL_KINDS if k not in gs.cells.factory.MODERN_KINDS + gs.cells.factory.ODE_KINDS
]
GATES = {"rnn": 1, "irnn": 1, "residual": 1, "lstm": 4, "gru": 3, "leaky": 1, "rate": 1}
CLASSES = {"rnn": gs.RNN, "irnn": gs.RNN, "residual": gs.ResidualRNN, "lstm": gs.LSTM, "gru": gs.GRU,
           "leaky": gs.LeakyRNN, "rate": gs.RateRNN}


@pytest.mark.parametrize("init", list(INITIALISERS))
@pytest.mark.parametrize("kind", TORCH_KINDS)
def test_make_cell_shapes(kind, init):
    n, n_in = 4, 3
    cell = gs.make_cell(kind, n, n_in, init=init, gain=0.9, rng=1)
    g = GATES[kind]
    assert type(cell) is CLASSES[kind]
    assert cell.n_hidden == n and cell.n_input == n_in
    assert cell.state_size == (2 * n if kind == "lstm" else n)
    assert cell.weight_hh.shape == (g * n, n)
    assert cell.weight_ih.shape == (g * n, n_in)
    assert cell.bias_hh.shape == cell.bias_ih.shape == (g * n,)
    s = np.zeros(cell.state_size)
    assert cell.step(s, np.ones(n_in)).shape == (cell.state_size,)
    assert cell.jacobian(s, np.ones(n_in)).shape == (cell.state_size,) * 2


@pytest.mark.parametrize("kind", TORCH_KINDS)
def test_make_cell_without_input(kind):
    cell = gs.make_cell(kind, 3, 0, rng=0)
    assert cell.n_input == 0
    assert cell.weight_ih.shape == (GATES[kind] * 3, 0)
    assert cell.step(np.full(cell.state_size, 0.1)).shape == (cell.state_size,)


@pytest.mark.parametrize("init", list(INITIALISERS))
def test_irnn_is_identity_relu_zero_bias_whatever_init(init):
    cell = gs.make_cell("irnn", 5, 2, init=init, gain=0.8, rng=3, bias_std=1.0)
    assert cell.activation == "relu"
    np.testing.assert_array_equal(cell.weight_hh, 0.8 * np.eye(5))
    np.testing.assert_array_equal(cell.bias_hh, np.zeros(5))
    np.testing.assert_array_equal(cell.bias_ih, np.zeros(5))


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_make_cell_identity_and_orthogonal_blocks(kind):
    n, gain = 6, 1.3
    cell = gs.make_cell(kind, n, 1, init="identity", gain=gain, rng=0)
    for k in range(GATES[kind]):
        np.testing.assert_array_equal(cell.weight_hh[k * n : (k + 1) * n], gain * np.eye(n))
    cell = gs.make_cell(kind, n, 1, init="orthogonal", gain=gain, rng=0)
    blocks = [cell.weight_hh[k * n : (k + 1) * n] for k in range(GATES[kind])]
    for b in blocks:
        np.testing.assert_allclose(b.T @ b, gain**2 * np.eye(n), atol=1e-12)
    if len(blocks) > 1:  # each gate gets its own draw
        assert not np.allclose(blocks[0], blocks[1])


def test_make_cell_activation_variant_alpha_are_passed_through():
    assert gs.make_cell("rnn", 2, activation="sigmoid", rng=0).activation == "sigmoid"
    res = gs.make_cell("residual", 2, activation="relu", alpha=0.25, rng=0)
    assert (res.activation, res.alpha) == ("relu", 0.25)
    assert gs.make_cell("gru", 2, variant="chung", rng=0).variant == "chung"


@pytest.mark.parametrize("value", [1.0, -0.5, 3.0])
def test_forget_bias_adds_to_forget_slice_only(value):
    n = 5
    base = gs.make_cell("lstm", n, 2, bias_std=0.3, rng=7)
    shifted = gs.make_cell("lstm", n, 2, bias_std=0.3, forget_bias=value, rng=7)
    np.testing.assert_array_equal(shifted.weight_hh, base.weight_hh)
    np.testing.assert_array_equal(shifted.weight_ih, base.weight_ih)
    diff = (shifted.bias_hh + shifted.bias_ih) - (base.bias_hh + base.bias_ih)
    expected = np.zeros(4 * n)
    expected[n : 2 * n] = value  # gates i, f, g, o: f is the second slice
    np.testing.assert_allclose(diff, expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("t_max", [3.0, 10.0, 1000.0])
def test_chrono_bias_range_and_input_gate(t_max):
    n = 200
    cell = gs.make_cell("lstm", n, 1, chrono_t_max=t_max, rng=2)
    b = cell.bias_hh + cell.bias_ih
    b_i, b_f, b_g, b_o = b[:n], b[n : 2 * n], b[2 * n : 3 * n], b[3 * n :]
    assert np.all(b_f >= 0.0) and np.all(b_f <= np.log(t_max - 1.0))
    np.testing.assert_array_equal(b_i, -b_f)
    np.testing.assert_array_equal(b_g, 0.0)  # bias_std = 0: only i and f are touched
    np.testing.assert_array_equal(b_o, 0.0)
    # b_f = log u, u ~ U[1, t_max - 1]: with 200 draws the values spread over the range
    # (P(all 200 in the lower or upper half of u) = 2 * 2^-200).
    mid = np.log(1.0 + (t_max - 2.0) / 2.0)
    assert np.any(b_f < mid) and np.any(b_f > mid)


@pytest.mark.parametrize("kind", TORCH_KINDS)
def test_pytorch_init_within_bound(kind):
    n, n_in = 16, 5
    cell = gs.make_cell(kind, n, n_in, init="pytorch", rng=0)
    if kind == "irnn":  # IRNN overrides the recurrent init and biases by definition
        np.testing.assert_array_equal(cell.weight_hh, np.eye(n))
        return
    bound = 1.0 / np.sqrt(n)  # PyTorch: U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) for all
    for name in ARRAY_NAMES:
        arr = getattr(cell, name)
        assert np.all(np.abs(arr) <= bound), name
    # and they are not concentrated near zero: U(-b, b) fills the interval
    w = cell.weight_hh
    assert np.max(np.abs(w)) > 0.9 * bound
    assert abs(np.var(w) - bound**2 / 3) < 5 * bound**2 * np.sqrt(4 / 45 / w.size)


@pytest.mark.parametrize("kind", TORCH_KINDS)
def test_make_cell_reproducible_by_seed(kind):
    a = gs.make_cell(kind, 4, 2, bias_std=0.5, rng=123)
    b = gs.make_cell(kind, 4, 2, bias_std=0.5, rng=123)
    c = gs.make_cell(kind, 4, 2, bias_std=0.5, rng=124)
    for name in ARRAY_NAMES:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    # IRNN's recurrent weights and biases are deterministic; its input weights are random
    random_names = ("weight_ih",) if kind == "irnn" else ("weight_hh", "weight_ih", "bias_hh")
    for name in random_names:
        assert not np.array_equal(getattr(a, name), getattr(c, name)), name


def test_make_cell_generator_and_global_state():
    state = np.random.get_state()
    gen = np.random.default_rng(5)
    a = gs.make_cell("lstm", 3, 1, rng=gen)
    b = gs.make_cell("lstm", 3, 1, rng=gen)  # the generator advanced: new weights
    assert not np.array_equal(a.weight_hh, b.weight_hh)
    np.testing.assert_array_equal(
        a.weight_hh, gs.make_cell("lstm", 3, 1, rng=np.random.default_rng(5)).weight_hh
    )
    gs.make_cell("gru", 3, 1, init="pytorch", rng=None)
    after = np.random.get_state()
    assert state[0] == after[0]
    np.testing.assert_array_equal(state[1], after[1])
    assert state[2:] == after[2:]


@pytest.mark.parametrize("kind", ["rnn", "residual", "lstm", "gru", "leaky", "rate"])
def test_param_vjp_without_input(kind):
    # A cell with no input (I = 0) has the parameter gradients of the same cell given one
    # input channel whose weights and value are 0: the same arithmetic, so equal to rounding.
    cell = gs.make_cell(kind, 4, 0, rng=3, bias_std=0.2)
    padded = dataclasses.replace(cell, weight_ih=np.zeros(cell.weight_ih.shape[:-1] + (1,)))
    rng = np.random.default_rng(4)
    state, cotangent = rng.standard_normal(cell.state_size), rng.standard_normal(cell.state_size)
    alone = cell.param_vjp(state, np.zeros(0), cotangent)
    with_channel = padded.param_vjp(state, np.zeros(1), cotangent)
    assert alone["weight_ih"].shape == cell.weight_ih.shape
    for name in ("weight_hh", "bias_hh", "bias_ih"):
        np.testing.assert_allclose(alone[name], with_channel[name], rtol=1e-14, atol=1e-15)
