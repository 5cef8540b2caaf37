"""The scientific findings of the studies hold on their quick grids.

Each test runs one study's quick grid through the same path as the report
(``gradsim.workflow.report.produce``: CSV, metadata and figure), reads the CSV back and checks the
finding the study reports, where that finding is a theorem or is far from its threshold on
the quick data (so that it cannot flip with the seeds). The checks are computed here from the
CSV's raw columns, not with the study's own helpers, and every tolerance says where it comes
from.
"""

from __future__ import annotations

import numpy as np
import pytest
from study_helpers import run_quick as _run
from threadpoolctl import threadpool_limits

from gradsim import Estimate, Exact, Rate


@pytest.fixture(autouse=True)
def _one_blas_thread():
    # Small matrices: BLAS threads only add contention, and the runner pins one thread anyway.
    with threadpool_limits(1):
        yield


def test_spectra_lstm_cell_path_never_grows(tmp_path):
    frame, summary = _run("spectra", tmp_path)
    # Every (model, init, T) row is there and finite: the spectra are logs, never overflow.
    assert set(frame.model) == {"RNN (tanh)", "LSTM, full state (h, c)",
                                "LSTM, cell path c -> c", "GRU"}
    assert np.isfinite(frame[["top_per_step", "median_per_step", "bottom_per_step"]]).all().all()
    assert (frame.top_per_step >= frame.median_per_step).all()
    assert (frame.median_per_step >= frame.bottom_per_step).all()
    # The cell path's one-step Jacobian is diag(f), 0 < f < 1 (THEORY.md section 7): every
    # singular value of the product is below 1 (expit rounds to 1 only for pre-activations
    # above ~37, far beyond these), so the strict inequality needs no tolerance.
    cell_path = frame[frame.path == "cell"]
    assert len(cell_path) > 0
    assert (cell_path.top_per_step < 0).all()
    assert summary["LSTM cell path: largest top rate over all rows"] < 0
    # ||diag(tanh') W||_2 <= ||W||_2 = gain for orthogonal and identity W (Pascanu's bound):
    # the tanh RNN's top rate never exceeds log(gain) = 0, up to rounding of the log-SVD
    # (~1e-15 per step; 1e-12 leaves a factor 1000). The CSV's 12 significant digits round a
    # rate relative to itself (5e-12 |rate|), so they cannot lift a rate near the bound 0 by
    # more than ~1e-16 here.
    rnn = frame[(frame.model == "RNN (tanh)") & frame.init.isin(["orthogonal", "identity"])]
    assert len(rnn) > 0
    assert (rnn.top_per_step <= np.log(rnn.gain) + 1e-12).all()


def test_norm_rule_counterexamples(tmp_path):
    frame, summary = _run("norm_rule", tmp_path)
    configs = frame.drop_duplicates(subset=["activation", "w_kind", "target_norm", "seed"])
    # A sign is trusted at 4 standard errors (the study's Z_SIGNIFICANT); the linear RNN's
    # per-block rates are all log rho, so its standard error may be ~0 and its sign exact.
    z = configs.lyapunov / np.maximum(configs.lyapunov_stderr, 1e-300)
    vanishes = z < -4.0
    tanh = configs.activation == "tanh"
    linear = configs.activation == "linear"
    # The lecture notes' rule fails: a tanh RNN with ||W||_2 > 1 whose gradient vanishes.
    assert (tanh & (configs.norm_W > 1) & vanishes).sum() >= 1
    # The summary gives counterexamples as a rate among the configurations with ||W||_2 > 1.
    rate = summary["tanh: ‖W‖₂ > 1 yet vanishing (counterexamples)"]
    assert isinstance(rate, Rate) and rate.trials == (tanh & (configs.norm_W > 1)).sum()
    assert rate.successes == (tanh & (configs.norm_W > 1) & vanishes).sum() >= 1
    # ... and a linear RNN with rho < 1 < ||W||_2: log ||P_1|| = log ||W||_2 > 0, yet decay.
    transient = linear & (configs.rho_W < 1) & (configs.norm_W > 1) & vanishes
    assert transient.sum() >= 1
    assert (configs[transient].peak_log_norm_Pk > 0).all()
    # Pascanu's sufficient condition has no counterexample: ||W||_2 < 1 always vanishes.
    assert vanishes[configs.norm_W < 1].all()
    # Linear RNN: the top exponent is log rho(W) (exactly for orthogonal W; for Gaussian W a
    # complex leading pair makes the finite-window estimate oscillate, an O(1/T) error with
    # T = 160 measured steps, hence 0.02).
    lin = configs[linear]
    assert np.allclose(lin.lyapunov, np.log(lin.rho_W), atol=0.02, rtol=0)


