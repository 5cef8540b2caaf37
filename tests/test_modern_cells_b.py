"""Tests of the discretised-ODE cells of issue 12: AntisymmetricRNN and CoRNN.

References, each independent of the code under test:

* central finite differences of ``step`` for the state Jacobians, the parameter VJPs and the
  parameter JVPs (on many random cells, drawn by hypothesis), and of ``gs.unroll`` for
  ``gs.parameter_jvp`` and of the training loss for ``bptt``;
* the update equations re-written here in plain numpy: Chang et al.'s eq. (9) for the
  AntisymmetricRNN, and for the CoRNN the authors' code (one ``nn.Linear`` over cat(x, z, y),
  z updated first) and eq. (3) of Rusch & Mishra with the damping implicit;
* the exact spectrum of the linear AntisymmetricRNN: J = I + eps (W - W^T - gamma I) is normal
  with eigenvalues 1 - eps gamma +- i eps omega_k, so its exponents are
  (1/2) log((1 - eps gamma)^2 + eps^2 omega_k^2), each conjugate pair twice.

Finite-difference tolerance (the budget of tests/test_modern_cells.py). A central difference
with step h has truncation error h^2 |f'''| / 6 and rounding error about eps_mach |f| / h. Every
quantity is O(1): states and inputs ~N(0, 1), weights N(0, 1/N) or U(+-1/sqrt(fan-in)), sizes
<= 4, eps, dt <= 0.6, so |f| <= ~20 and |f'''| <= ~20 (tanh''' and sigmoid''' are bounded by 2
and 1/8). With h = 1e-5 both terms are below 1e-9; FD_TOL = 1e-7 times (1 + the largest |entry|
of the reference) is a margin of 100. A wrong term (a missing -W^T, the old z instead of the new
one, a dropped dt on y's row, a sign of gamma) is an error of order eps or dt times O(1), at
least 1e-2 here. Observed (40 seeded cells per variant, N <= 4): at most 2e-9 of (1 + scale), the
parameter JVP along an N(0, 1) tangent of every parameter (a long direction, so a larger |f'''|);
the Jacobians <= 5e-11; median 5e-12.

Exact identities (VJP against v @ J, the structured operator against the dense Jacobian, the
adjoint identity, ensembles against their members) are the same sums of products in another
order: a few ulps of the sum of the absolute terms, so 1e-12 of that sum.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gradsim as gs
from gradsim.cells import AntisymmetricRNN, CoRNN

FD_STEP = 1e-5
FD_TOL = 1e-7
EXACT = 1e-12
SETTINGS = settings(max_examples=60, deadline=None, database=None)
seeds = st.integers(0, 2**32 - 1)

# (id, kind, options for make_cell, constructor overrides)
VARIANTS = [
    ("antisymmetric-default", "antisymmetric", {"bias_std": 0.3}, {}),
    ("antisymmetric-tanh", "antisymmetric", {"eps": 0.5, "gamma": 0.3, "bias_std": 0.3}, {}),
    ("antisymmetric-linear", "antisymmetric", {"eps": 0.4, "gamma": 0.0, "activation": "linear"}, {}),
    ("antisymmetric-sigmoid", "antisymmetric", {"eps": 0.3, "gamma": 0.1, "activation": "sigmoid"}, {}),
    ("cornn-default", "cornn", {"bias_std": 0.3}, {}),
    ("cornn-pytorch", "cornn", {"init": "pytorch"}, {}),
    ("cornn-explicit", "cornn", {"dt": 0.3, "gamma": 0.7, "eps": 1.3, "bias_std": 0.3}, {}),
    ("cornn-implicit", "cornn", {"dt": 0.6, "gamma": 0.7, "eps": 1.3, "bias_std": 0.3}, {"damping": "implicit"}),
    ("cornn-linear", "cornn", {"dt": 0.2, "gamma": 1.0, "eps": 0.5, "activation": "linear"}, {}),
    ("cornn-sigmoid", "cornn", {"dt": 0.2, "gamma": 1.0, "eps": 0.5, "activation": "sigmoid"}, {}),
]
VARIANT_IDS = [v[0] for v in VARIANTS]


def exact(message: str) -> str:
    return "^" + re.escape(message) + "$"


def _cell(variant, n, n_in, seed, ensemble=None):
    _, kind, opts, overrides = variant
    cell = gs.make_cell(kind, n, n_in, rng=seed, ensemble=ensemble, **opts)
    return dataclasses.replace(cell, **overrides) if overrides else cell


def _assert_close(actual, expected, what, tol=FD_TOL):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    scale = float(np.max(np.abs(expected), initial=0.0))
    error = float(np.max(np.abs(actual - expected), initial=0.0))
    assert error <= tol * (1.0 + scale), f"{what}: error {error:.3g} at scale {scale:.3g}"


def _fd(f, x0, direction):
    return (f(x0 + FD_STEP * direction) - f(x0 - FD_STEP * direction)) / (2 * FD_STEP)


def _moved(cell, tangent, t):
    return type(cell)(**{k: p + t * tangent[k] for k, p in cell.parameters().items()}, **cell.options())


def _random_tangent(cell, rng):
    return {name: rng.standard_normal(p.shape) for name, p in cell.parameters().items()}


# ------------------------------------------------------------------------------------------
# derivatives against finite differences
@SETTINGS
@given(v=st.sampled_from(VARIANTS), n=st.integers(1, 4), n_in=st.integers(0, 3), seed=seeds)
def test_jacobian_operator_and_vjp_against_finite_differences(v, n, n_in, seed):
    cell = _cell(v, n, n_in, seed)
    rng = np.random.default_rng(seed)
    s = rng.standard_normal(cell.state_size)
    x = rng.standard_normal(n_in)
    p = cell.state_size
    jac = cell.jacobian(s, x)
    fd = np.stack([_fd(lambda z: cell.step(z, x), s, e) for e in np.eye(p)], axis=-1)
    _assert_close(jac, fd, f"{v[0]} jacobian")
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
    cot = rng.standard_normal(cell.state_size)
    grads = cell.param_vjp(s, x, cot)
    assert list(grads) == list(cell.parameter_names)
    for name, param in cell.parameters().items():
        assert grads[name].shape == param.shape, name
        fd = np.zeros(param.shape)
        for idx in np.ndindex(param.shape):
            e = {k: np.zeros(p.shape) for k, p in cell.parameters().items()}
            e[name][idx] = 1.0
            fd[idx] = _fd(lambda t: cot @ _moved(cell, e, t).step(s, x), 0.0, 1.0)
        _assert_close(grads[name], fd, f"{v[0]} param_vjp {name}")
    tangent = _random_tangent(cell, rng)
    jvp = cell.param_jvp(s, x, tangent)
    _assert_close(jvp, _fd(lambda t: _moved(cell, tangent, t).step(s, x), 0.0, 1.0), f"{v[0]} param_jvp")
    # the adjoint identity, to rounding of the sums of absolute terms
    lhs = float(np.sum(cot * jvp))
    rhs = sum(float(np.sum(grads[k] * tangent[k])) for k in tangent)
    terms = float(np.sum(np.abs(cot * jvp))) + sum(float(np.sum(np.abs(grads[k] * tangent[k]))) for k in tangent)
    assert abs(lhs - rhs) <= EXACT * terms, (lhs, rhs, terms)


def test_only_the_antisymmetric_part_of_w_enters():
    """W's symmetric part cancels in W - W^T: its gradient is antisymmetric and a symmetric
    tangent moves nothing."""
    cell = gs.make_cell("antisymmetric", 4, 2, eps=0.5, rng=3)
    rng = np.random.default_rng(0)
    s, x, cot = rng.standard_normal(4), rng.standard_normal(2), rng.standard_normal(4)
    g = cell.param_vjp(s, x, cot)["weight_hh"]
    np.testing.assert_array_equal(g, -g.T)
    assert np.max(np.abs(g)) > 1e-3
    sym = rng.standard_normal((4, 4))
    np.testing.assert_array_equal(cell.param_jvp(s, x, {"weight_hh": sym + sym.T}), 0.0)
    moved = dataclasses.replace(cell, weight_hh=cell.weight_hh + sym + sym.T)
    np.testing.assert_allclose(moved.step(s, x), cell.step(s, x), rtol=0, atol=1e-15)


@pytest.mark.parametrize("v", VARIANTS, ids=VARIANT_IDS)
def test_parameter_jvp_over_a_sequence_against_finite_differences(v):
    """gs.parameter_jvp (the time loop over _param_jvp and the Jacobian operators) against a
    central difference of gs.unroll along the tangent; the same FD error budget per state."""
    cell = _cell(v, 3, 2, 3)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((15, 2))
    s0 = rng.standard_normal(cell.state_size)
    tangent = _random_tangent(cell, rng)
    out = gs.parameter_jvp(cell, x, tangent, s0)
    assert out.shape == (16, cell.state_size)
    _assert_close(out, _fd(lambda t: gs.unroll(_moved(cell, tangent, t), x, s0), 0.0, 1.0), f"{v[0]} parameter_jvp")


@pytest.mark.parametrize("v", VARIANTS[1::2], ids=VARIANT_IDS[1::2])
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

    analytic = sum(float(np.sum(grads[k] * direction[k])) for k in params)
    _assert_close(analytic, _fd(loss, 0.0, 1.0), f"{v[0]} bptt")


# ------------------------------------------------------------------------------------------
# the update equations, re-written independently
def test_antisymmetric_step_is_the_papers_equation():
    cell = gs.make_cell("antisymmetric", 4, 3, eps=0.2, gamma=0.3, bias_std=0.5, rng=2)
    rng = np.random.default_rng(1)
    h, x = rng.standard_normal(4), rng.standard_normal(3)
    w, v, b = cell.weight_hh, cell.weight_ih, cell.bias
    expected = h + 0.2 * np.tanh((w - w.T - 0.3 * np.eye(4)) @ h + v @ x + b)
    np.testing.assert_allclose(cell.step(h, x), expected, rtol=0, atol=1e-15)
    lin = dataclasses.replace(cell, activation="linear")
    np.testing.assert_allclose(lin.step(h, x), h + 0.2 * ((w - w.T - 0.3 * np.eye(4)) @ h + v @ x + b), rtol=0, atol=1e-15)
    np.testing.assert_allclose(cell.recurrent_matrix, w - w.T - 0.3 * np.eye(4), rtol=0, atol=0)


def test_cornn_step_is_the_authors_code_and_eq3():
    """The authors' cell (github.com/tk-rusch/coRNN): hz = hz + dt (tanh(i2h(cat(x, hz, hy))) -
    gamma hy - eps hz); hy = hy + dt hz, with i2h.weight = [V | W_z | W_y]."""
    cell = gs.make_cell("cornn", 4, 3, init="pytorch", rng=2)
    assert (cell.dt, cell.gamma, cell.eps, cell.damping) == (0.042, 2.7, 4.7, "explicit")
    rng = np.random.default_rng(1)
    hy, hz, x = rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal(3)
    i2h = np.concatenate([cell.weight_ih, cell.weight_z, cell.weight_y], axis=1)
    pre = i2h @ np.concatenate([x, hz, hy]) + cell.bias
    z_new = hz + 0.042 * (np.tanh(pre) - 2.7 * hy - 4.7 * hz)
    y_new = hy + 0.042 * z_new
    np.testing.assert_allclose(cell.step(np.concatenate([hy, hz]), x), np.concatenate([y_new, z_new]), rtol=0, atol=1e-15)
    # eq. (3) with the damping at the new z, solved for it
    imp = dataclasses.replace(cell, damping="implicit")
    z_imp = (hz + 0.042 * (np.tanh(pre) - 2.7 * hy)) / (1 + 0.042 * 4.7)
    np.testing.assert_allclose(
        imp.step(np.concatenate([hy, hz]), x), np.concatenate([hy + 0.042 * z_imp, z_imp]), rtol=0, atol=1e-15
    )
    assert cell.state_size == 8 and cell.n_hidden == 4 and cell.n_input == 3


# ------------------------------------------------------------------------------------------
# the exact spectrum of the linear antisymmetric cell
def _block_antisymmetric(n, rng):
    """W whose antisymmetric part is block diagonal in the coordinate pairs (0, 1), (2, 3), ...
    (and 0 for the last unit when N is odd), plus a dense random symmetric part (which cancels
    in W - W^T): the Jacobian's invariant planes are coordinate planes, so the QR method's frame,
    started at the identity, stays aligned with them and every R_ii is exact to rounding."""
    omega = rng.uniform(-4, 4, n // 2)
    k = np.zeros((n, n))
    for j, w in enumerate(omega):
        k[2 * j, 2 * j + 1], k[2 * j + 1, 2 * j] = w / 2, -w / 2
    sym = rng.standard_normal((n, n))
    return k + sym + sym.T, omega


@SETTINGS
@given(n=st.integers(1, 7), n_in=st.integers(0, 3), seed=seeds, eps=st.floats(0.01, 0.5),
       gamma=st.floats(0.0, 1.0))
def test_linear_antisymmetric_exponents_are_the_eigenvalue_moduli(n, n_in, seed, eps, gamma):
    rng = np.random.default_rng(seed)
    w, omega = _block_antisymmetric(n, rng)
    cell = AntisymmetricRNN(w, rng.standard_normal((n, n_in)), rng.standard_normal(n), eps=eps, gamma=gamma,
                            activation="linear")
    # eigenvalues of W - W^T: +-i omega_j (the block [[0, w/2], [-w/2, 0]] minus its transpose)
    moduli = np.concatenate([omega, -omega, np.zeros(n % 2)])
    expected = np.sort(0.5 * np.log((1 - eps * gamma) ** 2 + (eps * moduli) ** 2))[::-1]
    # every nonzero omega gives one conjugate pair, so the exponents come in equal twos
    assert np.all(np.abs(expected[: 2 * (n // 2)].reshape(-1, 2) @ [1, -1]) < 1e-15)
    np.testing.assert_allclose(cell.linear_exponents(), expected, rtol=0, atol=1e-13)
    x = rng.standard_normal((60, n_in))
    res = gs.lyapunov_spectrum(cell, x, rng.standard_normal(n))
    assert float(np.max(np.abs(res.exponents - expected))) <= 1e-10


@SETTINGS
@given(n=st.integers(1, 6), seed=seeds, eps=st.floats(0.01, 0.5), gamma=st.floats(0.0, 1.0))
def test_linear_antisymmetric_exponents_of_a_dense_w(n, seed, eps, gamma):
    """A dense W: the formula against numpy's eigenvalues of J = I + eps A, and the sum of the
    QR exponents (the mean log|det J|, exact at any T for the full spectrum) against the
    formula's sum. The individual finite-T exponents converge only as 1/T here (the frame
    starts off the invariant planes)."""
    cell = gs.make_cell("antisymmetric", n, 1, eps=eps, gamma=gamma, activation="linear", rng=seed)
    jac = np.eye(n) + eps * cell.recurrent_matrix
    np.testing.assert_allclose(cell.jacobian(np.zeros(n), np.zeros(1)), jac, rtol=0, atol=0)
    direct = np.sort(np.log(np.abs(np.linalg.eigvals(jac))))[::-1]
    np.testing.assert_allclose(cell.linear_exponents(), direct, rtol=0, atol=1e-12)
    np.testing.assert_allclose(jac @ jac.T, jac.T @ jac, rtol=0, atol=1e-14)  # normal
    res = gs.lyapunov_spectrum(cell, np.random.default_rng(seed).standard_normal((50, 1)))
    assert abs(float(np.sum(res.exponents)) - float(np.sum(direct))) <= 1e-10 * (1 + n)


def test_linear_exponents_of_an_ensemble():
    ens = gs.make_cell("antisymmetric", 5, 2, eps=0.3, activation="linear", ensemble=3, rng=4)
    out = ens.linear_exponents()
    assert out.shape == (3, 5)
    for i in range(3):
        np.testing.assert_array_equal(out[i], ens[i].linear_exponents())


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
    frame = rng.standard_normal((3, ens.state_size, 2))
    _, op = ens._jacobian_operator(s, x, "full")
    for i, member in enumerate(members):
        for name in ens.parameter_names:
            np.testing.assert_array_equal(getattr(ens[i], name), getattr(member, name))
        assert ens[i].options() == member.options()
        pairs = [
            (ens.step(s, x)[i], member.step(s[i], x[i])),
            (ens.jacobian(s, x)[i], member.jacobian(s[i], x[i])),
            (ens.vjp(s, x, cot)[i], member.vjp(s[i], x[i], cot[i])),
            ((op @ frame)[i], member.jacobian(s[i], x[i]) @ frame[i]),
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


@pytest.mark.parametrize("kind", ["antisymmetric", "cornn"])
def test_stack_cells_and_no_input(kind):
    cells = [gs.make_cell(kind, 2, 0, rng=r) for r in range(3)]
    ens = gs.stack_cells(cells)
    assert ens.n_input == 0 and ens.batch_shape == (3,)
    s = np.random.default_rng(0).standard_normal((3, ens.state_size))
    for i, c in enumerate(cells):
        np.testing.assert_array_equal(ens.step(s)[i], c.step(s[i]))
        assert set(c.param_vjp(s[i], np.zeros(0), s[i])) == set(c.parameter_names)
    with pytest.raises(ValueError, match="`cells` must all have the same"):
        gs.stack_cells([cells[0], dataclasses.replace(cells[1], eps=0.5)])


# ------------------------------------------------------------------------------------------
# make_cell
SHAPES = {  # N = 4, I = 3
    "antisymmetric": {"weight_hh": (4, 4), "weight_ih": (4, 3), "bias": (4,)},
    "cornn": {"weight_y": (4, 4), "weight_z": (4, 4), "weight_ih": (4, 3), "bias": (4,)},
}


@pytest.mark.parametrize("init", ["gaussian", "identity", "orthogonal", "pytorch"])
@pytest.mark.parametrize("kind", list(SHAPES))
def test_make_cell_shapes(kind, init):
    cell = gs.make_cell(kind, 4, 3, init=init, gain=0.9, bias_std=0.2, rng=1)
    assert type(cell) is {"antisymmetric": AntisymmetricRNN, "cornn": CoRNN}[kind]
    assert (cell.n_hidden, cell.n_input, cell.state_size) == (4, 3, 4 if kind == "antisymmetric" else 8)
    assert {k: v.shape for k, v in cell.parameters().items()} == SHAPES[kind]
    for array in cell.parameters().values():
        assert array.dtype == np.float64 and not array.flags.writeable
    without = gs.make_cell(kind, 4, 0, init=init, rng=1)
    assert without.n_input == 0 and without.step(np.full(without.state_size, 0.1)).shape == (without.state_size,)
    assert set(gs.cells.factory.ODE_KINDS) == set(SHAPES) and set(SHAPES) <= set(gs.CELL_KINDS)


def test_make_cell_defaults_and_initialisations():
    a = gs.make_cell("antisymmetric", 400, 2, rng=0)
    assert (a.eps, a.gamma, a.activation) == (0.01, 0.01, "tanh")
    # W ~ N(0, 1/N): the entries' variance 1/N within 5 standard errors (sqrt(2/N^2) / N)
    n = 400
    assert abs(np.var(a.weight_hh) * n - 1.0) < 5 * math.sqrt(2.0 / n**2)
    c = gs.make_cell("cornn", 8, 2, rng=0)
    assert (c.dt, c.gamma, c.eps, c.activation, c.damping) == (0.042, 2.7, 4.7, "tanh", "explicit")
    # the authors' nn.Linear(I + 2N, N): every weight and the bias within 1/sqrt(I + 2N)
    t = gs.make_cell("cornn", 50, 4, init="pytorch", rng=0)
    bound = 1 / math.sqrt(104)
    for arr in t.parameters().values():
        assert np.max(np.abs(arr)) <= bound and np.max(np.abs(arr)) > 0.9 * bound
    given = gs.make_cell("cornn", 3, 1, dt=0.1, gamma=0.5, eps=0.2, activation="linear", rng=0)
    assert (given.dt, given.gamma, given.eps, given.activation) == (0.1, 0.5, 0.2, "linear")
    assert gs.make_cell("antisymmetric", 3, 1, gamma=0, rng=0).gamma == 0.0
    # reproducible by seed, member i from the i-th spawned child
    for kind in SHAPES:
        x, y, z = (gs.make_cell(kind, 4, 2, bias_std=0.5, rng=r) for r in (123, 123, 124))
        for name in x.parameter_names:
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name))
            assert not np.array_equal(getattr(x, name), getattr(z, name)), name
        ens = gs.make_cell(kind, 3, 2, ensemble=2, eps=0.3, rng=9)
        for i, r in enumerate(np.random.default_rng(9).spawn(2)):
            alone = gs.make_cell(kind, 3, 2, eps=0.3, rng=r)
            for name in alone.parameter_names:
                np.testing.assert_array_equal(getattr(ens[i], name), getattr(alone, name))


# ------------------------------------------------------------------------------------------
# bad input
W2 = np.eye(2)
BAD = [
    (lambda: AntisymmetricRNN(W2, eps=0.0), ValueError, "`eps` must be a positive finite number; got 0.0."),
    (lambda: AntisymmetricRNN(W2, eps=-0.1), ValueError, "`eps` must be a positive finite number; got -0.1."),
    (lambda: AntisymmetricRNN(W2, eps=math.nan), ValueError, "`eps` must be a positive finite number; got nan."),
    (lambda: AntisymmetricRNN(W2, gamma=-1), ValueError, "`gamma` must be a non-negative finite number; got -1.0."),
    (lambda: AntisymmetricRNN(W2, gamma=math.inf), ValueError,
     "`gamma` must be a non-negative finite number; got inf."),
    (lambda: AntisymmetricRNN(W2, eps="0.1"), TypeError, "`eps` must be a positive finite number; got '0.1'."),
    (lambda: AntisymmetricRNN(np.ones((2, 3))), ValueError,
     "`weight_hh` must be a square array of shape (N, N) (or (..., N, N) for an ensemble) for AntisymmetricRNN; "
     "got shape (2, 3)."),
    (lambda: AntisymmetricRNN(W2, np.ones((3, 1))), ValueError,
     "`weight_ih` must have shape (N, I) = (2, 1) (N=2, I=1) for AntisymmetricRNN; got shape (3, 1)."),
    (lambda: AntisymmetricRNN(W2, activation="tahn"), ValueError,
     "`activation` must be one of 'tanh', 'relu', 'linear', 'sigmoid'; got 'tahn'."),
    (lambda: CoRNN(W2, W2, dt=0), ValueError, "`dt` must be a positive finite number; got 0.0."),
    (lambda: CoRNN(W2, W2, dt=math.inf), ValueError, "`dt` must be a positive finite number; got inf."),
    (lambda: CoRNN(W2, W2, gamma=0.0), ValueError, "`gamma` must be a positive finite number; got 0.0."),
    (lambda: CoRNN(W2, W2, gamma=-2), ValueError, "`gamma` must be a positive finite number; got -2.0."),
    (lambda: CoRNN(W2, W2, eps=math.nan), ValueError, "`eps` must be a positive finite number; got nan."),
    (lambda: CoRNN(W2, W2, eps=None), TypeError, "`eps` must be a positive finite number; got None."),
    (lambda: CoRNN(W2, W2, damping="semi"), ValueError,
     "`damping` must be one of 'explicit', 'implicit'; got 'semi'."),
    (lambda: CoRNN(np.ones(2), W2), ValueError,
     "`weight_y` must be a square array of shape (N, N) (or (..., N, N) for an ensemble) for CoRNN; got shape (2,)."),
    (lambda: CoRNN(W2, np.eye(3)), ValueError,
     "`weight_z` must have shape (N, N) = (2, 2) (N=2, N=2) for CoRNN; got shape (3, 3)."),
    (lambda: gs.make_cell("rnn", 2, eps=0.1, rng=0), ValueError,
     "`eps` and `gamma` apply to kind='antisymmetric' or kind='cornn' only; got kind='rnn'."),
    (lambda: gs.make_cell("lru", 2, gamma=0.1, rng=0), ValueError,
     "`eps` and `gamma` apply to kind='antisymmetric' or kind='cornn' only; got kind='lru'."),
    (lambda: gs.make_cell("cornn", 2, gamma=0, rng=0), ValueError, "`gamma` must be a positive finite number; got 0.0."),
    (lambda: gs.make_cell("cornn", 2, dt=-1, rng=0), ValueError, "`dt` must be a positive finite number; got -1.0."),
    (lambda: gs.make_cell("antisymmetric", 2, eps=0, rng=0), ValueError,
     "`eps` must be a positive finite number; got 0.0."),
    (lambda: gs.make_cell("cornn", 2, integrator="rk4", rng=0), ValueError,
     "`integrator` applies to kind='rate' only; got kind='cornn'."),
    (lambda: gs.make_cell("antisymmetric", 2, dt=0.1, rng=0), ValueError,
     "`dt` applies to kind='rate' or kind='cornn' only; got kind='antisymmetric'."),
]


@pytest.mark.parametrize("build, error, message", BAD, ids=[m for *_, m in BAD])
def test_bad_input(build, error, message):
    with pytest.raises(error, match=exact(message)):
        build()


# ------------------------------------------------------------------------------------------
# the symbolic layer: sympy's derivation of the same update equations
SYMBOLIC = [("antisymmetric", "tanh"), ("antisymmetric", "linear"), ("cornn", "tanh"), ("cornn", "sigmoid")]


@pytest.mark.parametrize("kind, activation", SYMBOLIC, ids=[f"{k}-{a}" for k, a in SYMBOLIC])
@pytest.mark.parametrize("n, n_in", [(1, 1), (2, 0), (3, 2)])
def test_symbolic_derivation_equals_numeric(kind, activation, n, n_in):
    """The lambdified sympy update and Jacobian against the cell: the same expressions in
    another evaluation order (cse, numpy ufuncs), a few ulps of O(1) numbers -> 1e-12."""
    from gradsim import symbolic as S

    sym = S.symbolic_cell(kind, n, n_in, activation=activation)
    assert sym.state_size == (n if kind == "antisymmetric" else 2 * n)
    jac, update = sym.lambdify_jacobian(), sym.lambdify_update()
    for seed in range(3):
        opts = {"eps": 0.4, "gamma": 0.3} if kind == "antisymmetric" else {"dt": 0.3, "gamma": 0.7, "eps": 1.1}
        cell = gs.make_cell(kind, n, n_in, activation=activation, bias_std=0.5, rng=seed, **opts)
        rng = np.random.default_rng(seed)
        s, x = rng.standard_normal(cell.state_size), rng.standard_normal(n_in)
        _assert_close(jac(s, x, cell), cell.jacobian(s, x), f"{kind} symbolic jacobian", tol=EXACT)
        _assert_close(update(s, x, cell), cell.step(s, x), f"{kind} symbolic update", tol=EXACT)
        # a mapping of the arrays and the scalar options gives the same
        arrays = {**cell.parameters(), **opts}
        np.testing.assert_array_equal(update(s, x, arrays), update(s, x, cell))


def test_symbolic_bad_input_of_the_ode_kinds():
    from gradsim import symbolic as S

    cell = gs.make_cell("cornn", 2, 1, rng=0)
    with pytest.raises(ValueError, match=exact(
        "`params` must be a numeric CoRNN(n_hidden=2, n_input=1, activation='tanh', damping='explicit') or a "
        "mapping of its arrays; got CoRNN(n_hidden=2, n_input=1, activation='tanh', damping='implicit')."
    )):
        S.symbolic_cell("cornn", 2, 1).lambdify_update()(np.zeros(4), np.zeros(1), dataclasses.replace(
            cell, damping="implicit"))
    with pytest.raises(ValueError, match=exact(
        "`params` must contain the keys weight_hh, weight_ih, bias, eps, gamma; got ['bias', 'weight_hh', "
        "'weight_ih']."
    )):
        a = gs.make_cell("antisymmetric", 2, 1, rng=0)
        S.symbolic_cell("antisymmetric", 2, 1).lambdify_update()(np.zeros(2), np.zeros(1), a.parameters())
    with pytest.raises(ValueError, match=exact(
        "`kind` must be a kind with recurrent weight matrices for matrix_form_jacobian; the discretised-ODE "
        "kinds ('antisymmetric', 'cornn') are derived with explicit symbols by symbolic_cell; got 'cornn'."
    )):
        S.matrix_form_jacobian("cornn")
