"""Tests of the modern diagonal cells (issue 12): LRU, MinGRU, MinLSTM and IndRNN.

References, each independent of the code under test:

* central finite differences of ``step`` for the state Jacobians, the parameter VJPs and the
  parameter JVPs (on many random cells, drawn by hypothesis);
* the update equations re-written here with numpy's complex arithmetic (the LRU) and plain
  formulas (the minimal gated cells), and the sequential ``gs.unroll`` for the parallel scan;
* exact spectra: the LRU's exponents are log|lambda_i|, each twice; the minimal cells' and the
  IndRNN's Jacobians are diagonal, so their exponents are time means of the log diagonal.

Finite-difference tolerance. A central difference with step h has truncation error
h^2 |f'''| / 6 and rounding error about eps |f| / h (eps = 2.2e-16). Every quantity here is
O(1): states and inputs ~N(0, 1), weights of the published initialisations, sizes <= 4, so
|f| <= ~20 and |f'''| <= ~20 (the sigmoid's third derivative is <= 1/8, exp(-exp(nu)) has
bounded derivatives for |lambda| in (0, 1)). With h = 1e-5 both terms are below 1e-9; we demand
FD_TOL = 1e-7 times (1 + the largest |entry| of the reference), a margin of 100. A wrong term
(a missing factor z (1 - z), a sign of Im(lambda), a dropped gamma, a transposed outer product)
is an O(1) relative error. Observed (hypothesis, 60 cells per test): at most 3e-10 of
(1 + scale), the LRU's theta_log gradient of an unnormalised cell; typically 1e-11.

Exact identities (the adjoint identity between the parameter JVP and VJP, the VJP against
v @ J, ensembles against their members) are the same sums of products in another order: a few
ulps of the sum of the absolute terms, so 1e-12 of that sum.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.special import expit

import gradsim as gs
from gradsim.cells import LRU, IndRNN, MinGRU, MinLSTM, mingru_scan

FD_STEP = 1e-5
FD_TOL = 1e-7
EXACT = 1e-12
SETTINGS = settings(max_examples=60, deadline=None, database=None)
seeds = st.integers(0, 2**32 - 1)

# (id, kind, options for make_cell, constructor overrides)
VARIANTS = [
    ("lru", "lru", {}, {}),
    ("lru-unnormalised", "lru", {}, {"normalize": False}),
    ("lru-ring", "lru", {"r_min": 0.5, "r_max": 0.99, "max_phase": 0.3}, {}),
    ("mingru", "mingru", {"bias_std": 0.5}, {}),
    ("minlstm", "minlstm", {"bias_std": 0.5}, {}),
    ("indrnn-tanh", "indrnn", {"activation": "tanh", "bias_std": 0.3}, {}),
    ("indrnn-relu", "indrnn", {"activation": "relu", "bias_std": 0.3}, {}),
    ("indrnn-sigmoid", "indrnn", {"activation": "sigmoid", "bias_std": 0.3}, {}),
]
VARIANT_IDS = [v[0] for v in VARIANTS]
def exact(message: str) -> str:
    return "^" + re.escape(message) + "$"


def _cell(variant, n, n_in, seed, ensemble=None):
    _, kind, opts, overrides = variant
    cell = gs.make_cell(kind, n, n_in, rng=seed, ensemble=ensemble, **opts)
    return dataclasses.replace(cell, **overrides) if overrides else cell


def _relu_kink_free(cell, state, x):
    """ReLU's derivative jumps at 0: a finite difference across the kink is meaningless."""
    if getattr(cell, "activation", None) != "relu":
        return True
    a = cell.weight_hh * state + x @ cell.weight_ih.T + cell.bias_ih
    return bool(np.min(np.abs(a)) > 100 * FD_STEP * (1 + np.max(np.abs(state)) + np.max(np.abs(x), initial=0)))


def _assert_close(actual, expected, what, tol=FD_TOL):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    # non-finite entries (a dead ReLU unit's exponent -inf) must be the same, exactly
    finite = np.isfinite(expected)
    assert np.array_equal(np.isfinite(actual), finite), (what, actual, expected)
    assert np.array_equal(actual[~finite], expected[~finite]), (what, actual, expected)
    actual, expected = actual[finite], expected[finite]
    scale = float(np.max(np.abs(expected), initial=0.0))
    error = float(np.max(np.abs(actual - expected), initial=0.0))
    assert error <= tol * (1.0 + scale), f"{what}: error {error:.3g} at scale {scale:.3g}"


def _fd(f, x0, direction):
    return (f(x0 + FD_STEP * direction) - f(x0 - FD_STEP * direction)) / (2 * FD_STEP)


