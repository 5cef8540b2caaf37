"""Tests of the forward-mode parameter sensitivity (issue 12): ``Cell.param_jvp`` and
``gradsim.numeric.parameter_jvp``.

References, each independent of the code under test:

* central finite differences of ``gs.unroll`` (and of ``cell.step``) with respect to the
  parameters, moved along a random tangent (each parameter alone, then all together);
* the adjoint identity: sum_t <c_t, d s_t> from ``parameter_jvp`` equals <grad, v>, where grad is
  the gradient of sum_t <c_t, s_t> computed here by back-propagation through the whole sequence
  from the cells' ``vjp`` and ``param_vjp`` (a reverse loop written in this file);
* ensembles and batched inputs against the lone networks and the single sequences.

Finite-difference tolerance (derived from the FD error, per entry). The central difference
D(h) = (F(h) - F(-h)) / 2h has truncation error h^2 F'''/6 + O(h^4) and rounding error about
eps max|F| / h per unit of accumulated rounding. Richardson's estimate of the truncation error of
D(h) is |D(2h) - D(h)| / 3 (D(2h) has four times the h^2 term); we allow 10 |D(2h) - D(h)|
(covers the O(h^4) remainder and noise), plus a rounding floor of 1000 eps (1 + max|F|) / h
(1000 ulps for the T-step recurrence, about 2e-8 at h = 1e-5; the observed errors are ~1e-10,
up to 5e-8 of the sensitivities for the LRU, whose nu_log and theta_log enter through
exp(-exp(.)) and exp(.) with large third derivatives; over 20 draws per kind the error stays
below 0.035 of the tolerance for every kind, modern ones included).
A wrong term (a missing RK4 stage coupling, a dropped gate, a transposed weight) is an O(1)
relative error of the sensitivities, which are O(1) here; ``test_fd_tolerance_is_tight`` checks
that the tolerance stays below 1e-3 of the sensitivities, so that a 0.1 % error would fail.

Adjoint identity: the forward and reverse sums are the same bilinear form evaluated in two
orders; with O(1) entries over T <= 8 steps the rounding is a few hundred ulps of the sum of
|terms|, so we demand 1e-10 relative to that sum (the issue's 1e-10).
"""

from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import gradsim as gs
from gradsim.numeric import parameter_jvp

FD_STEP = 1e-5
EPS = np.finfo(float).eps
ADJ_RTOL = 1e-10
ENS_RTOL = 1e-12
SETTINGS = settings(max_examples=25, deadline=None, database=None)
seeds = st.integers(0, 2**32 - 1)

# (make_cell kind, options): every kind of make_cell's list, with the variants that change the
# step's equations (activations, GRU variants, per-unit leak, Euler and RK4, the LRU's input
# normalisation, the coRNN's damping).
CASES = {
    "rnn-tanh": ("rnn", dict(activation="tanh")),
    "rnn-sigmoid": ("rnn", dict(activation="sigmoid")),
    "rnn-linear": ("rnn", dict(activation="linear", gain=0.8)),
    "irnn": ("irnn", dict(gain=0.9)),
    "residual": ("residual", dict(activation="tanh", alpha=0.5, gain=0.5)),
    "lstm": ("lstm", dict()),
    "gru-torch": ("gru", dict(variant="torch")),
    "gru-reset_before": ("gru", dict(variant="reset_before")),
    "gru-chung": ("gru", dict(variant="chung")),
    "leaky": ("leaky", dict(alpha=0.3)),
    "leaky-per-unit": ("leaky", dict(alpha="per-unit")),
    "rate-euler": ("rate", dict(integrator="euler", dt=0.6)),
    "rate-rk4": ("rate", dict(integrator="rk4", dt=0.7)),
    "rate-rk4-sigmoid": ("rate", dict(integrator="rk4", dt=0.4, activation="sigmoid")),
    # the modern kinds (gradsim.cells.modern); "normalize" and "damping" are cell options that
    # make_cell does not take, set on the built cell (see make)
    "lru": ("lru", dict(r_min=0.4, r_max=0.95)),
    "lru-unnormalized": ("lru", dict(r_min=0.4, r_max=0.95, normalize=False)),
    "mingru": ("mingru", dict()),
    "minlstm": ("minlstm", dict()),
    "indrnn-tanh": ("indrnn", dict(activation="tanh")),
    "indrnn-relu": ("indrnn", dict(activation="relu")),
    # eps = 0.5 rather than the published 0.01, so that the step's parameter sensitivities are
    # O(1) rather than O(eps) against the same rounding floor
    "antisymmetric": ("antisymmetric", dict(eps=0.5, gamma=0.1)),
    "antisymmetric-linear": ("antisymmetric", dict(eps=0.5, gamma=0.1, activation="linear")),
    "cornn-explicit": ("cornn", dict(dt=0.2)),
    "cornn-implicit": ("cornn", dict(dt=0.2, damping="implicit")),
}
# options of the cells' constructors that make_cell does not take
_CELL_OPTIONS = ("normalize", "damping")
# the kinds with ReLU's kink (see assume_off_kink)
_KINKED = ("irnn", "indrnn-relu")


