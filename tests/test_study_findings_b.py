"""The findings of five studies, from their quick grids: forget_bias, residual, edge_of_chaos, newman,
chain_rule.

Each test runs a study's quick grid end to end (CSV, metadata, figure) through
gradsim.workflow.report.produce and asserts the finding where it is robust, with the reason for every
tolerance. The quick grids are small, so the tolerances are those of short horizons and small N.
"""

from __future__ import annotations


import numpy as np
import pytest
from scipy.special import expit
from threadpoolctl import threadpool_limits

from gradsim import Estimate, Rate
from study_helpers import run_quick as _run



@pytest.fixture(autouse=True)
def _one_blas_thread():
    # Small matrices: extra BLAS threads only add contention (the runner pins one per config).
    with threadpool_limits(1):
        yield


def test_forget_bias_zero_weights_is_exact_and_memory_lives_in_the_cell(tmp_path):
    frame, summary = _run("forget_bias", tmp_path)
    zero = frame[frame.init == "zero"]
    cell, full = zero[zero.path == "cell"], zero[zero.path == "full"]
    # Zero weights: f_t = sigmoid(b_f) at every step, so the cell-path exponent is a mean of
    # identical logs: exact up to the rounding of T float64 additions (T * eps ~ 1e-13). The
    # CSV rounds the rates (~2) to 12 significant digits (~1e-12 absolute), so the deviation is
    # checked on its own column, which simulate computes at full precision.
    const = cell[cell.scheme == "constant"]
    # The theory column is log sigmoid(b) to the CSV's 12 digits (rtol 1e-11: 20x that rounding).
    assert np.allclose(const.rate_theory_zero_weights, np.log(expit(const.forget_bias)),
                       rtol=1e-11, atol=0)
    # Chrono (per-unit biases) included: the slowest unit sets the top exponent,
    # log sigmoid(max b_f).
    assert np.all(np.abs(cell.deviation_zero_weights) < 1e-12)
    # The full Jacobian is block upper triangular [[0, D], [0, diag f]]: same top exponent.
    assert np.all(np.abs(full.deviation_zero_weights) < 1e-12)
    # The h -> h Jacobian with c fixed is exactly zero: the gradient dies in one step.
    assert np.all(np.isneginf(zero[zero.path == "hidden"].rate))
    # Identical units: the back-propagated norm decays at the same exact rate (a least-squares
    # slope of exactly linear data, rounding only; 1e-10 is far above both the slope's rounding
    # and the CSV's 12-digit rounding of the two columns, <= 3e-12 here).
    assert np.allclose(const.rate_gradient, const.rate, rtol=0, atol=1e-10)
    assert summary["max |cell-path rate - log sigmoid(b)|, zero weights"] < 1e-12
    # Measured time scales carry the propagated standard error s.e.(rate) / rate^2; counts over
    # the (init, b) grid are rates.
    scale = summary["time scale (steps), path full, pytorch, b=1"]
    assert isinstance(scale, Estimate) and 0 < scale.stderr < 0.1 * scale
    assert isinstance(summary["full-path cases with no significant decay (rate > -2 s.e.)"], Rate)
    # PyTorch init, b >= 0: the h path (c fixed) decays much faster than the cell path (at
    # b = -2 both are ~-1.9, so that case is not a robust ordering).
    torch = frame[(frame.init == "pytorch") & (frame.forget_bias >= 0)]
    by_path = torch.pivot(index="forget_bias", columns="path", values="rate")
    assert np.all(by_path["hidden"] < by_path["cell"] - 0.5)


def test_residual_skip_prevents_vanishing_and_tied_outgrows_mean_field(tmp_path):
    frame, summary = _run("residual", tmp_path)
    res = frame[frame.cell == "residual"]
    lin = res[res.activation == "linear"]
    tied, untied = lin[lin.weights == "tied"], lin[lin.weights == "untied"]
    # Tied linear: the Jacobian is the constant I + alpha W, whose top exponent is
    # log max|1 + alpha mu_i|. The k = 1 QR estimate over 180 steps carries a transient of the
    # frame's alignment (observed <= 0.005); 0.02 is still far below the tied-untied gap (>= 0.29).
    assert np.all(np.abs(tied.rate - tied.exact_finite_n) < 0.02)
    merged = tied.merge(untied, on=["alpha", "gain"], suffixes=("_t", "_u"))
    assert np.all(merged.rate_t - merged.rate_u > 0.25)
    # Untied linear: the exact finite-N exponent, within 5 block standard errors (the block
    # estimate of the standard error is itself uncertain by ~20% with 20 blocks).
    assert np.all(np.abs(untied.rate - untied.exact_finite_n) < 5 * untied.rate_stderr)
    # Skip connections: no residual network's gradient decays (a tanh residual drifts into
    # saturation, where its Jacobian approaches I: rate slightly above 0), while the plain tanh
    # RNN at gain 0.5 decays at ~1.1 nats per step.
    assert np.all(res.rate > -0.01)
    plain = frame[(frame.cell == "rnn") & (frame.gain == 0.5)]
    assert np.all(plain.rate < -0.5)
    assert summary["tied / untied growth rate, linear (min)"] > 1.3


