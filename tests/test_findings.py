"""Key numbers with their uncertainty (gradsim.workflow.findings).

The Wilson interval is checked against its defining equation, solved independently; the
median's distribution-free standard error against its coverage in simulation; the agreement
rule against the cases it must separate.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

import gradsim as gs
from gradsim.workflow.findings import agree, describe_finding
from gradsim.workflow.report import format_value


@settings(max_examples=200, deadline=None)
@given(trials=st.integers(1, 500), data=st.data())
def test_wilson_interval_solves_its_score_equation(trials, data):
    # Wilson's bounds are the p at which the score statistic |p_hat - p| / sqrt(p (1 - p) / n)
    # equals z; found here by root finding on that equation, to brentq's tolerance (1e-12).
    successes = data.draw(st.integers(0, trials))
    z = stats.norm.ppf(0.975)
    low, high = gs.wilson_interval(successes, trials)
    p_hat = successes / trials

    def score(p):
        return (p_hat - p) ** 2 - z * z * p * (1 - p) / trials

    # score < 0 just beside p_hat (and = 0 at p_hat in {0, 1}), > 0 at the far ends: each bracket
    # holds exactly one root.
    expected_low = 0.0 if successes == 0 else optimize.brentq(score, 0.0, p_hat - 1e-13, xtol=1e-14)
    expected_high = 1.0 if successes == trials else optimize.brentq(score, p_hat + 1e-13, 1.0, xtol=1e-14)
    assert low == pytest.approx(expected_low, abs=1e-10)
    assert high == pytest.approx(expected_high, abs=1e-10)
    assert 0.0 <= low <= p_hat <= high <= 1.0


def test_rate_checks_its_arguments():
    with pytest.raises(ValueError, match=r"0 <= successes <= trials.*got 4 of 3"):
        gs.Rate(4, 3)
    with pytest.raises(ValueError, match="trials >= 1"):
        gs.Rate(0, 0)
    with pytest.raises(TypeError, match="`successes` must be an integer; got 1.5"):
        gs.Rate(1.5, 3)
    with pytest.raises(ValueError, match="`stderr` must be non-negative; got -1.0"):
        gs.Estimate(1.0, -1.0)
    with pytest.raises(ValueError, match="`values` must hold at least one number"):
        gs.mean_estimate([])


def test_mean_estimate_is_the_textbook_standard_error():
    values = np.array([1.0, 2.0, 4.0, 7.0])
    estimate = gs.mean_estimate(values)
    assert float(estimate) == 3.5
    assert estimate.stderr == pytest.approx(stats.sem(values), rel=1e-15)
    assert estimate.n == 4
    assert math.isnan(gs.mean_estimate([2.0]).stderr)  # one draw: no spread to estimate


def test_median_standard_error_covers_in_simulation():
    # The stated s.e. comes from the order-statistic 95% interval; the interval
    # median +- 1.96 s.e. should cover the true median (0 for N(0, 1)) in about 95% of draws.
    # 2000 repetitions: the coverage's own s.e. is 0.005, so [0.92, 0.99] is a 6-sigma band
    # around 0.95 that also allows the interval's conservative discreteness at n = 25.
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(2000):
        estimate = gs.median_estimate(rng.standard_normal(25))
        covered += abs(float(estimate)) <= 1.959964 * estimate.stderr
    assert 0.92 <= covered / 2000 <= 0.99


def test_median_estimate_with_infinite_values():
    estimate = gs.median_estimate([1.0, 2.0, np.inf, np.inf, np.inf])
    assert float(estimate) == np.inf and estimate.stderr == np.inf
    assert math.isnan(gs.median_estimate([3.0]).stderr)  # one draw


def test_findings_are_floats_and_pickle():
    values = [gs.Exact(1.5, rtol=1e-6), gs.Estimate(2.0, 0.1, 8), gs.Rate(3, 4)]
    for value in values:
        copy = pickle.loads(pickle.dumps(value))
        assert type(copy) is type(value) and float(copy) == float(value)
        assert copy.__dict__ == value.__dict__
    assert values[2] == 0.75 and values[1] + 1 == 3.0


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        # exact: within relative 1e-9, not beyond
        (1.0, 1.0 + 5e-10, True),
        (1.0, 1.0 + 5e-9, False),
        (3e-15, 8e-15, True),  # rounding-level quantities: the absolute 1e-12
        (gs.Exact(1.0, rtol=1e-3), 1.0005, True),
        # estimates: 4 combined standard errors (sqrt(0.1^2 + 0.1^2) = 0.1414 -> 0.566)
        (gs.Estimate(1.0, 0.1), gs.Estimate(1.5, 0.1), True),
        (gs.Estimate(1.0, 0.1), gs.Estimate(1.6, 0.1), False),
        (gs.Estimate(1.0, 0.1), 1.3, True),  # one side exact: its s.e. alone
        (gs.Estimate(1.0, math.nan), 1.3, False),  # no s.e.: rounding only
        # rates: 2 of 3 vs 3 of 3 is noise; 0 of 40 vs 40 of 40 is not
        (gs.Rate(2, 3), gs.Rate(3, 3), True),
        (gs.Rate(0, 40), gs.Rate(40, 40), False),
        (gs.Rate(10, 40), gs.Rate(14, 40), True),
        # equal non-finite values agree, a finite one with inf does not
        (math.inf, math.inf, True),
        (math.nan, math.nan, True),
        (1.0, math.inf, False),
        ("text", "text", True),
        ("text", "other", False),
    ],
)
def test_agreement_rule(a, b, expected):
    ok, account = agree(a, b)
    assert ok is expected, account
    assert agree(b, a)[0] is expected  # symmetric


def test_agreement_of_rates_matches_a_two_proportion_test():
    # Independent check at one point: 12/20 vs 4/20 is a significant difference at z = 4? The
    # Agresti-Caffo s.e. of the difference is sqrt(p1 q1 / 22 + p2 q2 / 22) with p = (k+1)/22.
    p1, p2 = 13 / 22, 5 / 22
    se = math.sqrt(p1 * (1 - p1) / 22 + p2 * (1 - p2) / 22)
    assert (0.4 <= 4 * se) is agree(gs.Rate(12, 20), gs.Rate(4, 20))[0]


def test_report_text_of_each_kind():
    assert describe_finding(gs.Estimate(0.38372, 0.0123, 24), format_value) == "0.3837 ± 0.012"
    assert describe_finding(gs.Rate(2, 3), format_value) == "0.6667 (2/3; 95% CI 0.21-0.94)"
    assert describe_finding(gs.Exact(1.23456), format_value) == "1.235"
    assert describe_finding(7, format_value) == "7"
    assert describe_finding(gs.Estimate(1.0, math.nan, 1), format_value) == "1 (one draw)"