def make(kind, n, n_in, rng, options, **extra):
    """make_cell(kind, ...) with ``options``, those of _CELL_OPTIONS set on the built cell."""
    later = {k: options.pop(k) for k in _CELL_OPTIONS if k in options}
    cell = gs.make_cell(kind, n, n_in, bias_std=0.5, rng=rng, **options, **extra)
    return dataclasses.replace(cell, **later) if later else cell


def build(case, n, n_in, rng, **extra):
    kind, options = CASES[case]
    options = dict(options)
    if options.get("alpha") == "per-unit":
        options["alpha"] = rng.uniform(0.1, 1.0, n)
    return make(kind, n, n_in, rng, options, **extra)


def moved(cell, tangent, eps):
    """The cell with every parameter moved by eps * tangent."""
    params = cell.parameters()
    return cell.with_parameters({k: params[k] + eps * v for k, v in tangent.items()})


def random_tangent(cell, rng, names=None):
    names = list(cell.parameters()) if names is None else names
    return {k: rng.standard_normal(cell.parameters()[k].shape) for k in names}


def fd_check(function, exact, scale_of):
    """Central differences of ``function(eps)`` at 0 against ``exact``, tolerance from the FD
    error (module docstring); returns (max error, tolerance)."""
    h = FD_STEP
    d1 = (function(h) - function(-h)) / (2 * h)
    d2 = (function(2 * h) - function(-2 * h)) / (4 * h)
    tol = 10 * np.abs(d2 - d1) + 1000 * EPS * (1.0 + scale_of) / h
    err = np.abs(d1 - exact)
    assert np.all(err <= tol), f"max FD error {err.max():.3g}, tolerance there {tol.flat[np.argmax(err - tol)]:.3g}"
    return err.max(), tol.max()


def problem(case, seed, n=4, n_in=2, steps=6):
    rng = np.random.default_rng(seed)
    cell = build(case, n, n_in, rng)
    inputs = rng.standard_normal((steps, n_in))
    # A random start: the IRNN at s_0 = 0 would sit on ReLU's kink.
    state0 = 0.5 * rng.standard_normal(cell.state_size)
    return rng, cell, inputs, state0


# ------------------------------------------------------------------------------------------
# finite differences


@pytest.mark.parametrize("case", sorted(CASES))
@SETTINGS
@given(seed=seeds)
def test_parameter_jvp_matches_finite_differences(case, seed):
    rng, cell, inputs, state0 = problem(case, seed)
    directions = [[name] for name in cell.parameters()] + [None]
    for names in directions:
        tangent = random_tangent(cell, rng, names)
        exact = parameter_jvp(cell, inputs, tangent, state0)
        assert exact.shape == (inputs.shape[0] + 1, cell.state_size)
        assert np.all(exact[0] == 0.0)
        states = gs.unroll(cell, inputs, state0)
        if case in _KINKED:
            assume_off_kink(cell, states[:-1], inputs)
        fd_check(lambda e: gs.unroll(moved(cell, tangent, e), inputs, state0), exact, np.abs(states).max())