def _moved(cell, name, delta):
    params = cell.parameters()
    params = {k: np.array(v) for k, v in params.items()}
    params[name] = params[name] + delta
    return type(cell)(**params, **cell.options())


def _random_tangent(cell, rng):
    return {name: rng.standard_normal(p.shape) for name, p in cell.parameters().items()}


# ------------------------------------------------------------------------------------------
# derivatives against finite differences
@SETTINGS
@given(v=st.sampled_from(VARIANTS), n=st.integers(1, 4), n_in=st.integers(0, 3), seed=seeds)
def test_jacobian_and_vjp_against_finite_differences(v, n, n_in, seed):
    cell = _cell(v, n, n_in, seed)
    rng = np.random.default_rng(seed)
    s = rng.standard_normal(cell.state_size)
    x = rng.standard_normal(n_in)
    assume(_relu_kink_free(cell, s, x))
    jac = cell.jacobian(s, x)
    p = cell.state_size
    fd = np.stack([_fd(lambda z: cell.step(z, x), s, e) for e in np.eye(p)], axis=-1)
    _assert_close(jac, fd, f"{v[0]} jacobian")
    # the structured operator is the dense Jacobian
    new, op = cell._jacobian_operator(s, x, "full")
    np.testing.assert_array_equal(new, cell.step(s, x))
    frame = rng.standard_normal((p, 3))
    _assert_close(op @ frame, jac @ frame, f"{v[0]} operator", tol=EXACT)
    cot = rng.standard_normal(p)
    _assert_close(cell.vjp(s, x, cot), cot @ jac, f"{v[0]} vjp", tol=EXACT)


@SETTINGS
@given(v=st.sampled_from(VARIANTS), n=st.integers(1, 3), n_in=st.integers(0, 2), seed=seeds)
def test_param_vjp_and_jvp_against_finite_differences(v, n, n_in, seed):
    cell = _cell(v, n, n_in, seed)
    rng = np.random.default_rng(seed)
    s = rng.standard_normal(cell.state_size)
    x = rng.standard_normal(n_in)
    assume(_relu_kink_free(cell, s, x))
    cot = rng.standard_normal(cell.state_size)
    grads = cell.param_vjp(s, x, cot)
    assert list(grads) == list(cell.parameter_names)
    for name, param in cell.parameters().items():
        assert grads[name].shape == param.shape, name
        fd = np.zeros(param.shape)
        for idx in np.ndindex(param.shape):
            e = np.zeros(param.shape)
            e[idx] = 1.0
            fd[idx] = _fd(lambda t: cot @ _moved(cell, name, t * e).step(s, x), 0.0, 1.0)
        _assert_close(grads[name], fd, f"{v[0]} param_vjp {name}")
    tangent = _random_tangent(cell, rng)

    def along(t):
        moved = type(cell)(**{k: p + t * tangent[k] for k, p in cell.parameters().items()}, **cell.options())
        return moved.step(s, x)

    jvp = cell.param_jvp(s, x, tangent)
    _assert_close(jvp, _fd(along, 0.0, 1.0), f"{v[0]} param_jvp")
    # the adjoint identity, to rounding of the sums of absolute terms
    lhs = float(np.sum(cot * jvp))
    rhs = sum(float(np.sum(grads[k] * tangent[k])) for k in tangent)
    terms = float(np.sum(np.abs(cot * jvp))) + sum(float(np.sum(np.abs(grads[k] * tangent[k]))) for k in tangent)
    assert abs(lhs - rhs) <= EXACT * terms, (lhs, rhs, terms)


@pytest.mark.parametrize("v", VARIANTS, ids=VARIANT_IDS)
def test_param_jvp_of_one_parameter_is_its_column(v):
    """A tangent with one name (the others filled with zeros) moves only that parameter."""
    cell = _cell(v, 3, 2, 7)
    rng = np.random.default_rng(1)
    s, x = rng.standard_normal(cell.state_size), rng.standard_normal(2)
    full = _random_tangent(cell, rng)
    total = sum(cell.param_jvp(s, x, {k: t}) for k, t in full.items())
    _assert_close(total, cell.param_jvp(s, x, full), f"{v[0]} linear in the tangent", tol=EXACT)


