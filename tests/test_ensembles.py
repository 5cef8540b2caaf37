"""Tests of ensembles (DESIGN.md "Ensembles", issue 10): cells whose parameters carry leading batch
dimensions, built by ``stack_cells`` or ``make_cell(..., ensemble=B)``, and the numeric functions
run on them.

The reference for every ensemble result is the same function run on each member alone
(``cell[i]``, a plain cell, with member i's inputs and initial state): member i of the result
must equal it to rounding, for every cell kind, activation, GRU variant and Jacobian path.

Tolerances (one for the whole file, ``RTOL = 1e-12``):
- A member of an ensemble does, step by step, the same floating-point operations as the lone
  network, only stacked (one batched matmul instead of B; since the change "each member keeps
  its own QR plan and the lone-frame kernels", the same QR schedule and kernels as well). The
  only admissible difference is rounding in a differently ordered BLAS sum: a few ulps per step,
  far below 1e-12 after the <= 200 steps used here. A wrong member (a swapped index, a plan
  shared between members, a broadcasting slip) gives O(1) differences.
- Each comparison is relative to the scale of the single-network result (its largest finite
  |value|), not entrywise: exponents, log singular values and log-norms cross zero, and states
  and products have entries near zero, whose rounding is that of the largest terms in their sums.
- Entries that are not finite (-inf: an exactly zero singular value, exponent or gradient from a
  dead ReLU unit) must be the same entries, with the same value, exactly.
"""

from __future__ import annotations

import math
import re
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

import gradsim as gs


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # Matrices here are at most 16 x 16: BLAS threads only add contention, and results must
    # not depend on the thread count anyway.
    with threadpool_limits(1):
        yield


SETTINGS = settings(max_examples=20, deadline=None, database=None)

RTOL = 1e-12  # see the module docstring
B = 3  # members of the ensembles below
N = 4  # hidden units (LSTM state 8)
I = 2  # inputs
T = 30  # steps (the long-horizon cases below use up to 220)


def exact(message: str) -> str:
    """A regex matching ``message`` literally and entirely."""
    return "^" + re.escape(message) + "$"


def assert_same(actual, expected, rtol=RTOL, what=""):
    """``actual`` equals ``expected`` to ``rtol`` times the scale of ``expected`` (its largest
    finite |value|); non-finite entries must be the same entries with the same value."""
    actual = np.asarray(actual, dtype=float)
    expected = np.asarray(expected, dtype=float)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    finite = np.isfinite(expected)
    assert np.array_equal(np.isfinite(actual), finite), (what, actual, expected)
    assert np.array_equal(actual[~finite], expected[~finite]), (what, actual, expected)
    if not finite.any():
        return
    scale = float(np.max(np.abs(expected[finite])))
    error = float(np.max(np.abs(actual[finite] - expected[finite])))
    assert error <= rtol * scale, (
        f"{what}: max |ensemble - single| = {error:.3g}, {error / scale if scale else math.inf:.3g} "
        f"of the scale {scale:.3g} (allowed {rtol:g})"
    )


def assert_same_product(actual, expected, what="jacobian_product"):
    """(log_scale, matrix) pairs represent the same product exp(log_scale) * matrix.

    The rescaling of the stored matrix is triggered by the whole batch (when any member's peak
    leaves [1e-100, 1e100]), so a member's split into scale and matrix may differ from the lone
    run's; the product may not.
    """
    (log_a, mat_a), (log_e, mat_e) = actual, expected
    assert np.shape(log_a) == np.shape(log_e) == ()
    assert_same(mat_a * math.exp(float(log_a) - float(log_e)), mat_e, what=what)


# ------------------------------------------------------------------------------------------
# every kind, activation, variant and path
# (id, kind, make_cell options, path). Recurrent gains below 1 and small biases: every
# configuration has a well-conditioned spectrum over T steps (none whose smallest exponents are
# set by rounding, where two equally accurate runs could not agree to 1e-12).
CONFIGS = (
    [(f"rnn-{a}", "rnn", {"activation": a, "gain": 0.9, "bias_std": 0.3}, "full")
     for a in ("tanh", "relu", "linear", "sigmoid")]
    + [("irnn", "irnn", {}, "full")]
    + [(f"residual-{a}", "residual", {"activation": a, "alpha": 0.5, "gain": 0.9, "bias_std": 0.3}, "full")
       for a in ("tanh", "relu", "linear", "sigmoid")]
    + [(f"lstm-{p}", "lstm", {"bias_std": 0.3}, p) for p in ("full", "cell", "hidden")]
    + [("lstm-forget-bias", "lstm", {"bias_std": 0.3, "forget_bias": 1.0}, "full"),
       ("lstm-chrono", "lstm", {"bias_std": 0.3, "chrono_t_max": 20.0}, "full")]
    + [(f"gru-{v}-{p}", "gru", {"variant": v, "bias_std": 0.3}, p)
       for v in ("torch", "reset_before", "chung") for p in ("full", "direct")]
    + [(f"leaky-{a}", "leaky", {"activation": a, "alpha": 0.3, "gain": 1.5, "bias_std": 0.3}, "full")
       for a in ("tanh", "relu")]
    + [(f"rate-{i}", "rate", {"integrator": i, "dt": 0.2, "gain": 2.0, "bias_std": 0.3,
                              "zero_diagonal": True}, "full") for i in ("euler", "rk4")]
    + [("lru", "lru", {"r_min": 0.5, "r_max": 0.99, "max_phase": 3.0}, "full"),
       ("mingru", "mingru", {"bias_std": 0.3}, "full"),
       ("minlstm", "minlstm", {"bias_std": 0.3}, "full")]
    + [(f"indrnn-{a}", "indrnn", {"activation": a, "gain": 1.2, "bias_std": 0.3}, "full")
       for a in ("tanh", "relu")]
    + [("antisymmetric", "antisymmetric", {"eps": 0.3, "gamma": 0.2, "bias_std": 0.3}, "full"),
       ("cornn", "cornn", {"bias_std": 0.3}, "full")]
)
CONFIG_IDS = [c[0] for c in CONFIGS]


def _ensemble(kind, opts, size=B, seed=11, n=N, n_in=I):
    return gs.make_cell(kind, n, n_in, ensemble=size, rng=seed, **opts)


