"""The leaky_memory study's findings hold on its quick grid.

Checked from the CSV's raw columns, with the exact values recomputed here (eigenvalues of the
drawn W by numpy, the Elman RNN's spectrum by gs.RNN), not with the study's helpers. The networks
are rebuilt from the draws the study's docstring states: W = gaussian(N, g, rng_W) with
rng_W = config_rng({"gain", "n_hidden", "seed"}); then, from the configuration's own
config_rng, state0 ~ N(0, I_N) and (input std > 0) the inputs, N(0, 1), of shape
(warmup + n_steps, N).
"""

from __future__ import annotations

import importlib.util
import itertools

import numpy as np
import pytest
from study_helpers import STUDIES, run_quick
from threadpoolctl import threadpool_limits

from gradsim import RNN, gaussian, lyapunov_spectrum
from gradsim.workflow.runner import config_rng


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    with threadpool_limits(1):
        frame, summary = run_quick("leaky_memory", tmp_path_factory.mktemp("leaky_memory"))
    spec = importlib.util.spec_from_file_location("leaky_memory_grid", STUDIES / "leaky_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return frame, summary, module.QUICK_GRID


def _weight(gain, n, seed):
    return gaussian(n, gain, config_rng({"gain": gain, "n_hidden": n, "seed": seed}))


def _configs(grid):
    """The grid's configurations with the grid's own value types (the hash depends on them)."""
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        yield dict(zip(keys, values))


def _row(frame, config):
    match = np.ones(len(frame), bool)
    for key in ("alpha", "gain", "input_std", "seed"):
        match &= np.isclose(frame[key].to_numpy(float), float(config[key]), rtol=0, atol=1e-12)
    assert match.sum() == 1
    return frame[match].iloc[0]


def test_zero_gain_is_log_one_minus_alpha(quick):
    frame, summary, _ = quick
    zero = frame[frame.gain == 0]
    assert len(zero) > 0 and set(zero.input_std) == {0, 1}
    # W = 0: the Jacobian is (1 - alpha) I at every state and input, so every QR step's R_11 is
    # 1 - alpha to rounding (~1e-16 relative); the CSV's 12 significant digits add 5e-13
    # relative. 1e-12 relative (plus 1e-15 absolute) covers both.
    finite = zero[zero.alpha < 1]
    want = np.log1p(-finite.alpha)
    assert np.all(np.abs(finite.rate - want) <= 1e-12 * np.abs(want) + 1e-15)
    # alpha = 1: the Jacobian is exactly 0, the rate exactly -inf (the state forgets in a step).
    assert np.all(np.isneginf(zero[zero.alpha == 1].rate))
    assert summary["max |measured - log(1 - alpha)| at g = 0 (any input)"] <= 1e-12


def test_fixed_point_measured_equals_exact(quick):
    frame, summary, _ = quick
    quiet = frame[(frame.input_std == 0) & (frame.gain > 0) & (frame.gain < 1)]
    assert len(quiet) > 0
    # The warm-up reached the fixed point in every such row: |h| < 1e-8 makes the Jacobian's
    # distance from M = (1 - a) I + a W O(|h|^2) < 1e-16.
    assert quiet.at_fixed_point.all() and (quiet.state_after_warmup < 1e-8).all()
    for _, row in quiet.iterrows():
        w = _weight(float(row.gain), int(row.n_hidden), int(row.seed))
        mu, vectors = np.linalg.eig(w)
        exact = np.max(np.log(np.abs(1 - row.alpha + row.alpha * mu)))
        # The study's exact column is this (eigvals vs gs.trivial_fixed_point_exponents:
        # rounding of two eigen-solvers on a well-separated top modulus, ~1e-14).
        assert abs(row.exact_rate - exact) <= 1e-10
        # The measured rate of a constant product over T steps is (1/T) log ||M^T q|| for the
        # frame q after the warm-up. ||M^T|| <= kappa(V) rho^T (V the eigenvectors of W, also
        # of M), so it exceeds log rho by at most log kappa(V) / T; below, a q whose component
        # along the top eigenvector is not exponentially small loses at most about as much
        # (log sqrt(N) ~ 2 nats for a random q, below log kappa(V) ~ 4-5 here). Twice that,
        # plus 4 block standard errors, bounds |measured - exact|.
        bound = 2 * np.log(np.linalg.cond(vectors)) / row.n_steps + 4 * row.rate_stderr
        assert abs(row.rate - exact) <= bound, (row.alpha, row.gain, row.seed)
        # The gradient-norm reading (log-SVD slope between T_g/2 and T_g) by the same bound.
        half = row.grad_steps - row.grad_steps // 2
        assert abs(row.grad_rate - exact) <= 2 * np.log(np.linalg.cond(vectors)) / half
    # The summary's count leaves out the exactly -inf rows (g = 0, alpha = 1).
    assert summary["rows at the fixed point"] == (frame.at_fixed_point
                                                  & np.isfinite(frame.exact_rate)).sum()


def test_tau_rises_as_alpha_falls(quick):
    frame, summary, _ = quick
    # Theorem (study docstring): for rho(W) < 1 each |1 - a + a mu_i|^2 decreases in a while
    # a < Re 1/(1 - mu_i), and those are all >= 1/(1 + rho) > 1/2, so for a <= 0.5 the exact
    # lambda_1 rises strictly as a falls and tau = -1/lambda_1 grows strictly.
    quiet = frame[(frame.input_std == 0) & (frame.gain < 1) & (frame.alpha <= 0.5)]
    assert (quiet.spectral_radius < 1).all()
    n = 0
    for _, part in quiet.groupby(["gain", "seed"]):
        part = part.sort_values("alpha", ascending=False)
        assert len(part) >= 2
        assert np.all(np.diff(part.tau_exact.to_numpy()) > 0)
        # The measured tau follows: its relative error (the previous test's bound, ~1e-2 at
        # most here) is far below the grid's steps in tau (a factor >= 2 between alphas).
        assert np.all(np.diff(part.tau.to_numpy()) > 0)
        n += 1
    assert summary["tau rises as alpha falls (alpha <= 0.5, no input, g < 1)"] == 1.0
    assert summary["tau rises as alpha falls (alpha <= 0.5, no input, g < 1)"].trials == n


def test_alpha_one_is_the_elman_rnn(quick):
    frame, _, grid = quick
    checked = 0
    for config in _configs(grid):
        if config["alpha"] != 1.0:
            continue
        row = _row(frame, config)
        n, std = int(config["n_hidden"]), float(config["input_std"])
        w = _weight(config["gain"], n, config["seed"])
        rng = config_rng(config)
        state0 = rng.standard_normal(n)
        total = int(row.warmup + row.n_steps)
        inputs = rng.standard_normal((total, n)) if std > 0 else total
        cell = RNN(w, weight_ih=std * np.eye(n) if std > 0 else None, activation="tanh")
        spectrum = lyapunov_spectrum(cell, inputs, state0=state0, k=1, warmup=int(row.warmup))
        rate = float(spectrum.exponents[0])
        if np.isneginf(rate):
            assert np.isneginf(row.rate)     # g = 0: a zero Jacobian
        else:
            # At alpha = 1 the leaky step is 0 * h + 1 * tanh(.) and its Jacobian adds 0 to the
            # diagonal: the same floats as the RNN's, so the two runs agree to rounding, even on
            # chaotic rows, up to the CSV's 12 significant digits (1e-11 relative covers them).
            assert abs(row.rate - rate) <= 1e-11 * abs(rate) + 1e-15, (config, row.rate, rate)
        checked += 1
    assert checked == len(frame[frame.alpha == 1])