def test_readout_parameters_do_not_enter_the_step():
    cell = _cell(VARIANTS[0], 3, 2, 1)
    rng = np.random.default_rng(2)
    s, x, cot = rng.standard_normal(6), rng.standard_normal(2), rng.standard_normal(6)
    grads = cell.param_vjp(s, x, cot)
    for name in ("C_re", "C_im", "D"):
        np.testing.assert_array_equal(grads[name], 0.0)
    assert np.any(grads["gamma_log"] != 0)
    flat = dataclasses.replace(cell, normalize=False)
    np.testing.assert_array_equal(flat.param_vjp(s, x, cot)["gamma_log"], 0.0)
    np.testing.assert_array_equal(flat.param_jvp(s, x, {"gamma_log": np.ones(3)}), 0.0)


@pytest.mark.parametrize("v", VARIANTS, ids=VARIANT_IDS)
def test_parameter_jvp_over_a_sequence_against_finite_differences(v):
    """gs.parameter_jvp (the time loop over _param_jvp and the Jacobian operators) against a
    central difference of gs.unroll along the tangent; the same FD error budget per state."""
    cell = _cell(v, 3, 2, 3)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((15, 2))
    s0 = rng.standard_normal(cell.state_size)
    tangent = _random_tangent(cell, rng)

    def along(t):
        moved = type(cell)(**{k: p + t * tangent[k] for k, p in cell.parameters().items()}, **cell.options())
        return gs.unroll(moved, x, s0)

    if v[1] == "indrnn" and cell.activation == "relu":
        states = gs.unroll(cell, x, s0)
        a = x @ cell.weight_ih.T + cell.weight_hh * states[:-1] + cell.bias_ih
        assert np.min(np.abs(a)) > 1e-3  # away from ReLU's kink (checked for this draw)
    out = gs.parameter_jvp(cell, x, tangent, s0)
    assert out.shape == (16, cell.state_size)
    _assert_close(out, _fd(along, 0.0, 1.0), f"{v[0]} parameter_jvp")


@pytest.mark.parametrize("v", VARIANTS, ids=VARIANT_IDS)
def test_bptt_gradients_of_a_model_against_finite_differences(v):
    """Training: bptt's gradient (vjp + param_vjp through 10 steps, readout of the state)
    along a random direction of every parameter equals the central difference of the loss."""
    from gradsim.training.backprop import bptt, init_model

    model = init_model(_cell(v, 4, 2, 5), 1, rng=1)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((5, 10, 2)), rng.standard_normal((5, 1))
    params = model.params
    direction = {k: rng.standard_normal(p.shape) for k, p in params.items()}
    grads = bptt(model, x, y).grads
    assert set(grads) == set(params)

    def loss(t):
        return bptt(model.with_params({k: params[k] + t * direction[k] for k in params}), x, y).loss

    if v[1] == "indrnn" and model.cell.activation == "relu":
        states = gs.unroll(model.cell, x)
        a = x @ model.cell.weight_ih.T + model.cell.weight_hh * states[:, :-1] + model.cell.bias_ih
        assert np.min(np.abs(a)) > 1e-3  # this draw stays away from ReLU's kink
    analytic = sum(float(np.sum(grads[k] * direction[k])) for k in params)
    _assert_close(analytic, _fd(loss, 0.0, 1.0), f"{v[0]} bptt")


# ------------------------------------------------------------------------------------------
# the update equations, re-written independently
def test_lru_step_is_the_complex_recurrence_and_output_the_readout():
    cell = LRU.ring_init(4, 3, n_output=2, r_min=0.4, r_max=0.95, max_phase=3.0, rng=5)
    rng = np.random.default_rng(3)
    h = rng.standard_normal(4) + 1j * rng.standard_normal(4)
    x = rng.standard_normal(3)
    lam = np.exp(-np.exp(cell.nu_log) + 1j * np.exp(cell.theta_log))
    b = cell.B_re + 1j * cell.B_im
    c = cell.C_re + 1j * cell.C_im
    new = lam * h + np.exp(cell.gamma_log) * (b @ x)
    state = np.concatenate([h.real, h.imag])
    np.testing.assert_allclose(cell.step(state, x), np.concatenate([new.real, new.imag]), rtol=0, atol=1e-14)
    np.testing.assert_allclose(cell.output(state, x), (c @ h).real + cell.D @ x, rtol=0, atol=1e-14)
    unnorm = dataclasses.replace(cell, normalize=False)
    new = lam * h + b @ x
    np.testing.assert_allclose(unnorm.step(state, x), np.concatenate([new.real, new.imag]), rtol=0, atol=1e-14)
    assert cell.output(state, x).shape == (2,) and cell.n_output == 2
    assert gs.make_cell("lru", 3, 2, rng=0).n_output == 2  # O = I by default


