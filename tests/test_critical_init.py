"""critical_init: the root of the measured largest exponent against mean-field and zero-weight theory.

Every theory value the tests compare with is recomputed here from gradsim.theory (chi_1, q*, mu_2)
or from a closed form (logit, Gauss-Hermite), not read from the result's own fields.

Tolerances. Z = 4 standard errors of the returned value (two-sided false alarm 6e-5 per check
for a normal estimate; the seeds are fixed, so the tests are deterministic). The finite-N
allowance of the tanh RNN: at finite N the expected log-growth is below (1/2) log chi_1 by the
Jensen gap r/4, r = (3 mu_2 / chi_1^2 - 1) / N the relative variance of ||J v||^2 (the delta
method of gradsim.claims.library._mean_field_finite_n, checked by theory.mean-field-lyapunov);
the next term of that expansion is O(r^2), which we allow in full (r^2 in the exponent, divided
by the slope d lambda / d g for the value). The edge then moves from the N = inf root g_inf
(chi_1 = 1) to the root g_N of (1/2) log chi_1 - r/4 = 0; |g_N - g_inf| is the derived finite-N
allowance when the measured value is compared with g_inf.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import logit
from threadpoolctl import threadpool_limits

from gradsim import theory as th
from gradsim.numeric.critical import PARAMETERS, CriticalInit, critical_init

Z = 4.0


@pytest.fixture(autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1):
        yield


def finite_n_exponent(g, sigma_in, n):
    chi1 = th.mean_field_chi1(g, "tanh", sigma_in=sigma_in)
    q = th.mean_field_q_star(g, "tanh", sigma_in=sigma_in)
    r = (3.0 * th.mu2(g, "tanh", q) / chi1**2 - 1.0) / n
    return 0.5 * math.log(chi1) - r / 4.0, r


def edges(sigma_in, n):
    """(g_inf: chi_1 = 1, g_N: finite-N root, r at g_N)."""
    if sigma_in == 0:
        g_inf = 1.0
    else:
        g_inf = brentq(lambda g: th.mean_field_chi1(g, "tanh", sigma_in=sigma_in) - 1.0, 0.5, 10.0,
                       xtol=1e-14)
    g_n = brentq(lambda g: finite_n_exponent(g, sigma_in, n)[0], 0.5, 10.0, xtol=1e-14)
    return g_inf, g_n, finite_n_exponent(g_n, sigma_in, n)[1]


# ------------------------------------------------------------------------------------------
# the tanh RNN against mean field
def test_edge_without_input_is_one_untied():
    # Untied weights: the setting in which mean field is exact at large N. Tied networks without
    # input settle on periodic or quasi-periodic orbits near g = 1 at small N (studies/
    # edge_of_chaos.py), so their root is not the mean-field one.
    n = 32
    found = critical_init("rnn", n, weights="untied", ensemble=16, steps=600, warmup=100, rng=0)
    g_inf, g_n, r = edges(0.0, n)
    assert found.mean_field == 1.0  # exact: q* = 0 and lambda = log g for g <= 1
    assert found.mean_field_finite_n == pytest.approx(g_n, rel=1e-9)
    assert math.isfinite(found.stderr) and found.stderr > 0
    remainder = r**2 / abs(found.slope)
    # Against the finite-N root, then against g = 1 with the finite-N shift allowed.
    assert abs(found.value - g_n) <= Z * found.stderr + remainder, (found.value, g_n, found.stderr)
    assert abs(found.value - g_inf) <= Z * found.stderr + abs(g_n - g_inf) + remainder
    # The shift is real (about sqrt(3 / (4 N)) above 1: lambda rises as (2/3)(g - 1)^2 there).
    assert g_n - 1.0 > 0.1
    assert abs(found.exponent - found.target) <= Z * found.exponent_stderr + abs(found.slope) * found.stderr


@pytest.mark.parametrize("sigma_in", [0.5, 1.0])
def test_edge_with_input_matches_chi1_one(sigma_in):
    n = 64
    found = critical_init("rnn", n, input_std=sigma_in, ensemble=16, steps=1000, warmup=200, rng=1)
    g_inf, g_n, r = edges(sigma_in, n)
    assert found.mean_field == pytest.approx(g_inf, rel=1e-9)
    assert th.mean_field_chi1(found.mean_field, "tanh", sigma_in=sigma_in) == pytest.approx(1.0, abs=1e-9)
    assert g_inf > 1.0  # input noise moves the edge above g = 1
    remainder = r**2 / abs(found.slope)
    assert abs(found.value - g_n) <= Z * found.stderr + remainder, (found.value, g_n, found.stderr)
    assert abs(found.value - g_inf) <= Z * found.stderr + abs(g_n - g_inf) + remainder
    # The value is significantly above 1 (not only the theory).
    assert found.value - Z * found.stderr > 1.0
    assert found.bracket[0] <= found.value <= found.bracket[1]


def test_rate_map_has_the_tanh_rnn_edge():
    # x' = W tanh(x) + u is the pre-activation form of h' = tanh(W h + u) (a = W h + u): the same
    # mean-field edge, and critical_init gives it the same theory.
    n = 64
    found = critical_init("rate", n, input_std=1.0, ensemble=16, steps=1000, warmup=200, rng=1)
    _, g_n, r = edges(1.0, n)
    assert found.mean_field_finite_n == pytest.approx(g_n, rel=1e-9)
    assert abs(found.value - g_n) <= Z * found.stderr + r**2 / abs(found.slope)
    flow = critical_init("rate", 8, input_std=1.0, dt=0.5, ensemble=2, steps=100, warmup=10, rng=1)
    assert flow.mean_field is None  # the Euler step at dt < 1 is not the map


def test_target_below_zero_moves_the_gain_down():
    n = 64
    at_zero = critical_init("rnn", n, input_std=1.0, ensemble=8, steps=600, warmup=100, rng=2)
    below = critical_init("rnn", n, input_std=1.0, target=-0.1, ensemble=8, steps=600, warmup=100, rng=2)
    want = brentq(lambda g: finite_n_exponent(g, 1.0, n)[0] + 0.1, 0.5, 10.0, xtol=1e-14)
    assert below.mean_field_finite_n == pytest.approx(want, rel=1e-9)
    assert below.value < at_zero.value - Z * math.hypot(below.stderr, at_zero.stderr)
    r = finite_n_exponent(want, 1.0, n)[1]
    assert abs(below.value - want) <= Z * below.stderr + r**2 / abs(below.slope)


# ------------------------------------------------------------------------------------------
# gated cells against the zero-weight theory
@pytest.mark.parametrize("horizon", [10, 200])
def test_lstm_forget_bias_zero_weights_is_exact(horizon):
    # gain = 0, no input: f = sigma(b_f) at every step, the cell path is diag(f)^T, so the
    # exponent is log sigma(b_f) exactly and the root is logit(exp(-1/H)) to rounding.
    found = critical_init("lstm", 4, parameter="forget_bias", horizon=horizon, gain=0.0, path="cell",
                          ensemble=2, steps=50, warmup=5, rng=0)
    want = float(logit(math.exp(-1.0 / horizon)))
    assert found.target == -1.0 / horizon
    assert found.mean_field == pytest.approx(want, rel=1e-12)
    assert found.value == pytest.approx(want, rel=1e-9, abs=1e-9)
    assert found.exponent == pytest.approx(-1.0 / horizon, rel=1e-9)
    assert th.lstm_zero_weight_cell_product_log(found.value, 1) == pytest.approx(-1.0 / horizon, rel=1e-9)
    # The full state (h, c): at zero weights J = [[0, D], [0, diag(f)]] with D = diag(o tanh'(c') f),
    # |D| <= 1/2 (o = sigma(0)), so P_T = [[0, D_T f^(T-1)], [0, f^T]] and its top singular value
    # is f^(T-1) sqrt(f^2 + D_T^2): the exponent is log f up to (1/2) log(1 + 1/(4 f^2)) at each
    # end of the measured window, i.e. within log(1 + 1/(4 f^2)) / T' per step (T' measured
    # steps); divided by the slope sigma(-b) for the value.
    steps, warmup = 1000, 10
    full = critical_init("lstm", 4, parameter="forget_bias", horizon=horizon, gain=0.0,
                         ensemble=2, steps=steps, warmup=warmup, rng=0)
    f = math.exp(-1.0 / horizon)
    allowed = math.log1p(0.25 / f**2) / (steps - warmup) / (1.0 - f)
    assert abs(full.value - want) <= allowed, (full.value, want, allowed)
    # Close to chrono's log(H - 1) (sigma = 1 - 1/H, log = -1/H - 1/(2H^2) - ...): the zero-weight
    # root is log(H - 1/2) + O(1/H).
    assert abs(found.value - th.chrono_forget_bias(horizon)) < 1.5 / horizon + 0.5 / horizon


@pytest.mark.parametrize("variant, sign", [("torch", 1.0), ("chung", -1.0)])
def test_gru_update_bias_zero_weights_is_exact(variant, sign):
    found = critical_init("gru", 4, parameter="update_bias", horizon=30, gain=0.0, variant=variant,
                          ensemble=2, steps=50, warmup=5, rng=0)
    want = sign * float(logit(math.exp(-1.0 / 30)))
    assert found.value == pytest.approx(want, rel=1e-9)
    assert th.gru_zero_weight_direct_product_log(found.value, 1, variant) == pytest.approx(-1.0 / 30, rel=1e-9)
    direct = critical_init("gru", 4, parameter="update_bias", horizon=30, gain=0.0, variant=variant,
                           path="direct", ensemble=2, steps=50, warmup=5, rng=0)
    assert direct.value == pytest.approx(want, rel=1e-9)


def _gauss_log_sigmoid(b, s):
    """E log sigma(b + s z) by Gauss-Hermite with 120 nodes (a smooth integrand)."""
    z, w = np.polynomial.hermite_e.hermegauss(120)
    return float(np.sum(w * -np.logaddexp(0.0, -(b + s * z))) / np.sum(w))


@pytest.mark.parametrize("kind, parameter", [("lstm", "forget_bias"), ("gru", "update_bias")])
def test_gated_zero_weights_with_input(kind, parameter):
    # One unit per network: its cell-path (direct-path) exponent is the time average of
    # log sigma(b + x_t) over the measured steps, an unbiased estimate of E log sigma(b + s z),
    # so the ensemble root estimates the zero-weight theory's root within its standard error
    # (the curvature of E log sigma over the root's s.e. is a second-order effect, < 1e-5 here).
    s, horizon = 1.0, 50
    found = critical_init(kind, 1, parameter=parameter, horizon=horizon, gain=0.0, input_std=s,
                          path="cell" if kind == "lstm" else "direct", ensemble=64, steps=800,
                          warmup=10, rng=3)
    want = brentq(lambda b: _gauss_log_sigmoid(b, s) + 1.0 / horizon, -10.0, 20.0, xtol=1e-13)
    assert found.mean_field == pytest.approx(want, abs=1e-9)
    assert abs(found.value - want) <= Z * found.stderr, (found.value, want, found.stderr)
    # Input noise needs a larger bias than log sigma(b) = -1/H (Jensen: E log sigma < log sigma(E)).
    assert want > float(logit(math.exp(-1.0 / horizon)))


def test_lstm_with_input_many_units_is_biased_up_by_the_top_unit():
    # With N units the top exponent of the diagonal cell path is the fastest unit's, above the
    # mean over units: the root lies below the one-unit (mean) root, never above it beyond noise.
    s, horizon = 1.0, 50
    found = critical_init("lstm", 16, parameter="forget_bias", horizon=horizon, gain=0.0, input_std=s,
                          path="cell", ensemble=16, steps=800, warmup=10, rng=4)
    want = brentq(lambda b: _gauss_log_sigmoid(b, s) + 1.0 / horizon, -10.0, 20.0, xtol=1e-13)
    assert found.value <= want + Z * found.stderr


# ------------------------------------------------------------------------------------------
# the result
def test_result_is_frozen_reproducible_and_records_evaluations():
    kwargs = dict(input_std=1.0, ensemble=4, steps=300, warmup=50)
    found = critical_init("rnn", 16, rng=5, **kwargs)
    again = critical_init("rnn", 16, rng=np.random.default_rng(5), **kwargs)
    assert isinstance(found, CriticalInit)
    assert found == again
    with pytest.raises(dataclasses.FrozenInstanceError):
        found.value = 1.0
    assert found.n_evaluations == len(found.evaluations) >= 2
    assert found.evaluations[0][0] == pytest.approx(found.mean_field_finite_n)
    assert all(len(e) == 3 and all(math.isfinite(x) for x in e) for e in found.evaluations)
    assert found.bounds == (0.01, 20.0)
    assert found.bracket[0] <= found.value <= found.bracket[1]
    assert (found.kind, found.parameter, found.ensemble, found.steps, found.warmup) == ("rnn", "gain", 4, 300, 50)
    by_horizon = critical_init("rnn", 16, horizon=20, rng=5, **kwargs)
    by_target = critical_init("rnn", 16, target=-1 / 20, rng=5, **kwargs)
    assert by_horizon == by_target


def test_kind_without_theory_runs_and_says_so():
    # Mean field here is for Gaussian weights; orthogonal ones have no theory in critical_init.
    found = critical_init("rnn", 16, input_std=1.0, init="orthogonal", ensemble=4, steps=300,
                          warmup=50, rng=0)
    assert found.mean_field is None and found.mean_field_finite_n is None and found.theory == "none"
    assert found.bracket[0] <= found.value <= found.bracket[1]
    assert math.isfinite(found.stderr)


# ------------------------------------------------------------------------------------------
# bad input
def test_unknown_parameter_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"`parameter` must be one of 'gain' for kind='rnn'; got 'forget_bias'"):
        critical_init("rnn", 8, parameter="forget_bias")
    with pytest.raises(ValueError, match=r"one of 'gain', 'forget_bias' for kind='lstm'; got 'update_bias'"):
        critical_init("lstm", 8, parameter="update_bias")
    with pytest.raises(ValueError, match=r"one of 'gain', 'update_bias' for kind='gru'; got 'bias'"):
        critical_init("gru", 8, parameter="bias")
    with pytest.raises(ValueError, match=r"kind='lru' has none"):
        critical_init("lru", 8)
    with pytest.raises(ValueError, match=r"`kind` must be one of"):
        critical_init("transformer", 8)
    assert set(PARAMETERS) >= {"rnn", "lstm", "gru"}


@pytest.mark.parametrize("target", [math.nan, math.inf, -math.inf])
def test_non_finite_target(target):
    with pytest.raises(ValueError, match=r"`target` must be a finite number; got"):
        critical_init("rnn", 8, target=target)


def test_collapsed_product_is_an_error():
    # IRNN (ReLU, W = g I): with input noise every unit is inactive at some step, P_T = 0.
    with pytest.raises(ValueError, match=r"`bounds` must keep the largest exponent finite; at gain=1.0 it is -inf"):
        critical_init("irnn", 8, input_std=0.5, ensemble=2, steps=300, warmup=10, rng=0)


def test_unreachable_target_names_the_range_tried():
    # At zero weights log sigma(b) < 0 for every b: a target of +0.1 is never reached.
    with pytest.raises(ValueError, match=r"`target` 0.1 is not reached by forget_bias of kind='lstm' in "
                                         r"the range tried, \[-30, 30\]"):
        critical_init("lstm", 4, parameter="forget_bias", target=0.1, gain=0.0, path="cell",
                      ensemble=2, steps=30, warmup=2, rng=0)
    with pytest.raises(ValueError, match=r"in the range tried, \[0.5, 0.8\] \(`bounds`\)"):
        critical_init("rnn", 16, input_std=1.0, bounds=(0.5, 0.8), ensemble=2, steps=100, warmup=10, rng=0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_hidden=0), r"`n_hidden` must be an integer >= 1; got 0"),
    (dict(n_hidden=2.5), r"`n_hidden` must be an integer >= 1; got 2.5"),
    (dict(input_std=-1.0), r"`input_std` must be a non-negative finite number; got -1.0"),
    (dict(input_std=math.nan), r"`input_std` must be a non-negative finite number; got nan"),
    (dict(horizon=10, target=-0.5), r"give one of them; got target=-0.5 and horizon=10"),
    (dict(horizon=0.5), r"`horizon` must be a number >= 1 \(steps\); got 0.5"),
    (dict(ensemble=0), r"`ensemble` must be an integer >= 1; got 0"),
    (dict(steps=1), r"`steps` must be an integer >= 2; got 1"),
    (dict(warmup=1000), r"`warmup` must be an integer in \[0, steps\) = \[0, 1000\); got 1000"),
    (dict(weights="shared"), r"`weights` must be one of 'tied', 'untied'; got 'shared'"),
    (dict(bounds=(2.0, 1.0)), r"`bounds` must be a pair \(low, high\) of finite numbers with 0 < low < high"),
    (dict(max_evaluations=2), r"`max_evaluations` must be an integer >= 3; got 2"),
    (dict(n_input=4), r"`n_input` is set by critical_init"),
    (dict(gain=2.0), r"`gain` is set by critical_init"),
])
def test_bad_arguments(kwargs, message):
    args = dict(n_hidden=8)
    args.update(kwargs)
    n = args.pop("n_hidden")
    error = TypeError if isinstance(n, float) else ValueError
    with pytest.raises((ValueError, TypeError), match=message) as info:
        critical_init("rnn", n, **args)
    assert info.type is error or info.type is ValueError