def test_activations_never_exceed_pascanu_bound(tmp_path):
    frame, summary = _run("activations", tmp_path)
    # ||diag(phi') W v|| <= gamma ||W||_2 ||v|| on every step of every trajectory: lambda_1 and
    # each per-step slope stay below the bound. The residuals (excess, max_step_excess) are
    # computed in simulate at full precision and keep their digits in the CSV; each slope is a
    # log of a norm ratio carrying ~1e-14 relative rounding (N = 16-term dot products); 1e-12
    # leaves a factor 100.
    assert (frame.excess <= 1e-12).all()
    assert (frame.max_step_excess <= 1e-12).all()
    key = "largest lambda_1 - log(gamma ‖W‖₂) (<= 0 up to rounding)"
    assert summary[key] <= 1e-12 and isinstance(summary[key], Exact)
    # The same bound from the CSV's lambda_1 and ||W||_2, each rounded to 12 significant digits
    # (5e-12 relative each: the CSV's rounding, not the computation's) on top of the 1e-12.
    bound = np.log(frame.gamma * frame.norm_W)
    assert (frame.lyapunov <= bound + 1e-12 + 1e-11 * np.maximum(1.0, bound.abs())).all()
    # The control: a linear RNN with orthogonal W has ||W q|| = ||W||_2 for every q, so every
    # step is at the bound (to rounding ~1e-16, far inside the 1e-9 "at the bound" band).
    control = frame[(frame.activation == "linear") & (frame.w_kind == "orthogonal")]
    assert len(control) > 0
    assert (control.frac_steps_at_bound == 1.0).all()
    # Saturating non-linearities open a finite gap on average (sigmoid: phi' < 1/4 unless
    # a = 0 exactly); the gap is > 0.05 nats per step in every quick configuration.
    saturating = frame[frame.activation.isin(["tanh", "sigmoid"])]
    assert (saturating.excess < -0.05).all()
    # Key numbers carry their uncertainty: fractions at the bound are the same for every draw
    # (0 for the non-linear cells, 1/2 for the control's orthogonal and Gaussian W: exact on the
    # full grid, whose seeds show it; with the quick grid's one seed per grid point, estimates
    # with standard error 0); the mean gaps are estimates with a finite standard error.
    for act in ["tanh", "sigmoid", "relu"]:
        fraction = summary[f"{act}: fraction of steps at the bound (mean over configurations)"]
        assert fraction == 0.0 and getattr(fraction, "stderr", 0.0) == 0.0
        gap = summary[f"{act}: mean gap bound - lambda_1 (nats per step)"]
        assert isinstance(gap, Estimate) and 0 < gap.stderr < gap
    assert summary["linear: fraction of steps at the bound (mean over configurations)"] == 0.5


def test_irnn_carries_the_gradient_exactly_on_active_units(tmp_path):
    frame, summary = _run("irnn", tmp_path)
    irnn = frame[frame.cell == "irnn"]
    # Scale 1: P_T = diag(1[active throughout]), so with the upstream gradient spread over the
    # units active in the whole window, log ||dL/dh_t|| = 0 at every t. The library renormalises
    # the vector each step and sums logs of norms that are 1 to rounding (~1e-16 each, T = 50
    # steps): 1e-12 is a factor ~200 above that.
    at_one = irnn[(irnn.scale == 1.0) & irnn.log_grad_active_units.notna()]
    assert len(at_one) > 0 and (at_one.n_active_whole_window > 0).all()
    assert np.abs(at_one.log_grad_active_units).max() <= 1e-12
    # Every scale: log ||dL/dh_t|| = (T - t) log s + (1/2) log(fraction active throughout
    # steps t+1..T), and -inf (an exactly zero gradient) exactly where no unit stays active.
    # Rounding accumulates at most ~eps per step in the summed logs: 1e-12 per step of window.
    # The deviations are computed in simulate at full precision (columns deviation and
    # deviation_active; 0 where both are -inf).
    predicted_zero = irnn.frac_active_window == 0
    assert (np.isneginf(irnn.log_grad) == predicted_zero).all()
    allowed = 1e-12 * np.maximum(irnn.steps_back, 1)
    assert (irnn.deviation <= allowed).all()
    active = irnn.log_grad_active_units.notna()
    assert (irnn.deviation_active[active] <= allowed[active]).all()
    assert summary["IRNN: largest abs(measured - predicted) log gradient"] <= 1e-12 * 50
    # The same prediction from the CSV's columns: log_grad is rounded to 12 significant digits
    # (5e-12 relative, the CSV's rounding) on top of the 1e-12 per step.
    finite = irnn[~predicted_zero]
    predicted = ((finite.t_max - finite.t) * np.log(finite.scale)
                 + 0.5 * np.log(finite.frac_active_window))
    assert (np.abs(finite.log_grad - predicted)
            <= 1e-12 * np.maximum(finite.steps_back, 1) + 5e-12 * finite.log_grad.abs()).all()
    # The tanh RNNs' gradient vanishes exponentially (~ -0.5 nats per step here); over the
    # 50-step window it ends far below the IRNN's at scale 1 with positive inputs, which is
    # (1/2) log(fraction active) >= (1/2) log(1/16) = -1.4.
    start = frame[frame.t == 0]
    irnn_pos = start[(start.cell == "irnn") & (start.scale == 1.0) & (start.inputs == "positive")]
    tanh = start[start.cell == "rnn"]
    assert irnn_pos.log_grad.min() > -2.0
    assert tanh.log_grad.max() < -10.0