def test_min_cells_steps_are_the_papers_equations():
    rng = np.random.default_rng(4)
    h, x = rng.standard_normal(3), rng.standard_normal(2)
    g = gs.make_cell("mingru", 3, 2, bias_std=0.5, rng=1)
    z = expit(g.weight_z @ x + g.bias_z)
    np.testing.assert_allclose(g.step(h, x), (1 - z) * h + z * (g.weight_h @ x + g.bias_h), rtol=0, atol=1e-15)
    m = gs.make_cell("minlstm", 3, 2, bias_std=0.5, rng=1)
    f, i = expit(m.weight_f @ x + m.bias_f), expit(m.weight_i @ x + m.bias_i)
    expected = f / (f + i) * h + i / (f + i) * (m.weight_h @ x + m.bias_h)
    np.testing.assert_allclose(m.step(h, x), expected, rtol=0, atol=1e-15)
    r = gs.make_cell("indrnn", 3, 2, activation="relu", bias_std=0.5, rng=1)
    expected = np.maximum(r.weight_ih @ x + r.weight_hh * h + r.bias_ih, 0.0)
    np.testing.assert_allclose(r.step(h, x), expected, rtol=0, atol=1e-15)
    assert r.weight_hh.shape == (3,) and IndRNN(np.ones(2)).activation == "relu"


# ------------------------------------------------------------------------------------------
# exact spectra
@SETTINGS
@given(n=st.integers(1, 6), n_in=st.integers(0, 3), seed=seeds, normalize=st.booleans())
def test_lru_exponents_are_log_modulus_twice(n, n_in, seed, normalize):
    cell = LRU.ring_init(n, n_in, r_min=0.2, r_max=0.999, max_phase=2 * math.pi, rng=seed, normalize=normalize)
    x = np.random.default_rng(seed).standard_normal((40, n_in))
    res = gs.lyapunov_spectrum(cell, x)
    expected = np.sort(np.repeat(np.log(np.abs(cell.eigenvalues)), 2))[::-1]
    error = float(np.max(np.abs(res.exponents - expected)))
    assert error <= 1e-10
    # log|lambda| = -exp(nu_log); log of a modulus near 1 loses eps / |log r| relatively: absolute 1e-15
    np.testing.assert_allclose(-np.exp(cell.nu_log), np.log(np.abs(cell.eigenvalues)), rtol=0, atol=1e-15)


@SETTINGS
@given(kind=st.sampled_from(["mingru", "minlstm", "indrnn"]), n=st.integers(1, 5), seed=seeds)
def test_diagonal_cells_exponents_are_time_means_of_log_diagonal(kind, n, seed):
    opts = {"activation": "tanh"} if kind == "indrnn" else {}
    cell = gs.make_cell(kind, n, 2, bias_std=0.5, rng=seed, **opts)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((50, 2))
    s0 = rng.standard_normal(n)
    states = gs.unroll(cell, x, s0)
    if kind == "mingru":
        diag = 1.0 - expit(x @ cell.weight_z.T + cell.bias_z)
    elif kind == "minlstm":
        f = expit(x @ cell.weight_f.T + cell.bias_f)
        i = expit(x @ cell.weight_i.T + cell.bias_i)
        diag = f / (f + i)
    else:
        a = x @ cell.weight_ih.T + cell.weight_hh * states[:-1] + cell.bias_ih
        diag = cell.weight_hh * (1.0 - np.tanh(a) ** 2)
    expected = np.sort(np.mean(np.log(np.abs(diag)), axis=0))[::-1]
    res = gs.lyapunov_spectrum(cell, x, s0)
    error = float(np.max(np.abs(res.exponents - expected)))
    assert error <= EXACT * (1.0 + float(np.max(np.abs(expected))))


# ------------------------------------------------------------------------------------------
# the parallel scan
@SETTINGS
@given(kind=st.sampled_from(["mingru", "minlstm"]), n=st.integers(1, 5), n_in=st.integers(0, 3),
       steps=st.integers(1, 200), seed=seeds, bias=st.floats(-3, 3))
def test_scan_equals_sequential(kind, n, n_in, steps, seed, bias):
    cell = gs.make_cell(kind, n, n_in, bias_std=0.5, rng=seed)
    # shift the gates' biases so that the scan sees gates near 0 and 1 as well
    gate = "bias_z" if kind == "mingru" else "bias_f"
    cell = dataclasses.replace(cell, **{gate: getattr(cell, gate) + bias})
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((steps, n_in))
    s0 = rng.standard_normal(n)
    sequential = gs.unroll(cell, x, s0)
    scanned = mingru_scan(cell, x, s0)
    error = float(np.max(np.abs(scanned - sequential)))
    scale = float(np.max(np.abs(sequential)))
    assert error <= EXACT * scale