def assume_off_kink(cell, states, inputs):
    """ReLU: the finite differences (steps up to 2e-5 times O(1) tangents) must not cross the
    kink at a = 0, where the step is not differentiable; reject the rare draws with a
    pre-activation within 1e-3 of it."""
    if isinstance(cell, gs.IndRNN):  # a = W_ih x + u * h + b
        a = inputs @ cell.weight_ih.T + cell.weight_hh * states + cell.bias_ih
    else:
        a = cell._preactivation(states, inputs)
    assume(np.abs(a).min() > 1e-3)


@pytest.mark.parametrize("case", sorted(CASES))
@SETTINGS
@given(seed=seeds)
def test_param_jvp_one_step_matches_finite_differences_and_param_vjp(case, seed):
    rng, cell, inputs, _ = problem(case, seed)
    state = rng.standard_normal((3, cell.state_size))  # a batch of states, one input
    x = inputs[0]
    tangent = random_tangent(cell, rng)
    exact = cell.param_jvp(state, x, tangent)
    assert exact.shape == state.shape
    if case in _KINKED:
        assume_off_kink(cell, state, x)
    fd_check(lambda e: moved(cell, tangent, e).step(state, x), exact, 1.0 + np.abs(state).max())
    # The transpose: <v, param_jvp> = sum_k <param_vjp[k], t[k]>.
    cot = rng.standard_normal(state.shape)
    grads = cell.param_vjp(state, x, cot)
    terms = [np.sum(grads[k] * tangent[k]) for k in tangent]
    lhs = np.sum(cot * exact)
    scale = np.sum(np.abs(cot * exact)) + sum(np.sum(np.abs(grads[k] * tangent[k])) for k in tangent)
    assert abs(lhs - sum(terms)) <= ADJ_RTOL * scale


def test_no_input_cells():
    """n_input = 0 (weight_ih of shape (R, 0)): the int-T form of the inputs."""
    for case in ("rnn-tanh", "lstm", "gru-torch", "leaky", "rate-rk4"):
        rng = np.random.default_rng(3)
        cell = build(case, 4, 0, rng)
        state0 = rng.standard_normal(cell.state_size)
        tangent = random_tangent(cell, rng)
        exact = parameter_jvp(cell, 5, tangent, state0)
        assert exact.shape == (6, cell.state_size)
        states = gs.unroll(cell, 5, state0)
        fd_check(lambda e: gs.unroll(moved(cell, tangent, e), 5, state0), exact, np.abs(states).max())


def test_fd_tolerance_is_tight():
    """The FD tolerance is far below the sensitivities: a 0.1 % error in the JVP fails."""
    for case in sorted(CASES):
        rng, cell, inputs, state0 = problem(case, 11)
        tangent = random_tangent(cell, rng)
        exact = parameter_jvp(cell, inputs, tangent, state0)
        states = gs.unroll(cell, inputs, state0)
        _, tol = fd_check(
            lambda e: gs.unroll(moved(cell, tangent, e), inputs, state0), exact, np.abs(states).max()
        )
        assert tol < 1e-3 * np.abs(exact).max(), case
        with pytest.raises(AssertionError):
            fd_check(
                lambda e: gs.unroll(moved(cell, tangent, e), inputs, state0),
                exact * 1.001,
                np.abs(states).max(),
            )


def test_untied_cells_match_finite_differences():
    """A callable t -> Cell: every step's cell moves along the same tangent."""
    rng = np.random.default_rng(5)
    cell_at = gs.untied(lambda r: gs.make_cell("gru", 4, 2, bias_std=0.5, rng=r), rng=7)
    inputs = rng.standard_normal((6, 2))
    state0 = rng.standard_normal(4)
    tangent = random_tangent(cell_at(0), rng)
    exact = parameter_jvp(cell_at, inputs, tangent, state0)
    tied = parameter_jvp(cell_at(0), inputs, tangent, state0)
    assert np.abs(exact - tied).max() > 1e-3  # the steps' cells differ
    states = gs.unroll(cell_at, inputs, state0)
    fd_check(
        lambda e: gs.unroll(lambda t: moved(cell_at(t), tangent, e), inputs, state0),
        exact,
        np.abs(states).max(),
    )


# ------------------------------------------------------------------------------------------
# the adjoint identity