def _results(cell, inputs, state0, path, n_steps):
    """Every numeric function on (cell, inputs, state0) along ``path``."""
    spectrum = gs.lyapunov_spectrum(cell, inputs, state0, path=path, n_blocks=4)
    return {
        "unroll": gs.unroll(cell, inputs, state0),
        "jacobian_product": gs.jacobian_product(cell, inputs, state0, path=path),
        "log_singular_values": gs.log_singular_values(
            cell, inputs, state0, times=[0, 1, n_steps // 2, n_steps], path=path
        ),
        "exponents": spectrum.exponents,
        "block_exponents": spectrum.block_exponents,
        "gradient_norms": gs.gradient_norms(cell, inputs, state0, path=path),
    }


def _member(results, index):
    """Member ``index`` (a tuple) of the results of an ensemble run."""
    out = {k: v[index] for k, v in results.items() if k not in ("jacobian_product", "block_exponents")}
    log_scale, matrix = results["jacobian_product"]
    out["jacobian_product"] = (log_scale[index], matrix[index])
    # block_exponents is (n_blocks, *batch, k): the batch comes after the block axis.
    out["block_exponents"] = results["block_exponents"][(slice(None),) + index]
    return out


def _assert_results_same(actual, expected, what):
    for name in expected:
        if name == "jacobian_product":
            assert_same_product(actual[name], expected[name], what=f"{what} {name}")
        else:
            assert_same(actual[name], expected[name], what=f"{what} {name}")


# How the inputs and the initial state are given: per member (B, T, I) and (B, S), shared by
# every member (T, I) and (S,), mixed, or an int T (zero input). Every configuration runs the
# first three; the two other mixes go through the same broadcasting (_problem) and cell code
# (a shared x or a shared state against batched weights), and run on one configuration of each
# cell class.
INPUT_MODES = ("per-member", "shared", "int-member-state0")
MORE_MODES = ("shared-inputs-member-state0", "int-zero-state0")
MORE_MODE_CONFIGS = [
    c for c in CONFIGS if c[0] in ("rnn-relu", "irnn", "residual-tanh", "lstm-full", "gru-torch-full")
]


def _inputs_and_state0(mode, batch, state_size, rng, n_steps=T, n_in=I):
    member_x = rng.standard_normal(batch + (n_steps, n_in))
    member_s0 = 0.5 * rng.standard_normal(batch + (state_size,))
    shared_x, shared_s0 = member_x[(0,) * len(batch)], member_s0[(0,) * len(batch)]
    # (inputs, state0) for the ensemble, and a function member index -> (inputs, state0).
    if mode == "per-member":
        return member_x, member_s0, lambda i: (member_x[i], member_s0[i])
    if mode == "shared":
        return shared_x, shared_s0, lambda i: (shared_x, shared_s0)
    if mode == "shared-inputs-member-state0":
        return shared_x, member_s0, lambda i: (shared_x, member_s0[i])
    if mode == "int-member-state0":
        return n_steps, member_s0, lambda i: (n_steps, member_s0[i])
    assert mode == "int-zero-state0"
    return n_steps, None, lambda i: (n_steps, None)


@pytest.mark.parametrize("mode", INPUT_MODES)
@pytest.mark.parametrize("cid, kind, opts, path", CONFIGS, ids=CONFIG_IDS)
def test_ensemble_equals_members(cid, kind, opts, path, mode):
    _check_ensemble_equals_members(cid, kind, opts, path, mode)


@pytest.mark.parametrize("mode", MORE_MODES)
@pytest.mark.parametrize("cid, kind, opts, path", MORE_MODE_CONFIGS, ids=[c[0] for c in MORE_MODE_CONFIGS])
def test_ensemble_equals_members_more_input_modes(cid, kind, opts, path, mode):
    _check_ensemble_equals_members(cid, kind, opts, path, mode)


def _check_ensemble_equals_members(cid, kind, opts, path, mode):
    ens = _ensemble(kind, opts)
    assert ens.batch_shape == (B,) and len(ens) == B
    x, s0, member_args = _inputs_and_state0(mode, (B,), ens.state_size, np.random.default_rng(2))
    together = _results(ens, x, s0, path, T)
    assert together["unroll"].shape == (B, T + 1, ens.state_size)
    assert together["exponents"].shape == (B, ens.path_size(path))
    assert together["gradient_norms"].shape == (B, T + 1)
    for i in range(B):
        xi, si = member_args(i)
        alone = _results(ens[i], xi, si, path, T)
        _assert_results_same(_member(together, (i,)), alone, f"{cid} {mode} member {i}")


def test_configs_cover_every_kind_activation_variant_and_path():
    kinds = {c[1] for c in CONFIGS}
    assert kinds == set(gs.CELL_KINDS)
    assert {c[2]["activation"] for c in CONFIGS if c[1] == "rnn"} == set(gs.ACTIVATIONS)
    assert {c[2]["activation"] for c in CONFIGS if c[1] == "residual"} == set(gs.ACTIVATIONS)
    assert {(c[2]["variant"], c[3]) for c in CONFIGS if c[1] == "gru"} == {
        (v, p) for v in ("torch", "reset_before", "chung") for p in gs.GRU.paths
    }
    assert {c[3] for c in CONFIGS if c[1] == "lstm"} == set(gs.LSTM.paths)


OPTION_CONFIGS = [c for c in CONFIGS if c[0] in ("rnn-tanh", "residual-linear", "lstm-full", "gru-chung-full")]


@pytest.mark.parametrize("cid, kind, opts, path", OPTION_CONFIGS, ids=[c[0] for c in OPTION_CONFIGS])
def test_ensemble_options_of_the_functions(cid, kind, opts, path):
    """k < P (a Haar starting frame from ``rng``), warm-up, stderr, several times, upstream."""
    ens = _ensemble(kind, opts)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((B, 60, I))
    s0 = 0.3 * rng.standard_normal((B, ens.state_size))
    size = ens.path_size(path)
    upstream = rng.standard_normal((B, size))
    times = [0, 7, 30, 31, 60]
    together = gs.lyapunov_spectrum(ens, x, s0, k=2, warmup=10, path=path, n_blocks=5, rng=3)
    svs = gs.log_singular_values(ens, x, s0, times=times, path=path)
    grads = gs.gradient_norms(ens, x, s0, upstream=upstream, path=path)
    assert together.n_steps == 50
    assert together.block_exponents.shape == (5, B, 2)
    for i in range(B):
        alone = gs.lyapunov_spectrum(ens[i], x[i], s0[i], k=2, warmup=10, path=path, n_blocks=5, rng=3)
        assert_same(together.exponents[i], alone.exponents, what=f"{cid} exponents {i}")
        assert_same(together.block_exponents[:, i], alone.block_exponents, what=f"{cid} blocks {i}")
        # The standard error is a spread of block estimates: its rounding is that of the blocks,
        # so it is compared on their scale.
        scale = float(np.max(np.abs(alone.block_exponents)))
        np.testing.assert_allclose(together.stderr[i], alone.stderr, rtol=0, atol=RTOL * scale)
        assert_same(svs[i], gs.log_singular_values(ens[i], x[i], s0[i], times=times, path=path),
                    what=f"{cid} log singular values {i}")
        assert_same(grads[i], gs.gradient_norms(ens[i], x[i], s0[i], upstream=upstream[i], path=path),
                    what=f"{cid} gradient norms {i}")


def test_shared_upstream_broadcasts_over_members():
    ens = _ensemble("gru", {"bias_std": 0.3})
    x = np.random.default_rng(8).standard_normal((T, I))
    u = np.linspace(-1.0, 2.0, ens.state_size)
    out = gs.gradient_norms(ens, x, upstream=u)
    for i in range(B):
        assert_same(out[i], gs.gradient_norms(ens[i], x, upstream=u), what=f"member {i}")


def test_results_are_byte_identical_on_repeat():
    ens = _ensemble("lstm", {"bias_std": 0.3})
    x = np.random.default_rng(4).standard_normal((B, T, I))
    first, second = _results(ens, x, None, "full", T), _results(ens, x, None, "full", T)
    for name in first:
        a, b = first[name], second[name]
        if name == "jacobian_product":
            assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        else:
            assert np.array_equal(a, b), name


# ------------------------------------------------------------------------------------------
# members that differ wildly in one ensemble
def test_dead_and_live_members_do_not_contaminate_each_other():
    # Member 0: a ReLU RNN at rest (zero state, zero input, zero bias): every Jacobian is 0, so
    # every exponent, singular value and gradient is -inf. Member 1: the same weights with a
    # positive bias, alive. A plan, scale or NaN leaking between members would show here.
    w = 0.8 * np.eye(N) + 0.1 * np.ones((N, N))
    dead = gs.RNN(w, np.zeros((N, I)), np.zeros(N), activation="relu")
    live = gs.RNN(w, np.zeros((N, I)), np.full(N, 0.2), activation="relu")
    ens = gs.stack_cells([dead, live, dead])
    together = _results(ens, 60, None, "full", 60)
    assert np.all(together["exponents"][0] == -np.inf)
    assert np.all(np.isfinite(together["exponents"][1]))
    for i, cell in enumerate([dead, live, dead]):
        _assert_results_same(_member(together, (i,)), _results(cell, 60, None, "full", 60), f"member {i}")


def test_jacobian_product_rescaling_of_one_member_keeps_every_product():
    # Linear RNNs with orthogonal weights: member 0 grows by 3 per step (its stored matrix passes
    # 1e100 after 210 steps and is rescaled), member 1 decays by 0.5 (never rescaled alone). The
    # product is exactly g^T O^T; each member's product must equal its lone run's.
    q, r = np.linalg.qr(np.random.default_rng(9).standard_normal((N, N)))
    orth = q * np.sign(np.diagonal(r))
    cells = [gs.RNN(3.0 * orth, activation="linear"), gs.RNN(0.5 * orth, activation="linear")]
    ens = gs.stack_cells(cells)
    log_scale, matrix = gs.jacobian_product(ens, 220)
    assert log_scale[0] > 0  # the rescaling did happen
    for i, cell in enumerate(cells):
        assert_same_product((log_scale[i], matrix[i]), gs.jacobian_product(cell, 220), f"member {i}")
    # and both against the exact product, to rounding of 220 orthogonal products (~220 eps).
    power = np.linalg.matrix_power(orth, 220)
    for i, gain in enumerate((3.0, 0.5)):
        np.testing.assert_allclose(
            matrix[i] * math.exp(float(log_scale[i]) - 220 * math.log(gain)), power, rtol=0, atol=1e-12
        )


def test_long_horizon_members():
    # T = 200 with per-member inputs: the QR plans of the members differ (different spectra),
    # and each member must still follow its own. All three are driven into contraction (top
    # exponents -1.2, -0.87, -0.32), so rounding in the states cannot grow along the horizon.
    ens = gs.stack_cells([
        gs.make_cell("rnn", 6, I, gain=g, bias_std=0.2, rng=s) for g, s in ((0.5, 1), (1.0, 2), (1.6, 3))
    ])
    x = np.random.default_rng(6).standard_normal((3, 200, I))
    spectrum = gs.lyapunov_spectrum(ens, x)
    svs = gs.log_singular_values(ens, x, times=[50, 200])
    for i in range(3):
        assert_same(spectrum.exponents[i], gs.lyapunov_spectrum(ens[i], x[i]).exponents, what=f"exp {i}")
        assert_same(svs[i], gs.log_singular_values(ens[i], x[i], times=[50, 200]), what=f"sv {i}")


# ------------------------------------------------------------------------------------------
# stacks of ensembles (batch (2, B)) and extra leading batch dimensions
@pytest.mark.parametrize("kind, opts, path", [
    ("rnn", {"activation": "tanh", "gain": 0.9, "bias_std": 0.3}, "full"),
    ("lstm", {"bias_std": 0.3}, "hidden"),
    ("gru", {"variant": "reset_before", "bias_std": 0.3}, "full"),
], ids=["rnn", "lstm-hidden", "gru-reset_before"])
@pytest.mark.parametrize("mode", ["per-member", "int-member-state0"])
def test_stack_of_ensembles_equals_members(kind, opts, path, mode):
    stack = gs.stack_cells([_ensemble(kind, opts, seed=1), _ensemble(kind, opts, seed=2)])
    assert stack.batch_shape == (2, B) and len(stack) == 2
    x, s0, member_args = _inputs_and_state0(mode, (2, B), stack.state_size, np.random.default_rng(3))
    together = _results(stack, x, s0, path, T)
    assert together["exponents"].shape == (2, B, stack.path_size(path))
    for j in range(2):
        assert stack[j].batch_shape == (B,)
        for i in range(B):
            xi, si = member_args((j, i))
            alone = _results(stack[j, i], xi, si, path, T)
            _assert_results_same(_member(together, (j, i)), alone, f"{kind} {mode} member {(j, i)}")


def test_extra_leading_input_dims_over_an_ensemble():
    # Inputs (2, B, T, I) over an ensemble of batch (B,): two sequences per member; results
    # (2, B, ...), entry (j, i) that of member i on sequence j. Inputs (2, 1, T, I) broadcast.
    ens = _ensemble("lstm", {"bias_std": 0.3})
    rng = np.random.default_rng(12)
    for x in (rng.standard_normal((2, B, T, I)), rng.standard_normal((2, 1, T, I))):
        together = _results(ens, x, None, "full", T)
        assert together["unroll"].shape == (2, B, T + 1, ens.state_size)
        for j in range(2):
            for i in range(B):
                alone = _results(ens[i], x[j, i if x.shape[1] == B else 0], None, "full", T)
                _assert_results_same(_member(together, (j, i)), alone, f"sequence {j} member {i}")


# ------------------------------------------------------------------------------------------
# the cell methods of an ensemble
CELL_KINDS_OPTS = [
    ("rnn", {"activation": a, "bias_std": 0.3}) for a in ("tanh", "relu", "linear", "sigmoid")
] + [
    ("irnn", {}),
    ("residual", {"alpha": 0.5, "bias_std": 0.3}),
    ("lstm", {"bias_std": 0.3}),
] + [("gru", {"variant": v, "bias_std": 0.3}) for v in ("torch", "reset_before", "chung")] + [
    ("lru", {"r_min": 0.5, "r_max": 0.99}),
    ("mingru", {"bias_std": 0.3}),
    ("minlstm", {"bias_std": 0.3}),
    ("indrnn", {"activation": "tanh", "bias_std": 0.3}),
    ("antisymmetric", {"eps": 0.3, "bias_std": 0.3}),
    ("cornn", {"bias_std": 0.3}),
]
CELL_IDS = [k + ("-" + "-".join(map(str, o.values())) if o else "") for k, o in CELL_KINDS_OPTS]


@pytest.mark.parametrize("kind, opts", CELL_KINDS_OPTS, ids=CELL_IDS)
def test_cell_methods_of_an_ensemble_equal_members(kind, opts):
    ens = _ensemble(kind, opts)
    rng = np.random.default_rng(21)
    s = rng.standard_normal((B, ens.state_size))
    x = rng.standard_normal((B, I))
    for path in type(ens).paths:
        p = ens.path_size(path)
        v = rng.standard_normal((B, p))
        jac, vjp = ens.jacobian(s, x, path), ens.vjp(s, x, v, path)
        new, jac2 = ens.step_and_jacobian(s, x, path)
        assert jac.shape == (B, p, p)
        for i in range(B):
            member = ens[i]
            assert_same(jac[i], member.jacobian(s[i], x[i], path), what=f"jacobian {path} {i}")
            assert_same(jac2[i], member.jacobian(s[i], x[i], path), what=f"step_and_jacobian {path} {i}")
            assert_same(vjp[i], member.vjp(s[i], x[i], v[i], path), what=f"vjp {path} {i}")
            assert_same(new[i], member.step(s[i], x[i]), what=f"step {i}")
    # A state and input shared by the members broadcast over the ensemble.
    out = ens.step(s[0], x[0])
    assert out.shape == (B, ens.state_size)
    for i in range(B):
        assert_same(out[i], ens[i].step(s[0], x[0]), what=f"shared step {i}")


@pytest.mark.parametrize("kind, opts", CELL_KINDS_OPTS, ids=CELL_IDS)
def test_param_vjp_of_an_ensemble_is_per_member(kind, opts):
    ens = _ensemble(kind, opts)
    rng = np.random.default_rng(22)
    s = rng.standard_normal((B, ens.state_size))
    x = rng.standard_normal((B, I))
    v = rng.standard_normal((B, ens.state_size))
    grads = ens.param_vjp(s, x, v)
    assert set(grads) == set(ens.parameter_names)
    for name, g in grads.items():
        assert g.shape == getattr(ens, name).shape, name
    for i in range(B):
        alone = ens[i].param_vjp(s[i], x[i], v[i])
        for name in alone:
            assert_same(grads[name][i], alone[name], what=f"{name} member {i}")
    # Shared state, input and cotangent: still one gradient per member, not a sum over them.
    shared = ens.param_vjp(s[0], x[0], v[0])
    for i in range(B):
        alone = ens[i].param_vjp(s[0], x[0], v[0])
        for name in alone:
            assert_same(shared[name][i], alone[name], what=f"shared {name} member {i}")
    # Extra leading dimensions (5, B, ...) beyond the ensemble's are summed over; the members
    # stay apart. The reference is the member's own sum over its 5 rows (a batched single call).
    s5 = rng.standard_normal((5, B, ens.state_size))
    x5 = rng.standard_normal((5, B, I))
    v5 = rng.standard_normal((5, B, ens.state_size))
    summed = ens.param_vjp(s5, x5, v5)
    for name, g in summed.items():
        assert g.shape == getattr(ens, name).shape, name
    for i in range(B):
        alone = ens[i].param_vjp(s5[:, i], x5[:, i], v5[:, i])
        by_row = [ens[i].param_vjp(s5[r, i], x5[r, i], v5[r, i]) for r in range(5)]
        for name in alone:
            assert_same(summed[name][i], alone[name], what=f"summed {name} member {i}")
            assert_same(summed[name][i], sum(g[name] for g in by_row), what=f"rows {name} member {i}")


def test_param_vjp_of_a_stack_of_ensembles():
    stack = gs.stack_cells([_ensemble("gru", {"bias_std": 0.3}, seed=s) for s in (1, 2)])
    rng = np.random.default_rng(23)
    s = rng.standard_normal((2, B, stack.state_size))
    x = rng.standard_normal((2, B, I))
    v = rng.standard_normal((2, B, stack.state_size))
    grads = stack.param_vjp(s, x, v)
    for j in range(2):
        for i in range(B):
            alone = stack[j, i].param_vjp(s[j, i], x[j, i], v[j, i])
            for name in alone:
                assert grads[name].shape == getattr(stack, name).shape
                assert_same(grads[name][j, i], alone[name], what=f"{name} {(j, i)}")


def test_shared_parameter_arrays_broadcast_to_the_ensemble():
    # weight_hh (B, N, N) with weight_ih (N, I) and biases (N,) shared by every member.
    rng = np.random.default_rng(24)
    w_hh = 0.5 * rng.standard_normal((B, N, N))
    w_ih, b = rng.standard_normal((N, I)), rng.standard_normal(N)
    ens = gs.RNN(w_hh, w_ih, b)
    assert ens.batch_shape == (B,)
    assert ens.weight_ih.shape == (B, N, I) and ens.bias_hh.shape == (B, N)
    x = rng.standard_normal((T, I))
    states = gs.unroll(ens, x)
    grads = ens.param_vjp(states[:, 5], x[5], np.ones(N))
    for i in range(B):
        member = gs.RNN(w_hh[i], w_ih, b)
        assert_same(states[i], gs.unroll(member, x), what=f"states {i}")
        for name, g in member.param_vjp(states[i, 5], x[5], np.ones(N)).items():
            assert_same(grads[name][i], g, what=f"{name} {i}")


# ------------------------------------------------------------------------------------------
# untied weights: a callable t -> ensemble
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_untied_ensembles_equal_members(kind):
    def make(r):
        return gs.make_cell(kind, N, I, ensemble=B, bias_std=0.3, rng=r)

    cell_at = gs.untied(make, rng=7)
    assert cell_at(3).batch_shape == (B,)
    steps = 16  # every step builds a fresh ensemble (and gradient_norms builds it again)
    x = np.random.default_rng(9).standard_normal((B, steps, I))
    together = _results(cell_at, x, None, "full", steps)
    for i in range(B):
        member_at = lambda t, i=i: cell_at(t)[i]
        alone = _results(member_at, x[i], None, "full", steps)
        _assert_results_same(_member(together, (i,)), alone, f"untied {kind} member {i}")


def test_untied_ensemble_member_is_rebuildable_from_the_step_seed():
    # Step t's generator is SeedSequence(root, spawn_key=(t,)); member i of its ensemble is the
    # cell make_cell builds from that generator's i-th child.
    def make(r):
        return gs.make_cell("rnn", N, I, ensemble=B, rng=r)

    cell_at = gs.untied(make, rng=7)
    root = int(np.random.default_rng(7).integers(2**63))
    step_rng = np.random.default_rng(np.random.SeedSequence(root, spawn_key=(5,)))
    for i, child in enumerate(step_rng.spawn(B)):
        _assert_same_parameters(cell_at(5)[i], gs.make_cell("rnn", N, I, rng=child))


def test_untied_callable_must_keep_the_batch_shape():
    ens = _ensemble("rnn", {})

    def cell_at(t):
        return ens if t == 0 else ens[0]

    with pytest.raises(ValueError, match=exact(
        "`cell` callable must return cells of one size; at t=1 it returned state_size=4, n_input=2, "
        "batch_shape=(), expected 4, 2, (3,)."
    )):
        gs.unroll(cell_at, 5)


# ------------------------------------------------------------------------------------------
# indexing, len, parameters, options
def _assert_same_parameters(a, b):
    assert type(a) is type(b)
    assert a.options() == b.options()
    assert a.batch_shape == b.batch_shape
    for name in a.parameter_names:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_indexing_members_and_sub_ensembles():
    cells = [gs.make_cell("residual", N, I, alpha=0.3, activation="sigmoid", bias_std=0.2, rng=s)
             for s in range(4)]
    ens = gs.stack_cells(cells)
    assert ens.batch_shape == (4,) and len(ens) == 4
    assert ens.parameter_names == ("weight_hh", "weight_ih", "bias_hh", "bias_ih")
    assert list(ens.parameters()) == list(ens.parameter_names)
    assert ens.options() == {"activation": "sigmoid", "alpha": 0.3}
    assert ens.parameters()["weight_hh"].shape == (4, N, N)
    for i in range(4):
        _assert_same_parameters(ens[i], cells[i])
        _assert_same_parameters(ens[i - 4], cells[i])  # negative index
        _assert_same_parameters(ens[np.int64(i)], cells[i])
        assert ens[i].batch_shape == ()
    sub = ens[1:3]
    assert sub.batch_shape == (2,)
    _assert_same_parameters(sub, gs.stack_cells(cells[1:3]))
    _assert_same_parameters(ens[::-2], gs.stack_cells([cells[3], cells[1]]))
    _assert_same_parameters(ens[[0, 2]], gs.stack_cells([cells[0], cells[2]]))


def test_iterating_an_ensemble_gives_its_members():
    ens = _ensemble("lstm", {"bias_std": 0.3})
    members = list(ens)  # the sequence protocol: __getitem__ until IndexError
    assert len(members) == B
    for i, member in enumerate(members):
        _assert_same_parameters(member, ens[i])


def test_ellipsis_indexes_the_batch_dimensions():
    # ``cell[index]`` selects members as numpy would index an array of shape batch_shape, so an
    # Ellipsis stands for batch dimensions only, never for the weights' own (N, N) axes.
    # N == B here so that indexing the wrong axes would still build a valid cell.
    ens = gs.make_cell("rnn", 4, 4, ensemble=4, rng=0)
    _assert_same_parameters(ens[..., 1], ens[1])
    _assert_same_parameters(ens[...], ens)
    stack = gs.stack_cells([ens, ens[::-1]])
    _assert_same_parameters(stack[..., 2], stack[:, 2])


def test_indexing_a_stack_of_ensembles():
    first, second = (_ensemble("gru", {"variant": "chung"}, seed=s) for s in (1, 2))
    stack = gs.stack_cells([first, second])
    assert stack.batch_shape == (2, B) and len(stack) == 2
    _assert_same_parameters(stack[0], first)
    _assert_same_parameters(stack[-1], second)
    _assert_same_parameters(stack[1, 2], second[2])
    _assert_same_parameters(stack[:, 1], gs.stack_cells([first[1], second[1]]))
    assert stack[1, 2].options() == {"variant": "chung"}


def test_stack_cells_round_trip_and_sequences():
    ens = _ensemble("lstm", {"bias_std": 0.3})
    _assert_same_parameters(gs.stack_cells([ens[i] for i in range(B)]), ens)
    _assert_same_parameters(gs.stack_cells(ens[i] for i in range(B)), ens)  # a generator
    _assert_same_parameters(gs.stack_cells(tuple(ens[i] for i in range(B))), ens)
    one = gs.stack_cells([ens[0]])
    assert one.batch_shape == (1,)
    _assert_same_parameters(one[0], ens[0])


def test_ensemble_parameters_are_read_only():
    ens = _ensemble("rnn", {})
    with pytest.raises(ValueError):
        ens.weight_hh[0, 0, 0] = 1.0
    with pytest.raises(ValueError):
        ens[0].weight_hh[0, 0] = 1.0
    with pytest.raises(ValueError):
        ens.parameters()["bias_hh"][0] = 1.0


def test_stacking_copies_the_members_arrays():
    w = np.eye(N) * 0.5
    ens = gs.stack_cells([gs.RNN(w), gs.RNN(w)])
    w[0, 0] = 9.0
    assert ens.weight_hh[0, 0, 0] == 0.5


@pytest.mark.parametrize("index", [3, -4, 10])
def test_index_out_of_range(index):
    ens = _ensemble("rnn", {})
    with pytest.raises(IndexError, match=exact(
        f"ensemble index {index!r} is out of range for batch_shape (3,)."
    )):
        ens[index]


def test_index_beyond_the_batch_dims():
    stack = gs.stack_cells([_ensemble("rnn", {}), _ensemble("rnn", {})])
    with pytest.raises(IndexError, match=exact(
        "ensemble index (0, 1, 0) has 3 entries for batch_shape (2, 3)."
    )):
        stack[0, 1, 0]


@pytest.mark.parametrize("cell", [
    gs.RNN(np.eye(3)),
    gs.make_cell("lstm", 2, 1, rng=0),
    gs.make_cell("gru", 2, 1, rng=0),
    gs.make_cell("residual", 2, 1, rng=0),
], ids=["RNN", "LSTM", "GRU", "ResidualRNN"])
def test_a_single_cell_cannot_be_indexed(cell):
    name = type(cell).__name__
    assert cell.batch_shape == ()
    with pytest.raises(TypeError, match=exact(
        f"a single {name} has no members; only an ensemble (batch_shape != ()) can be indexed."
    )):
        cell[0]
    with pytest.raises(TypeError, match=exact(
        f"a single {name} has no members; only an ensemble (batch_shape != ()) can be indexed."
    )):
        cell[0:1]
    with pytest.raises(TypeError, match=exact(f"a single {name} has no len(); it is not an ensemble.")):
        len(cell)


# ------------------------------------------------------------------------------------------
# reproducibility from rng
MAKE_CASES = [
    ("rnn", {"activation": "relu", "bias_std": 0.5}),
    ("rnn", {"init": "orthogonal", "gain": 1.2}),
    ("irnn", {"gain": 0.9}),
    ("residual", {"alpha": 0.2, "activation": "linear"}),
    ("lstm", {"chrono_t_max": 30.0}),
    ("lstm", {"forget_bias": 1.0, "init": "pytorch"}),
    ("gru", {"variant": "reset_before", "bias_std": 0.1}),
    ("gru", {"variant": "chung", "input_gain": 0.5}),
]
MAKE_IDS = [f"{k}-{i}" for i, (k, _) in enumerate(MAKE_CASES)]


@pytest.mark.parametrize("kind, opts", MAKE_CASES, ids=MAKE_IDS)
def test_make_cell_ensemble_members_rebuild_from_spawned_rngs(kind, opts):
    seed = 1234
    ens = gs.make_cell(kind, 5, 3, ensemble=4, rng=seed, **opts)
    assert ens.batch_shape == (4,)
    children = np.random.default_rng(seed).spawn(4)
    for i in range(4):
        _assert_same_parameters(ens[i], gs.make_cell(kind, 5, 3, rng=children[i], **opts))
    # The same seed again, or a Generator of that seed: the same ensemble, bit for bit.
    _assert_same_parameters(gs.make_cell(kind, 5, 3, ensemble=4, rng=seed, **opts), ens)
    _assert_same_parameters(gs.make_cell(kind, 5, 3, ensemble=4, rng=np.random.default_rng(seed), **opts), ens)
    # Members are independent draws (irnn's weights are fixed: gain * I, zero bias).
    if kind != "irnn":
        assert not np.array_equal(ens[0].weight_hh, ens[1].weight_hh)
    # A different seed gives a different ensemble.
    if kind != "irnn":
        assert not np.array_equal(gs.make_cell(kind, 5, 3, ensemble=4, rng=seed + 1, **opts).weight_hh,
                                  ens.weight_hh)


def test_make_cell_ensemble_does_not_touch_global_state():
    before = np.random.get_state()[1].copy()
    gs.make_cell("lstm", 4, 2, ensemble=3, rng=5)
    gs.make_cell("gru", 4, 2, ensemble=3, rng=None)
    assert np.array_equal(np.random.get_state()[1], before)


def test_make_cell_ensemble_of_one_and_numpy_int():
    one = gs.make_cell("gru", 3, 1, ensemble=1, rng=4)
    assert one.batch_shape == (1,)
    _assert_same_parameters(one[0], gs.make_cell("gru", 3, 1, rng=np.random.default_rng(4).spawn(1)[0]))
    assert gs.make_cell("rnn", 3, 1, ensemble=np.int64(2), rng=4).batch_shape == (2,)
    assert gs.make_cell("rnn", 3, 0, ensemble=2, rng=4).n_input == 0


def test_stack_cells_reproducible_from_seeds():
    def build():
        return gs.stack_cells([gs.make_cell("lstm", 4, 2, bias_std=0.3, rng=s) for s in (3, 1, 4)])

    a, b = build(), build()
    _assert_same_parameters(a, b)
    x = np.random.default_rng(0).standard_normal((T, 2))
    assert np.array_equal(gs.lyapunov_spectrum(a, x).exponents, gs.lyapunov_spectrum(b, x).exponents)


@SETTINGS
@given(
    kind=st.sampled_from(gs.CELL_KINDS),
    n=st.integers(1, 5),
    n_in=st.integers(0, 3),
    size=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_make_cell_ensemble_equals_stack_of_spawned_members(kind, n, n_in, size, seed):
    ens = gs.make_cell(kind, n, n_in, ensemble=size, bias_std=0.2, rng=seed)
    members = [gs.make_cell(kind, n, n_in, bias_std=0.2, rng=r) for r in np.random.default_rng(seed).spawn(size)]
    _assert_same_parameters(ens, gs.stack_cells(members))
    # and one time loop over the ensemble equals the members' own
    x = np.random.default_rng(seed % 1000).standard_normal((size, 6, n_in))
    states = gs.unroll(ens, x)
    grads = gs.gradient_norms(ens, x)
    for i, member in enumerate(members):
        assert_same(states[i], gs.unroll(member, x[i]), what=f"states {i}")
        assert_same(grads[i], gs.gradient_norms(member, x[i]), what=f"gradient norms {i}")


# ------------------------------------------------------------------------------------------
# bad input
def _rnn(n=3, n_in=2, **kw):
    return gs.RNN(np.eye(n) * 0.5, np.ones((n, n_in)), **kw)


def test_stack_cells_different_kinds():
    lstm = gs.make_cell("lstm", 3, 2, rng=0)
    with pytest.raises(ValueError, match=exact(
        "`cells` must all be of one kind; item 0 is RNN, item 2 is LSTM."
    )):
        gs.stack_cells([_rnn(), _rnn(), lstm])
    # A residual RNN is a subclass of RNN, but not the same kind.
    with pytest.raises(ValueError, match=exact(
        "`cells` must all be of one kind; item 0 is RNN, item 1 is ResidualRNN."
    )):
        gs.stack_cells([_rnn(), gs.ResidualRNN(np.eye(3), np.ones((3, 2)))])
    with pytest.raises(ValueError, match=exact(
        "`cells` must all be of one kind; item 0 is GRU, item 1 is LSTM."
    )):
        gs.stack_cells([gs.make_cell("gru", 3, 2, rng=0), lstm])


def test_stack_cells_different_sizes():
    with pytest.raises(ValueError, match=exact(
        "`cells` must all have one size; item 0 has n_hidden=3, n_input=2, batch_shape=(), item 1 has "
        "n_hidden=4, n_input=2, batch_shape=()."
    )):
        gs.stack_cells([_rnn(3), _rnn(4)])
    with pytest.raises(ValueError, match=exact(
        "`cells` must all have one size; item 0 has n_hidden=3, n_input=2, batch_shape=(), item 1 has "
        "n_hidden=3, n_input=1, batch_shape=()."
    )):
        gs.stack_cells([_rnn(3, 2), _rnn(3, 1)])
    with pytest.raises(ValueError, match=exact(
        "`cells` must all have one size; item 0 has n_hidden=2, n_input=1, batch_shape=(), item 1 has "
        "n_hidden=2, n_input=0, batch_shape=()."
    )):
        gs.stack_cells([gs.make_cell("lstm", 2, 1, rng=0), gs.make_cell("lstm", 2, 0, rng=0)])
    # ensembles of different batch shapes, and an ensemble with a single cell
    with pytest.raises(ValueError, match=exact(
        "`cells` must all have one size; item 0 has n_hidden=4, n_input=2, batch_shape=(3,), item 1 "
        "has n_hidden=4, n_input=2, batch_shape=(2,)."
    )):
        gs.stack_cells([_ensemble("rnn", {}), _ensemble("rnn", {}, size=2)])
    with pytest.raises(ValueError, match=exact(
        "`cells` must all have one size; item 0 has n_hidden=4, n_input=2, batch_shape=(3,), item 1 "
        "has n_hidden=4, n_input=2, batch_shape=()."
    )):
        gs.stack_cells([_ensemble("rnn", {}), gs.make_cell("rnn", N, I, rng=0)])


def test_stack_cells_different_options():
    with pytest.raises(ValueError, match=exact(
        "`cells` must all have the same activation; item 0 has activation='tanh', item 1 has "
        "activation='relu'."
    )):
        gs.stack_cells([_rnn(), _rnn(activation="relu")])
    with pytest.raises(ValueError, match=exact(
        "`cells` must all have the same variant; item 0 has variant='torch', item 2 has variant='chung'."
    )):
        gs.stack_cells([gs.make_cell("gru", 2, 1, variant=v, rng=0) for v in ("torch", "torch", "chung")])
    with pytest.raises(ValueError, match=exact(
        "`cells` must all have the same alpha; item 0 has alpha=1.0, item 1 has alpha=0.5."
    )):
        gs.stack_cells([gs.make_cell("residual", 2, 1, alpha=a, rng=0) for a in (1.0, 0.5)])
    with pytest.raises(ValueError, match=exact(
        "`cells` must all have the same activation; item 0 has activation='linear', item 1 has "
        "activation='tanh'."
    )):
        gs.stack_cells([gs.make_cell("residual", 2, 1, activation=a, rng=0) for a in ("linear", "tanh")])


def test_stack_cells_not_a_sequence_of_cells():
    with pytest.raises(ValueError, match=exact("`cells` must hold at least one Cell; got an empty sequence.")):
        gs.stack_cells([])
    with pytest.raises(ValueError, match=exact("`cells` must hold at least one Cell; got an empty sequence.")):
        gs.stack_cells(iter(()))
    with pytest.raises(TypeError, match=exact("`cells` must hold only Cells; item 1 is 'rnn'.")):
        gs.stack_cells([_rnn(), "rnn"])
    with pytest.raises(TypeError, match=exact("`cells` must hold only Cells; item 0 is an array of shape (3, 3).")):
        gs.stack_cells([np.eye(3), _rnn()])
    with pytest.raises(TypeError, match=exact(
        "`cells` must be a sequence of Cells; got a single Cell (it is already one network)."
    )):
        gs.stack_cells(_rnn())
    with pytest.raises(TypeError, match=exact(
        "`cells` must be a sequence of Cells; got a single Cell (it is already one network)."
    )):
        gs.stack_cells(_ensemble("rnn", {}))
    with pytest.raises(TypeError, match=exact("`cells` must be a sequence of Cells; got 5.")):
        gs.stack_cells(5)
    with pytest.raises(TypeError, match=exact("`cells` must be a sequence of Cells; got None.")):
        gs.stack_cells(None)


@pytest.mark.parametrize("value, error, received", [
    (0, ValueError, "0"),
    (-2, ValueError, "-2"),
    (2.5, TypeError, "2.5"),
    (3.0, TypeError, "3.0"),
    (True, TypeError, "True"),
    (False, TypeError, "False"),
    ("3", TypeError, "'3'"),
])
def test_make_cell_bad_ensemble(value, error, received):
    with pytest.raises(error, match=exact(f"`ensemble` must be an integer >= 1; got {received}.")):
        gs.make_cell("rnn", 3, 1, ensemble=value, rng=0)


NUMERIC_FUNCS = {
    "unroll": gs.unroll,
    "jacobian_product": gs.jacobian_product,
    "log_singular_values": gs.log_singular_values,
    "lyapunov_spectrum": gs.lyapunov_spectrum,
    "gradient_norms": gs.gradient_norms,
}


@pytest.mark.parametrize("fname", sorted(NUMERIC_FUNCS))
def test_inputs_whose_batch_does_not_broadcast_with_the_ensemble(fname):
    fn = NUMERIC_FUNCS[fname]
    ens = gs.make_cell("rnn", 3, 2, ensemble=4, rng=0)
    with pytest.raises(ValueError, match=exact(
        "`inputs` must have shape (T, 2) (shared by the ensemble) or (..., 4, T, 2) (one sequence per "
        "member of the ensemble of batch_shape (4,)); got shape (3, 10, 2)."
    )):
        fn(ens, np.zeros((3, 10, 2)))
    stack = gs.stack_cells([ens, ens])
    with pytest.raises(ValueError, match=exact(
        "`inputs` must have shape (T, 2) (shared by the ensemble) or (..., 2, 4, T, 2) (one sequence "
        "per member of the ensemble of batch_shape (2, 4)); got shape (4, 2, 10, 2)."
    )):
        fn(stack, np.zeros((4, 2, 10, 2)))
    # and through an untied callable returning ensembles
    cell_at = gs.untied(lambda r: gs.make_cell("rnn", 3, 2, ensemble=4, rng=r), rng=0)
    with pytest.raises(ValueError, match=exact(
        "`inputs` must have shape (T, 2) (shared by the ensemble) or (..., 4, T, 2) (one sequence per "
        "member of the ensemble of batch_shape (4,)); got shape (3, 10, 2)."
    )):
        fn(cell_at, np.zeros((3, 10, 2)))


@pytest.mark.parametrize("fname", sorted(NUMERIC_FUNCS))
def test_state0_whose_batch_does_not_broadcast_with_the_ensemble(fname):
    fn = NUMERIC_FUNCS[fname]
    ens = gs.make_cell("rnn", 3, 2, ensemble=4, rng=0)
    with pytest.raises(ValueError, match=exact(
        "`state0` batch shape (3,) does not broadcast with the inputs' and the ensemble's batch shape (4,)."
    )):
        fn(ens, 10, np.zeros((3, 3)))
    with pytest.raises(ValueError, match=exact(
        "`state0` batch shape (3,) does not broadcast with the inputs' and the ensemble's batch shape (4,)."
    )):
        fn(ens, np.zeros((10, 2)), np.zeros((3, 3)))


def test_cell_methods_with_a_batch_that_does_not_broadcast():
    ens = gs.make_cell("gru", 3, 2, ensemble=4, rng=0)
    message = (
        "`state` and `x` must have batch shapes that broadcast with the ensemble's batch_shape (4,); "
        "got (3,) and (3,)."
    )
    with pytest.raises(ValueError, match=exact(message)):
        ens.step(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=exact(message)):
        ens.jacobian(np.zeros((3, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=exact(message)):
        ens.vjp(np.zeros((3, 3)), np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match=exact(message)):
        ens.param_vjp(np.zeros((3, 3)), np.zeros((3, 2)), np.zeros(3))


def test_upstream_whose_batch_does_not_broadcast_with_the_ensemble():
    # Like `inputs` and `state0`, a bad `upstream` must be named in the message (with the shape
    # received), not left to numpy's broadcasting error.
    ens = gs.make_cell("rnn", 3, 2, ensemble=4, rng=0)
    with pytest.raises(ValueError, match=r"^`upstream` .*\(3, 3\)"):
        gs.gradient_norms(ens, 10, upstream=np.ones((3, 3)))


@pytest.mark.parametrize("method", ["vjp", "param_vjp"])
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_cotangent_whose_batch_does_not_broadcast_with_the_ensemble(kind, method):
    ens = gs.make_cell(kind, 3, 2, ensemble=4, rng=0)
    cotangent = np.ones((3, ens.state_size))
    with pytest.raises(ValueError, match=rf"^`cotangent` .*\(3, {ens.state_size}\)"):
        getattr(ens, method)(np.zeros(ens.state_size), np.zeros(2), cotangent)


def test_ensemble_constructor_with_mismatched_batches():
    with pytest.raises(ValueError, match=exact(
        "`weight_ih` must have the ensemble's batch shape (3,) (that of `weight_hh`) or none; got shape "
        "(2, 4, 1)."
    )):
        gs.RNN(np.zeros((3, 4, 4)), np.zeros((2, 4, 1)))
    with pytest.raises(ValueError, match=exact("`bias_hh` must have shape (4,) or (3, 4); got shape (2, 4).")):
        gs.RNN(np.zeros((3, 4, 4)), np.zeros((4, 1)), np.zeros((2, 4)))


# ------------------------------------------------------------------------------------------
# memory of an ensemble run is flat in T (only the requested outputs grow)
def _peak_bytes(fn):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


N_MEM, B_MEM = 8, 4
_MEM_ENS = gs.make_cell("rnn", N_MEM, 1, ensemble=B_MEM, gain=1.0, rng=70)
T_SMALL, T_LARGE = 200, 800
# Slack for allocations unrelated to T (Python ints, small temporaries, allocator noise): far
# below what O(T) storage would add between T = 200 and 800 (600 steps of one (B, N) state:
# 150 KiB; of one (B, N, N) Jacobian or frame: 1.2 MiB).
_MEM_SLACK = 64 * 1024
_MEM_FUNCS = {
    "lyapunov_spectrum": lambda T: gs.lyapunov_spectrum(_MEM_ENS, T),
    "gradient_norms": lambda T: gs.gradient_norms(_MEM_ENS, T),
    "log_singular_values": lambda T: gs.log_singular_values(_MEM_ENS, T),
    "jacobian_product": lambda T: gs.jacobian_product(_MEM_ENS, T),
    "unroll": lambda T: gs.unroll(_MEM_ENS, T),
}


@pytest.mark.parametrize("name", sorted(_MEM_FUNCS))
def test_ensemble_peak_memory_is_flat_in_T(name):
    fn = _MEM_FUNCS[name]
    fn(50)  # warm caches (lazy imports, LAPACK workspaces) outside the measurement
    small = _peak_bytes(lambda: fn(T_SMALL))
    large = _peak_bytes(lambda: fn(T_LARGE))
    allowed = _MEM_SLACK
    if name == "gradient_norms":
        # The output is (B, T + 1) float64s by contract, and states are checkpointed every
        # sqrt(T) steps and recomputed a segment at a time: two lists of ~sqrt(T) arrays of
        # B * S float64s (+ ~112 B array header each).
        per_state = B_MEM * N_MEM * 8 + 112
        allowed += B_MEM * 8 * (T_LARGE - T_SMALL)
        allowed += 2 * (math.isqrt(T_LARGE) - math.isqrt(T_SMALL) + 2) * per_state
    if name == "unroll":
        # The output, (B, T + 1, S) float64s, is what was asked for.
        allowed += B_MEM * N_MEM * 8 * (T_LARGE - T_SMALL)
    assert large - small <= allowed, (small, large, allowed)