@pytest.mark.parametrize("kind", ["mingru", "minlstm"])
def test_scan_of_ensembles_batches_and_zero_input(kind):
    ens = gs.make_cell(kind, 3, 2, bias_std=0.5, ensemble=3, rng=2)
    rng = np.random.default_rng(0)
    for x, s0 in [
        (rng.standard_normal((3, 30, 2)), rng.standard_normal((3, 3))),  # per member
        (rng.standard_normal((30, 2)), None),  # shared inputs
        (rng.standard_normal((2, 3, 30, 2)), rng.standard_normal(3)),  # extra batch, shared state
        (30, rng.standard_normal((3, 3))),  # zero input
    ]:
        seq, scan = gs.unroll(ens, x, s0), mingru_scan(ens, x, s0)
        assert scan.shape == seq.shape
        assert np.max(np.abs(scan - seq)) <= EXACT * np.max(np.abs(seq))


def test_scan_rejects_other_cells():
    with pytest.raises(TypeError, match=exact(
        "`cell` must be a MinGRU or a MinLSTM (a gated linear recurrence); got a IndRNN."
    )):
        mingru_scan(IndRNN(np.ones(2)), 5)
    with pytest.raises(TypeError, match=exact(
        "`cell` must be a MinGRU or a MinLSTM (a gated linear recurrence); got 'mingru'."
    )):
        mingru_scan("mingru", 5)


# ------------------------------------------------------------------------------------------
# ensembles
@pytest.mark.parametrize("v", VARIANTS, ids=VARIANT_IDS)
def test_ensembles_equal_members(v):
    ens = _cell(v, 3, 2, 11, ensemble=3)
    assert ens.batch_shape == (3,) and len(ens) == 3
    members = [_cell(v, 3, 2, r) for r in np.random.default_rng(11).spawn(3)]
    rng = np.random.default_rng(5)
    s = rng.standard_normal((3, ens.state_size))
    x = rng.standard_normal((3, 2))
    cot = rng.standard_normal((3, ens.state_size))
    tangent = _random_tangent(ens, rng)
    xs = rng.standard_normal((3, 25, 2))
    grads = ens.param_vjp(s, x, cot)
    jvp = ens.param_jvp(s, x, tangent)
    states = gs.unroll(ens, xs, s)
    spectrum = gs.lyapunov_spectrum(ens, xs, s).exponents
    for i, member in enumerate(members):
        for name in ens.parameter_names:
            np.testing.assert_array_equal(getattr(ens[i], name), getattr(member, name))
        pairs = [
            (ens.step(s, x)[i], member.step(s[i], x[i])),
            (ens.jacobian(s, x)[i], member.jacobian(s[i], x[i])),
            (ens.vjp(s, x, cot)[i], member.vjp(s[i], x[i], cot[i])),
            (jvp[i], member.param_jvp(s[i], x[i], {k: t[i] for k, t in tangent.items()})),
            (states[i], gs.unroll(member, xs[i], s[i])),
            (spectrum[i], gs.lyapunov_spectrum(member, xs[i], s[i]).exponents),
        ]
        alone = member.param_vjp(s[i], x[i], cot[i])
        pairs += [(grads[k][i], alone[k]) for k in alone]
        for got, want in pairs:
            _assert_close(got, want, f"{v[0]} ensemble member {i}", tol=EXACT)
    # a shared state and input broadcast over the members; extra leading dimensions are summed
    shared = ens.param_vjp(s[0], x[0], cot[0])
    s5, x5, c5 = (rng.standard_normal((5, 3, d)) for d in (ens.state_size, 2, ens.state_size))
    summed = ens.param_vjp(s5, x5, c5)
    for i, member in enumerate(members):
        alone = member.param_vjp(s[0], x[0], cot[0])
        rows = member.param_vjp(s5[:, i], x5[:, i], c5[:, i])
        for k in alone:
            _assert_close(shared[k][i], alone[k], f"{v[0]} shared {k}", tol=EXACT)
            _assert_close(summed[k][i], rows[k], f"{v[0]} summed {k}", tol=EXACT)


@pytest.mark.parametrize("kind", ["lru", "mingru", "minlstm", "indrnn"])
def test_stack_cells_and_no_input(kind):
    cells = [gs.make_cell(kind, 2, 0, rng=r) for r in range(3)]
    ens = gs.stack_cells(cells)
    assert ens.n_input == 0 and ens.batch_shape == (3,)
    s = np.random.default_rng(0).standard_normal((3, ens.state_size))
    for i, c in enumerate(cells):
        np.testing.assert_array_equal(ens.step(s)[i], c.step(s[i]))
        assert set(c.param_vjp(s[i], np.zeros(0), s[i])) == set(c.parameter_names)


