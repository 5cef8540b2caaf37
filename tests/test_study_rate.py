"""Findings of the rate-network studies (studies/rate_size.py, studies/rate_chaos.py) that cannot
flip, checked on their quick grids from the CSV's raw columns (not with the studies' helpers).

Each study's quick grid runs once per module (through ``produce``, as the report does); every
tolerance says where it comes from.
"""

from __future__ import annotations

import numpy as np
import pytest
from study_helpers import run_quick
from threadpoolctl import threadpool_limits

# Standard errors a finding must clear to count as "many": the claims library's Z.
Z = 4.0
# QR reads: each block's log|R_ii| is accurate to 1e-8 (gradsim.lyapunov_spectrum), <= 3e-8
# per exponent over a window (its docstring's bound).
QR_READ = 3e-8


@pytest.fixture(scope="module")
def size_run(tmp_path_factory):
    with threadpool_limits(1):
        return run_quick("rate_size", tmp_path_factory.mktemp("rate_size"))


@pytest.fixture(scope="module")
def chaos_run(tmp_path_factory):
    with threadpool_limits(1):
        return run_quick("rate_chaos", tmp_path_factory.mktemp("rate_chaos"))


def _networks(frame, keys):
    return [part.sort_values("i") for _, part in frame.groupby(keys, sort=True)]


SIZE_KEYS = ["form", "n_units", "seed"]
CHAOS_KEYS = ["form", "gain", "sigma", "member"]


def _rk4_sum_rule_tolerance(dt, coupling_norm):
    """Bound on |mean exponent + 1| per unit time for RK4 at step dt.

    RK4's tangent step is the degree-4 Taylor polynomial of the step's propagator, so per step
    each exponent's log growth is off by the degree-5 remainder, (dt L)^5 / 5!, with
    L = 1 + ||J|| bounding ||A(t)|| = ||-I + J diag(phi'(x))|| (|phi'| <= 1); the terms from A's
    change within a step enter at the same order. Per unit time: dt^4 L^5 / 120. It is
    ~1e4 times the observed deviation (the eigenvalues' disc is centred at -1, so most of the
    remainder averages out), and still below half of Euler's offset dt/2 = 0.05 at dt = 0.1
    with the quick grids' ||J|| (~6 to 7 at g = 3): an integrator or per-unit-time mistake
    fails.
    """
    return dt ** 4 * (1.0 + coupling_norm) ** 5 / 120.0 + QR_READ


@pytest.mark.parametrize("run", ["size_run", "chaos_run"])
def test_flow_mean_exponent_is_minus_one(run, request):
    frame, _ = request.getfixturevalue(run)
    keys = SIZE_KEYS if run == "size_run" else CHAOS_KEYS
    flow = frame[frame.form == "flow"]
    assert len(flow) > 0
    for net in _networks(flow, keys):
        dt = float(net.dt.iloc[0])
        assert dt == 0.1 and net.integrator.iloc[0] == "rk4"
        # The mean of the raw exponents (not the recorded mean): Liouville with J_ii = 0.
        mean = net.exponent_per_unit_time.mean()
        tol = _rk4_sum_rule_tolerance(dt, float(net.coupling_norm.iloc[0]))
        assert abs(mean + 1.0) <= tol, (mean, tol)
        assert tol < 0.05 / 2  # the bound can tell RK4 from Euler (see the helper)


@pytest.mark.parametrize("run", ["size_run", "chaos_run"])
def test_spectra_descending_and_dimension_covers_positive_fraction(run, request):
    frame, _ = request.getfixturevalue(run)
    keys = SIZE_KEYS if run == "size_run" else CHAOS_KEYS
    for net in _networks(frame, keys):
        n = int(net.n_units.iloc[0])
        assert list(net.i) == list(range(1, n + 1))  # the full spectrum, every index once
        rates = net.exponent_per_unit_time.to_numpy()
        # lyapunov_spectrum sorts its exponents: exact, no tolerance.
        assert np.all(np.diff(rates) <= 0)
        # D_KY = j + frac with j >= the number of positive exponents (their partial sums are
        # positive) and frac >= 0, so D_KY/N >= positive fraction exactly (same division by N).
        positive = np.sum(rates > 0) / n
        dky = float(net.dky_over_n.iloc[0])
        assert dky >= float(net.positive_fraction.iloc[0])
        assert float(net.positive_fraction.iloc[0]) == pytest.approx(positive, abs=1e-12)


