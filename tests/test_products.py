"""Tests of the numeric layer (gradsim/products.py).

Every check compares the library with something computed independently: exact theory
(THEORY.md sections 3, 4, 6, 7), numpy on the raw Jacobian product, mpmath at high
precision, or a plain loop written here. Every tolerance says where it comes from.

Notation as in products.py: s_{t+1} = cell_t.step(s_t, x_t), J_t = d s_t / d s_{t-1},
P_t = J_t ... J_1.
"""

from __future__ import annotations

import math
import re
import tracemalloc
import warnings

import mpmath
import numpy as np
import pytest
from scipy.special import expit, polygamma, psi
from threadpoolctl import threadpool_limits

import gradsim as gs


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # The matrices here are at most 64 x 64: BLAS threads only add contention (5x slower on a
    # loaded 2-core machine), and results must not depend on the thread count anyway.
    with threadpool_limits(1):
        yield


# ------------------------------------------------------------------------------------------
# independent helpers (public cell API only; no library time loop)
def _orth(n, rng):
    """A Haar orthogonal matrix, built here (not with gradsim.init)."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diagonal(r))


def _cell_at(cell):
    return cell if callable(cell) and not isinstance(cell, gs.Cell) else (lambda t: cell)


def _loop_states(cell, inputs, state0):
    """States s_0 .. s_T by a plain loop of cell.step."""
    at = _cell_at(cell)
    states = [np.asarray(state0, dtype=float)]
    for t in range(len(inputs)):
        states.append(at(t).step(states[-1], inputs[t]))
    return np.array(states)


def _loop_jacobians(cell, inputs, state0, path="full"):
    """States and the per-step Jacobians [J_1, ..., J_T] along the trajectory."""
    at = _cell_at(cell)
    states = _loop_states(cell, inputs, state0)
    jacs = [at(t).jacobian(states[t], inputs[t], path) for t in range(len(inputs))]
    return states, jacs


def _raw_product(jacs):
    """P_T = J_T ... J_1 in plain float64."""
    p = np.eye(jacs[0].shape[0])
    for j in jacs:
        p = j @ p
    return p


def _linear_rnn(w):
    return gs.RNN(w, activation="linear")


def _tanh_rnn(n, n_in, gain, seed):
    return gs.make_cell("rnn", n, n_in, init="gaussian", gain=gain, bias_std=0.3, rng=seed)


# Cells whose Jacobians exercise every formula in cells.py (diag(phi') W, the LSTM blocks,
# the GRU gates); the FD and BPTT tests run on all of them.
CELLS = {
    "rnn-tanh": lambda: _tanh_rnn(5, 2, 1.3, 1),
    "lstm": lambda: gs.make_cell("lstm", 3, 2, init="gaussian", gain=1.2, bias_std=0.5, rng=2),
    "gru": lambda: gs.make_cell("gru", 4, 2, init="gaussian", gain=1.5, bias_std=0.5, rng=3),
    "residual": lambda: gs.make_cell("residual", 4, 2, init="gaussian", gain=0.8, alpha=0.5,
                                     activation="tanh", rng=4),
}


def _inputs_and_state(cell, T, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((T, cell.n_input)), 0.5 * rng.standard_normal(cell.state_size)


# ==========================================================================================
# 1. unroll
@pytest.mark.parametrize("name", sorted(CELLS))
def test_unroll_equals_hand_written_loop(name):
    cell = CELLS[name]()
    x, s0 = _inputs_and_state(cell, 12, 10)
    states = gs.unroll(cell, x, s0)
    assert states.shape == (13, cell.state_size)
    # Same float operations in the same order (cell.step is the one-step map): bitwise equal.
    np.testing.assert_array_equal(states, _loop_states(cell, x, s0))


def test_unroll_int_inputs_means_zero_input():
    cell = _tanh_rnn(5, 2, 1.3, 1)
    s0 = np.linspace(-1, 1, 5)
    # An int T is exactly T steps of x = 0: bitwise equal.
    np.testing.assert_array_equal(gs.unroll(cell, 7, s0), _loop_states(cell, np.zeros((7, 2)), s0))
    # No state0: zeros.
    np.testing.assert_array_equal(gs.unroll(cell, 3)[0], np.zeros(5))


def test_unroll_callable_cell_uses_the_cell_of_each_step():
    rng = np.random.default_rng(5)
    ws = [rng.standard_normal((3, 3)) for _ in range(6)]
    cells = [gs.RNN(w, rng.standard_normal((3, 1)), activation="tanh") for w in ws]
    x = rng.standard_normal((6, 1))
    s0 = rng.standard_normal(3)
    expected = [s0]
    for t in range(6):
        expected.append(np.tanh(ws[t] @ expected[-1] + cells[t].weight_ih @ x[t]))
    # Independent formula tanh(W h + U x): differs from the library only by matmul rounding,
    # a few ulp of O(1) numbers per step, 1e-13 leaves a 100x margin.
    np.testing.assert_allclose(gs.unroll(lambda t: cells[t], x, s0), np.array(expected),
                               rtol=0, atol=1e-13)


def test_unroll_batch_dims_match_per_item_runs():
    cell = CELLS["lstm"]()
    rng = np.random.default_rng(11)
    B, T = 3, 9
    x = rng.standard_normal((B, T, cell.n_input))
    s0 = rng.standard_normal((B, cell.state_size))
    out = gs.unroll(cell, x, s0)
    assert out.shape == (B, T + 1, cell.state_size)
    for b in range(B):
        # Batched matmul may use a different BLAS kernel than the single-item one, so equality
        # is to rounding: a few ulp of O(1) states, 1e-13 is a ~100x margin.
        np.testing.assert_allclose(out[b], gs.unroll(cell, x[b], s0[b]), rtol=0, atol=1e-13)
    # state0 (S,) broadcast over the inputs' batch.
    out = gs.unroll(cell, x, s0[0])
    for b in range(B):
        np.testing.assert_allclose(out[b], gs.unroll(cell, x[b], s0[0]), rtol=0, atol=1e-13)
    # state0 (B, S) with int inputs: batch from the state.
    out = gs.unroll(cell, 4, s0)
    assert out.shape == (B, 5, cell.state_size)
    for b in range(B):
        np.testing.assert_allclose(out[b], gs.unroll(cell, 4, s0[b]), rtol=0, atol=1e-13)


# ==========================================================================================
# 2. jacobian_product
@pytest.mark.parametrize("name", sorted(CELLS))
def test_jacobian_product_equals_raw_numpy_product(name):
    cell = CELLS[name]()
    x, s0 = _inputs_and_state(cell, 10, 20)
    log_scale, matrix = gs.jacobian_product(cell, x, s0)
    _, jacs = _loop_jacobians(cell, x, s0)
    raw = _raw_product(jacs)
    # Short horizon, entries far from 1e+-100: no rescaling may have happened.
    assert log_scale == 0.0
    # Same products in the same order; tolerance covers BLAS-kernel rounding, ~T eps relative
    # to the largest entry, 1e-12 of the largest entry is a >100x margin.
    np.testing.assert_allclose(np.exp(log_scale) * matrix, raw, rtol=0,
                               atol=1e-12 * np.abs(raw).max())


@pytest.mark.parametrize("name", sorted(CELLS))
def test_jacobian_product_equals_central_finite_differences(name):
    cell = CELLS[name]()
    T = 8
    x, s0 = _inputs_and_state(cell, T, 30)
    log_scale, matrix = gs.jacobian_product(cell, x, s0)
    product = np.exp(log_scale) * matrix
    h = 1e-5
    fd = np.empty_like(product)
    for j in range(cell.state_size):
        e = np.zeros(cell.state_size)
        e[j] = h
        fd[:, j] = (_loop_states(cell, x, s0 + e)[-1] - _loop_states(cell, x, s0 - e)[-1]) / (2 * h)
    # Central differences: truncation error h^2/6 |s'''| ~ 2e-11 (third derivatives of these
    # smooth O(1)-gain maps are O(1)) plus rounding eps |s_T| / h ~ 2e-11; relative to
    # ||P|| = O(0.1..1) that is <= 1e-9, so 1e-6 passes with a 1000x margin yet fails at
    # once for a wrong Jacobian block or a transposed product (O(1) errors).
    rel = np.linalg.norm(fd - product) / np.linalg.norm(product)
    assert np.linalg.norm(product) > 1e-3  # the product is not trivially small
    assert rel < 1e-6


def test_jacobian_product_order_is_forward_with_non_commuting_weights():
    rng = np.random.default_rng(7)
    T = 5
    # Small integer matrices: every partial product has integer entries below 2^53, so float64
    # arithmetic is exact and the comparison can be exact.
    ws = [rng.integers(-2, 3, size=(3, 3)).astype(float) for _ in range(T)]
    assert not np.array_equal(ws[0] @ ws[1], ws[1] @ ws[0])  # they do not commute
    log_scale, matrix = gs.jacobian_product(lambda t: _linear_rnn(ws[t]), T)
    forward = ws[4] @ ws[3] @ ws[2] @ ws[1] @ ws[0]  # P_T = W_T ... W_1
    reverse = ws[0] @ ws[1] @ ws[2] @ ws[3] @ ws[4]
    assert log_scale == 0.0
    np.testing.assert_array_equal(matrix, forward)
    assert not np.array_equal(forward, reverse)


def test_jacobian_product_scale_keeps_long_products_finite():
    rng = np.random.default_rng(8)
    q = _orth(4, rng)
    T, g = 500, 10.0  # P_T = 10^500 Q^500 overflows float64 if formed directly
    log_scale, matrix = gs.jacobian_product(_linear_rnn(g * q), T)
    assert np.isfinite(log_scale) and np.all(np.isfinite(matrix))
    sv = np.linalg.svd(matrix, compute_uv=False)
    # log_scale + log sv(matrix) = T log g; the matrix is Q^500 times a float scale, so its
    # singular values are equal to ~T eps relative: 1e-10 absolute on 1151 nats is ample.
    np.testing.assert_allclose(log_scale + np.log(sv), T * np.log(g), rtol=0, atol=1e-10)


def test_jacobian_product_sub_paths_are_products_of_blocks():
    lstm = CELLS["lstm"]()
    N = lstm.n_hidden
    x, s0 = _inputs_and_state(lstm, 8, 35)
    states, full = _loop_jacobians(lstm, x, s0)
    # "hidden": the h -> h block (c held fixed); "cell": the c -> c block, diag(f_t).
    for path, block in (("hidden", lambda j: j[:N, :N]), ("cell", lambda j: j[N:, N:])):
        log_scale, matrix = gs.jacobian_product(lstm, x, s0, path=path)
        raw = _raw_product([block(j) for j in full])
        # Rounding only (same products), as in the raw-product test.
        np.testing.assert_allclose(np.exp(log_scale) * matrix, raw, rtol=0,
                                   atol=1e-12 * np.abs(raw).max())
    # GRU "direct": diag(z_t), z computed here from the states (gate block 1 of r, z, n).
    gru = CELLS["gru"]()
    N = gru.n_hidden
    x, s0 = _inputs_and_state(gru, 8, 36)
    states = gs.unroll(gru, x, s0)
    a = states[:-1] @ gru.weight_hh.T + gru.bias_hh + x @ gru.weight_ih.T + gru.bias_ih
    z = expit(a[:, N : 2 * N])
    log_scale, matrix = gs.jacobian_product(gru, x, s0, path="direct")
    # A product of diagonal matrices: diag(prod_t z_t) to ~T ulp relative.
    np.testing.assert_allclose(np.exp(log_scale) * matrix, np.diag(np.prod(z, axis=0)),
                               rtol=1e-13, atol=0)


def test_jacobian_product_batch_dims():
    cell = CELLS["gru"]()
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 6, cell.n_input))
    s0 = rng.standard_normal((2, cell.state_size))
    log_scale, matrix = gs.jacobian_product(cell, x, s0)
    assert log_scale.shape == (2,) and matrix.shape == (2, cell.state_size, cell.state_size)
    for b in range(2):
        raw = _raw_product(_loop_jacobians(cell, x[b], s0[b])[1])
        # Rounding only (batched vs single BLAS kernels), as in the raw-product test.
        np.testing.assert_allclose(np.exp(log_scale[b]) * matrix[b], raw, rtol=0,
                                   atol=1e-12 * np.abs(raw).max())


# ==========================================================================================
# 3. log_singular_values
@pytest.mark.parametrize("g", [0.5, 1.0, 1.7])
def test_log_sv_linear_orthogonal_is_t_log_g(g):
    q = _orth(6, np.random.default_rng(12))
    times = [0, 1, 5, 37, 200]
    out = gs.log_singular_values(_linear_rnn(g * q), 200, times=times)
    assert out.shape == (len(times), 6)
    expected = np.array(times, dtype=float)[:, None] * np.log(g) * np.ones(6)
    # Exact theory (THEORY.md 6): every singular value of (gQ)^t is g^t. Each step rounds
    # relatively by ~N eps, so after 200 steps the log is off by <~ 200*6*eps ~ 3e-13;
    # 1e-10 is a 300x margin.
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("g", [10.0, 0.1])
def test_log_sv_linear_orthogonal_100000_steps_is_finite(g):
    T = 100_000
    q = _orth(4, np.random.default_rng(13))
    out = gs.log_singular_values(_linear_rnn(g * q), T, times=[T // 2, T])
    # g^T = 10^(+-100000): far outside float64; the logs must still be finite.
    assert np.all(np.isfinite(out))
    # Rounding adds ~N eps relative per step, a random walk (or at worst a drift) of
    # <~ T * N * eps ~ 1e-10 nats against |T log g| = 2.3e5 nats: 1e-8 relative (2e-3 nats)
    # is far above rounding and far below any missed rescaling (which is >= 1 nat).
    np.testing.assert_allclose(out[0], (T // 2) * np.log(g), rtol=1e-8, atol=0)
    np.testing.assert_allclose(out[1], T * np.log(g), rtol=1e-8, atol=0)


def test_log_sv_irnn_counts_units_active_over_the_window():
    N, I, T = 10, 2, 25
    cell = gs.make_cell("irnn", N, I, input_gain=0.4, rng=21)
    rng = np.random.default_rng(22)
    x = rng.standard_normal((T, I))
    # Half the units start high (likely to stay on), half at zero (likely to switch off).
    s0 = np.r_[np.full(N // 2, 4.0), np.zeros(N - N // 2)]
    times = [1, 3, 10, 25]
    out = gs.log_singular_values(cell, x, s0, times=times)
    # Independent pre-activations a_t = W h_{t-1} + U x_t + b from the unrolled states.
    states = gs.unroll(cell, x, s0)
    pre = states[:-1] @ cell.weight_hh.T + x @ cell.weight_ih.T + cell.bias  # (T, N)
    for row, t in zip(out, times):
        n_active = int(np.sum(np.all(pre[:t] > 0, axis=0)))
        # THEORY.md 6: P_t = diag(1[unit active at every step <= t]); singular values exactly
        # 1 (log 0) or 0 (log -inf), no tolerance needed.
        assert set(np.unique(row).tolist()) <= {0.0, -np.inf}
        assert int(np.sum(row == 0.0)) == n_active
        assert int(np.sum(row == -np.inf)) == N - n_active
    # The test is only meaningful if both kinds of units occur at the end of the window.
    final_active = int(np.sum(np.all(pre > 0, axis=0)))
    assert 0 < final_active < N


@pytest.mark.parametrize("name", sorted(CELLS))
def test_log_sv_equals_numpy_svd_for_short_horizons(name):
    cell = CELLS[name]()
    T = 10
    x, s0 = _inputs_and_state(cell, T, 40)
    _, jacs = _loop_jacobians(cell, x, s0)
    checked = 0
    for t in range(1, T + 1):
        sv = np.linalg.svd(_raw_product(jacs[:t]), compute_uv=False)
        # A float64 SVD is accurate to eps*sigma_max absolutely, so log sigma_i to
        # eps*kappa; forming the raw product adds ~t eps kappa. Only products with
        # kappa < 1e4 (where float64 suffices) are compared: both errors stay below ~2e-11,
        # inside the 1e-10 tolerance. Longer products are the mpmath tests' job.
        if sv[0] / sv[-1] >= 1e4:
            continue
        checked += 1
        # One call per horizon (default times=[T]), so that the library's own QR schedule
        # between 0 and t is exercised rather than a QR at every requested time.
        out = gs.log_singular_values(cell, x[:t], s0)
        assert out.shape == (1, cell.state_size)
        np.testing.assert_allclose(out[0], np.log(sv), rtol=0, atol=1e-10)
    assert checked >= 2


def _mp_log_sv(jacs, dps):
    """Log singular values of J_T ... J_1 computed in mpmath at ``dps`` digits."""
    with mpmath.workdps(dps):
        p = mpmath.eye(jacs[0].shape[0])
        for j in jacs:
            # mpf(float) is exact, so this is the exact product of the same float Jacobians
            # (up to dps-digit rounding).
            p = mpmath.matrix(j.tolist()) * p
        sv = mpmath.svd_r(p, compute_uv=False)
        return np.sort(np.array([float(mpmath.log(s)) for s in sv]))[::-1]


def test_log_sv_far_beyond_float64_range_matches_mpmath():
    rng = np.random.default_rng(31)
    P, T = 5, 400
    rates = np.array([0.5, -0.7, -1.5, -2.5, -4.0])  # nats per step along each axis
    d = np.diag(np.exp(rates))
    # Small random rotations (QR of I + 0.3 G) mix the axes, so the product is not diagonal
    # and the singular directions move, but the grading survives: values ~ e^{200} .. e^{-1600}.
    rots = [np.linalg.qr(np.eye(P) + 0.3 * rng.standard_normal((P, P)))[0] for _ in range(T)]
    ws = [rots[t] @ d for t in range(T)]
    out = gs.log_singular_values(lambda t: _linear_rnn(ws[t]), T)[0]
    # Linear cells: J_t = W_t exactly (slope 1.0), so these are the library's own Jacobians.
    jacs = [ws[t] for t in range(T)]
    # The smallest singular value is e^{-1800} of the largest (782 decimal digits). A dps-digit
    # product and SVD are accurate to 10^-dps * sigma_max absolutely, so each sigma_i to
    # 10^-dps * sigma_max / sigma_i relative: dps = 782 + 40 leaves ~1e-40 relative error.
    span = (rates.max() - rates.min()) * T * 1.1  # 10% slack for the mixing
    dps = int(span / math.log(10)) + 40
    exact = _mp_log_sv(jacs, dps)
    assert exact[0] - exact[-1] > 1500  # premise: the span exceeds float64's ~1450-nat range
    assert np.all(np.isfinite(out))
    # The library's graded QR keeps each value accurate relative to itself: rounding perturbs
    # each factor by ~eps relative, moving each log value by ~T eps ~ 1e-13 nats (healthy gaps
    # between exponents); 1e-8 relative of 200..1600 nats (>= 2e-6 nats) is a wide margin that
    # still catches losing a small value in a large one (which gives O(1) or worse errors).
    np.testing.assert_allclose(out, exact, rtol=1e-8, atol=0)


def test_log_sv_tanh_rnn_wide_spread_matches_mpmath():
    # A saturated tanh RNN with input: values spread e^{+tens} .. e^{-hundreds}.
    P, T = 4, 120
    cell = gs.make_cell("rnn", P, 1, init="gaussian", gain=4.0, input_gain=1.0, rng=32)
    x = np.random.default_rng(33).standard_normal((T, 1))
    s0 = np.full(P, 0.1)
    out = gs.log_singular_values(cell, x, s0, times=[T])[0]
    _, jacs = _loop_jacobians(cell, x, s0)
    # Independent bound on the span: cond(P_T) <= prod_t cond(J_t). Enough digits for it (as in
    # the test above) make 10^-dps * sigma_max / sigma_min < 1e-40.
    span_bound = sum(np.log(np.linalg.cond(j)) for j in jacs)
    dps = int(span_bound / math.log(10)) + 40
    exact = _mp_log_sv(jacs, dps)
    assert exact[0] - exact[-1] > 80  # premise: far beyond a float64 SVD's ~36-nat resolution
    # Same reasoning as the rotated-diagonal case: rounding moves logs by ~T eps, and 1e-8
    # relative is a wide margin.
    np.testing.assert_allclose(out, exact, rtol=1e-8, atol=0)
    # A second, mpmath-free reference: sum_i log sigma_i = log|det P_T| = sum_t log|det J_t|.
    # slogdet of each 4x4 J_t is accurate to ~eps cond(J_t) <= 1e-11 nats (cond <= 1e5 here),
    # so the T-term sum to ~1e-9 nats: 1e-6 nats is a wide margin.
    log_det = sum(np.linalg.slogdet(j)[1] for j in jacs)
    assert abs(exact.sum() - log_det) < 1e-6  # validates the mpmath reference itself
    assert abs(out.sum() - log_det) < 1e-6


def test_log_sv_time_zero_is_zero_and_batch_dims():
    cell = CELLS["rnn-tanh"]()
    rng = np.random.default_rng(41)
    B, T = 3, 7
    times = [0, 4, 7]
    x = rng.standard_normal((B, T, cell.n_input))
    s0 = rng.standard_normal((B, cell.state_size))
    out = gs.log_singular_values(cell, x, s0, times=times)
    assert out.shape == (B, 3, cell.state_size)
    # P_0 = I exactly.
    np.testing.assert_array_equal(out[:, 0], 0.0)
    np.testing.assert_array_equal(gs.log_singular_values(cell, 5, times=[0]), 0.0)
    # state0 (S,) broadcast against batched inputs.
    shared = gs.log_singular_values(cell, x, s0[0], times=[7])
    assert shared.shape == (B, 1, cell.state_size)
    for b in range(B):
        single = gs.log_singular_values(cell, x[b], s0[b], times=times)
        # Batched and single runs take different QR kernels and intervals, so both are
        # compared with an exact (mpmath, 60 digits >> the ~10-digit span here) reference
        # rather than with each other. products.py targets 1e-8 relative accuracy per QR of
        # the frame, i.e. 1e-8 nats per QR; at most one QR per step gives T * 1e-8 nats.
        tol = T * 1e-8
        _, jacs = _loop_jacobians(cell, x[b], s0[b])
        for j, t in enumerate(times[1:], start=1):
            exact = _mp_log_sv(jacs[:t], 60)
            np.testing.assert_allclose(out[b, j], exact, rtol=0, atol=tol)
            np.testing.assert_allclose(single[j], exact, rtol=0, atol=tol)
        _, jacs = _loop_jacobians(cell, x[b], s0[0])
        np.testing.assert_allclose(shared[b, 0], _mp_log_sv(jacs, 60), rtol=0, atol=tol)


# ==========================================================================================
# 4. lyapunov_spectrum
def _newman(N, sigma):
    """THEORY.md 3: exponents and per-step log|R_ii| variance for iid N(0, sigma^2/N) products."""
    i = np.arange(1, N + 1)
    exponents = np.log(sigma) + 0.5 * (np.log(2.0 / N) + psi((N - i + 1) / 2))
    variance = polygamma(1, (N - i + 1) / 2) / 4
    return exponents, variance


@pytest.mark.parametrize("N, sigma", [(10, 1.0), (8, 1.6)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lyapunov_untied_gaussian_matches_newman(N, sigma, seed):
    T = 4000
    cell = gs.untied(
        lambda r: gs.make_cell("rnn", N, 0, activation="linear", init="gaussian", gain=sigma, rng=r),
        rng=seed,
    )
    spec = gs.lyapunov_spectrum(cell, T)
    exact, variance = _newman(N, sigma)
    stderr = np.sqrt(variance / T)
    assert spec.exponents.shape == (N,) and spec.n_steps == T
    # The QR estimator's per-step log|R_ii| are iid (rotation invariance of Gaussian matrices)
    # with variance psi'((N-i+1)/2)/4, so the T-step mean has exactly this standard error; 4
    # standard errors is a two-sided 6e-5 tail per exponent (~4e-3 over all 60 comparisons;
    # the seeds are fixed, so this is how unlucky a new seed could be, not a flake rate).
    np.testing.assert_array_less(np.abs(spec.exponents - exact), 4 * stderr)
    # The reported stderr comes from 20 blocks: the sample std of 20 values has relative
    # spread ~1/sqrt(2*19) ~ 16%, so a factor 2 above is > 6 sigma away (P(chi2_19 > 76)
    # ~ 1e-8) and a factor 2 below is P(chi2_19 < 4.75) ~ 4e-4 per exponent. A wrong
    # normalisation (e.g. no sqrt(n_blocks), or per-step instead of per-block) is off by >= 4x.
    ratio = spec.stderr / stderr
    assert np.all((ratio > 0.5) & (ratio < 2.0)), ratio


def test_lyapunov_sum_equals_log_abs_det_for_tied_linear_rnn():
    w = gs.gaussian(6, 1.0, rng=51)
    spec = gs.lyapunov_spectrum(_linear_rnn(w), 2000)
    sign, logdet = np.linalg.slogdet(w)
    # Exact identity: sum_i log|R_ii| over all QRs is log|det P_T| = T log|det W|. Rounding:
    # once the frame has aligned with W's Schur vectors (a few blocks), W^m Q = Q T^m is
    # already triangular in the frame and each QR's det is accurate to ~N eps; the first few
    # transient blocks may each be off by up to products.py's 1e-8-nats-per-QR target, which
    # averaged over 2000 steps is <~ 1e-11 per block: 1e-10 allows several such blocks.
    assert abs(spec.exponents.sum() - logdet) < 1e-10


def test_lyapunov_tied_linear_rnn_gives_log_eigenvalue_moduli():
    rng = np.random.default_rng(52)
    # Known eigenvalues: two complex pairs of modulus 1.2 and 0.9 (rotations by 0.7 and 2.1
    # rad), and real 0.5, -0.3; conjugated by a well-conditioned V.
    def block(r, theta):
        return r * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])

    lam = np.zeros((6, 6))
    lam[:2, :2] = block(1.2, 0.7)
    lam[2:4, 2:4] = block(0.9, 2.1)
    lam[4, 4], lam[5, 5] = 0.5, -0.3
    v = np.eye(6) + 0.3 * rng.standard_normal((6, 6))
    w = v @ lam @ np.linalg.inv(v)
    moduli = np.log(np.array([1.2, 1.2, 0.9, 0.9, 0.5, 0.3]))
    T = 4000
    spec = gs.lyapunov_spectrum(_linear_rnn(w), T)
    # THEORY.md 4: exponents are log|mu_i|. At finite T, sum_{j<=i} lambda_j(T) is
    # (1/T) log of an i-volume of V Lambda^T V^-1 E_i, which differs from its limit by at most
    # the log distortion of V and V^-1 (2 log cond(V)) plus the log of the overlap of V^-1 E_i
    # with the dominant subspace (O(1) for generic V); each exponent is a difference of two
    # such sums, hence tol = 2 (2 log cond(V) + 5) / T (~5e-3 here).
    cond = np.linalg.cond(v)
    tol = 2 * (2 * np.log(cond) + 5) / T
    np.testing.assert_allclose(spec.exponents, moduli, rtol=0, atol=tol)
    # The test discriminates: log singular values of W are far from log|mu_i|.
    sv = np.log(np.linalg.svd(w, compute_uv=False))
    assert np.max(np.abs(sv - moduli)) > 20 * tol


def test_lyapunov_orthogonal_times_g_is_log_g():
    q = _orth(6, np.random.default_rng(53))
    spec = gs.lyapunov_spectrum(_linear_rnn(1.3 * q), 500)
    # Each QR of (gQ)^m Q_frame gives |R_ii| = g^m up to ~N eps relative, i.e. ~1e-15 nats per
    # QR, averaged over steps: 1e-12 leaves a 1000x margin.
    np.testing.assert_allclose(spec.exponents, np.log(1.3), rtol=0, atol=1e-12)


def test_lyapunov_top_k_is_prefix_of_full_spectrum():
    cell = gs.make_cell("rnn", 8, 1, init="gaussian", gain=1.5, rng=54)
    x = np.random.default_rng(55).standard_normal((600, 1))
    full = gs.lyapunov_spectrum(cell, x, warmup=300)
    top = gs.lyapunov_spectrum(cell, x, k=3, warmup=300)
    assert top.exponents.shape == (3,)
    # The top-k run starts from a random frame, the full run from the identity; the first k
    # columns of both converge to the same leading subspace at the rate of the gap to the
    # next exponent (>= 0.05 per step here), so after a 300-step warm-up the frames agree to
    # ~e^-15 ~ 3e-7 in angle, a difference of ~3e-7 / 300 ~ 1e-9 per step in the averages;
    # rounding adds <= 1e-8 per step (products.py's target). Hence 2e-8. Returning the wrong
    # k (last k, unsorted) would be off by > 0.1.
    np.testing.assert_allclose(top.exponents, full.exponents[:3], rtol=0, atol=2e-8)


def test_lyapunov_lstm_cell_path_zero_weights_is_log_sigmoid_forget_bias():
    N = 5
    b_f = np.array([-1.0, 0.0, 0.5, 2.0, 3.0])
    bias = np.zeros(4 * N)
    bias[N : 2 * N] = b_f
    cell = gs.LSTM(np.zeros((4 * N, 1)), np.zeros((4 * N, N)), bias_hh=bias)
    x = np.random.default_rng(56).standard_normal((300, 1))  # zero weights: inputs irrelevant
    spec = gs.lyapunov_spectrum(cell, x, path="cell")
    # THEORY.md 7: the cell path is diag(sigmoid(b_f)) every step. Exact log sigmoid from
    # mpmath; the product of diagonal matrices is exact to one rounding per step, ~1e-16 nats.
    exact = sorted((float(-mpmath.log1p(mpmath.exp(-b))) for b in b_f), reverse=True)
    np.testing.assert_allclose(spec.exponents, exact, rtol=0, atol=1e-12)


def test_lyapunov_warmup_excludes_first_steps():
    q = _orth(4, np.random.default_rng(57))
    T, W, g_early, g_late = 300, 100, 3.0, 0.8

    def cell_at(t):
        return _linear_rnn((g_early if t < W else g_late) * q)

    spec = gs.lyapunov_spectrum(cell_at, T, warmup=W)
    assert spec.n_steps == T - W
    # Orthogonal*g exponents are exactly log g (rounding ~1e-15 per step, see above).
    np.testing.assert_allclose(spec.exponents, np.log(g_late), rtol=0, atol=1e-12)
    # Without warm-up the early gain enters the average.
    mixed = (W * np.log(g_early) + (T - W) * np.log(g_late)) / T
    spec = gs.lyapunov_spectrum(cell_at, T)
    np.testing.assert_allclose(spec.exponents, mixed, rtol=0, atol=1e-12)


def test_lyapunov_batch_dims():
    # A mildly nonlinear cell (gain 0.9, small inputs): per-step rates vary little, so the
    # adaptive QR interval is well predicted and batching is the only thing under test.
    cell = gs.make_cell("rnn", 5, 1, init="orthogonal", gain=0.9, input_gain=0.3, rng=58)
    rng = np.random.default_rng(58)
    x = rng.standard_normal((2, 200, 1))
    s0 = 0.3 * rng.standard_normal((2, 5))
    spec = gs.lyapunov_spectrum(cell, x, s0)
    assert spec.exponents.shape == (2, 5) and spec.stderr.shape == (2, 5)
    assert spec.block_exponents.shape == (20, 2, 5)
    shared = gs.lyapunov_spectrum(cell, x, s0[0])  # state0 (S,) broadcast
    for b in range(2):
        # Batched items share the QR schedule and kernel, single runs pick their own; each is
        # within products.py's accuracy target (1e-8 nats per QR, <= 1e-8 per step on average)
        # of the same value, so they agree to 2e-8.
        np.testing.assert_allclose(spec.exponents[b], gs.lyapunov_spectrum(cell, x[b], s0[b]).exponents,
                                   rtol=0, atol=2e-8)
        np.testing.assert_allclose(shared.exponents[b], gs.lyapunov_spectrum(cell, x[b], s0[0]).exponents,
                                   rtol=0, atol=2e-8)


def _saturated_tanh_run():
    """A tanh RNN with input whose one-step Jacobians vary a lot from step to step (saturation)."""
    cell = CELLS["rnn-tanh"]()
    rng = np.random.default_rng(58)
    x = rng.standard_normal((200, cell.n_input))
    s0 = rng.standard_normal(cell.state_size)
    return cell, x, s0


def test_lyapunov_sum_equals_mean_log_abs_det_for_nonlinear_cell():
    cell, x, s0 = _saturated_tanh_run()
    spec = gs.lyapunov_spectrum(cell, x, s0)
    _, jacs = _loop_jacobians(cell, x, s0)
    mean_log_det = np.mean([np.linalg.slogdet(j)[1] for j in jacs])
    # Exact identity for any cell: sum_i log|R_ii| over the full frame is log|det P_T| =
    # sum_t log|det J_t|. slogdet is accurate to ~eps cond(J_t) <= 2e-11 per step; products.py
    # targets 1e-8 nats per QR, i.e. <= 1e-8 per step on average: 1e-8 is the library's own bound.
    assert abs(spec.exponents.sum() - mean_log_det) < 1e-8


def test_lyapunov_finite_time_equals_mpmath_qr_of_exact_product():
    cell, x, s0 = _saturated_tanh_run()
    T = len(x)
    spec = gs.lyapunov_spectrum(cell, x, s0)
    _, jacs = _loop_jacobians(cell, x, s0)
    # The Benettin estimator with an identity initial frame is, in exact arithmetic,
    # (1/T) log|R_ii| of the QR of P_T itself (P_T = Q_n R_n ... R_1). P_T spans ~400 nats
    # (~175 digits); 300 digits leave > 100 digits of accuracy.
    with mpmath.workdps(300):
        p = mpmath.eye(cell.state_size)
        for j in jacs:
            p = mpmath.matrix(j.tolist()) * p
        _, r = mpmath.qr(p)
        exact = np.sort([float(mpmath.log(abs(r[i, i]))) / T for i in range(p.rows)])[::-1]
    # products.py's target: 1e-8 nats per QR, so <= 1e-8 per step on average.
    np.testing.assert_allclose(spec.exponents, exact, rtol=0, atol=1e-8)


# ==========================================================================================
# 5. gradient_norms
def _bptt(cell, x, s0, u, path="full"):
    """log ||v_t|| for v_T = u, v_t = J_{t+1}^T v_{t+1}, with raw (unnormalised) vectors."""
    _, jacs = _loop_jacobians(cell, x, s0, path)
    T = len(x)
    out = np.empty(T + 1)
    v = np.array(u, dtype=float)
    out[T] = np.log(np.linalg.norm(v))
    for t in range(T - 1, -1, -1):
        v = jacs[t].T @ v  # jacs[t] is J_{t+1} = d s_{t+1} / d s_t
        out[t] = np.log(np.linalg.norm(v))
    return out


@pytest.mark.parametrize("name", sorted(CELLS))
def test_gradient_norms_equal_explicit_bptt(name):
    cell = CELLS[name]()
    T = 15
    x, s0 = _inputs_and_state(cell, T, 60)
    u = np.random.default_rng(61).standard_normal(cell.state_size)
    out = gs.gradient_norms(cell, x, s0, upstream=u)
    assert out.shape == (T + 1,)
    # Raw BPTT with the full Jacobians vs the library's normalised VJPs: ~N eps relative
    # rounding per step, so ~T N eps ~ 1e-14 nats; 1e-11 is a wide margin.
    np.testing.assert_allclose(out, _bptt(cell, x, s0, u), rtol=0, atol=1e-11)


def test_gradient_norms_default_upstream_is_unit_vector_of_equal_entries():
    cell = CELLS["gru"]()
    x, s0 = _inputs_and_state(cell, 6, 62)
    u = np.full(cell.state_size, 1 / np.sqrt(cell.state_size))
    out = gs.gradient_norms(cell, x, s0)
    assert abs(out[-1]) < 1e-15  # log ||u|| = 0 up to one rounding
    np.testing.assert_allclose(out, _bptt(cell, x, s0, u), rtol=0, atol=1e-11)  # as above


def test_gradient_norms_linear_orthogonal_is_exact():
    g, T = 0.7, 300
    q = _orth(5, np.random.default_rng(63))
    u = np.array([3.0, -1.0, 0.5, 2.0, 0.0])
    out = gs.gradient_norms(_linear_rnn(g * q), T, upstream=u)
    t = np.arange(T + 1)
    # (gQ)^T is g times orthogonal: ||g_t|| = g^(T-t) ||u|| exactly; rounding ~N eps per step
    # accumulates to < 300*5*eps ~ 3e-13 nats, so 1e-11 is a wide margin.
    np.testing.assert_allclose(out, (T - t) * np.log(g) + np.log(np.linalg.norm(u)), rtol=0, atol=1e-11)


@pytest.mark.slow
@pytest.mark.parametrize("g", [10.0, 0.1])
def test_gradient_norms_100000_steps_finite(g):
    T = 100_000
    q = _orth(4, np.random.default_rng(64))
    out = gs.gradient_norms(_linear_rnn(g * q), T)
    assert out.shape == (T + 1,) and np.all(np.isfinite(out))
    # Same argument as the 100 000-step singular values: rounding ~T N eps ~ 1e-10 nats
    # against 2.3e5 nats, so 1e-8 relative is far above rounding and far below a lost rescaling.
    np.testing.assert_allclose(out[0], T * np.log(g), rtol=1e-8, atol=0)
    np.testing.assert_allclose(out[T // 2], (T - T // 2) * np.log(g), rtol=1e-8, atol=0)
    assert abs(out[T]) < 1e-15


def test_gradient_norms_lstm_cell_path_is_cumulative_log_forget_gate():
    N, T = 4, 60
    cell = gs.make_cell("lstm", N, 2, init="gaussian", gain=1.0, bias_std=0.5, forget_bias=1.0, rng=65)
    rng = np.random.default_rng(66)
    x = rng.standard_normal((T, 2))
    s0 = rng.standard_normal(2 * N)
    j = 2
    u = np.zeros(N)
    u[j] = 1.0
    out = gs.gradient_norms(cell, x, s0, upstream=u, path="cell")
    # Forget gates computed here from the unrolled states: f_{t+1} = sigmoid(a_f) with
    # a = W_hh h_t + W_ih x_t + b (gate block 1 of i, f, g, o).
    states = gs.unroll(cell, x, s0)
    a = states[:-1, :N] @ cell.weight_hh.T + x @ cell.weight_ih.T + cell.bias_hh + cell.bias_ih
    log_f = np.log(expit(a[:, N : 2 * N])[:, j])  # log f_{t+1}[j], t = 0 .. T-1
    # d c_T / d c_t along the cell path = prod_{s=t+1}^T diag(f_s), so for u = e_j:
    # out[t] = sum_{s > t} log f_s[j].
    expected = np.r_[np.cumsum(log_f[::-1])[::-1], 0.0]
    # Only rounding of f (a few ulp) and of the sums, ~T eps * |log f| ~ 1e-13: 1e-11 is ample.
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-11)


def test_gradient_norms_dead_relu_gives_minus_inf_without_warnings():
    N, T, kill = 3, 12, 5
    # h' = relu(h + x), W = I: a large negative input at step `kill` switches every unit off
    # (J = 0 at that step), small positive inputs keep them on otherwise (J = I).
    cell = gs.RNN(np.eye(N), np.ones((N, 1)), activation="relu")
    x = np.full((T, 1), 0.1)
    x[kill] = -10.0
    u = np.array([1.0, 2.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = gs.gradient_norms(cell, x, np.full(N, 0.5), upstream=u)
        sv = gs.log_singular_values(cell, x, np.full(N, 0.5), times=[kill, kill + 1, T])
    # dL/ds_t is zero exactly for t <= kill (it passes through J_{kill+1} = 0), and u itself
    # (identity Jacobians, log 3) after it.
    assert np.all(out[: kill + 1] == -np.inf)
    np.testing.assert_array_equal(out[kill + 1 :], np.log(3.0))
    # Singular values: P_kill = I (log 0), then 0 (log -inf) from the dead step on.
    np.testing.assert_array_equal(sv[0], 0.0)
    assert np.all(sv[1:] == -np.inf)


def test_gradient_norms_batch_dims():
    cell = CELLS["lstm"]()
    rng = np.random.default_rng(67)
    x = rng.standard_normal((3, 10, cell.n_input))
    s0 = rng.standard_normal((3, cell.state_size))
    u = rng.standard_normal(cell.state_size)  # (P,) broadcast over the batch
    out = gs.gradient_norms(cell, x, s0, upstream=u)
    assert out.shape == (3, 11)
    for b in range(3):
        # Rounding only, as in the BPTT test.
        np.testing.assert_allclose(out[b], _bptt(cell, x[b], s0[b], u), rtol=0, atol=1e-11)


# ==========================================================================================
# 6. memory does not grow with T
def _peak_bytes(fn):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


N_MEM = 64
_MEM_CELL = _linear_rnn(_orth(N_MEM, np.random.default_rng(70)))
_MEM_T_SMALL, _MEM_T_LARGE = 6_000, 30_000
# Slack for allocations unrelated to T (Python ints, small temporaries, allocator noise): far
# below what any O(T) storage would add between T = 6000 and 30000 (24000 states of 512 B
# = 12 MB; 24000 Jacobians of 32 KB = 790 MB).
_MEM_SLACK = 64 * 1024

_MEM_FUNCS = {
    "log_singular_values": lambda T: gs.log_singular_values(_MEM_CELL, T),
    "lyapunov_spectrum": lambda T: gs.lyapunov_spectrum(_MEM_CELL, T),
    "gradient_norms": lambda T: gs.gradient_norms(_MEM_CELL, T),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(_MEM_FUNCS))
def test_peak_memory_does_not_grow_with_T(name):
    fn = _MEM_FUNCS[name]
    fn(50)  # warm caches (lazy imports, LAPACK workspaces) outside the measurement
    # A frame keeps one small recipe (state and input) per step of its current block, up to
    # the longest block (256 steps) or an averaging block (T / 20 steps): both horizons are
    # long enough that this bound, not T, is what they reach.
    small = _peak_bytes(lambda: fn(_MEM_T_SMALL))
    large = _peak_bytes(lambda: fn(_MEM_T_LARGE))
    allowed = _MEM_SLACK
    if name == "gradient_norms":
        # The output is (T+1) float64s by contract, and states are checkpointed every
        # sqrt(T) steps and recomputed a segment at a time: two lists of ~sqrt(T) arrays of
        # S float64s (+ ~112 B array header each).
        per_state = N_MEM * 8 + 112
        allowed += 8 * (_MEM_T_LARGE - _MEM_T_SMALL)
        allowed += 2 * (math.isqrt(_MEM_T_LARGE) - math.isqrt(_MEM_T_SMALL) + 2) * per_state
    assert large - small <= allowed, (small, large, allowed)


# ==========================================================================================
# 7. argument validation
RNN4 = gs.RNN(np.eye(4) * 0.5, np.ones((4, 2)))
X = np.zeros((10, 2))

FUNCS = {
    "unroll": gs.unroll,
    "jacobian_product": gs.jacobian_product,
    "log_singular_values": gs.log_singular_values,
    "lyapunov_spectrum": gs.lyapunov_spectrum,
    "gradient_norms": gs.gradient_norms,
}
PATH_FUNCS = {k: v for k, v in FUNCS.items() if k != "unroll"}


@pytest.mark.parametrize("fname", sorted(FUNCS))
@pytest.mark.parametrize(
    "inputs, exc, message",
    [
        (0, ValueError, r"`inputs` must be a positive int T or an array of shape \(\.\.\., T, 2\) with T >= 1; got 0\."),
        (-5, ValueError, r"`inputs` must be a positive int T .*; got -5\."),
        (np.zeros((10, 3)), ValueError, r"`inputs` must be .*\(\.\.\., T, 2\).*; got shape \(10, 3\)\."),
        (np.zeros((0, 2)), ValueError, r"`inputs` must be .*T >= 1; got shape \(0, 2\)\."),
        (np.zeros(2), ValueError, r"`inputs` must be .*; got shape \(2,\)\."),
        (np.array([[0.0, np.nan]] * 3), ValueError, r"`inputs` must contain only finite values; got NaN"),
        (None, TypeError, r"`inputs` must be a positive int T .*; got None\."),
        (True, TypeError, r"`inputs` must be a positive int T .*; got True\."),
    ],
)
def test_invalid_inputs(fname, inputs, exc, message):
    with pytest.raises(exc, match=message):
        FUNCS[fname](RNN4, inputs)


@pytest.mark.parametrize("fname", sorted(FUNCS))
@pytest.mark.parametrize(
    "state0, message",
    [
        (np.zeros(3), r"`state0` must have last dimension state_size=4; got shape \(3,\)\."),
        (np.zeros((2, 5)), r"`state0` must have last dimension state_size=4; got shape \(2, 5\)\."),
        (np.float64(1.0), r"`state0` must have last dimension state_size=4; got shape \(\)\."),
        (np.array([0.0, np.inf, 0.0, 0.0]), r"`state0` must contain only finite values; got NaN or inf\."),
        (np.zeros((3, 4)), r"`state0` batch shape \(3,\) does not broadcast with the inputs' batch shape \(2,\)\."),
    ],
)
def test_invalid_state0(fname, state0, message):
    inputs = np.zeros((2, 10, 2)) if "broadcast" in message else X
    with pytest.raises(ValueError, match=message):
        FUNCS[fname](RNN4, inputs, state0)


@pytest.mark.parametrize("fname", sorted(PATH_FUNCS))
def test_invalid_path(fname):
    with pytest.raises(ValueError, match=r"`path` must be one of 'full'; got 'cell'\."):
        PATH_FUNCS[fname](RNN4, X, path="cell")
    lstm = gs.make_cell("lstm", 2, 2, rng=0)
    with pytest.raises(ValueError, match=r"`path` must be one of 'full', 'cell', 'hidden'; got 'bogus'\."):
        PATH_FUNCS[fname](lstm, X, path="bogus")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(k=5), r"`k` must be an integer in \[1, 4\] \(the state size along path 'full'\); got 5\."),
        (dict(k=0), r"`k` must be an integer in \[1, 4\] .*; got 0\."),
        (dict(k=2.0), r"`k` must be an integer in \[1, 4\] .*; got 2\.0\."),
        (dict(warmup=10), r"`warmup` must be an integer in \[0, T\) = \[0, 10\); got 10\."),
        (dict(warmup=11), r"`warmup` must be an integer in \[0, T\) = \[0, 10\); got 11\."),
        (dict(warmup=-1), r"`warmup` must be an integer in \[0, T\) = \[0, 10\); got -1\."),
    ],
)
def test_invalid_lyapunov_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gs.lyapunov_spectrum(RNN4, X, **kwargs)


def test_lyapunov_k_counts_along_the_path():
    lstm = gs.make_cell("lstm", 3, 2, rng=0)
    with pytest.raises(ValueError, match=r"`k` must be an integer in \[1, 3\] \(the state size along path 'cell'\); got 4\."):
        gs.lyapunov_spectrum(lstm, X, k=4, path="cell")


@pytest.mark.parametrize(
    "times, message",
    [
        ([11], r"`times` must be integer steps in \[0, T\] = \[0, 10\]; got 11\."),
        ([3, -1], r"`times` must be integer steps in \[0, T\] = \[0, 10\]; got -1\."),
        ([1.5], r"`times` must be a 1-d sequence of integer steps in \[0, T\] = \[0, 10\]; got \[1\.5\]\."),
        ([], r"`times` must be a 1-d sequence of integer steps .*; got \[\]\."),
        ([[1, 2]], r"`times` must be a 1-d sequence of integer steps .*; got \[\[1, 2\]\]\."),
    ],
)
def test_invalid_times(times, message):
    with pytest.raises(ValueError, match=message):
        gs.log_singular_values(RNN4, X, times=times)


@pytest.mark.parametrize("fname", sorted(FUNCS))
def test_invalid_cell(fname):
    f = FUNCS[fname]
    with pytest.raises(TypeError, match=r"`cell` must be a Cell or a callable t -> Cell; got 3\."):
        f(3, X)
    with pytest.raises(TypeError, match=r"`cell` must be a Cell or a callable t -> Cell; the callable returned 'oops'\."):
        f(lambda t: "oops", X)
    # A callable that goes wrong only at a later step is caught there.
    with pytest.raises(TypeError, match=r"`cell` callable must return a Cell for every step; at t=3 it returned None\."):
        f(lambda t: RNN4 if t < 3 else None, X)
    other = gs.RNN(np.eye(5), np.ones((5, 2)))
    with pytest.raises(ValueError, match=re.escape(
        "`cell` callable must return cells of one size; at t=2 it returned state_size=5, n_input=2, batch_shape=(), expected 4, 2, ()."
    )):
        f(lambda t: RNN4 if t < 2 else other, X)


@pytest.mark.parametrize(
    "upstream, path, message",
    [
        (np.ones(3), "full", r"`upstream` must have last dimension 4 \(path 'full'\); got shape \(3,\)\."),
        (np.float64(1.0), "full", r"`upstream` must have last dimension 4 \(path 'full'\); got shape \(\)\."),
        (np.array([1.0, np.nan, 0, 0]), "full", r"`upstream` must contain only finite values; got NaN or inf\."),
    ],
)
def test_invalid_upstream(upstream, path, message):
    with pytest.raises(ValueError, match=message):
        gs.gradient_norms(RNN4, X, upstream=upstream, path=path)


def test_invalid_upstream_along_lstm_cell_path():
    lstm = gs.make_cell("lstm", 3, 2, rng=0)
    # The cell path has 3 coordinates, not the full state's 6.
    with pytest.raises(ValueError, match=r"`upstream` must have last dimension 3 \(path 'cell'\); got shape \(6,\)\."):
        gs.gradient_norms(lstm, X, upstream=np.ones(6), path="cell")


def test_gradient_norms_rejects_zero_upstream():
    cell = gs.make_cell("rnn", 3, 1, rng=0)
    with pytest.raises(ValueError, match=re.escape("`upstream` must have a non-zero norm; got all zeros.")):
        gs.gradient_norms(cell, 4, upstream=np.zeros(3))