# ------------------------------------------------------------------------------------------
# the symbolic layer: sympy's derivation of the same update equations
SYMBOLIC = [("lru", "tanh"), ("mingru", "tanh"), ("minlstm", "tanh"), ("indrnn", "tanh"), ("indrnn", "relu")]


@pytest.mark.parametrize("kind, activation", SYMBOLIC, ids=[f"{k}-{a}" for k, a in SYMBOLIC])
@pytest.mark.parametrize("n, n_in", [(1, 1), (2, 0), (3, 2)])
def test_symbolic_derivation_equals_numeric(kind, activation, n, n_in):
    """The lambdified sympy update and Jacobian against the cell: the same expressions in
    another evaluation order (cse, numpy ufuncs), a few ulps of O(1) numbers -> 1e-12."""
    from gradsim import symbolic as S

    sym = S.symbolic_cell(kind, n, n_in, activation=activation)
    assert sym.state_size == (2 * n if kind == "lru" else n)
    jac, update = sym.lambdify_jacobian(), sym.lambdify_update()
    for seed in range(3):
        cell = gs.make_cell(kind, n, n_in, activation=activation, bias_std=0.5, rng=seed)
        rng = np.random.default_rng(seed)
        s, x = rng.standard_normal(cell.state_size), rng.standard_normal(n_in)
        if _relu_kink_free(cell, s, x):  # sympy's Heaviside(0, 0) and numpy's relu' agree only off 0
            _assert_close(jac(s, x, cell), cell.jacobian(s, x), f"{kind} symbolic jacobian", tol=EXACT)
        _assert_close(update(s, x, cell), cell.step(s, x), f"{kind} symbolic update", tol=EXACT)
        # a mapping of the arrays gives the same (the LRU's readout is not an argument)
        arrays = {k: v for k, v in cell.parameters().items() if k not in ("C_re", "C_im", "D")}
        np.testing.assert_array_equal(update(s, x, arrays), update(s, x, cell))
    # the derived Jacobian is diagonal (the LRU: 2 x 2 rotation blocks on (hr_i, hi_i))
    derived = sym.jacobian()
    for i in range(sym.state_size):
        for j in range(sym.state_size):
            if i % n != j % n or (kind != "lru" and i != j):
                assert derived[i, j] == 0, (i, j, derived[i, j])


def test_symbolic_bad_input():
    from gradsim import symbolic as S

    with pytest.raises(ValueError, match=exact(
        "`params` must be a numeric LRU(n_hidden=2, n_input=1, normalize=True) or a mapping of its arrays; "
        "got LRU(n_hidden=2, n_input=1, normalize=False)."
    )):
        S.symbolic_cell("lru", 2, 1).lambdify_update()(np.zeros(4), np.zeros(1), dataclasses.replace(
            gs.make_cell("lru", 2, 1, rng=0), normalize=False))
    with pytest.raises(ValueError, match=exact(
        "`params` must contain the keys weight_z, weight_h, bias_z, bias_h; got ['weight_z']."
    )):
        S.symbolic_cell("mingru", 2, 1).lambdify_update()(np.zeros(2), np.zeros(1), {"weight_z": np.zeros((2, 1))})
    with pytest.raises(ValueError, match=exact(
        "`kind` must be a kind with recurrent weight matrices for matrix_form_jacobian; the modern diagonal "
        "kinds ('lru', 'mingru', 'minlstm', 'indrnn') are derived with explicit symbols by symbolic_cell; got "
        "'indrnn'."
    )):
        S.matrix_form_jacobian("indrnn")


# ------------------------------------------------------------------------------------------
# make_cell (the modern kinds' counterparts of tests/test_cells.py's make_cell tests, whose
# tables assume PyTorch's four arrays)
SHAPES = {  # name -> shape for N = 4, I = 3 (LRU: O = I)
    "lru": {"nu_log": (4,), "theta_log": (4,), "gamma_log": (4,), "B_re": (4, 3), "B_im": (4, 3),
            "C_re": (3, 4), "C_im": (3, 4), "D": (3, 3)},
    "mingru": {"weight_z": (4, 3), "weight_h": (4, 3), "bias_z": (4,), "bias_h": (4,)},
    "minlstm": {"weight_f": (4, 3), "weight_i": (4, 3), "weight_h": (4, 3), "bias_f": (4,), "bias_i": (4,),
                "bias_h": (4,)},
    "indrnn": {"weight_hh": (4,), "weight_ih": (4, 3), "bias_ih": (4,)},
}
CLASSES = {"lru": LRU, "mingru": MinGRU, "minlstm": MinLSTM, "indrnn": IndRNN}