def reverse_contraction(cell, inputs, state0, cotangents):
    """The gradient of L = sum_{t=1..T} <c_t, s_t> w.r.t. the parameters, by BPTT written from
    the cells' vjp and param_vjp: g_T = c_T, g_{t-1} = c_{t-1} + g_t J_t; grad = sum_t
    param_vjp(s_{t-1}, x_t, g_t)."""
    states = gs.unroll(cell, inputs, state0)
    steps = inputs.shape[-2]
    grads = {k: np.zeros(v.shape) for k, v in cell.parameters().items()}
    g = cotangents[..., steps, :]
    for t in range(steps, 0, -1):
        s_prev, x = states[..., t - 1, :], inputs[..., t - 1, :]
        for k, v in cell.param_vjp(s_prev, x, g).items():
            grads[k] += v
        g = cotangents[..., t - 1, :] + cell.vjp(s_prev, x, g)
    return grads


@pytest.mark.parametrize("case", sorted(CASES))
def test_adjoint_identity_over_the_sequence(case):
    rng, cell, _, _ = problem(case, 2024)
    steps = 8
    inputs = rng.standard_normal((2, steps, cell.n_input))  # a batch of two sequences
    state0 = 0.5 * rng.standard_normal((2, cell.state_size))
    tangent = random_tangent(cell, rng)
    cotangents = rng.standard_normal((2, steps + 1, cell.state_size))
    forward = parameter_jvp(cell, inputs, tangent, state0)
    lhs = np.sum(cotangents * forward)
    grads = reverse_contraction(cell, inputs, state0, cotangents)
    rhs = sum(np.sum(grads[k] * tangent[k]) for k in tangent)
    scale = np.sum(np.abs(cotangents * forward)) + sum(np.sum(np.abs(grads[k] * tangent[k])) for k in tangent)
    assert abs(lhs - rhs) <= ADJ_RTOL * scale, (lhs, rhs)
    assert abs(lhs) > 1e-3 * scale  # not a trivial 0 = 0


# ------------------------------------------------------------------------------------------
# ensembles and batches


@pytest.mark.parametrize("case", sorted(CASES))
def test_ensemble_equals_members(case):
    rng = np.random.default_rng(99)
    kind, options = CASES[case]
    options = dict(options)
    if options.get("alpha") == "per-unit":
        options["alpha"] = rng.uniform(0.1, 1.0, 4)
    ens = make(kind, 4, 2, rng, options, ensemble=3)
    tangent = random_tangent(ens, rng)
    for inputs in (rng.standard_normal((6, 2)), rng.standard_normal((3, 6, 2))):
        state0 = rng.standard_normal((3, ens.state_size))
        out = parameter_jvp(ens, inputs, tangent, state0)
        assert out.shape == (3, 7, ens.state_size)
        for i in range(3):
            x = inputs if inputs.ndim == 2 else inputs[i]
            alone = parameter_jvp(ens[i], x, {k: v[i] for k, v in tangent.items()}, state0[i])
            np.testing.assert_allclose(out[i], alone, rtol=ENS_RTOL, atol=ENS_RTOL * np.abs(alone).max())


@pytest.mark.parametrize("case", ["lstm", "gru-torch", "rate-rk4"])
def test_batched_inputs_equal_single_sequences(case):
    rng, cell, _, _ = problem(case, 8)
    inputs = rng.standard_normal((2, 3, 5, cell.n_input))
    state0 = rng.standard_normal((3, cell.state_size))  # broadcast over the leading 2
    tangent = random_tangent(cell, rng)
    out = parameter_jvp(cell, inputs, tangent, state0)
    assert out.shape == (2, 3, 6, cell.state_size)
    for a in range(2):
        for b in range(3):
            alone = parameter_jvp(cell, inputs[a, b], tangent, state0[b])
            np.testing.assert_allclose(out[a, b], alone, rtol=ENS_RTOL, atol=ENS_RTOL * np.abs(alone).max())


def test_missing_names_are_zero():
    rng, cell, inputs, state0 = problem("lstm", 4)
    tangent = random_tangent(cell, rng, ["weight_hh"])
    full = dict(tangent, **{k: np.zeros(v.shape) for k, v in cell.parameters().items() if k != "weight_hh"})
    np.testing.assert_array_equal(
        parameter_jvp(cell, inputs, tangent, state0), parameter_jvp(cell, inputs, full, state0)
    )
    np.testing.assert_array_equal(parameter_jvp(cell, inputs, {}, state0), 0.0)


