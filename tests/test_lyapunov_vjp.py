"""gs.lyapunov_vjp: gradients of Lyapunov exponents by the adjoint of the QR method.

Two independent references:

* the exponents of a plain loop written here (public ``step_and_jacobian`` and a Householder QR
  at every step), differentiated by five-point central differences: the function that
  lyapunov_vjp differentiates, computed without its code. Tolerance: the stencil's truncation
  error is eps^4 f^(5) / 30 and its rounding error about 1.5 delta / eps, delta ~ 1e-15 the
  rounding of the loop's exponents; at eps = 1e-5 both are below 1e-9 of the derivative's size
  (measured 1e-12 to 1e-9), under the issue's contract of 1e-6 relative;
* gs.lyapunov_spectrum, the adaptive-QR code with the same starting frame. Its exponents are
  accurate to its stated 1e-8 (observed 1e-13 to 2e-10 here, from rounding in its Cholesky QRs,
  which is not a smooth function of the parameters). At eps = 1e-3 that contributes up to
  1.5 * 2e-10 / 1e-3 = 3e-7 to the stencil and truncation about 1e-12 f^(5): its derivative is
  checked to 1e-5 of the gradient's scale (measured up to 5e-7).

Per parameter array the directional derivative can be near zero (an LRU's phase does not change
the exponents), so each is checked against the total gradient's scale.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gradsim as gs
from gradsim.cells.stacked import StackedCell

EPS = 1e-5
RTOL = 1e-6
EPS_SPECTRUM = 1e-4
RTOL_SPECTRUM = 1e-5

# Options that make every kind's exponents distinct (where equal exponents meet the sorted
# order is not differentiable: the IRNN's identity gives P exponents 0, so it is perturbed)
# and its units alive (IRNN: a bias, else ReLU units are dead at h = 0 and an exponent is -inf).
KIND_OPTIONS = {
    "rnn": dict(gain=1.5),
    "irnn": dict(),
    "residual": dict(gain=1.0),
    "lstm": dict(),
    "gru": dict(),
    "leaky": dict(gain=2.0, alpha=0.5),
    "rate": dict(gain=2.0, dt=0.5, integrator="rk4"),
    "lru": dict(),
    "mingru": dict(),
    "minlstm": dict(),
    "indrnn": dict(gain=1.0),
    "antisymmetric": dict(gain=2.0, eps=0.5),
    "cornn": dict(gain=1.0, dt=0.2),
}
CASES = [(kind, path) for kind in gs.CELL_KINDS for path in gs.make_cell(kind, 2, 1).paths]


def _five_point(f, eps=EPS):
    return (8.0 * (f(1) - f(-1)) - (f(2) - f(-2))) / (12.0 * eps)


def _cell(kind, n, n_input, rng):
    cell = gs.make_cell(kind, n, n_input=n_input, rng=rng, bias_std=0.3, **KIND_OPTIONS[kind])
    if kind == "irnn":
        cell = cell.with_parameters({
            # Non-negative weights, a positive bias and weak input keep every unit on.
            "weight_hh": cell.weight_hh + 0.3 * rng.random((n, n)) / np.sqrt(n),
            "weight_ih": 0.1 * cell.weight_ih,
            "bias_hh": np.abs(rng.standard_normal(n)) + 1.0,
        })
    return cell


def _state0(kind, cell, rng):
    scale = 0.3 * rng.standard_normal(cell.state_size)
    return np.abs(scale) if kind == "irnn" else scale


def _start_frame(size, k):
    # lyapunov_spectrum's: the identity for the full spectrum, else Haar from seed 0.
    return np.eye(size) if k == size else np.linalg.qr(np.random.default_rng(0).standard_normal((size, k)))[0]


def reference_exponents(cell, inputs, state0, k, warmup, path):
    """The leading k exponents from a QR at every step: the plainest implementation."""
    steps = inputs if isinstance(inputs, int) else inputs.shape[0]
    state = np.zeros(cell.state_size) if state0 is None else np.asarray(state0, float)
    frame = _start_frame(cell.path_size(path), k)
    total = np.zeros(k)
    for t in range(steps):
        x = None if isinstance(inputs, int) else inputs[t]
        state, jac = cell.step_and_jacobian(state, x, path)
        frame, r = np.linalg.qr(jac @ frame)
        if t >= warmup:
            total += np.log(np.abs(np.diag(r)))
    return np.sort(total / (steps - warmup))[::-1]


def _check(cell, inputs, k, path, warmup, rng, state0=None, per_parameter=True, against_spectrum=True):
    c = rng.standard_normal(k)
    result = gs.lyapunov_vjp(cell, inputs, k, c, state0=state0, warmup=warmup, path=path)
    np.testing.assert_allclose(
        result.exponents, reference_exponents(cell, inputs, state0, k, warmup, path), rtol=0, atol=1e-12
    )

    def value(params=None, inp=inputs, s0=state0, spectrum=False):
        moved = cell if params is None else cell.with_parameters(params)
        if spectrum:
            exponents = gs.lyapunov_spectrum(moved, inp, s0, k=k, warmup=warmup, path=path).exponents
        else:
            exponents = reference_exponents(moved, inp, s0, k, warmup, path)
        return float(np.sum(c * exponents))

    params = cell.parameters()
    direction = {name: rng.standard_normal(p.shape) for name, p in params.items()}
    analytic = sum(float(np.sum(result.parameters[n] * direction[n])) for n in params)
    # One random direction through every parameter: the contract's relative error.
    numeric = _five_point(lambda s: value({n: params[n] + s * EPS * direction[n] for n in params}))
    assert abs(numeric - analytic) <= RTOL * max(abs(numeric), 1e-3), (numeric, analytic)
    scale = max(abs(numeric), float(np.sqrt(sum(np.sum(g * g) for g in result.parameters.values()))), 1e-3)
    if against_spectrum:
        spectrum = gs.lyapunov_spectrum(cell, inputs, state0, k=k, warmup=warmup, path=path)
        # Within lyapunov_spectrum's stated accuracy (1e-8 per exponent).
        np.testing.assert_allclose(result.exponents, spectrum.exponents, rtol=0, atol=1e-8)
        numeric = _five_point(
            lambda s: value({n: params[n] + s * EPS_SPECTRUM * direction[n] for n in params}, spectrum=True),
            EPS_SPECTRUM,
        )
        assert abs(numeric - analytic) <= RTOL_SPECTRUM * scale, ("spectrum", numeric, analytic)
    if per_parameter:
        for name, p in params.items():
            if p.size == 0:
                continue
            numeric_name = _five_point(lambda s: value({name: p + s * EPS * direction[name]}))
            analytic_name = float(np.sum(result.parameters[name] * direction[name]))
            assert abs(numeric_name - analytic_name) <= RTOL * scale, (name, numeric_name, analytic_name)
    if not isinstance(inputs, int):
        d = rng.standard_normal(inputs.shape)
        numeric = _five_point(lambda s: value(inp=inputs + s * EPS * d))
        analytic = float(np.sum(result.inputs * d))
        assert abs(numeric - analytic) <= RTOL * max(abs(numeric), 1e-3), ("inputs", numeric, analytic)
    if state0 is not None:
        d = rng.standard_normal(np.shape(state0))
        numeric = _five_point(lambda s: value(s0=state0 + s * EPS * d))
        analytic = float(np.sum(result.state0 * d))
        assert abs(numeric - analytic) <= RTOL * max(abs(numeric), 1e-3), ("state0", numeric, analytic)
    return result


@pytest.mark.parametrize("kind,path", CASES)
def test_every_kind_and_path_against_finite_differences(kind, path):
    rng = np.random.default_rng(zlib.crc32(f"{kind}-{path}".encode()))
    cell = _cell(kind, 4, 2, rng)
    size = cell.path_size(path)
    state0 = _state0(kind, cell, rng)
    _check(cell, rng.standard_normal((24, 2)), min(3, size), path, 3, rng, state0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=st.sampled_from(CASES),
    n=st.integers(2, 5),
    n_input=st.integers(0, 3),
    steps=st.integers(8, 30),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_random_cells_against_finite_differences(case, n, n_input, steps, seed, data):
    kind, path = case
    rng = np.random.default_rng(seed)
    if kind == "lru" and n_input == 0:
        n_input = 1  # the LRU's readout size is its input size
    cell = _cell(kind, n, n_input, rng)
    size = cell.path_size(path)
    k = data.draw(st.integers(1, size), label="k")
    warmup = data.draw(st.integers(0, steps // 2), label="warmup")
    inputs = rng.standard_normal((steps, n_input)) if n_input else steps
    state0 = _state0(kind, cell, rng)
    _check(cell, inputs, k, path, warmup, rng, state0, per_parameter=False, against_spectrum=False)


@pytest.mark.parametrize("layers", [("rnn", "lstm"), ("gru", "rnn", "gru")])
def test_stacked_network_against_finite_differences(layers):
    rng = np.random.default_rng(7)
    sizes, cells, n_in = [3, 2, 3], [], 2
    for kind, n in zip(layers, sizes):
        cells.append(gs.make_cell(kind, n, n_input=n_in, rng=rng, bias_std=0.3))
        n_in = n
    stack = StackedCell(tuple(cells))
    _check(stack, rng.standard_normal((20, 2)), 4, "full", 2, rng)


def test_ensemble_equals_its_members():
    rng = np.random.default_rng(11)
    for kind in ("rnn", "lstm", "gru", "lru", "rate"):
        ensemble = gs.make_cell(kind, 4, n_input=2, ensemble=3, rng=rng, bias_std=0.3)
        inputs = rng.standard_normal((3, 15, 2))
        c = rng.standard_normal(2)
        together = gs.lyapunov_vjp(ensemble, inputs, 2, c, warmup=2)
        for b in range(3):
            alone = gs.lyapunov_vjp(ensemble[b], inputs[b], 2, c, warmup=2)
            np.testing.assert_allclose(together.exponents[b], alone.exponents, rtol=0, atol=1e-13)
            np.testing.assert_allclose(together.inputs[b], alone.inputs, rtol=1e-12, atol=1e-14)
            for name, g in alone.parameters.items():
                np.testing.assert_allclose(together.parameters[name][b], g, rtol=1e-12, atol=1e-14)
        # Inputs shared by the members: their gradient is the sum of the members'.
        shared = gs.lyapunov_vjp(ensemble, inputs[0], 2, c, warmup=2)
        members = sum(gs.lyapunov_vjp(ensemble[b], inputs[0], 2, c, warmup=2).inputs for b in range(3))
        np.testing.assert_allclose(shared.inputs, members, rtol=1e-12, atol=1e-14)


def test_lru_exponents_and_their_gradient_are_exact():
    # LRU: lambda_i = log|lambda_i| = -exp(nu_log_i) (each pair twice), whatever the inputs:
    # d lambda / d nu_log = -exp(nu_log), and nothing else moves them.
    rng = np.random.default_rng(5)
    cell = gs.make_cell("lru", 3, n_input=2, rng=rng, r_min=0.5, r_max=0.95)
    c = rng.standard_normal(6)
    result = gs.lyapunov_vjp(cell, rng.standard_normal((40, 2)), 6, c)
    rates = -np.exp(cell.nu_log)
    np.testing.assert_allclose(np.sort(result.exponents), np.sort(np.repeat(rates, 2)), atol=1e-12)
    # Column order of the sorted exponents: pair i appears twice, at the two positions of its rate.
    order = np.argsort(-np.repeat(rates, 2), kind="stable")
    expected = np.zeros(3)
    np.add.at(expected, np.repeat(np.arange(3), 2)[order], c)
    np.testing.assert_allclose(result.parameters["nu_log"], expected * rates, rtol=1e-9, atol=1e-12)
    for name in ("theta_log", "B_re", "B_im", "C_re", "C_im", "D", "gamma_log"):
        np.testing.assert_allclose(result.parameters[name], 0.0, atol=1e-12)
    np.testing.assert_allclose(result.inputs, 0.0, atol=1e-12)


def test_gradient_of_a_linear_rnn_is_that_of_log_eigenvalue_moduli():
    # h' = W h with W = V diag(mu) V^-1, real mu of distinct moduli: after a warm-up the frame
    # is aligned with the Schur vectors (its misalignment decays as max|mu_{i+1} / mu_i|^200 =
    # 0.75^200 = 1e-25), so the exponents are log|mu_i| and their gradient in W is
    # d log|mu_i| = u_i^T dW v_i / mu_i (u_i^T the left eigenvectors, rows of V^-1), both to
    # rounding.
    rng = np.random.default_rng(9)
    n = 4
    v = rng.standard_normal((n, n))
    mu = np.array([1.1, 0.8, -0.6, 0.3])
    w = v @ np.diag(mu) @ np.linalg.inv(v)
    cell = gs.RNN(weight_hh=w, activation="linear")
    c = rng.standard_normal(n)
    result = gs.lyapunov_vjp(cell, 600, n, c, warmup=200)
    np.testing.assert_allclose(result.exponents, np.log(np.abs(mu)), rtol=0, atol=1e-12)
    left = np.linalg.inv(v)
    expected = sum(c[i] * np.outer(left[i], v[:, i]) / mu[i] for i in range(n))
    np.testing.assert_allclose(result.parameters["weight_hh"], expected, rtol=0, atol=1e-11)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(k=0), "`k` must be an integer in \\[1, 3\\]"),
        (dict(k=4), "`k` must be an integer in \\[1, 3\\]"),
        (dict(k=2, cotangent=np.ones(3)), "`cotangent` must have shape \\(k,\\) = \\(2,\\)"),
        (dict(k=2, cotangent=np.array([1.0, np.nan])), "`cotangent`"),
        (dict(k=2, warmup=10), "`warmup` must be an integer in \\[0, T\\)"),
    ],
)
def test_bad_input(kwargs, match):
    cell = gs.make_cell("rnn", 3, 1, rng=0)
    args = dict(cell=cell, inputs=10, k=2, cotangent=np.ones(2))
    args.update(kwargs)
    if "cotangent" not in kwargs:
        args["cotangent"] = np.ones(args["k"]) if isinstance(args["k"], int) and args["k"] > 0 else np.ones(1)
    with pytest.raises(ValueError, match=match):
        gs.lyapunov_vjp(**args)


def test_untied_cell_and_dead_units_are_refused():
    cell = gs.make_cell("rnn", 3, 1, rng=0)
    with pytest.raises(TypeError, match="`cell` must be a Cell"):
        gs.lyapunov_vjp(lambda t: cell, 5, 1, np.ones(1))
    dead = gs.RNN(weight_hh=np.eye(3), activation="relu")  # h = 0, every ReLU off
    with pytest.raises(FloatingPointError, match="annihilated"):
        gs.lyapunov_vjp(dead, 5, 2, np.ones(2))


@pytest.mark.parametrize("activation", ["tanh", "relu", "linear", "sigmoid"])
@pytest.mark.parametrize("residual", [False, True])
def test_fused_rnn_backward_equals_the_generic_one(activation, residual):
    # The RNN's fused _lyapunov_backward against the base class's composition of the cell's own
    # VJPs and complex-step second-order terms, for a batch of states and an ensemble.
    rng = np.random.default_rng(13)
    for ensemble in (None, 3):
        kind = "residual" if residual else "rnn"
        cell = gs.make_cell(kind, 5, n_input=2, activation=activation, alpha=0.7, ensemble=ensemble, rng=rng, bias_std=0.5)
        batch = (4, 3) if ensemble else (4,)
        state, x = rng.standard_normal(batch + (5,)), rng.standard_normal(batch + (2,))
        frame, frame_bar = rng.standard_normal(batch + (5, 3)), rng.standard_normal(batch + (5, 3))
        state_bar = rng.standard_normal(batch + (5,))
        pushed = cell._jacobian_operator(state, x, "full")[1] @ frame
        fused = cell._lyapunov_backward(state, x, frame, pushed, frame_bar, state_bar, "full", True)
        generic = gs.Cell._lyapunov_backward(cell, state, x, frame, pushed, frame_bar, state_bar, "full", True)
        for mine, theirs in zip(fused[:2] + fused[3:], generic[:2] + generic[3:]):
            np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-12)
        for name in cell.parameters():
            np.testing.assert_allclose(fused[2][name], generic[2][name], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind,path,variant", [
    ("lstm", "full", "torch"), ("lstm", "cell", "torch"), ("lstm", "hidden", "torch"),
    ("gru", "full", "torch"), ("gru", "full", "reset_before"), ("gru", "direct", "torch"),
    ("rate", "full", "euler"), ("rate", "full", "rk4"),
])
def test_fused_gated_backward_equals_the_generic_one(kind, path, variant):
    # The LSTM's and the PyTorch GRU's fused _lyapunov_backward (complex step on the gates only)
    # and the Euler rate network's (analytic)
    # against the base class's (complex step through the cell's own VJPs), batch and ensemble.
    rng = np.random.default_rng(17)
    for ensemble in (None, 3):
        if kind == "rate":
            cell = gs.make_cell(kind, 4, n_input=2, integrator=variant, dt=0.3, gain=2.0, ensemble=ensemble, rng=rng, bias_std=0.5)
        else:
            cell = gs.make_cell(kind, 4, n_input=2, variant=variant, ensemble=ensemble, rng=rng, bias_std=0.5)
        batch = (5, 3) if ensemble else (5,)
        size = cell.path_size(path)
        state, x = rng.standard_normal(batch + (cell.state_size,)), rng.standard_normal(batch + (2,))
        frame, frame_bar = rng.standard_normal(batch + (size, 3)), rng.standard_normal(batch + (size, 3))
        state_bar = rng.standard_normal(batch + (cell.state_size,))
        pushed = cell._jacobian_operator(state, x, path)[1] @ frame
        fused = cell._lyapunov_backward(state, x, frame, pushed, frame_bar, state_bar, path, True)
        generic = gs.Cell._lyapunov_backward(cell, state, x, frame, pushed, frame_bar, state_bar, path, True)
        for mine, theirs in zip(fused[:2] + fused[3:], generic[:2] + generic[3:]):
            np.testing.assert_allclose(mine, theirs, rtol=1e-11, atol=1e-12)
        for name in cell.parameters():
            np.testing.assert_allclose(fused[2][name], generic[2][name], rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("dt", [1.0, 0.3])
def test_euler_rate_network_against_finite_differences(dt):
    # The map (dt = 1, Engelken's x' = W phi(x) + V u) and the leaky map take the fused step.
    rng = np.random.default_rng(23)
    cell = gs.make_cell("rate", 5, n_input=2, integrator="euler", dt=dt, gain=2.0, rng=rng, bias_std=0.3)
    _check(cell, rng.standard_normal((25, 2)), 3, "full", 3, rng, 0.3 * rng.standard_normal(5))