def test_modern_kinds_are_cell_kinds():
    from gradsim.cells.factory import MODERN_KINDS

    assert set(MODERN_KINDS) == set(SHAPES) and set(MODERN_KINDS) <= set(gs.CELL_KINDS)


@pytest.mark.parametrize("init", ["gaussian", "identity", "orthogonal", "pytorch"])
@pytest.mark.parametrize("kind", list(SHAPES))
def test_make_cell_shapes_of_the_modern_kinds(kind, init):
    cell = gs.make_cell(kind, 4, 3, init=init, gain=0.9, bias_std=0.2, rng=1)
    assert type(cell) is CLASSES[kind]
    assert (cell.n_hidden, cell.n_input) == (4, 3)
    assert cell.state_size == (8 if kind == "lru" else 4)
    assert {k: v.shape for k, v in cell.parameters().items()} == SHAPES[kind]
    s = np.zeros(cell.state_size)
    assert cell.step(s, np.ones(3)).shape == (cell.state_size,)
    assert cell.jacobian(s, np.ones(3)).shape == (cell.state_size,) * 2
    for array in cell.parameters().values():
        assert array.dtype == np.float64 and not array.flags.writeable
    without = gs.make_cell(kind, 4, 0, init=init, rng=1)
    assert without.n_input == 0 and without.step(np.full(without.state_size, 0.1)).shape == (without.state_size,)


@pytest.mark.parametrize("kind", list(SHAPES))
def test_make_cell_reproducible_by_seed_modern(kind):
    a, b, c = (gs.make_cell(kind, 4, 2, bias_std=0.5, rng=r) for r in (123, 123, 124))
    for name in a.parameter_names:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert not np.array_equal(getattr(a, name), getattr(c, name)), name


def test_make_cell_initialisations_of_the_modern_kinds():
    # IndRNN: u ~ U(0, gain); identity: u = gain; pytorch: U(-1/sqrt N, 1/sqrt N)
    u = gs.make_cell("indrnn", 400, 1, gain=0.8, rng=0).weight_hh
    assert np.all((u >= 0) & (u <= 0.8)) and abs(u.mean() - 0.4) < 5 * 0.8 / math.sqrt(12 * 400)
    np.testing.assert_array_equal(gs.make_cell("indrnn", 3, 1, init="identity", gain=0.8, rng=0).weight_hh, 0.8)
    torch_like = gs.make_cell("indrnn", 16, 2, init="pytorch", rng=0)
    assert all(np.all(np.abs(a) <= 0.25) for a in torch_like.parameters().values())
    # minGRU / minLSTM with init="pytorch": nn.Linear's U(-1/sqrt I, 1/sqrt I)
    lin = gs.make_cell("minlstm", 50, 4, init="pytorch", rng=0)
    for a in lin.parameters().values():
        assert np.all(np.abs(a) <= 0.5) and np.max(np.abs(a)) > 0.45
    # the LRU's ring from make_cell's keywords
    ring = gs.make_cell("lru", 500, 2, r_min=0.9, r_max=0.999, max_phase=0.5, rng=0)
    modulus = np.abs(ring.eigenvalues)
    assert np.all((modulus >= 0.9) & (modulus <= 0.999))
    assert np.all(np.exp(ring.theta_log) <= 0.5)


# ------------------------------------------------------------------------------------------
# the ring initialisation
def test_ring_init_draws_the_ring_and_the_normalisation():
    cell = LRU.ring_init(2000, 4, r_min=0.3, r_max=0.9, max_phase=1.5, rng=0)
    modulus = np.abs(cell.eigenvalues)
    phase = np.exp(cell.theta_log)
    assert np.all((modulus >= 0.3) & (modulus <= 0.9))
    assert np.all((phase >= 0.0) & (phase <= 1.5))
    np.testing.assert_allclose(cell.gamma, np.sqrt(1 - modulus**2), rtol=1e-12)
    # |lambda|^2 ~ U[0.09, 0.81]: its mean 0.45 and sd 0.72/sqrt(12); 2000 draws, 5 s.e.
    sq = modulus**2
    assert abs(sq.mean() - 0.45) < 5 * 0.72 / math.sqrt(12 * 2000)
    assert abs(phase.mean() - 0.75) < 5 * 1.5 / math.sqrt(12 * 2000)
    # B entries N(0, 1/(2 I)), C's N(0, 1/N), D's N(0, 1): sample variances within 5 s.e.
    for array, var in ((cell.B_re, 1 / 8), (cell.B_im, 1 / 8), (cell.C_re, 1 / 2000), (cell.D, 1.0)):
        se = var * math.sqrt(2 / array.size)
        assert abs(array.var() - var) < 5 * se + 1e-12