def test_edge_of_chaos_follows_mean_field_away_from_the_edge(tmp_path):
    frame, summary = _run("edge_of_chaos", tmp_path)
    # Away from the edge (|theory| > 0.1 per step) finite-N deviations (<= 0.05 at N = 100)
    # cannot flip the sign.
    away = frame[np.abs(frame.theory_rate) > 0.1]
    assert len(away) >= 5
    assert np.all(np.sign(away.rate) == np.sign(away.theory_rate))
    # With input noise the ordered-phase exponent is the mean-field (1/2) log chi_1 to within
    # the finite-N (N = 100) and finite-T (500 steps) error, observed <= 0.021.
    ordered = frame[(frame.sigma_in > 0) & (frame.theory_rate < -0.1)]
    assert np.all(np.abs(ordered.rate - ordered.theory_rate) < 0.05)
    # Without input, below g = 1 the state falls to the fixed point 0, where the Jacobian is W:
    # lambda_1 = log rho(W) (the warm-up of 100 steps at rate ~-0.6 leaves a state ~1e-26).
    quiet = frame[(frame.sigma_in == 0) & (frame.gain < 1)]
    assert np.all(np.abs(quiet.rate - quiet.log_spectral_radius) < 1e-3)
    # Input noise moves the edge above g = 1 (theory 1.86 at input std 1); the quick grid's
    # linear interpolation between g = 1 and g = 2 alone is off by 0.05, finite N by ~0.05 more.
    edge = summary["edge gain, measured, input std 1"]
    assert abs(edge - summary["edge gain, theory chi_1 = 1, input std 1"]) < 0.2
    assert edge > 1.5
    # The edge's bootstrap standard error: the rates' s.e. (~0.005) over the slope (~0.1 per
    # unit gain) is ~0.05; it must be positive and well below the edge's distance from 1.
    assert isinstance(edge, Estimate) and 0 < edge.stderr < 0.1


def test_newman_spectrum_is_reproduced_within_its_exact_standard_errors(tmp_path):
    frame, summary = _run("newman", tmp_path)
    assert len(frame) == frame.groupby(["n_hidden", "sigma"]).i.max().sum()
    # z-scores are N(0, 1) for an unbiased estimator: over 30 of them P(max |z| > 4.5) ~ 2e-4.
    assert np.all(np.abs(frame.z) < 4.5)
    # 95% expected within 2 s.e.; with 30 exponents fewer than 80% has probability ~2e-3.
    assert summary["fraction within 2 standard errors"] >= 0.8
    # The sum of the exponents is E log|det A| (independent terms; same z bound).
    assert summary["max |z| of the sum of exponents (vs E log|det A|)"] < 4.5
    # The library's block-spread standard error (20 blocks, ~16% relative noise each) matches
    # the exact one on average.
    assert 0.8 < summary["block s.e. / exact s.e., median"] < 1.25


def test_chain_rule_gradient_is_the_product_of_slopes_to_rounding(tmp_path):
    frame, summary = _run("chain_rule", tmp_path)
    # dh_T/dh_0 of a scalar RNN is the product of its per-step slopes: the two logs agree up to
    # the rounding of T <= 12 float64 additions of logs <= ~3 in size (~1e-14). The deviation
    # is stored at full precision by simulate (the CSV rounds the logs to 12 digits).
    assert np.all(np.abs(frame.log10_deviation) < 1e-12)
    assert summary["largest abs(measured - product of slopes) (log10)"] < 1e-12
    # Every tanh slope is |w tanh'(a)| <= |w|, so log10 |dh_T/dh_0| <= T log10 |w| (1e-9 is far
    # above the CSV's 12-digit rounding of these logs, ~1e-11).
    small = frame[(frame.activation == "tanh") & (frame.w == 0.1)]
    assert np.all(small.log10_gradient <= small.step * np.log10(0.1) + 1e-9)