def test_fixed_point_rows_equal_exact_exponents(chaos_run):
    frame, _ = chaos_run
    rows = frame[(frame.gain < 1) & (frame.sigma == 0)]
    assert set(rows.form) == {"map", "flow"}
    assert rows.theory_fixed_point_exponent.notna().all()
    for net in _networks(rows, CHAOS_KEYS):
        measured = net.exponent_per_unit_time.to_numpy()
        exact = net.theory_fixed_point_exponent.to_numpy()
        steps, dt = int(net.n_steps.iloc[0]), float(net.dt.iloc[0])
        # The sum is exact at every T (the R diagonals' product is |det| of the tangent
        # product, the constant M^T): only rounding, ~1e-11 observed; 1e-9 per unit time.
        assert abs(measured.sum() - exact.sum()) <= 1e-9 * len(measured)
        # Each exponent: the QR method's finite-time transient on a constant non-normal map,
        # O(log kappa(V) / T) per partial sum (the module docstring of rate_chaos), and an
        # exponent is the difference of two partial sums: 2 log kappa(V) / (T dt) per unit
        # time. A scale argument, not a proven bound (kappa_k of the k-th exterior power can
        # exceed kappa(V)); observed 4x to 26x below it on the quick grid, 2.3x to 5x on the
        # full grid (N = 128, longer runs).
        tol = 2.0 * float(net.eigvec_log_condition.iloc[0]) / (steps * dt)
        assert np.max(np.abs(measured - exact)) <= tol
        # And the bound is informative: smaller than the spread of the exact exponents.
        assert tol < 0.25 * (exact.max() - exact.min())
    map_rows = rows[rows.form == "map"]
    # The map's exact exponents are log|mu_i| of J, below log(spectral norm) < 0 for g = 0.5:
    # x = 0 attracts (the state fell to it, as the equality shows).
    assert map_rows.theory_fixed_point_exponent.max() < 0


def test_map_is_chaotic_at_gain_three(chaos_run, size_run):
    chaos, _ = chaos_run
    size, _ = size_run
    # The map at g = 3 without input: the DMFT lambda_1 is 0.31 per step, and at N = 32 each
    # member sits ~18 block s.e. above 0 on the quick grid (0.24 +- 0.013); Z = 4 leaves room.
    # (Not the flow: at N <= 64 a g = 3 flow network can sit on a limit cycle, lambda_1 ~ 0.)
    first = chaos[(chaos.form == "map") & (chaos.gain == 3) & (chaos.sigma == 0) & (chaos.i == 1)]
    assert len(first) == 3
    assert np.all(first.exponent_per_unit_time > Z * first.exponent_stderr)
    members = first.exponent_per_unit_time
    assert members.mean() > Z * members.std(ddof=1) / np.sqrt(len(members))
    first = size[(size.form == "map") & (size.n_units == 32) & (size.i == 1)]
    assert len(first) >= 2
    assert np.all(first.exponent_per_unit_time > Z * first.exponent_stderr)


def test_summaries_carry_uncertainty(size_run, chaos_run):
    from gradsim import Estimate

    _, size = size_run
    _, chaos = chaos_run
    for key in ("flow: D_KY/N, N = 32", "map: h/N per unit time, N = 32"):
        assert isinstance(size[key], Estimate) and np.isfinite(size[key].stderr)
    assert isinstance(chaos["map: mean (lambda_1 - DMFT) over g > 1, sigma = 0"], Estimate)
    # The map's finite-N lambda_1 is below DMFT at g = 3 on the quick grid (0.07 +- 0.005).
    d = chaos["map: mean (lambda_1 - DMFT) over g > 1, sigma = 0"]
    assert float(d) < -Z * d.stderr