@pytest.mark.parametrize("kwargs, message", [
    ({"r_min": 0.9, "r_max": 0.5},
     "`r_min` must be less than `r_max` (the ring r_min <= |lambda| <= r_max); got r_min=0.9, r_max=0.5."),
    ({"r_min": 0.5, "r_max": 0.5},
     "`r_min` must be less than `r_max` (the ring r_min <= |lambda| <= r_max); got r_min=0.5, r_max=0.5."),
    ({"r_min": -0.1}, "`r_min` must be in [0, 1] (an eigenvalue modulus); got -0.1."),
    ({"r_max": 1.5}, "`r_max` must be in [0, 1] (an eigenvalue modulus); got 1.5."),
    ({"max_phase": 0.0}, "`max_phase` must be a positive number (the largest eigenvalue phase); got 0.0."),
    ({"max_phase": -1}, "`max_phase` must be a positive number (the largest eigenvalue phase); got -1.0."),
    ({"r_max": float("nan")}, "`r_max` must be a finite number; got nan."),
])
def test_ring_init_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=exact(message)):
        LRU.ring_init(3, 2, **kwargs)
    with pytest.raises(ValueError, match=exact(message)):
        gs.make_cell("lru", 3, 2, **kwargs)


def test_bad_input():
    with pytest.raises(TypeError, match=exact("`r_min` must be a real number; got '0'.")):
        LRU.ring_init(3, 2, r_min="0")
    with pytest.raises(ValueError, match=exact(
        "`r_min`, `r_max` and `max_phase` apply to kind='lru' only; got kind='mingru'."
    )):
        gs.make_cell("mingru", 3, 2, r_max=0.9)
    with pytest.raises(ValueError, match=exact(
        "`theta_log` must have shape (N,) = (3,) (N=3) for LRU; got shape (2,)."
    )):
        LRU(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match=exact(
        "`B_re` and `B_im` must be given together (or both None for no input); got B_re=an array of shape "
        "(3, 2), B_im=None."
    )):
        LRU(np.zeros(3), np.zeros(3), B_re=np.zeros((3, 2)))
    with pytest.raises(ValueError, match=exact(
        "`weight_h` must have shape (N, I) = (3, 2) (N=3, I=2) for MinGRU; got shape (3, 1)."
    )):
        MinGRU(np.zeros((3, 2)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match=exact(
        "`bias_i` must have shape (N,) or (4,) + (N,) for MinLSTM (the ensemble's batch shape is that of "
        "`weight_f`); got shape (5, 3)."
    )):
        MinLSTM(np.zeros((4, 3, 2)), np.zeros((3, 2)), np.zeros((3, 2)), bias_i=np.zeros((5, 3)))
    with pytest.raises(ValueError, match=exact(
        "`weight_hh` must be an array of shape (N,) (the vector u; or (..., N) for an ensemble) for IndRNN; "
        "got shape ()."
    )):
        IndRNN(1.0)
    with pytest.raises(ValueError, match=exact("`weight_hh` must have at least one hidden unit; got shape (0,).")):
        IndRNN(np.zeros(0))
    with pytest.raises(ValueError, match=exact(
        "`activation` must be one of 'tanh', 'relu', 'linear', 'sigmoid'; got 'softplus'."
    )):
        IndRNN(np.ones(2), activation="softplus")
    with pytest.raises(TypeError, match=exact("`normalize` must be True or False; got 1.")):
        LRU(np.zeros(2), np.zeros(2), normalize=1)
    cell = gs.make_cell("lru", 2, 1, rng=0)
    with pytest.raises(ValueError, match=exact(
        "`tangent` has unknown parameter name(s) 'weight_hh' for LRU; the known names are 'nu_log', "
        "'theta_log', 'gamma_log', 'B_re', 'B_im', 'C_re', 'C_im', 'D'."
    )):
        cell.param_jvp(np.zeros(4), np.zeros(1), {"weight_hh": np.zeros((2, 2))})
    with pytest.raises(ValueError, match=exact(
        "`tangent['nu_log']` must have the shape of the parameter 'nu_log', (2,); got shape (3,)."
    )):
        cell.param_jvp(np.zeros(4), np.zeros(1), {"nu_log": np.zeros(3)})


def test_cells_are_immutable():
    cell = gs.make_cell("minlstm", 2, 2, rng=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cell.weight_f = np.zeros((2, 2))
    with pytest.raises(ValueError):
        cell.weight_f[0, 0] = 1.0