# ------------------------------------------------------------------------------------------
# bad input


def bad_calls():
    rng = np.random.default_rng(0)
    cell = gs.make_cell("rnn", 3, 2, rng=rng)
    state, x = np.zeros(3), np.zeros(2)
    return cell, [
        lambda t: cell.param_jvp(state, x, t),
        lambda t: parameter_jvp(cell, np.zeros((4, 2)), t),
    ]


@pytest.mark.parametrize("which", [0, 1])
def test_bad_tangent_messages(which):
    cell, calls = bad_calls()
    call = calls[which]
    for bad in ([np.zeros((3, 3))], np.zeros((3, 3)), None):
        with pytest.raises(TypeError, match=r"`tangent` must be a dict .*'weight_hh'.*got"):
            call(bad)
    with pytest.raises(ValueError, match=r"unknown parameter name\(s\) 'W'.*known names are 'weight_hh', 'weight_ih', 'bias_hh', 'bias_ih'"):
        call({"W": np.zeros((3, 3))})
    with pytest.raises(ValueError, match=r"`tangent\['weight_hh'\]` must have the shape .* \(3, 3\); got shape \(3, 2\)"):
        call({"weight_hh": np.zeros((3, 2))})
    with pytest.raises(ValueError, match=r"`tangent\['bias_hh'\]` must contain only finite values"):
        call({"bias_hh": np.array([0.0, np.nan, 0.0])})
    with pytest.raises(TypeError, match=r"`tangent\['bias_ih'\]` must be an array of real numbers; got"):
        call({"bias_ih": "zero"})


def test_bad_tangent_for_an_ensemble_and_bad_arguments():
    rng = np.random.default_rng(1)
    ens = gs.make_cell("lstm", 3, 2, ensemble=2, rng=rng)
    tangent = {"weight_hh": np.zeros((12, 3))}  # a lone network's shape
    with pytest.raises(ValueError, match=r"shape of the parameter 'weight_hh', \(2, 12, 3\); got shape \(12, 3\)"):
        parameter_jvp(ens, 4, tangent)
    cell = gs.make_cell("rnn", 3, 2, rng=rng)
    with pytest.raises(ValueError, match="`inputs` must be"):
        parameter_jvp(cell, np.zeros((4, 5)), {})
    with pytest.raises(ValueError, match="`state0` must have last dimension"):
        parameter_jvp(cell, 4, {}, np.zeros(2))
    with pytest.raises(ValueError, match="`state` must have last dimension"):
        cell.param_jvp(np.zeros(2), np.zeros(2), {})


# ------------------------------------------------------------------------------------------
# the benchmark's smoke run


def test_benchmark_quick_runs(capsys):
    """``--quick`` runs and prints one row per (cell, N); no timing is asserted (the machine is
    shared), only that every time and ratio is finite and positive and the rows are consistent."""
    from gradsim.bench import sensitivity

    assert sensitivity.main(["--quick"]) == 0
    printed = capsys.readouterr().out
    rows = [line.split() for line in printed.splitlines() if line.split()[:1] and line.split()[0] in sensitivity.CELLS]
    assert len(rows) == len(sensitivity.CELLS) * len(sensitivity.QUICK["sizes"]), printed
    for row in rows:
        jvp, vjp, ratio = map(float, row[2:5])
        assert all(math.isfinite(v) and v > 0 for v in (jvp, vjp, ratio))
        # Printed to 0.05 us (times) and 0.005 (ratio): the quotient of the printed times is off
        # by at most ratio (0.05 / jvp + 0.05 / vjp) to first order, plus the ratio's rounding.
        assert abs(ratio - jvp / vjp) <= 1.01 * (jvp / vjp) * (0.05 / jvp + 0.05 / vjp) + 0.0051
        assert row[5] == ("ok" if ratio <= sensitivity.TARGET else "over")
    assert "target jvp/vjp <= 2" in printed
    returned = sensitivity.run(quick=True, sizes=(4,), steps=3, out=io.StringIO())
    assert [r["cell"] for r in returned] == list(sensitivity.CELLS)
    for r in returned:
        assert r["ratio"] == pytest.approx(r["jvp_per_step"] / r["vjp_per_step"], rel=1e-12)
