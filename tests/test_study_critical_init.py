"""The critical_init study's findings hold on its quick grid.

Checked from the CSV's raw columns (value, value_stderr, slope, horizon, input_std, n_hidden), with
the theory recomputed here from gradsim.theory and scipy (quad, not the study's Gauss-Hermite),
not read from the study's theory columns. Tolerances as in tests/test_critical_init.py: Z = 4
standard errors of the value, plus the O(r^2) remainder of the finite-N Jensen gap divided by the
slope for the tanh RNN; 1e-9 for the deterministic zero-weight roots (the root finder stops at
|lambda - target| <= 1e-12, i.e. 1e-12 / sigma(-b) <= 1e-9 in b).
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import brentq
from scipy.special import expit, logit
from study_helpers import STUDIES, run_quick
from threadpoolctl import threadpool_limits

from gradsim import theory as th
from gradsim.workflow.findings import Estimate, Exact, Rate
from gradsim.workflow.runner import expand_grid

Z = 4.0


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    with threadpool_limits(1):
        frame, summary = run_quick("critical_init", tmp_path_factory.mktemp("critical_init"))
    spec = importlib.util.spec_from_file_location("critical_init_grid", STUDIES / "critical_init.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return frame, summary, module.QUICK_GRID


def finite_n(g, s, n):
    chi1 = th.mean_field_chi1(g, "tanh", sigma_in=s)
    q = th.mean_field_q_star(g, "tanh", sigma_in=s)
    r = (3.0 * th.mu2(g, "tanh", q) / chi1**2 - 1.0) / n
    return 0.5 * math.log(chi1) - r / 4.0, r


def e_log_sigmoid(b, s):
    f = lambda z: math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi) * -np.logaddexp(0.0, -(b + s * z))  # noqa: E731
    return quad(f, -40, 40, epsabs=1e-14, epsrel=1e-12, limit=200)[0]


def test_grid_is_complete(quick):
    frame, _, grid = quick
    assert len(frame) == len(expand_grid(grid))
    assert (frame.n_evaluations >= 2).all()
    assert np.all(np.isfinite(frame.value)) and np.all(frame.value_stderr >= 0)


def test_critical_gain_matches_the_mean_field_edge(quick):
    frame, summary, _ = quick
    gains = frame[frame.part == "gain"]
    assert len(gains) >= 2
    for row in gains.itertuples():
        s, n = row.input_std, int(row.n_hidden)
        g_inf = brentq(lambda g: th.mean_field_chi1(g, "tanh", sigma_in=s) - 1.0, 0.5, 10.0, xtol=1e-14)
        g_n = brentq(lambda g: finite_n(g, s, n)[0], 0.5, 10.0, xtol=1e-14)
        r = finite_n(g_n, s, n)[1]
        assert row.theory_value == pytest.approx(g_inf, rel=1e-9)
        assert row.theory_finite_n == pytest.approx(g_n, rel=1e-9)
        allowed = Z * row.value_stderr + r**2 / abs(row.slope)
        assert abs(row.value - g_n) <= allowed, (s, row.value, g_n, row.value_stderr)
        # And against chi_1 = 1 itself, with the finite-N shift as the allowance.
        assert abs(row.value - g_inf) <= allowed + abs(g_n - g_inf)
        assert row.value - Z * row.value_stderr > 1.0  # input moves the edge above 1
        # The exponent at the value is at the target within its noise.
        assert abs(row.exponent) <= Z * row.exponent_stderr + abs(row.slope) * row.value_stderr
        key = f"critical gain, tied N = {n}, input std {s:g}"
        assert isinstance(summary[key], Estimate) and summary[key].stderr == pytest.approx(row.value_stderr)
    assert isinstance(summary[f"agreement with the finite-N mean-field edge, tied N = {n}"], Rate)


def test_forget_bias_at_zero_weights(quick):
    frame, summary, _ = quick
    exact = frame[(frame.part == "forget_bias") & (frame.gain == 0) & (frame.input_std == 0)]
    assert len(exact) >= 2
    for row in exact.itertuples():
        h = row.horizon
        assert row.value == pytest.approx(float(logit(math.exp(-1.0 / h))), abs=1e-9)
        assert math.log(expit(row.value)) == pytest.approx(-1.0 / h, rel=1e-9)
        assert row.chrono == pytest.approx(math.log(h - 1.0), rel=1e-14)
        # logit(e^(-1/H)) = log(H - 1/2) + O(1/H): above chrono's log(H - 1) by ~1/(2H).
        assert 0 < row.value - row.chrono < 1.0 / h
    key = "max |critical b_f - logit(e^(-1/H))|, zero weights, no input"
    assert isinstance(summary[key], Exact) and float(summary[key]) <= 1e-9

    noisy = frame[(frame.part == "forget_bias") & (frame.gain == 0) & (frame.input_std > 0)]
    assert len(noisy) >= 2
    for row in noisy.itertuples():
        want = brentq(lambda b: e_log_sigmoid(b, row.input_std) + 1.0 / row.horizon, -10, 30, xtol=1e-12)
        assert row.theory_value == pytest.approx(want, abs=1e-8)
        # The fastest of N units sets the top exponent: the root is at or below the mean's.
        assert row.value <= want + Z * row.value_stderr
        # ... but not below what the fastest unit's time average allows: a unit's average of
        # log sigma(b + x_t) over T' steps has s.d. sd_1 / sqrt(T'); the max of N such is at most
        # ~sqrt(2 log N) s.d. above the mean (Gaussian max bound), divided by the slope.
        z = np.linspace(-12, 12, 4001)
        w = np.exp(-0.5 * z**2)
        w /= w.sum()
        vals = -np.logaddexp(0.0, -(want + row.input_std * z))
        sd1 = math.sqrt(float(np.sum(w * vals**2) - np.sum(w * vals) ** 2))
        measured_steps = row.steps - row.warmup
        lift = math.sqrt(2 * math.log(row.n_hidden)) * sd1 / math.sqrt(measured_steps)
        assert row.value >= want - lift / abs(row.slope) - Z * row.value_stderr


def test_summary_numbers_are_typed(quick):
    _, summary, _ = quick
    for key, value in summary.items():
        if key == "notes":
            assert "logit(e^(-1/H))" in value and "finite-N" in value
            continue
        assert isinstance(value, (Estimate, Exact, Rate)), key
